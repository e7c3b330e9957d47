"""The compiled engine: the recurrent layers' loops over time in numba, on rnnkit's own
float32 GEMM kernel (LLVM IR through llvmlite), with weights packed once per call, memory
reused between calls and the batch split over threads.

It runs exactly the arithmetic of the NumPy engine (:mod:`rnnkit.engine.layers` over
:mod:`rnnkit.engine.cells`), faster; the tests hold it to that engine and to PyTorch.
Modules, lowest first:

- :mod:`.workspace`: memory reused between calls (NumPy only);
- :mod:`.gemm`: the float32 micro-kernel, packing, the LSTM's fused step (LLVM IR; the
  products compiled once, as C functions that the loops call by name);
- :mod:`.loops`: one compiled loop over time per cell, forward and backward (numba);
- :mod:`.recurrent`: the engine's contract (:mod:`rnnkit.engine.backend`): one direction of
  one layer, the products before and after the loop, threads;
- :mod:`.optim`: a one-pass Adam update (numba), used by :mod:`rnnkit.train.optim`.

Importing this package imports neither numba nor llvmlite; :func:`engine` does.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np


@functools.cache
def missing() -> str | None:
    """What compiled code needs and cannot find (numba, llvmlite: declared dependencies of
    rnnkit, so missing only in an unusual environment), or None."""
    for module in ("numba", "llvmlite"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install numba)"
    return None


def supports_code() -> bool:
    """Whether compiled code can run here at all."""
    return missing() is None


def unsupported(layer: Any, x: Any = None) -> str | None:
    """Why this engine cannot run ``layer`` (on input ``x``), or None when it can.

    It runs every cell, form, size and option of the layers in float32 and float64.
    """
    reason = missing()
    if reason is not None:
        return reason
    if np.dtype(layer.dtype) not in (np.float32, np.float64):
        return f"dtype {layer.dtype} (the compiled loops take float32 and float64)"
    return None


def supports(layer: Any, x: Any = None) -> bool:
    """Whether this engine can run ``layer`` on ``x`` (``backend="auto"`` asks this)."""
    return unsupported(layer, x) is None


def engine() -> Any:
    """The engine module (:mod:`.recurrent`); imports numba and compiles or loads the loops."""
    from rnnkit.fast import recurrent

    return recurrent
