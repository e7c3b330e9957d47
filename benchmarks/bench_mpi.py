"""Data-parallel training on one machine (issue 24): training tokens/s of ``rnnkit lm train
--preset zaremba-small`` on PTB with 1 process x 2 threads against 2 processes x 1 thread
(``mpiexec -n 2``, the same global batch of 20 streams), and the share of each step the two
processes spend in the gradients' ``Allreduce`` (and in copying the gradients into its
buffer and back). Then the inputs of BENCHMARKS.md's scaling model, for zaremba-small and a
2x650 model (Zaremba et al.'s "medium" sizes: embedding and hidden 650, BPTT 35): the CPU
time of a training step on one thread at batch 20, 10 and 5 (a line through them: a part
that does not shrink with the batch and one per stream), the gradient's bytes, and a bare
``Allreduce`` of those bytes between two processes here; from them, the step time on N
machines with a ring all-reduce over 10 and 100 Gbit/s, and the N where communication
exceeds computation.

The training runs alternate (A B A B ...); their figures are medians (of the logged records
of a run, then of the runs). The machine may be shared: the load average is printed with the
results; the step times of the model are CPU times, less disturbed by other processes than
wall-clock time.

    python benchmarks/bench_mpi.py [--data ../shared/data/ptb] [--steps 60] [--repeats 5]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_onnx import cpu_description
from bench_rnn import blas_description
from threadpoolctl import threadpool_limits

from rnnkit.fast.gemm import VW
from rnnkit.models.lm import LanguageModel
from rnnkit.recipes.lm import PRESETS, LMTrainConfig
from rnnkit.train.logs import measure_and_clip
from rnnkit.train.loop import make_optimizer

HERE = Path(__file__).resolve().parent
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
# name: (settings over the zaremba-small preset, rounds of the step timing)
MODELS = {"zaremba-small": ({}, 30), "2x650": ({"hidden": 650, "embed": 650, "bptt": 35}, 8)}
# a bare Allreduce of N float32 values between the processes: median seconds of 15
ALLREDUCE = """
import json, sys, time
import numpy as np
from mpi4py import MPI
comm, n = MPI.COMM_WORLD, int(sys.argv[1])
buf, times = np.ones(n, np.float32), []
for _ in range(17):
    comm.Barrier()
    t = time.perf_counter()
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    times.append(time.perf_counter() - t)
if comm.Get_rank() == 0:
    print(json.dumps(sorted(times[2:])[len(times[2:]) // 2]))
"""


def train(out: Path, data: Path, steps: int, procs: int, threads: int) -> dict[str, Any]:
    """One short run; the medians of its logged training records (the first one, which
    holds the start-up, left out)."""
    cmd = [sys.executable, "-m", "rnnkit", "--threads", str(threads), "lm", "train",
           str(data / "ptb.train.txt"), "--preset", "zaremba-small", "--max-steps",
           str(steps), "--log-every", "10", "--no-progress",
           "--out", str(out)]  # fmt: skip
    if procs > 1:
        cmd = [MPIEXEC, "-n", str(procs), *cmd]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    recs = [r for r in recs if r["type"] == "train"][1:]
    keys = ("tokens_per_s", "allreduce_share", "gradient_copy_share")
    res = {k: statistics.median(r[k] for r in recs) for k in keys if k in recs[0]}
    shutil.rmtree(out)
    return res


def step_cpu(extra: dict[str, Any], rounds: int) -> dict[str, Any]:
    """CPU seconds of one training step of a zaremba-small-shaped model (PTB's 10,000 words)
    on one thread, in this process: forward, backward, clipping and SGD, at batch 20, 10 and
    5 (interleaved, median of ``rounds``), a least-squares line a + b * batch through them,
    and the part that does not depend on the batch (zeroing the gradients, clipping, the
    update) timed alone."""
    cfg = LMTrainConfig(**{**PRESETS["zaremba-small"], **extra})
    model = LanguageModel(cfg.model_config(10_000), seed=0)
    opt = make_optimizer("sgd", model.params, model.grads, 1e-3)
    rng = np.random.default_rng(0)
    T, sizes = cfg.bptt, (20, 10, 5)
    times: dict[Any, list[float]] = {b: [] for b in (*sizes, "update")}
    with threadpool_limits(1):
        for r in range(rounds + 2):
            for b in sizes:
                x, y = rng.integers(0, 10_000, (2, b, T))
                t0 = time.process_time()
                loss, _, cache = model.forward(x, y, None, training=True)
                model.zero_grad()
                model.backward(cache, dloss=float(T))
                measure_and_clip(model.grads, 5.0, False)
                opt.step()
                if r >= 2:  # the first two rounds warm up
                    times[b].append(time.process_time() - t0)
            t0 = time.process_time()
            model.zero_grad()
            measure_and_clip(model.grads, 5.0, False)
            opt.step()
            if r >= 2:
                times["update"].append(time.process_time() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    per_row, fixed = np.polyfit(sizes, [med[b] for b in sizes], 1)
    nbytes = sum(g.nbytes for g in model.grads.values())
    return {"step_s": {b: med[b] for b in sizes}, "fixed_s": float(fixed),
            "per_row_s": float(per_row), "update_s": med["update"],
            "grad_bytes": nbytes}  # fmt: skip


def ring_seconds(n: int, nbytes: int, gbit: float) -> float:
    """A ring all-reduce of ``nbytes`` over ``n`` machines: each sends and receives
    2 (n - 1) / n of the bytes over its link of ``gbit`` Gbit/s (latency left out)."""
    return 2 * (n - 1) / max(n, 1) * nbytes / (gbit * 1e9 / 8)


def allreduce_seconds(nbytes: int) -> float:
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-c", ALLREDUCE, str(nbytes // 4)]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "ptb")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cpu, isa = cpu_description()
    print(f"CPU: {cpu}; ISA: {isa}; {os.cpu_count()} logical CPUs")
    print(f"BLAS: {blas_description()}; rnnkit's float32 kernel: {VW} floats per vector")
    print(f"load average before: {os.getloadavg()}")
    tmp = Path(tempfile.mkdtemp())
    result: dict[str, Any] = {"cpu": cpu, "isa": isa, "blas": blas_description()}

    # 1. one process on two threads against two processes on one thread each
    runs: dict[str, list[dict[str, Any]]] = {"1x2": [], "2x1": []}
    for i in range(args.repeats):
        for name, procs, threads in (("1x2", 1, 2), ("2x1", 2, 1))[:: 1 if i % 2 == 0 else -1]:
            runs[name].append(train(tmp / f"{name}-{i}", args.data, args.steps, procs, threads))
    print(f"\nzaremba-small on PTB, global batch 20 x 20, {args.steps} steps per run, "
          f"{args.repeats} runs each, alternated")  # fmt: skip
    med = {}
    for name, rs in runs.items():
        tok = [r["tokens_per_s"] for r in rs]
        med[name] = statistics.median(tok)
        line = f"  {name}: tokens/s {', '.join(f'{t:,.0f}' for t in tok)} (median {med[name]:,.0f})"
        if name == "2x1":
            share = statistics.median(r["allreduce_share"] for r in rs)
            copy = statistics.median(r["gradient_copy_share"] for r in rs)
            line += f"; Allreduce {100 * share:.1f}% of a step, gradient copies {100 * copy:.1f}%"
            result["allreduce_share"], result["gradient_copy_share"] = share, copy
        print(line)
    print(f"  2 processes x 1 thread / 1 process x 2 threads: {med['2x1'] / med['1x2']:.2f}")
    result["tokens_per_s"] = {k: [r["tokens_per_s"] for r in v] for k, v in runs.items()}

    # 2. the scaling model's inputs: CPU time of a step on one thread, the gradient's bytes
    print("\nscaling model (one thread, CPU time; ring all-reduce 2(N-1)/N x bytes / bw)")
    result["models"] = {}
    for model, (extra, rounds) in MODELS.items():
        m = step_cpu(extra, rounds)
        t20, fixed, per_row, nbytes = m["step_s"][20], m["fixed_s"], m["per_row_s"], m["grad_bytes"]
        m["allreduce_here_s"] = here = allreduce_seconds(nbytes)
        print(f"  {model}: step {1e3 * t20:.0f} ms at batch 20, "
              + ", ".join(f"{1e3 * v:.0f} ms at {b}" for b, v in m["step_s"].items() if b != 20)
              + f" (line: {1e3 * fixed:.1f} ms + {1e3 * per_row:.2f} ms per stream; zeroing, "
              f"clipping and the update alone {1e3 * m['update_s']:.1f} ms); gradient "
              f"{nbytes / 1e6:.1f} MB; Allreduce of it between 2 processes here "
              f"{1e3 * here:.1f} ms")  # fmt: skip
        for gbit in (10, 100):
            comm = [ring_seconds(n, nbytes, gbit) for n in range(1025)]
            comp = [fixed + per_row * 20 / max(n, 1) for n in range(1025)]  # batch 20 split
            cross = next((n for n in range(2, 1025) if comm[n] > comp[n]), None)
            speedup = {n: t20 / (comp[n] + comm[n]) for n in (2, 4, 8, 16)}
            m[f"{gbit}gbit"] = {"crossover_n": cross, "speedup": speedup}
            print(f"    {gbit:>3} Gbit/s: all-reduce {1e3 * comm[2]:.1f} ms at N=2, "
                  f"{1e3 * comm[1024]:.1f} ms at N=1024; communication > computation "
                  f"from N = {cross}; speed-up without overlap "
                  + ", ".join(f"N={n}: {s:.2f}" for n, s in speedup.items()))  # fmt: skip
        result["models"][model] = m
    print(f"\nload average after: {os.getloadavg()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
