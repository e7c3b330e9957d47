"""rnnkit's recurrent layers against onnxruntime running their ONNX export, in one process.

The second speed anchor beside torch (``bench_rnn.py``): the inference rows of
``bench_rnn.py`` (same cells and shapes, same float32 weights), each layer exported with
:func:`rnnkit.deploy.onnx.layer_graph` (ONNX's own RNN/LSTM/GRU operators, the graph that
``rnnkit export`` writes for a model's recurrent stack) and run by onnxruntime's CPU
execution provider with ``intra_op_num_threads`` = the thread count and
``inter_op_num_threads`` = 1. rnnkit, onnxruntime and torch (under ``inference_mode``) are
timed interleaved, the order rotating every repeat, each call after ``bench_rnn``'s pause;
medians of ``--repeats`` runs after ``--warmup``. Before timing, each case checks that
onnxruntime's output equals rnnkit's (max |diff| < 1e-4). Ratios are peer_time /
rnnkit_time (> 1: rnnkit is faster).

    python benchmarks/bench_onnx.py                 # all inference rows, 1 and 2 threads
    python benchmarks/bench_onnx.py --quick         # one shape per cell
    python benchmarks/bench_onnx.py --json onnx.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import bench_rnn
import numpy as np
import onnxruntime as ort
import torch
from bench_rnn import SHAPES, Case, blas_description, make_pair, timed
from threadpoolctl import threadpool_limits

from rnnkit.deploy.onnx import layer_graph

PEERS = ("rnnkit", "onnxruntime", "torch")
ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
       "avx512_bf16", "amx_tile", "amx_bf16")  # fmt: skip


def cpu_description() -> tuple[str, str]:
    """CPU model and the vector instruction sets that matter here, from ``lscpu``."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or platform.machine(), "unknown"
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = set(info.get("Flags", "").split())
    return info.get("Model name", "?").strip(), " ".join(f for f in ISA if f in flags)


def session(layer, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(layer_graph(layer).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])  # fmt: skip


def timers(case: Case, threads: int) -> dict[str, Callable[[], None]]:
    ours, theirs = make_pair(case)
    x = np.random.default_rng(0).standard_normal((case.B, case.T, case.D)).astype(np.float32)
    xt = torch.from_numpy(x)
    sess = session(ours, threads)
    err = float(np.abs(sess.run(["y"], {"x": x})[0] - ours(x)[0]).max())
    if err > 1e-4:
        raise SystemExit(f"{case.name}: onnxruntime's output differs from rnnkit's by {err}")

    def run_torch() -> None:
        with torch.inference_mode():
            theirs(xt)

    return {
        "rnnkit": lambda: ours(x),
        "onnxruntime": lambda: sess.run(None, {"x": x}),
        "torch": run_torch,
    }


def bench(case: Case, threads: int, warmup: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        run = timers(case, threads)
        for _ in range(warmup):
            for f in run.values():
                f()
        times: dict[str, list[float]] = {p: [] for p in PEERS}
        for r in range(repeats):  # interleaved; the order rotates every repeat
            for k in range(len(PEERS)):
                peer = PEERS[(r + k) % len(PEERS)]
                times[peer].append(timed(run[peer]))
    ms = {p: statistics.median(t) * 1e3 for p, t in times.items()}
    return {"case": case.name, "threads": threads, **{f"{p}_ms": v for p, v in ms.items()},
            "ort_ratio": ms["onnxruntime"] / ms["rnnkit"],
            "torch_ratio": ms["torch"] / ms["rnnkit"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="one small shape per cell, 3 repeats")
    ap.add_argument("--json", help="write the raw results to this file")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: CPU time of this process (1 thread only)")  # fmt: skip
    args = ap.parse_args()
    bench_rnn.CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    cases = []
    for c in args.cells:  # bench_rnn's cases
        cases += [Case(c, *s) for s in SHAPES]
        cases.append(Case(c, 32, 100, 128, 128, layers=2, bidirectional=True))
    if args.quick:
        cases, args.repeats = [Case(c, 32, 100, 128, 128) for c in args.cells], 3

    model, isa = cpu_description()
    print(f"CPU: {model}; ISA: {isa}")
    print(f"BLAS (threadpoolctl): {blas_description()}")
    print(f"onnxruntime {ort.__version__} (CPUExecutionProvider), torch {torch.__version__}, "
          f"numpy {np.__version__}")  # fmt: skip
    print(f"clock: {args.clock}, {args.repeats} interleaved repeats after {args.warmup} warm-ups")
    results = []
    for threads in args.threads:
        print(f"\n### {threads} thread{'s' if threads > 1 else ''} (inference)\n")
        print("| case | rnnkit ms | onnxruntime ms | torch ms | onnxruntime/rnnkit "
              "| torch/rnnkit |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|")
        for case in cases:
            r = bench(case, threads, args.warmup, args.repeats)
            results.append(r)
            print(f"| {r['case']} | {r['rnnkit_ms']:.1f} | {r['onnxruntime_ms']:.1f} | "
                  f"{r['torch_ms']:.1f} | {r['ort_ratio']:.2f} | {r['torch_ratio']:.2f} |",
                  flush=True)  # fmt: skip
    for key, name in (("ort_ratio", "onnxruntime"), ("torch_ratio", "torch")):
        ratios = [r[key] for r in results]
        wins = sum(x >= 1 for x in ratios)
        print(f"{name}/rnnkit: worst {min(ratios):.2f}, median {statistics.median(ratios):.2f}, "
              f"best {max(ratios):.2f}, {wins}/{len(ratios)} >= 1.0")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": model, "isa": isa, "blas": blas_description(),
                       "onnxruntime": ort.__version__, "clock": args.clock,
                       "results": results}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
