"""The float32 LSTM's two ways with the input projection, timed against each other.

``fused``: each step's product adds x_t W_ih^T (the loop reads W_ih at every step);
``hoisted``: one product X W_ih^T over all steps before the loop. rnnkit chooses with
``rnnkit.fast.recurrent.fuses_projection``; this script overrides that choice both ways, in
one process, interleaved, and prints fused/hoisted time ratios (> 1: hoisted faster) for
inference and a training step (forward + backward), medians after 2 warm-ups:

    python benchmarks/lstm_projection.py --threads 2 --sizes 650 1000 --batches 4 16 64

D = H = each size; T = 50 (at most 20000 / (8 B) steps, at least 10). The rule's limits and
the figures behind them: BENCHMARKS.md, issue 21, session 15.
"""

from __future__ import annotations

import argparse
import time

import machine  # benchmarks/machine.py: the header (CPU, ISA, each library's kernel)
import numpy as np
from threadpoolctl import threadpool_limits

import rnnkit
from rnnkit.fast import recurrent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[320, 650, 1000])
    ap.add_argument("--batches", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()
    rule = recurrent.fuses_projection
    print(machine.header())
    print(f"threads {args.threads}; fused/hoisted time (> 1: hoisted faster)\n")
    print("| D = H | B | T | rule | infer fused / hoisted ms | ratio | train fused / hoisted ms "
          "| ratio |")  # fmt: skip
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    for size in args.sizes:
        for batch in args.batches:
            steps = max(10, min(50, 20000 // (batch * 8)))
            rng = np.random.default_rng(0)
            x = rng.standard_normal((batch, steps, size)).astype(np.float32)
            dout = rng.standard_normal((batch, steps, size)).astype(np.float32)
            layer = rnnkit.LSTM(size, size, dtype=np.float32, seed=0)
            times: dict[str, list[tuple[float, float]]] = {"fused": [], "hoisted": []}
            with threadpool_limits(args.threads):
                chosen = "fused" if rule(layer, batch, size) else "hoisted"
                for r in range(2 + args.repeats):
                    for mode in times:
                        fused = mode == "fused"
                        recurrent.fuses_projection = lambda lay, b, d, f=fused: f and b >= 3
                        t0 = time.perf_counter()
                        layer(x)
                        t1 = time.perf_counter()
                        _, _, cache = layer.forward(x)
                        layer.backward(dout, cache)
                        t2 = time.perf_counter()
                        if r >= 2:
                            times[mode].append((t1 - t0, t2 - t1))
                        time.sleep(0.05)
                recurrent.fuses_projection = rule
            f = np.median(np.array(times["fused"]), axis=0) * 1e3
            h = np.median(np.array(times["hoisted"]), axis=0) * 1e3
            print(f"| {size} | {batch} | {steps} | {chosen} | {f[0]:.1f} / {h[0]:.1f} | "
                  f"{f[0] / h[0]:.2f} | {f[1]:.1f} / {h[1]:.1f} | {f[1] / h[1]:.2f} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
