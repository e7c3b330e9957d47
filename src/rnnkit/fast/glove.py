"""Compiled GloVe AdaGrad epoch (numba), behind :mod:`rnnkit.embeddings.glove`.

One step per co-occurrence entry (i, j, X_ij), the arithmetic of :func:`.glove.glove_forward`
and :func:`.glove.glove_backward` for a single entry, followed by an AdaGrad update
(Duchi et al. 2011) of the touched rows. Threads take contiguous slices of the shuffled entries
and share the parameters without locks (Hogwild), as the GloVe tool does.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_JIT = {"cache": True, "error_model": "numpy", "fastmath": _FASTMATH, "nogil": True}


@nb.njit(parallel=True, **_JIT)
def train_epoch(
    W, Wt, b, bt, GW, GWt, Gb, Gbt, rows, cols, logx, fx, order, n_threads, lr, loss_out
):
    """W, Wt (V, E) word and context vectors; b, bt (V,) biases; G* their AdaGrad sums of
    squared gradients; rows, cols, logx, fx (nnz,) entries with log X_ij and f(X_ij);
    order (n,) entries to visit; loss_out (n_threads,) gets each thread's sum of
    0.5 f(X) (w_i . wt_j + b_i + bt_j - log X_ij)^2 (before its update)."""
    E = W.shape[1]
    n = order.shape[0]
    for tid in nb.prange(n_threads):
        lo = n * tid // n_threads
        hi = n * (tid + 1) // n_threads
        loss = 0.0
        for q in range(lo, hi):
            e = order[q]
            i = rows[e]
            j = cols[e]
            # forward: diff = w_i . wt_j + b_i + bt_j - log X_ij
            diff = b[i] + bt[j] - logx[e]
            for d in range(E):
                diff += W[i, d] * Wt[j, d]
            fdiff = fx[e] * diff
            loss += 0.5 * fdiff * diff
            # J = 0.5 f diff^2: dJ/dw_i = f diff wt_j, dJ/dwt_j = f diff w_i, dJ/db_i = f diff
            for d in range(E):
                gi = fdiff * Wt[j, d]
                gj = fdiff * W[i, d]
                GW[i, d] += gi * gi
                GWt[j, d] += gj * gj
                W[i, d] -= lr * gi / np.sqrt(GW[i, d])
                Wt[j, d] -= lr * gj / np.sqrt(GWt[j, d])
            g2 = fdiff * fdiff
            Gb[i] += g2
            Gbt[j] += g2
            b[i] -= lr * fdiff / np.sqrt(Gb[i])
            bt[j] -= lr * fdiff / np.sqrt(Gbt[j])
        loss_out[tid] = loss
