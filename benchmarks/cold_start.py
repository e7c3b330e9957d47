"""Cold and warm start: how long a first call waits for numba to compile, on a fresh checkout.

rnnkit's compiled engine is compiled by numba on first use and cached on disk (beside the
sources, or in ``NUMBA_CACHE_DIR``). A user's first command after ``pip install`` pays for
the compilation; later ones load the cache. This benchmark copies the package's sources
(``git worktree`` of HEAD, so no ``__pycache__``: Python's bytecode and numba's cache both
cold, as in a fresh clone) and times, each in a new process and by the wall clock:

1. ``import rnnkit`` and one float32 LSTM forward call (the layer's first use),
   beside the same with torch.nn.LSTM (the peer: no compilation);
2. ``rnnkit lm sample`` of a trained model (the README's main command, second half);
3. ``rnnkit lm train`` of a tiny text for one training step, whole command;

first cold (each row with an empty numba cache of its own, ``NUMBA_CACHE_DIR``; the first
row also compiles Python's bytecode of the fresh tree), then ``--repeats`` times warm (the
cache its cold run filled).
The trained model for (2) is made beforehand with warm caches of the main checkout.

    python benchmarks/cold_start.py                # the table, 3 warm repeats
    python benchmarks/cold_start.py --repeats 5

It prints the header of benchmarks/machine.py (CPU, ISA, kernel configuration), and respects
the same caps (RNNKIT_KERNEL=avx2 and the others) when they are set.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "src" / "rnnkit" / "data" / "tinyshakespeare.txt.gz"

LAYER = """
import time; t0 = time.perf_counter()
import numpy as np
import {lib}
x = np.random.default_rng(0).standard_normal((35, 20, 64)).astype(np.float32)
{call}
print(f"{{time.perf_counter() - t0:.3f}}")
"""
CALLS = {
    "rnnkit": "rnnkit.LSTM(64, 256, dtype=np.float32, seed=0)(x)",
    "torch": "torch.nn.LSTM(64, 256)(torch.from_numpy(x))",
}


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="warm runs per row (median)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(machine.header())
    print(f"threads: {args.threads}; wall clock, each row a new process\n")
    work = Path(tempfile.mkdtemp(prefix="rnnkit-cold-"))
    tree = work / "tree"
    try:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree)],
                       check=True)  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(tree / "src"), RNNKIT_THREADS=str(args.threads))
        env.pop("NUMBA_CACHE_DIR", None)
        text = work / "tiny.txt"
        corpus = gzip.decompress(CORPUS.read_bytes()).decode("utf-8")
        text.write_text(corpus[:20000], encoding="utf-8")
        small = work / "small.txt"  # 2 training steps of batch 8 x 20 characters
        small.write_text(corpus[:400], encoding="utf-8")
        rnnkit = [sys.executable, "-m", "rnnkit"]
        # the model to sample from, trained with the main checkout (warm, not timed)
        main_env = dict(env, PYTHONPATH=str(ROOT / "src"))
        model = work / "model"
        train = [*rnnkit, "lm", "train", str(text), "--epochs", "1", "--no-progress"]
        subprocess.run([*train, "--out", str(model)], env=main_env, check=True, capture_output=True)
        rows = {
            "import rnnkit + first LSTM forward (35x20x64 -> 256)": [
                sys.executable, "-c", LAYER.format(lib="rnnkit", call=CALLS["rnnkit"])],
            "peer: import torch + first torch.nn.LSTM forward": [
                sys.executable, "-c", LAYER.format(lib="torch", call=CALLS["torch"])],
            "rnnkit lm sample (200 characters)": [
                *rnnkit, "lm", "sample", str(model), "--length", "200"],
            "rnnkit lm train, 2 steps (whole command)": [
                *rnnkit, "lm", "train", str(small), "--epochs", "1", "--no-progress",
                "--batch-size", "8", "--bptt", "20", "--out", str(work / "train")],
        }  # fmt: skip
        results: dict[str, list[float]] = {}
        caches = {name: work / f"numba-cache-{i}" for i, name in enumerate(rows)}
        for name, cmd in rows.items():  # cold: each row with an empty numba cache of its own
            results[name] = [timed(cmd, dict(env, NUMBA_CACHE_DIR=str(caches[name])), work)]
            shutil.rmtree(work / "train", ignore_errors=True)
        for _ in range(args.repeats):  # warm: the cache that row's cold run filled
            for name, cmd in rows.items():
                results[name].append(timed(cmd, dict(env, NUMBA_CACHE_DIR=str(caches[name])), work))
                shutil.rmtree(work / "train", ignore_errors=True)
        print("| first call | cold s | warm s (median) |")
        print("|---|---:|---:|")
        for name, ts in results.items():
            print(f"| {name} | {ts[0]:.1f} | {statistics.median(ts[1:]):.1f} |")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
