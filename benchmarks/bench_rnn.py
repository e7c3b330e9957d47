"""rnnkit's recurrent layers against torch.nn.RNN/LSTM/GRU on the CPU, in one process.

For every cell, shape and mode (training step = forward + backward with a random upstream
gradient; inference = forward only, torch under ``inference_mode``) and every thread count,
both implementations are timed interleaved, each call after a short pause (OpenBLAS's
worker threads spin for ~0.1 s after a call and would slow the next one), and the median
of ``--repeats`` runs after ``--warmup`` runs is reported with:

- the ratio torch_time / rnnkit_time (> 1: rnnkit is faster),
- achieved GFLOP/s, counting 2*B*T*G*H*(D+H) per direction and layer for a forward pass
  and 3x that for a training step, and its share of the measured SGEMM peak (a 2048x2048
  float32 matmul at the same thread count),
- the BLAS library and kernel that threadpoolctl reports.

    python benchmarks/bench_rnn.py                      # the full table, 1 and 2 threads
    python benchmarks/bench_rnn.py --quick              # one shape, a smoke run
    python benchmarks/bench_rnn.py --json results.json  # also save the raw figures
    python benchmarks/bench_rnn.py --threads 1 --clock cpu  # on a loaded machine

``--clock cpu`` times with the CPU time of this process instead of the wall clock: on a
machine shared with other jobs the wall clock mostly measures the scheduler, while the
CPU time of a one-thread run still measures the work (it is not meaningful with 2 threads,
where it adds up both threads and their spin-waiting).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import machine  # benchmarks/machine.py: the header (CPU, ISA, each library's kernel)
import numpy as np
import torch
from threadpoolctl import threadpool_limits

import rnnkit

SHAPES = [  # (B, T, D, H)
    (32, 100, 128, 128),
    (64, 100, 256, 256),
    (64, 50, 512, 512),
    (1, 1000, 64, 64),
    (128, 35, 650, 650),
]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
PAUSE = 0.25


@dataclass
class Case:
    cell: str
    B: int
    T: int
    D: int
    H: int
    layers: int = 1
    bidirectional: bool = False

    @property
    def name(self) -> str:
        extra = f" L{self.layers}{' bi' if self.bidirectional else ''}"
        return f"{self.cell.upper()} ({self.B},{self.T},{self.D},{self.H}){extra}"

    def forward_flops(self) -> float:
        G, dirs = GATES[self.cell], 2 if self.bidirectional else 1
        total = 0.0
        for layer in range(self.layers):
            d_in = self.D if layer == 0 else dirs * self.H
            total += dirs * 2 * self.B * self.T * G * self.H * (d_in + self.H)
        return total


def make_pair(case: Case, seed: int = 0):
    cls = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[case.cell]
    ours = cls(case.D, case.H, num_layers=case.layers, bidirectional=case.bidirectional,
               dtype=np.float32, seed=seed)  # fmt: skip
    tcls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.cell]
    theirs = tcls(case.D, case.H, num_layers=case.layers, bidirectional=case.bidirectional,
                  batch_first=True)  # fmt: skip
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return ours, theirs


def timers(case: Case, mode: str) -> tuple[Callable[[], None], Callable[[], None]]:
    ours, theirs = make_pair(case)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.B, case.T, case.D)).astype(np.float32)
    dirs = 2 if case.bidirectional else 1
    dout = rng.standard_normal((case.B, case.T, dirs * case.H)).astype(np.float32)
    xt, doutt = torch.from_numpy(x), torch.from_numpy(dout)
    if mode == "infer":

        def run_ours() -> None:
            ours(x)

        def run_torch() -> None:
            with torch.inference_mode():
                theirs(xt)

    else:
        xg = xt.clone().requires_grad_(True)

        def run_ours() -> None:
            ours.zero_grad()
            out, _, cache = ours.forward(x)
            ours.backward(dout, cache)

        def run_torch() -> None:
            theirs.zero_grad()
            xg.grad = None
            out, _ = theirs(xg)
            out.backward(doutt)

    return run_ours, run_torch


CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process)


def timed(f: Callable[[], None]) -> float:
    time.sleep(PAUSE)
    t = CLOCK()
    f()
    return CLOCK() - t


def sgemm_peak(threads: int, repeats: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    with threadpool_limits(threads):
        a @ a
        ts = [timed(lambda: a @ a) for _ in range(repeats)]
    return 2 * 2048**3 / statistics.median(ts) / 1e9


def blas_description() -> str:
    return "; ".join(machine.blas_kernels()) or "unknown"


def bench(case: Case, mode: str, threads: int, warmup: int, repeats: int) -> dict:
    run_ours, run_torch = timers(case, mode)
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        assert torch.get_num_threads() == threads
        for _ in range(warmup):
            run_ours()
            run_torch()
        t_ours, t_torch = [], []
        for r in range(repeats):  # interleaved, alternating which goes first
            if r % 2:
                t_torch.append(timed(run_torch))
                t_ours.append(timed(run_ours))
            else:
                t_ours.append(timed(run_ours))
                t_torch.append(timed(run_torch))
    mo, mt = statistics.median(t_ours), statistics.median(t_torch)
    flops = case.forward_flops() * (3 if mode == "train" else 1)
    return {
        "case": case.name, "mode": mode, "threads": threads,
        "rnnkit_ms": mo * 1e3, "torch_ms": mt * 1e3, "ratio": mt / mo,
        "rnnkit_gflops": flops / mo / 1e9, "torch_gflops": flops / mt / 1e9,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--modes", nargs="+", default=["train", "infer"])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="one small shape, 3 repeats")
    ap.add_argument("--json", help="write the raw results to this file")
    ap.add_argument("--only", nargs="+", type=int, help="case indices (0-5) per cell to run")
    ap.add_argument(
        "--shapes",
        nargs="+",
        metavar="B,T,D,H",
        help="these shapes instead of the table's (one layer, one direction)",
    )
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: perf_counter; cpu: CPU time of this process (loaded machines, "
                         "1 thread only: with 2 it sums both threads)")  # fmt: skip
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    cases = []
    for c in args.cells:
        cell_cases = [Case(c, *s) for s in SHAPES]
        cell_cases.append(Case(c, 32, 100, 128, 128, layers=2, bidirectional=True))
        cases += [cell_cases[i] for i in args.only] if args.only else cell_cases
    if args.shapes:
        try:
            shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]
        except ValueError:
            ap.error(f"--shapes: expected B,T,D,H integers, got {' '.join(args.shapes)}")
        if any(len(s) != 4 or min(s) < 1 for s in shapes):
            ap.error("--shapes: each shape is four positive integers B,T,D,H")
        cases = [Case(c, *s) for c in args.cells for s in shapes]
    if args.quick:
        cases, args.repeats = [Case(c, 32, 100, 128, 128) for c in args.cells], 3

    print(machine.header())
    print(f"clock: {args.clock}, {args.repeats} interleaved repeats after {args.warmup} warm-ups")
    results = []
    for threads in args.threads:
        peak = sgemm_peak(threads)
        print(f"\n### {threads} thread{'s' if threads > 1 else ''} "
              f"(SGEMM 2048^3 peak {peak:.0f} GFLOP/s)\n")  # fmt: skip
        print("| case | mode | rnnkit ms | torch ms | torch/rnnkit | rnnkit GFLOP/s (% peak) "
              "| torch GFLOP/s |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|")
        for case in cases:
            for mode in args.modes:
                r = bench(case, mode, threads, args.warmup, args.repeats)
                r["peak_gflops"] = peak
                results.append(r)
                print(f"| {r['case']} | {mode} | {r['rnnkit_ms']:.1f} | {r['torch_ms']:.1f} | "
                      f"{r['ratio']:.2f} | {r['rnnkit_gflops']:.0f} "
                      f"({100 * r['rnnkit_gflops'] / peak:.0f}%) | {r['torch_gflops']:.0f} |",
                      flush=True)  # fmt: skip
    ratios = [r["ratio"] for r in results]
    print(f"\nworst ratio {min(ratios):.2f}, median {statistics.median(ratios):.2f}, "
          f"{sum(x >= 1 for x in ratios)}/{len(ratios)} cases >= 1.0")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "header": machine.header(),
                    "blas": blas_description(),
                    "clock": args.clock,
                    "results": results,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
