"""How the compiled engine shares work between two threads, timed against its alternatives.

1. **Hand-off**: two empty calls run in parallel by ``rnnkit.fast.recurrent._in_parallel``
   (the caller runs one, a worker pinned to another CPU the other, through two locks),
   against the thread pool it replaced (``concurrent.futures``, one single-thread pool per
   CPU with its worker pinned, every call on a worker while the caller waits). Median and
   90th percentile over ``--handoffs`` hand-offs, and the ratio pool / rnnkit.
2. **Balanced products**: training steps (forward and backward) with the RNN's and GRU's
   weight-gradient products of each chunk side by side, one per thread, beside dX's rows
   (``_balanced``), against the same steps with each product in turn, split by rows
   (``BALANCE_MAX_BYTES`` set to 0). One process, the two alternating, medians:

    python benchmarks/threads.py --shapes 256,20,200,200 64,100,256,256 --cells rnn gru

The figures: BENCHMARKS.md, issue 21, session 16.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait

import machine  # benchmarks/machine.py: the header (CPU, ISA, each library's kernel)
import numpy as np
from threadpoolctl import threadpool_limits

import rnnkit
from rnnkit.fast import recurrent


def _noop() -> None:
    pass


def _pin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def handoffs(n: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    pools = [ThreadPoolExecutor(1, initializer=_pin, initargs=(cpus[i % len(cpus)],))
             for i in range(2)]  # fmt: skip

    def pool() -> None:
        wait([p.submit(_noop) for p in pools])

    def ours() -> None:
        recurrent._in_parallel([_noop, _noop])

    times: dict[str, list[float]] = {"thread pool": [], "rnnkit": []}
    for _ in range(n):
        for name, f in (("thread pool", pool), ("rnnkit", ours)):
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    print("| hand-off of two empty calls | median us | p90 us |\n|---|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {np.median(t) * 1e6:.0f} | {np.percentile(t, 90) * 1e6:.0f} |")
    ratio = np.median(times["thread pool"]) / np.median(times["rnnkit"])
    print(f"\nthread pool / rnnkit (medians): {ratio:.2f}\n")
    for p in pools:
        p.shutdown()


def balanced(cells: list[str], shapes: list[tuple[int, ...]], repeats: int) -> None:
    limit = recurrent.BALANCE_MAX_BYTES
    print("| layer (B,T,D,H) | balanced ms | split ms | balanced / split |\n|---|---:|---:|---:|")
    for cell in cells:
        for B, T, D, H in shapes:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((B, T, D)).astype(np.float32)
            dout = rng.standard_normal((B, T, H)).astype(np.float32)
            layer = getattr(rnnkit, cell.upper())(D, H, dtype=np.float32, seed=0)
            times: dict[int, list[float]] = {limit: [], 0: []}
            with threadpool_limits(2):
                for r in range(2 + repeats):
                    for lim in times:
                        recurrent.BALANCE_MAX_BYTES = lim
                        time.sleep(0.05)
                        t0 = time.perf_counter()
                        _, _, cache = layer.forward(x)
                        layer.backward(dout, cache)
                        if r >= 2:
                            times[lim].append(time.perf_counter() - t0)
            recurrent.BALANCE_MAX_BYTES = limit
            on, off = (np.median(times[k]) * 1e3 for k in (limit, 0))
            print(f"| {cell.upper()} ({B},{T},{D},{H}) | {on:.2f} | {off:.2f} | {on / off:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--handoffs", type=int, default=3000)
    ap.add_argument("--cells", nargs="+", choices=["rnn", "gru", "lstm"], default=["rnn", "gru"])
    ap.add_argument("--shapes", nargs="+", metavar="B,T,D,H",
                    default=["256,20,200,200", "32,100,128,128", "64,100,256,256"])  # fmt: skip
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    try:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes]
    except ValueError:
        ap.error(f"--shapes: expected B,T,D,H integers, got {' '.join(args.shapes)}")
    if any(len(s) != 4 or min(s) < 1 for s in shapes):
        ap.error(f"--shapes: expected four positive integers each, got {' '.join(args.shapes)}")
    print(machine.header())
    print("2 threads\n")
    handoffs(args.handoffs)
    balanced(args.cells, shapes, args.repeats)


if __name__ == "__main__":
    main()
