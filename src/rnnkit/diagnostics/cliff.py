"""The loss-surface cliff of a one-unit RNN (Pascanu, Mikolov & Bengio 2013, sec. 2.3,
eq. 8 and Fig. 6).

The model has one sigmoid unit and no input: x_t = w sigma(x_{t-1}) + b, with x_0 = 0.5,
trained so that sigma(x_50) = 0.7, i.e. E = (sigma(x_50) - 0.7)^2. Writing h_t = sigma(x_t)
it is an rnnkit sigmoid RNN of one unit, h_t = sigma(w h_{t-1} + b), h_0 = sigma(0.5),
whose constant input x_t = 1 enters through W_ih = b (so a batch can hold many values of
b at once, and dE/db is read off the layer's dW_ih). Where the map h -> sigma(w h + b)
passes a bifurcation (two stable fixed points appear or merge), h_50 jumps from one
attractor to the other: E changes abruptly along a thin wall and the gradient explodes
there, while nearby it is tiny. A gradient step that hits the wall is thrown far away;
clipping the step's norm (sec. 3.2) keeps it local.

>>> w, b = np.array([5.0]), np.linspace(-4.0, -1.0, 4)
>>> cliff_losses(w, b).shape
(1, 4)
>>> loss, g = cliff_loss_grad(5.0, -2.5)
>>> sorted(g), bool(loss >= 0)
(['b', 'w'], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.diagnostics.gradflow import global_grad_norm
from rnnkit.engine.layers import RNN
from rnnkit.train.clip import clip_grad_norm

Array = np.ndarray

__all__ = ["cliff_edge", "cliff_loss_grad", "cliff_losses", "descent_path", "one_unit_rnn"]

STEPS, X0, TARGET = 50, 0.5, 0.7  # Pascanu et al. 2013, Fig. 6


def one_unit_rnn(w: float, b: float = 0.0) -> RNN:
    """h_t = sigma(w h_{t-1} + b * x_t) with x_t = 1: W_hh = w, W_ih = b, no biases."""
    rnn = RNN(1, 1, nonlinearity="sigmoid", bias=False, dtype=np.float64)
    rnn.params["weight_hh_l0"][...] = w
    rnn.params["weight_ih_l0"][...] = b
    return rnn


def _h0(B: int, x0: float) -> Array:
    return np.full((1, B, 1), 1.0 / (1.0 + np.exp(-x0)))


def cliff_losses(
    ws: Array, bs: Array, steps: int = STEPS, x0: float = X0, target: float = TARGET
) -> Array:
    """E(w, b) on a grid: (len(ws), len(bs)). One forward pass per w, all b in one batch.

    Each b becomes an input value (W_ih = 1, x_t = b), which is the same model.
    """
    bs = np.asarray(bs, np.float64)
    out = np.empty((len(ws), len(bs)))
    x = np.broadcast_to(bs[:, None, None], (len(bs), steps, 1)).copy()  # (B, T, 1)
    for i, w in enumerate(np.asarray(ws, np.float64)):
        rnn = one_unit_rnn(w, 1.0)
        h, _ = rnn(x, _h0(len(bs), x0))
        out[i] = (h[:, -1, 0] - target) ** 2
    return out


def cliff_loss_grad(
    w: float, b: float, steps: int = STEPS, x0: float = X0, target: float = TARGET
) -> tuple[float, dict[str, float]]:
    """E and its gradient {'w': dE/dw, 'b': dE/db}, by the layer's BPTT."""
    rnn = one_unit_rnn(w, b)
    x = np.ones((1, steps, 1))
    h, _, cache = rnn.forward(x, _h0(1, x0))
    diff = h[0, -1, 0] - target
    dout = np.zeros_like(h)
    dout[0, -1, 0] = 2.0 * diff  # E = (h_T - target)^2
    rnn.backward(dout, cache)
    g = {"w": float(rnn.grads["weight_hh_l0"][0, 0]), "b": float(rnn.grads["weight_ih_l0"][0, 0])}
    return float(diff * diff), g


def cliff_edge(w: float, lo: float, hi: float, iters: int = 60, **kw: Any) -> float:
    """The b in [lo, hi] where E(w, b) jumps, by bisection (E(lo) and E(hi) must differ).

    >>> b = cliff_edge(8.0, -6.0, -3.0)
    >>> round(b, 4), cliff_loss_grad(8.0, b - 1e-3)[0] > 0.3 > cliff_loss_grad(8.0, b + 1e-3)[0]
    (-4.4797, True)
    """
    e_lo, e_hi = cliff_loss_grad(w, lo, **kw)[0], cliff_loss_grad(w, hi, **kw)[0]
    mid_e = 0.5 * (e_lo + e_hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if (cliff_loss_grad(w, mid, **kw)[0] > mid_e) == (e_lo > mid_e):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def descent_path(
    w: float, b: float, lr: float, n_steps: int, clip: float | None = None, **kw: Any
) -> Array:
    """Plain gradient descent on E from (w, b), optionally with norm clipping.

    Returns (n_steps + 1, 4): w, b, E and the gradient norm (before clipping) per point.
    """
    path = []
    for _ in range(n_steps):
        loss, g = cliff_loss_grad(w, b, **kw)
        grads = {k: np.array([v]) for k, v in g.items()}
        norm = clip_grad_norm(grads, clip) if clip else global_grad_norm(grads)
        path.append((w, b, loss, norm))
        w, b = w - lr * float(grads["w"][0]), b - lr * float(grads["b"][0])
    loss, g = cliff_loss_grad(w, b, **kw)
    path.append((w, b, loss, float(np.hypot(g["w"], g["b"]))))
    return np.array(path)
