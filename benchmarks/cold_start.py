"""Cold and warm start: how long first calls wait after ``pip install -e .`` into a fresh venv.

rnnkit's compiled engine is compiled by numba and cached on disk (beside the sources, or in
``NUMBA_CACHE_DIR``). ``pip install -e .`` compiles it ahead of time for the machine
(``rnnkit.engine.precompile``, run by the build backend in tools/build_backend);
``RNNKIT_PRECOMPILE=0`` skips that, and the loops compile on first use instead. This
benchmark does both, each in its own fresh virtual environment on its own fresh checkout
(``git worktree`` of HEAD: no ``__pycache__``, no numba cache), and times by the wall clock:

0. ``pip install -e`` itself (its dependencies from pip's cache);
1. ``import rnnkit`` and one float32 LSTM forward call (the layer's first use), beside the
   same with torch.nn.LSTM (the peer: no compilation; run in this process's environment);
2. ``rnnkit lm sample`` of a trained model (the README's main command, second half);
3. ``rnnkit lm train`` of a tiny text for two training steps, whole command;

first the first call after the install (without the precompile, each row with an empty numba
cache of its own, so that each pays for its own compilation), then ``--repeats`` times warm.
The trained model for (2) is made beforehand with this process's environment (not timed).

    python benchmarks/cold_start.py                # the table, 3 warm repeats
    python benchmarks/cold_start.py --repeats 5

It prints the header of benchmarks/machine.py (CPU, ISA, kernel configuration), and respects
the same caps (RNNKIT_KERNEL=avx2 and the others) when they are set, also for the install.
Needs pip to reach PyPI or its cache.
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


INSTALLS = {  # name: the install's environment
    "pip install -e . (precompiled)": {},
    "RNNKIT_PRECOMPILE=0 pip install -e .": {"RNNKIT_PRECOMPILE": "0"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="warm runs per row (median)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(machine.header())
    print(f"threads: {args.threads}; wall clock, each row a new process\n")
    work = Path(tempfile.mkdtemp(prefix="rnnkit-cold-"))
    trees: list[Path] = []
    try:
        env = dict(os.environ, RNNKIT_THREADS=str(args.threads))
        env.pop("NUMBA_CACHE_DIR", None)
        env.pop("PYTHONPATH", None)
        text = work / "tiny.txt"
        corpus = gzip.decompress(CORPUS.read_bytes()).decode("utf-8")
        text.write_text(corpus[:20000], encoding="utf-8")
        small = work / "small.txt"  # 2 training steps of batch 8 x 20 characters
        small.write_text(corpus[:400], encoding="utf-8")
        # the model to sample from, trained with this process's environment (not timed)
        model = work / "model"
        main_env = dict(env, PYTHONPATH=str(ROOT / "src"))
        subprocess.run([sys.executable, "-m", "rnnkit", "lm", "train", str(text), "--epochs", "1",
                        "--no-progress", "--out", str(model)],
                       env=main_env, check=True, capture_output=True)  # fmt: skip
        peer = [sys.executable, "-c", LAYER.format(lib="torch", call=CALLS["torch"])]
        results: dict[str, list[float]] = {"peer: import torch + first torch.nn.LSTM forward": []}
        for i, (install, extra) in enumerate(INSTALLS.items()):
            tree, venv = work / f"tree-{i}", work / f"venv-{i}"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(tree)], check=True)  # fmt: skip
            trees.append(tree)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            py, rnnkit = str(venv / "bin" / "python"), str(venv / "bin" / "rnnkit")
            results[f"{install}: the install"] = [
                timed([py, "-m", "pip", "install", "-q", "-e", str(tree)], dict(env, **extra), work)
            ]  # fmt: skip
            rows = {
                "import rnnkit + first LSTM forward (35x20x64 -> 256)": [
                    py, "-c", LAYER.format(lib="rnnkit", call=CALLS["rnnkit"])],
                "rnnkit lm sample (200 characters)": [
                    rnnkit, "lm", "sample", str(model), "--length", "200"],
                "rnnkit lm train, 2 steps (whole command)": [
                    rnnkit, "lm", "train", str(small), "--epochs", "1", "--no-progress",
                    "--batch-size", "8", "--bptt", "20", "--out", str(work / "train")],
            }  # fmt: skip
            # without the precompile, each row's first call compiles what it uses (an empty
            # cache of its own); with it, every row finds the install's cache in the tree
            own = extra.get("RNNKIT_PRECOMPILE") == "0"
            envs = {
                name: dict(env, NUMBA_CACHE_DIR=str(work / f"cache-{i}-{j}")) if own else env
                for j, name in enumerate(rows)
            }
            for name, cmd in rows.items():
                results[f"{install}: {name}"] = [timed(cmd, envs[name], work)]
                shutil.rmtree(work / "train", ignore_errors=True)
            for _ in range(args.repeats):
                for name, cmd in rows.items():
                    results[f"{install}: {name}"].append(timed(cmd, envs[name], work))
                    shutil.rmtree(work / "train", ignore_errors=True)
        for _ in range(args.repeats + 1):
            results["peer: import torch + first torch.nn.LSTM forward"].append(
                timed(peer, env, work)
            )
        print("| first call | after the install s | warm s (median) |")
        print("|---|---:|---:|")
        for name, ts in results.items():
            warm = f"{statistics.median(ts[1:]):.1f}" if len(ts) > 1 else "-"
            print(f"| {name} | {ts[0]:.1f} | {warm} |")
    finally:
        for tree in trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
