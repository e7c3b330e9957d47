"""rnnkit's convolution and max-pooling (NumPy, im2col + one matmul) against torch.nn on the
CPU, in one process, one thread.

For each layer of the captioner's encoder (and one larger one), a training step (forward and
backward with a random upstream gradient) is timed in both, interleaved, and the median of
``--repeats`` runs after ``--warmup`` is reported with the ratio torch_time / rnnkit_time
(> 1: rnnkit is faster) and the CPU model, instruction sets and BLAS kernel. With ``--clock
cpu`` the process's CPU time is measured instead of the wall clock (one thread: on a machine
shared with other jobs it still measures the work).

    python benchmarks/bench_conv.py
    python benchmarks/bench_conv.py --clock cpu --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from bench_onnx import cpu_description
from bench_rnn import blas_description
from threadpoolctl import threadpool_limits

from rnnkit.engine.conv import Conv2d, maxpool2d_backward, maxpool2d_forward

# (name, B, C, H, W, O) for conv 3x3 padding 1 -> max-pool 2
CASES = [
    ("caption block 1", 50, 1, 40, 40, 16),
    ("caption block 2", 50, 16, 20, 20, 32),
    ("caption block 3", 50, 32, 10, 10, 64),
    ("larger", 32, 64, 32, 32, 128),
]


def timers(B: int, C: int, H: int, W: int, O: int) -> dict[str, Callable[[], None]]:
    r = np.random.default_rng(0)
    x = r.standard_normal((B, C, H, W)).astype(np.float32)
    conv = Conv2d(C, O, 3, padding=1, seed=0)
    dy = r.standard_normal((B, O, H // 2, W // 2)).astype(np.float32)
    ref = torch.nn.Sequential(torch.nn.Conv2d(C, O, 3, padding=1), torch.nn.MaxPool2d(2))
    ref.load_state_dict({f"0.{n}": torch.from_numpy(p.copy()) for n, p in conv.params.items()})
    tx = torch.tensor(x, requires_grad=True)
    tdy = torch.from_numpy(dy)

    def ours() -> None:
        y, kc = conv.forward(x)
        p, kp = maxpool2d_forward(y, 2)
        conv.backward(maxpool2d_backward(dy, kp), kc)

    def theirs() -> None:
        tx.grad = None
        ref.zero_grad()
        ref(tx).backward(tdy)

    y, kc = conv.forward(x)
    p, _ = maxpool2d_forward(y, 2)
    err = float(np.abs(p - ref(tx).detach().numpy()).max())
    if err > 1e-4:
        raise SystemExit(f"torch's output differs from rnnkit's by {err}")
    return {"rnnkit": ours, "torch": theirs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    torch.set_num_threads(1)
    model, isa = cpu_description()
    print(f"CPU: {model}; ISA: {isa}; BLAS: {blas_description()}; 1 thread; {args.clock} clock")
    print(f"{'case':<18}{'B,C,H,W -> O':>22}{'rnnkit ms':>11}{'torch ms':>10}{'torch/rnnkit':>14}")
    with threadpool_limits(limits=1):
        for name, B, C, H, W, O in CASES:
            fns = timers(B, C, H, W, O)
            times: dict[str, list[float]] = {k: [] for k in fns}
            for i in range(args.warmup + args.repeats):
                for k, fn in fns.items():
                    t0 = clock()
                    fn()
                    if i >= args.warmup:
                        times[k].append(clock() - t0)
            ours, theirs = (statistics.median(times[k]) * 1e3 for k in ("rnnkit", "torch"))
            shape = f"{B},{C},{H},{W} -> {O}"
            print(f"{name:<18}{shape:>22}{ours:>11.2f}{theirs:>10.2f}{theirs / ours:>14.2f}")


if __name__ == "__main__":
    main()
