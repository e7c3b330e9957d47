"""rnnkit's build backend: setuptools', and after an editable install's build, the compiled
engine compiled ahead of time for this machine (``rnnkit.engine.precompile``).

numba compiles rnnkit's loops on first use and caches them on disk; on an empty cache a first
training step waited about 15 s for that. ``pip install -e .`` builds on the machine that will
run the code, so this backend runs the precompile there, into the cache the loops will look
in (``src/rnnkit/fast/__pycache__``, or ``NUMBA_CACHE_DIR`` when set). It asks pip for numba,
llvmlite, NumPy and threadpoolctl in the build environment for that (the versions pip
resolves for the package itself; numba ignores a cache written by another numba version, so a
mismatch costs the compilation on first use, not a wrong result).

- ``RNNKIT_PRECOMPILE=0 pip install -e .`` skips it;
- a failure (say, numba missing for this Python) is reported in one line and does not fail
  the install: the loops then compile on first use, as without this step;
- wheels and sdists are built by setuptools unchanged: a wheel may be installed on another
  CPU, where a cache made here would not be used. After ``pip install rnnkit``, run
  ``rnnkit precompile`` once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the hooks not changed here)

SRC = Path(__file__).resolve().parents[2] / "src"
# what `python -m rnnkit.engine.precompile` imports (rnnkit's own dependencies' floors)
PRECOMPILE_NEEDS = ["numpy>=1.24", "numba>=0.58", "llvmlite>=0.41", "threadpoolctl>=3"]


def _wanted() -> bool:
    return os.environ.get("RNNKIT_PRECOMPILE", "1").strip() != "0"


def get_requires_for_build_editable(config_settings=None):  # noqa: ANN001, ANN201
    extra = PRECOMPILE_NEEDS if _wanted() else []
    return _setuptools.get_requires_for_build_editable(config_settings) + extra


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001, ANN201
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    if _wanted():
        precompile(SRC)
    return name


def precompile(src: Path) -> bool:
    """Run ``python -m rnnkit.engine.precompile`` on the sources in ``src``; report on
    stderr (pip shows it with ``-v``, and on failure) and return whether it worked."""
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rnnkit.engine.precompile"],
        env=dict(os.environ, PYTHONPATH=path), capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"rnnkit: precompiling the compiled engine failed ({last}); its loops will "
              "compile on first use instead", file=sys.stderr)  # fmt: skip
        return False
    print(f"rnnkit: compiled engine precompiled in {seconds:.0f} s:\n{proc.stdout}",
          file=sys.stderr)  # fmt: skip
    return True
