"""Peak memory (RSS) of a training step: rnnkit's layers against torch.nn.RNN/LSTM/GRU.

Each measurement runs in a fresh child process that imports only the library it measures,
builds the layer and its input (float32, the shapes of ``bench_rnn.py``), runs one warm-up
training step (forward + backward with a random upstream gradient; this also compiles
rnnkit's kernels), then resets the kernel's peak-RSS counter (``/proc/self/clear_refs``,
Linux) and runs ``--steps`` more steps. Reported per case and library:

- ``base MiB``: resident memory after the warm-up step and ``malloc_trim`` (interpreter,
  library, weights, input; rnnkit's reused arrays, ``rnnkit.fast.workspace``, released before it,
  so that the measured steps count them); both children run with a fixed glibc mmap threshold
  (``MALLOC_MMAP_THRESHOLD_``) so that large freed buffers leave the process,
- ``peak MiB``: the highest resident memory during the measured steps (``VmHWM``),
- ``step MiB`` = peak - base: what a training step adds on top, the figure to compare;
  the activations a backward pass needs (gates of every time step) dominate it.

    python benchmarks/bench_memory.py                 # all cells and shapes, 1 thread
    python benchmarks/bench_memory.py --cells lstm    # one cell
    python benchmarks/bench_memory.py --threads 2     # both libraries in 2 threads

It prints the machine header of ``bench_rnn.py`` (benchmarks/machine.py) and the commit
measured. Memory does not depend on the machine's load, so this can run beside other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(lib: str, case: Any, steps: int, threads: int) -> dict:
    """Runs in the child process: build, warm up, reset the peak counter, measure."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((case.B, case.T, case.D)).astype(np.float32)
    dirs = 2 if case.bidirectional else 1
    dout = rng.standard_normal((case.B, case.T, dirs * case.H)).astype(np.float32)
    kw = {"num_layers": case.layers, "bidirectional": case.bidirectional}
    if lib == "rnnkit":
        import rnnkit

        cls = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}[case.cell]
        layer = cls(case.D, case.H, dtype=np.float32, seed=0, **kw)

        def step() -> None:
            layer.zero_grad()
            _, _, cache = layer.forward(x)
            layer.backward(dout, cache)

    else:
        import torch

        torch.set_num_threads(threads)
        tcls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[case.cell]
        layer = tcls(case.D, case.H, batch_first=True, **kw)
        xt = torch.from_numpy(x).requires_grad_(True)
        doutt = torch.from_numpy(dout)

        def step() -> None:
            layer.zero_grad()
            xt.grad = None
            out, _ = layer(xt)
            out.backward(doutt)

    step()
    import ctypes

    if lib == "rnnkit":  # the layers keep their large arrays for reuse: count them in the step
        from rnnkit.fast import workspace as _workspace

        _workspace.release()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap pages back before the baseline
    base = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    for _ in range(steps):
        step()
    peak = _rss_kib("VmHWM")
    return {"base_mib": base / 1024, "peak_mib": peak / 1024, "step_mib": (peak - base) / 1024}


def measure(lib: str, case: Any, steps: int, threads: int = 1) -> dict:
    spec = json.dumps([lib, case.__dict__, steps, threads])
    # a fixed mmap threshold: glibc's default grows it after the first large free, after which
    # freed activations stay resident and a step's peak would hide in the baseline
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MALLOC_MMAP_THRESHOLD_": "131072"}  # fmt: skip
    out = subprocess.run([sys.executable, __file__, "--child", spec], capture_output=True,
                         text=True, env=env, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads of both libraries (rnnkit follows NumPy's BLAS)",
    )
    ap.add_argument("--json", help="write the raw results to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # imports only the library it measures (bench_rnn imports both)
        lib, fields, steps, threads = json.loads(args.child)
        print(json.dumps(child(lib, SimpleNamespace(**fields), steps, threads)))
        return
    import machine
    from bench_rnn import SHAPES, Case

    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    print(machine.header())
    plural = "s" if args.threads > 1 else ""
    print(
        f"commit: {commit or 'unknown'}; float32, {args.threads} thread{plural}, "
        f"{args.steps} measured steps\n"
    )
    print("| case | rnnkit base / peak MiB | torch base / peak MiB | rnnkit step MiB "
          "| torch step MiB | torch/rnnkit (step) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    results = []
    for cell in args.cells:
        cases = [Case(cell, *s) for s in SHAPES]
        cases.append(Case(cell, 32, 100, 128, 128, layers=2, bidirectional=True))
        for case in cases:
            ours = measure("rnnkit", case, args.steps, args.threads)
            theirs = measure("torch", case, args.steps, args.threads)
            ratio = (f"{theirs['step_mib'] / ours['step_mib']:.2f}"
                     if min(ours["step_mib"], theirs["step_mib"]) >= 0.5 else "–")  # fmt: skip
            results.append({"case": case.name, "rnnkit": ours, "torch": theirs})
            print(f"| {case.name} | {ours['base_mib']:.0f} / {ours['peak_mib']:.0f} | "
                  f"{theirs['base_mib']:.0f} / {theirs['peak_mib']:.0f} | "
                  f"{ours['step_mib']:.1f} | {theirs['step_mib']:.1f} | {ratio} |",
                  flush=True)  # fmt: skip
    if args.json:
        out = {
            "header": machine.header(),
            "commit": commit,
            "threads": args.threads,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
