"""Compile the compiled engine ahead of time: every numba loop the recurrent layers (and Adam)
can call, for this machine, into numba's on-disk cache.

numba compiles a function the first time it is called with a new kind of argument, and
keeps the result on disk (beside the sources in ``__pycache__``, or in ``NUMBA_CACHE_DIR``),
keyed by the function's source, the numba version and the CPU. A first training step on an
empty cache waited about 15 s for that (BENCHMARKS.md, issue 21, "Cold start"); with the
cache filled, importing rnnkit and a first LSTM call take 0.7 s. :func:`precompile` runs
each layer's forward and backward pass once on small inputs chosen to take every path of
:mod:`rnnkit.fast` (batch 1, 2 and more; a hidden size of whole panels of the GEMM kernel
and one of a part; one and two threads; padded sequences; stacked and bidirectional), so
that a later process finds everything in the cache.

``pip install -e .`` runs it after building (the build backend in ``tools/build_backend``; set
``RNNKIT_PRECOMPILE=0`` to skip it); run it again after upgrading numba or moving to another
CPU, or for float64 too::

    rnnkit precompile                                   # float32: what the commands use
    rnnkit precompile --dtype float32 --dtype float64   # and float64 (gradient checks)
    python -m rnnkit.engine.precompile                  # without the command line's packages

It imports the layers and :mod:`rnnkit.fast` only (NumPy, numba, llvmlite, threadpoolctl), so
it also runs in a build environment where the package's other dependencies are missing.

>>> from rnnkit.engine.precompile import cases
>>> sorted({c.cell for c in cases()})
['GRU', 'LSTM', 'RNN']
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent

DTYPES = ("float32", "float64")
CELLS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}


@dataclass(frozen=True)
class Case:
    """One layer and one input: a forward pass with its cache, a backward pass and an
    inference call (``lengths``: pad the batch's sequences to different lengths)."""

    cell: str
    batch: int
    steps: int
    inputs: int
    hidden: int
    options: dict[str, Any] = field(default_factory=dict)
    lengths: bool = False

    def layer(self, dtype: Any) -> Recurrent:
        """The layer, on the compiled engine."""
        cls = CELLS[self.cell]
        return cls(self.inputs, self.hidden, dtype=dtype, seed=0, backend="compiled",
                   **self.options)  # fmt: skip


def cases(panel: int = 64) -> list[Case]:
    """The inputs :func:`precompile` runs, for a GEMM kernel of ``panel`` columns per panel
    (rnnkit.fast.gemm.NR; 64 with AVX-512, 16 with AVX2).

    Which path a call takes depends on the shapes (rnnkit.fast.recurrent): the LSTM's fused
    step at batch >= 3 in float32, with a hidden size of whole panels (block by block) or
    not; dW_ih and dW_hh as one product where the input is whole panels wide and input plus
    hidden at most 8 panels; products split between threads from 256 rows and 2^22
    multiply-adds. Each cell gets all of them, plus its options (peepholes, the GRU's
    textbook form, ReLU), padding, and two bidirectional layers with dropout.
    """
    p = panel
    shapes = [(1, 3, 5, 13), (2, 3, p, 13), (8, 4, 5, 13), (8, 4, p, p), (8, 4, 5, 2 * p + 3),
              (16, 32, 64, 64)]  # fmt: skip
    options: dict[str, list[dict[str, Any]]] = {
        "RNN": [{"nonlinearity": "relu"}],
        "LSTM": [{"peepholes": True}],
        "GRU": [{"reset_after": False}],
    }
    out = []
    for cell in CELLS:
        out += [Case(cell, *shape) for shape in shapes]
        out += [Case(cell, 8, 4, 5, 13, o) for o in options[cell]]
        out += [Case(cell, 3, 5, 5, 13, lengths=True),
                Case(cell, 3, 5, 5, 13, {"num_layers": 2, "bidirectional": True, "dropout": 0.1},
                     lengths=True)]  # fmt: skip
    return out


def _run(case: Case, dtype: Any, rng: np.random.Generator) -> None:
    layer = case.layer(dtype)
    x = rng.standard_normal((case.batch, case.steps, case.inputs)).astype(dtype)
    lengths = None
    if case.lengths:
        lengths = np.maximum(case.steps - np.arange(case.batch), 1)
    layer(x, lengths=lengths)  # inference: no cache kept
    out, _, cache = layer.forward(x, lengths=lengths)
    layer.backward(np.ones_like(out), cache)


def _adam(dtype: Any) -> None:
    from rnnkit.fast.optim import adam_update

    f = np.dtype(dtype).type
    arrays = [np.zeros(4, dtype) for _ in range(4)]
    adam_update(*arrays, *(f(v) for v in (0.9, 0.1, 0.999, 0.001, 0.001, 1.0, 1e-8, 0.0)))


def _thread_counts() -> list[int]:
    return [1, 2] if (os.cpu_count() or 1) > 1 else [1]


def precompile(dtypes: tuple[str, ...] = ("float32",)) -> Iterator[str]:
    """Compile (or load from numba's cache) every loop the layers and Adam use, for
    ``dtypes``; yields one line per dtype and thread count, with its time."""
    from threadpoolctl import threadpool_limits

    from rnnkit import fast

    reason = fast.missing()
    if reason is not None:
        raise RuntimeError(f"no compiled engine: {reason}")
    t0 = time.perf_counter()
    fast.engine()  # imports numba, loads or compiles the GEMM kernel's bodies
    import numba

    from rnnkit.fast import gemm

    yield f"numba {numba.__version__}, {gemm.CONFIG.describe()} ({time.perf_counter() - t0:.1f} s)"
    rng = np.random.default_rng(0)
    threads = _thread_counts()
    for name in dtypes:
        dtype = np.dtype(name)
        t0 = time.perf_counter()
        todo = cases(gemm.NR)
        for n in threads:
            with threadpool_limits(limits=n):
                for case in todo:
                    _run(case, dtype, rng)
        _adam(dtype)
        counts = " and ".join(map(str, threads))
        seconds = time.perf_counter() - t0
        yield f"{name}: {len(todo)} layers, {counts} thread(s), and Adam: {seconds:.1f} s"


def main(argv: list[str] | None = None) -> None:
    """``python -m rnnkit.engine.precompile [--dtype float32] [--dtype float64]``."""
    ap = argparse.ArgumentParser(prog="python -m rnnkit.engine.precompile",
                                 description=__doc__.splitlines()[0])  # fmt: skip
    ap.add_argument("--dtype", action="append", choices=DTYPES,
                    help="float32 (default) or float64; repeat for both")  # fmt: skip
    args = ap.parse_args(argv)
    for line in precompile(tuple(args.dtype or ["float32"])):
        print(line, flush=True)


if __name__ == "__main__":
    main()
