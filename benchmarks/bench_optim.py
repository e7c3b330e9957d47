"""Adam's update on one large parameter: rnnkit (compiled one-pass loop, and its NumPy form)
against ``torch.optim.Adam`` (default implementation, and ``fused=True``), same process,
interleaved, median of several runs after warm-up.

The shape is the fine-tuned embedding of the SST-2 runs in RESULTS.md (133,257 x 256
float32: training words plus a 119k-word vector file, ``--pretrained-extend``), where the
NumPy update was 70% of a training step. One thread for both libraries.

    python benchmarks/bench_optim.py [--rows 133257] [--dim 256] [--runs 9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from rnnkit.train import Adam


def median_ms(fn, runs: int, inner: int = 5) -> float:  # noqa: ANN001
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner * 1e3)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=133_257)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    shape = (args.rows, args.dim)
    p = rng.standard_normal(shape, dtype=np.float32)
    g = rng.standard_normal(shape, dtype=np.float32)

    ours = Adam({"w": p.copy()}, {"w": g.copy()}, lr=1e-3)
    ref = Adam({"w": p.copy()}, {"w": g.copy()}, lr=1e-3)
    ref_state: dict[str, np.ndarray] = {}

    def numpy_step() -> None:
        ref.step_count += 1
        ref_state.setdefault("m", np.zeros(shape, np.float32))
        ref_state.setdefault("v", np.zeros(shape, np.float32))
        ref._update_numpy(ref.params["w"], ref.grads["w"], ref_state["m"], ref_state["v"])

    peers = {}
    for name, kw in (("torch", {}), ("torch fused", {"fused": True})):
        tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
        tp.grad = torch.from_numpy(g.copy())
        peers[name] = torch.optim.Adam([tp], lr=1e-3, **kw)

    with threadpool_limits(1):
        times: dict[str, list[float]] = {k: [] for k in ("rnnkit", "rnnkit numpy", *peers)}
        for _ in range(3):  # interleaved rounds
            times["rnnkit"].append(median_ms(ours.step, args.runs))
            times["rnnkit numpy"].append(median_ms(numpy_step, args.runs))
            for name, opt in peers.items():
                times[name].append(median_ms(opt.step, args.runs))
    ms = {k: float(np.median(v)) for k, v in times.items()}
    print(f"Adam step on a {shape[0]:,} x {shape[1]} float32 parameter, 1 thread (median ms)")
    for k, v in ms.items():
        print(f"  {k:14s} {v:8.2f} ms   torch/this {ms['torch'] / v:5.2f}")


if __name__ == "__main__":
    main()
