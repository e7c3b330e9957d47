"""Elementary operations, each a forward/backward pair.

Shape legend, used throughout rnnkit:
B batch, T time, D input features, H hidden, G gates (1 RNN, 3 GRU, 4 LSTM), V vocabulary,
E embedding, L layers, K beam width. Arrays are batch-first ``(B, T, D)`` at the public
interface; recurrent layers work time-major ``(T, B, D)`` inside.

Conventions: ``*_forward(...) -> (out, cache)`` and ``*_backward(dout, cache) -> grads``.
The cache is a plain value returned to the caller, never state kept on an object, so two
forward calls never clobber each other. Parameter gradients are returned, and callers add
them (``+=``) into their gradient buffers.

>>> x = np.array([[1.0, 2.0, 3.0]])
>>> y, cache = softmax_forward(x)
>>> np.round(y, 4)
array([[0.09  , 0.2447, 0.6652]])
>>> np.round(softmax_backward(np.array([[1.0, 0.0, 0.0]]), cache), 4)
array([[ 0.0819, -0.022 , -0.0599]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray
Cache = Any

# --- activations -------------------------------------------------------------------------


def sigmoid(x: Array) -> Array:
    """Logistic function, stable for large |x|: 1/(1+e^-x) = (1 + tanh(x/2))/2.

    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def sigmoid_forward(x: Array) -> tuple[Array, Cache]:
    """y = sigmoid(x); the cache is y, since dy/dx = y (1 - y)."""
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dy: Array, cache: Cache) -> Array:
    """dx = dy * y * (1 - y)."""
    y = cache
    return dy * y * (1.0 - y)


def tanh_forward(x: Array) -> tuple[Array, Cache]:
    """y = tanh(x); the cache is y, since dy/dx = 1 - y^2."""
    y = np.tanh(x)
    return y, y


def tanh_backward(dy: Array, cache: Cache) -> Array:
    """dx = dy * (1 - y^2)."""
    y = cache
    return dy * (1.0 - y * y)


def relu_forward(x: Array) -> tuple[Array, Cache]:
    """y = max(x, 0); the cache is y (its sign is the derivative's support)."""
    y = np.maximum(x, 0)
    return y, y


def relu_backward(dy: Array, cache: Cache) -> Array:
    """dx = dy where y > 0 (the subgradient at 0 is taken as 0, as PyTorch does)."""
    y = cache
    return dy * (y > 0)


ACTIVATIONS = {
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
    "sigmoid": (sigmoid_forward, sigmoid_backward),
}


# --- softmax and cross-entropy ------------------------------------------------------------


def log_softmax(x: Array, axis: int = -1) -> Array:
    """log softmax, computed as x - max - log(sum(exp(x - max))) so that no exp overflows."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_forward(x: Array, axis: int = -1) -> tuple[Array, Cache]:
    """p = softmax(x) along ``axis`` (max subtracted first: exp never overflows)."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    return p, (p, axis)


def softmax_backward(dp: Array, cache: Cache) -> Array:
    """dx = p * (dp - sum(dp * p)): the softmax Jacobian diag(p) - p p^T applied to dp."""
    p, axis = cache
    return p * (dp - (dp * p).sum(axis=axis, keepdims=True))


def log_softmax_forward(x: Array, axis: int = -1) -> tuple[Array, Cache]:
    """y = log_softmax(x); the cache is softmax(x) = exp(y)."""
    y = log_softmax(x, axis)
    return y, (np.exp(y), axis)


def log_softmax_backward(dy: Array, cache: Cache) -> Array:
    """dx = dy - p * sum(dy): the Jacobian of log_softmax is I - 1 p^T."""
    p, axis = cache
    return dy - p * dy.sum(axis=axis, keepdims=True)


