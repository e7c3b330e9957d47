"""Compiled (numba) one-pass optimizer updates behind :mod:`rnnkit.train.optim`.

Imported lazily on the first update. Each loop does, element by element, the same float
operations in the same order and precision as the NumPy expressions it replaces (no
fast-math, so no fused multiply-adds), so the results are bit-identical; the gain is memory
traffic: one pass over the parameter, gradient and buffers instead of about ten NumPy passes
and their temporaries (``benchmarks/bench_optim.py``; figures in BENCHMARKS.md). With the
process backend "numpy" (rnnkit.engine.backend) the optimizers use the NumPy form.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, error_model="numpy", nogil=True)
def adam_update(p, g, m, v, b1, omb1, b2, omb2, step_size, c2, eps, wd):  # noqa: ANN001, ANN201
    """Adam on flat arrays; the scalars have the arrays' dtype (``wd`` 0: no weight decay).

    Same order as :meth:`rnnkit.train.optim.Adam._update_numpy`:
    ``g += wd p; m = m b1 + omb1 g; v = v b2 + (omb2 g) g; p -= (step m) / (sqrt(v) / c2 + eps)``.
    """
    for i in range(p.size):
        gi = g[i]
        if wd != 0:  # loop-invariant: LLVM unswitches it
            gi = gi + wd * p[i]
        mi = m[i] * b1 + omb1 * gi
        vi = v[i] * b2 + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) / c2 + eps)
