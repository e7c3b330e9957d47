"""Which engine runs the recurrent layers' loops over time: "numpy", "compiled" or "auto".

Two engines implement one contract, per direction of one layer:

- ``"numpy"``: the reference engine, written beside the layers in
  :mod:`rnnkit.engine.layers`: the BPTT loop in NumPy over the steps of
  :mod:`rnnkit.engine.cells`. Slow, readable, and what every other engine is tested against.
- ``"compiled"``: :mod:`rnnkit.fast` (numba loops, rnnkit's float32 GEMM kernel, weight
  packing, reused memory, the batch split over threads).
- ``"auto"`` (the default): the compiled engine where :func:`rnnkit.fast.supports` says it can
  run the layer (numba and llvmlite importable, float32 or float64), else NumPy; and NumPy
  for a call of one time step (input (B, 1, D): generation, one token at a time). Such a
  call has no loop over time for compiled code to speed up (its gains are the weights packed
  once per sequence and the loop itself), and a first compiled call imports numba and loads
  the loops (about a second; about 12 s to compile them where they were not precompiled,
  :mod:`rnnkit.engine.precompile`), where sampling on NumPy starts at once (BENCHMARKS.md,
  "Cold start").

Choose per layer (``rnnkit.LSTM(..., backend="numpy")``), per process (:func:`set_backend`,
the environment variable ``RNNKIT_BACKEND``, or ``rnnkit --backend`` on the command line), or
leave the layer's ``backend=None`` to follow the process. With ``"numpy"`` numba is never
imported.

The contract: an engine is a module (or any object) with

- ``name``: ``"numpy"`` or ``"compiled"``;
- ``empty(shape, dtype)`` and ``copy(a, dtype=None)``: arrays the layers fill;
- ``layer_input(layer, x, keep)``: the first layer's input, time-major (T, B, D);
- ``direction_forward(layer, p, xs, hbuf, direction, init, valid, keep) -> (final, cache)``;
- ``direction_backward(layer, p, g, dout, dfinal, cache, dxs, accumulate, hid) -> dinit``;

with the arguments documented at :func:`rnnkit.engine.layers.direction_forward`.

>>> previous = set_backend("numpy"); get_backend()
'numpy'
>>> _ = set_backend(previous)
>>> set_backend("fast")
Traceback (most recent call last):
ValueError: backend: expected one of 'auto', 'numpy', 'compiled', got 'fast'
"""

from __future__ import annotations

import os
from typing import Any

BACKENDS = ("auto", "numpy", "compiled")
_process_default: str | None = None  # set_backend(); None: RNNKIT_BACKEND, else "auto"


def check(name: Any, where: str = "backend") -> str:
    """``name`` if it is one of :data:`BACKENDS`, else a ValueError naming ``where``."""
    if name not in BACKENDS:
        choices = ", ".join(repr(b) for b in BACKENDS)
        raise ValueError(f"{where}: expected one of {choices}, got {name!r}")
    return str(name)


def set_backend(name: str | None) -> str | None:
    """Set the process-wide default (None: back to ``RNNKIT_BACKEND``, else ``"auto"``);
    returns the previous setting (None where there was none), to restore it with."""
    global _process_default
    previous = _process_default
    _process_default = None if name is None else check(name)
    return previous


def get_backend() -> str:
    """The process-wide default: :func:`set_backend`'s, else ``RNNKIT_BACKEND``, else auto."""
    if _process_default is not None:
        return _process_default
    env = os.environ.get("RNNKIT_BACKEND", "").strip()
    return check(env, "RNNKIT_BACKEND") if env else "auto"


def _one_step(x: Any) -> bool:
    """Whether ``x`` is a layer input (B, T, D) of one time step."""
    shape = getattr(x, "shape", ())
    return len(shape) == 3 and shape[1] == 1


def choose(requested: str | None, layer: Any, x: Any) -> str:
    """The engine that runs ``layer`` on ``x``: ``"numpy"`` or ``"compiled"``.

    ``requested`` is the layer's own choice (None: the process default). ``"compiled"``
    that cannot run raises a ValueError saying why; ``"auto"`` then falls back to NumPy.
    """
    name = requested if requested is not None else get_backend()
    if name == "numpy" or (name == "auto" and _one_step(x)):
        return "numpy"
    from rnnkit import fast  # light: looks numba up, does not import it

    reason = fast.unsupported(layer, x)
    if reason is None:
        return "compiled"
    if name == "compiled":
        raise ValueError(f"backend='compiled': {reason}")
    return "numpy"