def cross_entropy_forward(
    logits: Array, targets: Array, mask: Array | None = None
) -> tuple[float, Cache]:
    """Mean negative log-likelihood of ``targets`` under softmax(``logits``), fused.

    Args:
        logits: (N, V) unnormalised scores (any leading shape; flattened to N rows).
        targets: (N,) integer class ids in [0, V).
        mask: optional (N,) weights, 1 for real positions and 0 for padding. The mean is over
            the positions with nonzero mask; padded positions contribute nothing.

    Returns:
        The scalar loss and a cache. ``cross_entropy_backward(dloss, cache)`` returns
        d loss / d logits = (softmax(logits) - onehot(targets)) * mask / sum(mask).

    >>> loss, cache = cross_entropy_forward(np.zeros((2, 4)), np.array([0, 3]))
    >>> print(round(loss, 6))  # log 4: uniform over 4 classes
    1.386294
    """
    V = logits.shape[-1]
    z = logits.reshape(-1, V)  # (N, V)
    t = np.asarray(targets).reshape(-1)
    if t.shape[0] != z.shape[0]:
        raise ValueError(f"targets: expected {z.shape[0]} entries, got shape {np.shape(targets)}")
    if t.size and (t.min() < 0 or t.max() >= V):
        raise ValueError(f"targets: ids must lie in [0, {V}), got range [{t.min()}, {t.max()}]")
    logp = log_softmax(z, axis=-1)
    nll = -logp[np.arange(z.shape[0]), t]  # (N,)
    if mask is None:
        w = np.ones_like(nll)
    else:
        w = np.asarray(mask, dtype=z.dtype).reshape(-1)
        if w.shape != nll.shape:
            raise ValueError(f"mask: expected shape ({z.shape[0]},), got {np.shape(mask)}")
    denom = max(float(w.sum()), 1.0)
    loss = float((nll * w).sum() / denom)
    return loss, (logp, t, w, denom, logits.shape)


def cross_entropy_backward(dloss: float, cache: Cache) -> Array:
    """d loss / d logits, shaped like the logits given to the forward pass."""
    logp, t, w, denom, shape = cache
    dz = np.exp(logp)  # softmax
    dz[np.arange(dz.shape[0]), t] -= 1.0
    dz *= (dloss / denom) * w[:, None]
    return dz.reshape(shape)


# --- linear, embedding, dropout -----------------------------------------------------------


def linear_forward(x: Array, weight: Array, bias: Array | None = None) -> tuple[Array, Cache]:
    """y = x W^T + b, with W of shape (O, D) as ``torch.nn.Linear`` stores it.

    x: (..., D) -> y: (..., O).
    """
    D = weight.shape[1]
    # one 2-D matmul: NumPy runs (B, T, D) @ (D, O) as B separate, much slower, matmuls
    y = x.reshape(-1, D) @ weight.T  # (N, O)
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0]), (x, weight, bias is not None)


def linear_backward(dy: Array, cache: Cache) -> tuple[Array, Array, Array | None]:
    """Returns (dx, dW, db) for y = x W^T + b: dx = dy W, dW = dy^T x, db = sum dy."""
    x, weight, has_bias = cache
    O, D = weight.shape
    dy2 = dy.reshape(-1, O)  # (N, O)
    dx = (dy2 @ weight).reshape(x.shape)
    dW = dy2.T @ x.reshape(-1, D)  # (O, D), one matmul over all leading positions
    db = dy2.sum(axis=0) if has_bias else None
    return dx, dW, db


def embedding_forward(ids: Array, weight: Array) -> tuple[Array, Cache]:
    """Row lookup e = W[ids] (equivalently E o_w with a one-hot o_w). ids: (...,) -> (..., E)."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= weight.shape[0]):
        raise ValueError(
            f"ids: must lie in [0, {weight.shape[0]}), got range [{ids.min()}, {ids.max()}]"
        )
    return weight[ids], (ids, weight.shape)


def embedding_backward(dout: Array, cache: Cache) -> Array:
    """dW: each row receives the sum of the gradients of the positions that looked it up."""
    ids, shape = cache
    dW = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dW, ids.reshape(-1), dout.reshape(-1, shape[1]))
    return dW


def dropout_forward(
    x: Array, p: float, rng: np.random.Generator, training: bool = True
) -> tuple[Array, Cache]:
    """Inverted dropout: zero each entry with probability p and scale survivors by 1/(1-p).

    At evaluation time (``training=False``) or with p == 0 it is the identity.
    The cache is the scaled mask (None for the identity).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must lie in [0, 1), got {p}")
    if not training or p == 0.0:
        return x, None
    mask = (rng.random(x.shape) >= p).astype(x.dtype) / (1.0 - p)
    return x * mask, mask


def dropout_backward(dy: Array, cache: Cache) -> Array:
    """dx = dy * mask (the same scaled mask the forward pass applied)."""
    return dy if cache is None else dy * cache
