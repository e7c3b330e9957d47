"""Convolution and max-pooling over images, each a forward/backward pair (for captioning).

Shapes: images are ``(B, C, H, W)`` as PyTorch lays them out (batch, channels, height,
width); a convolution has O output channels and a kh x kw kernel; ``Ho, Wo`` are the output
height and width. A 2-D cross-correlation (what ``torch.nn.Conv2d`` computes) is::

    y[b, o, i, j] = bias[o] + sum_{c, u, v} W[o, c, u, v] * xp[b, c, s*i + u, s*j + v]

with ``xp`` the input zero-padded by p on every side and stride s, so that
``Ho = (H + 2p - kh) // s + 1`` (Dumoulin & Visin 2016, "A guide to convolution arithmetic",
relationship 6). It runs as one matrix product (im2col, Chellapilla et al. 2006): every
receptive field becomes a row of ``cols`` (B*Ho*Wo, C*kh*kw), and ``y = cols W^T + b`` with W
flattened to (O, C*kh*kw). The backward pass is then two products and a scatter::

    dW = dy^T cols      db = sum dy      dcols = dy W      dx = col2im(dcols)

where col2im adds each row of ``dcols`` back onto the input positions its field read (a
position read by several fields, when the kernel is wider than the stride, sums their
gradients). Max-pooling keeps, for each window, the largest input; its gradient flows to that
input alone (the first in row-major order on a tie, as PyTorch's CPU kernel picks it). Batch
normalisation (:class:`BatchNorm2d`) normalises each channel by its batch statistics.

Every function follows :mod:`rnnkit.engine.ops`: ``*_forward -> (out, cache)``,
``*_backward(dout, cache)``; :class:`Conv2d` holds the parameters under PyTorch's names
(``weight`` (O, C, kh, kw), ``bias`` (O,)) with its initialisation U(+-1/sqrt(C*kh*kw)).

>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> y, cache = conv2d_forward(x, np.ones((1, 1, 2, 2)), np.zeros(1), stride=2)
>>> y[0, 0].tolist()   # sums of the four 2x2 blocks
[[10.0, 18.0], [42.0, 50.0]]
>>> p, pcache = maxpool2d_forward(x, 2)
>>> p[0, 0].tolist(), maxpool2d_backward(np.ones_like(p), pcache)[0, 0, 0].tolist()
([[5.0, 7.0], [13.0, 15.0]], [0.0, 0.0, 0.0, 0.0])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnnkit.engine.module import Module

Array = np.ndarray
Cache = Any

__all__ = [
    "BatchNorm2d",
    "Conv2d",
    "batchnorm2d_backward",
    "batchnorm2d_forward",
    "col2im",
    "conv2d_backward",
    "conv2d_forward",
    "im2col",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "output_size",
]


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a window of ``kernel`` sliding by ``stride`` over ``size`` + 2
    ``padding``: (size + 2 padding - kernel) // stride + 1 (must be >= 1).

    >>> output_size(28, 3, 1, 1), output_size(7, 3, 2, 0), output_size(8, 2, 2, 0)
    (28, 3, 4)
    """
    n = (size + 2 * padding - kernel) // stride + 1
    if n < 1:
        raise ValueError(f"window {kernel} (stride {stride}, padding {padding}) does not fit "
                         f"in size {size}")  # fmt: skip
    return n


def _check_image(x: Array, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{what}: expected an image batch (B, C, H, W), got shape {x.shape}")


def _pad(x: Array, padding: int, value: float) -> Array:
    if padding == 0:
        return x
    p = padding
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=value)


def _windows(xp: Array, kh: int, kw: int, stride: int, Ho: int, Wo: int) -> Array:
    """A read-only view (B, C, Ho, Wo, kh, kw) of every window of the padded input."""
    v = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # (B,C,H',W',kh,kw)
    return v[:, :, : stride * (Ho - 1) + 1 : stride, : stride * (Wo - 1) + 1 : stride]


def im2col(x: Array, kh: int, kw: int, stride: int = 1, padding: int = 0) -> Array:
    """Receptive fields as rows: x (B, C, H, W) -> cols (B*Ho*Wo, C*kh*kw), rows in (b, i, j)
    order, columns in (c, u, v) order (that of a flattened ``weight[o]``).

    >>> im2col(np.arange(9.0).reshape(1, 1, 3, 3), 2, 2).tolist()
    [[0.0, 1.0, 3.0, 4.0], [1.0, 2.0, 4.0, 5.0], [3.0, 4.0, 6.0, 7.0], [4.0, 5.0, 7.0, 8.0]]
    """
    _check_image(x, "im2col")
    B, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, padding), output_size(W, kw, stride, padding)
    win = _windows(_pad(x, padding, 0.0), kh, kw, stride, Ho, Wo)  # (B, C, Ho, Wo, kh, kw)
    # one copy, into row (b, i, j), column (c, u, v)
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(B * Ho * Wo, C * kh * kw)


def col2im(
    dcols: Array, shape: tuple[int, ...], kh: int, kw: int, stride: int = 1, padding: int = 0
) -> Array:
    """The adjoint of :func:`im2col`: each row's entries added back onto the input positions
    that row's field read. dcols (B*Ho*Wo, C*kh*kw) -> dx ``shape`` (B, C, H, W)."""
    B, C, H, W = shape
    Ho, Wo = output_size(H, kh, stride, padding), output_size(W, kw, stride, padding)
    d = dcols.reshape(B, Ho, Wo, C, kh, kw).transpose(0, 3, 4, 5, 1, 2)  # (B, C, kh, kw, Ho, Wo)
    dxp = np.zeros((B, C, H + 2 * padding, W + 2 * padding), dtype=dcols.dtype)
    # kernel offset (u, v) of output (i, j) read xp[s*i + u, s*j + v]: kh*kw strided adds
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u : u + stride * Ho : stride, v : v + stride * Wo : stride] += d[:, :, u, v]
    if padding:
        return dxp[:, :, padding:-padding, padding:-padding]
    return dxp


# --- convolution --------------------------------------------------------------------------------


def conv2d_forward(
    x: Array, weight: Array, bias: Array | None = None, stride: int = 1, padding: int = 0
) -> tuple[Array, Cache]:
    """y = conv(x, W) + b as ``torch.nn.functional.conv2d``: x (B, C, H, W), weight
    (O, C, kh, kw), bias (O,) -> y (B, O, Ho, Wo). The cache holds the im2col rows."""
    _check_image(x, "conv2d input")
    O, C, kh, kw = weight.shape
    if x.shape[1] != C:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels, the weight expects {C}")
    if stride < 1 or padding < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got {stride}, {padding}")
    B, _, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, padding), output_size(W, kw, stride, padding)
    cols = im2col(x, kh, kw, stride, padding)  # (B*Ho*Wo, C*kh*kw)
    y = cols @ weight.reshape(O, -1).T  # (B*Ho*Wo, O)
    if bias is not None:
        y += bias
    y = y.reshape(B, Ho, Wo, O).transpose(0, 3, 1, 2)  # (B, O, Ho, Wo)
    return np.ascontiguousarray(y), (cols, weight, bias is not None, x.shape, stride, padding)


def conv2d_backward(dy: Array, cache: Cache) -> tuple[Array, Array, Array | None]:
    """Returns (dx, dW, db) for :func:`conv2d_forward`; dy (B, O, Ho, Wo)."""
    cols, weight, has_bias, shape, stride, padding = cache
    O, C, kh, kw = weight.shape
    dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, O)  # (B*Ho*Wo, O), rows as in cols
    # y = cols W^T + b  ->  dW = dy^T cols, db = sum over rows, dcols = dy W
    dW = (dy2.T @ cols).reshape(weight.shape)
    db = dy2.sum(axis=0) if has_bias else None
    dcols = dy2 @ weight.reshape(O, -1)  # (B*Ho*Wo, C*kh*kw)
    return col2im(dcols, shape, kh, kw, stride, padding), dW, db


# --- max-pooling ---------------------------------------------------------------------------------


def maxpool2d_forward(
    x: Array, kernel: int, stride: int | None = None, padding: int = 0
) -> tuple[Array, Cache]:
    """y[b, c, i, j] = max of the kernel x kernel window at (s*i, s*j) of x padded with -inf,
    as ``torch.nn.MaxPool2d(kernel, stride, padding)`` (stride defaults to the kernel;
    padding at most kernel // 2). x (B, C, H, W) -> y (B, C, Ho, Wo)."""
    _check_image(x, "maxpool2d input")
    s = kernel if stride is None else stride
    if kernel < 1 or s < 1 or not 0 <= padding <= kernel // 2:
        raise ValueError(f"maxpool2d: needs kernel, stride >= 1 and 0 <= padding <= kernel // 2,"
                         f" got {kernel}, {s}, {padding}")  # fmt: skip
    B, C, H, W = x.shape
    Ho, Wo = output_size(H, kernel, s, padding), output_size(W, kernel, s, padding)
    win = _windows(_pad(x, padding, -np.inf), kernel, kernel, s, Ho, Wo)
    flat = win.reshape(B, C, Ho, Wo, kernel * kernel)
    arg = flat.argmax(axis=-1)  # (B, C, Ho, Wo): the first maximum in row-major order
    y = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    return y, (arg, x.shape, kernel, s, padding)


def maxpool2d_backward(dy: Array, cache: Cache) -> Array:
    """dx: each window's gradient goes to the input that won its max (summed where windows
    overlap)."""
    arg, shape, k, s, padding = cache
    B, C, H, W = shape
    Ho, Wo = arg.shape[2:]
    dxp = np.zeros((B, C, H + 2 * padding, W + 2 * padding), dtype=dy.dtype)
    for u in range(k):
        for v in range(k):
            hit = arg == u * k + v  # windows whose max sat at offset (u, v)
            dxp[:, :, u : u + s * Ho : s, v : v + s * Wo : s] += np.where(hit, dy, 0)
    if padding:
        return dxp[:, :, padding:-padding, padding:-padding]
    return dxp


# --- batch normalisation ----------------------------------------------------------------------


def batchnorm2d_forward(
    x: Array, weight: Array, bias: Array, running_mean: Array, running_var: Array,
    training: bool = True, momentum: float = 0.1, eps: float = 1e-5,
) -> tuple[Array, Cache]:  # fmt: skip
    """Batch normalisation per channel (Ioffe & Szegedy 2015, Algorithm 1), as
    ``torch.nn.BatchNorm2d``: x (B, C, H, W) -> y = weight * xhat + bias with

        xhat = (x - mu) / sqrt(var + eps),  mu, var over the B*H*W values of each channel

    (``var`` biased). Training normalises by the batch's own statistics and moves the running
    ones towards them, in place: running_mean += momentum (mu - running_mean), and the same
    for running_var with the unbiased variance var * n / (n - 1). Evaluation normalises by
    the running statistics."""
    _check_image(x, "batchnorm2d input")
    if training:
        n = x.shape[0] * x.shape[2] * x.shape[3]
        if n < 2:
            raise ValueError("batchnorm2d: training needs more than one value per channel")
        mu = x.mean(axis=(0, 2, 3))  # (C,)
        var = ((x - mu[:, None, None]) ** 2).mean(axis=(0, 2, 3))
        running_mean += momentum * (mu - running_mean)
        running_var += momentum * (var * n / (n - 1) - running_var)
    else:
        mu, var = running_mean, running_var
    inv_std = 1.0 / np.sqrt(var + eps)  # (C,)
    xhat = (x - mu[:, None, None]) * inv_std[:, None, None]
    y = weight[:, None, None] * xhat + bias[:, None, None]
    return y.astype(x.dtype, copy=False), (xhat, inv_std, weight, training)


def batchnorm2d_backward(dy: Array, cache: Cache) -> tuple[Array, Array, Array]:
    """Returns (dx, dweight, dbias). In training mu and var depend on x, so (with N = B*H*W
    values per channel and g = dy * weight)::

        dx = inv_std / N * (N g - sum g - xhat sum(g xhat))

    In evaluation the statistics are constants: dx = g * inv_std."""
    xhat, inv_std, weight, training = cache
    axes = (0, 2, 3)
    dweight = (dy * xhat).sum(axis=axes)
    dbias = dy.sum(axis=axes)
    g = dy * weight[:, None, None]
    if not training:
        return g * inv_std[:, None, None], dweight, dbias
    n = dy.shape[0] * dy.shape[2] * dy.shape[3]
    gsum = g.sum(axis=axes)[:, None, None]
    gx = (g * xhat).sum(axis=axes)[:, None, None]
    dx = (inv_std[:, None, None] / n) * (n * g - gsum - xhat * gx)
    return dx, dweight, dbias


# --- the modules ---------------------------------------------------------------------------------


class Conv2d(Module):
    r"""A 2-D convolution layer with PyTorch's parameters and initialisation.

    Args:
        in_channels: C. out_channels: O. kernel_size: kh = kw.
        stride, padding: as ``torch.nn.Conv2d``. bias: learn a bias per output channel.
        dtype: float32 or float64. seed: int or ``np.random.Generator``.

    Parameters: ``weight`` (O, C, k, k) and ``bias`` (O,), both U(+-1/sqrt(C k^2)) (PyTorch's
    default: Kaiming-uniform with a = sqrt(5) gives that bound for the weight).

    Inputs/outputs: :meth:`forward` x (B, C, H, W) -> y (B, O, Ho, Wo), cache;
    :meth:`backward` (dy, cache) -> dx, the parameter gradients added into ``grads``.

    Example:
        >>> conv = Conv2d(3, 8, 3, padding=1, seed=0)
        >>> y, cache = conv.forward(np.zeros((2, 3, 5, 7), np.float32))
        >>> y.shape, conv.backward(np.ones_like(y), cache).shape, float(conv.grads["bias"][0])
        ((2, 8, 5, 7), (2, 3, 5, 7), 70.0)
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
        padding: int = 0, bias: bool = True, dtype: Any = np.float32,
        seed: int | np.random.Generator | None = None,
    ) -> None:  # fmt: skip
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        k = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
        shape = (self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        self.params: dict[str, Array] = {"weight": rng.uniform(-k, k, shape).astype(dtype)}
        if bias:
            self.params["bias"] = rng.uniform(-k, k, self.out_channels).astype(dtype)
        self.grads: dict[str, Array] = {n: np.zeros_like(p) for n, p in self.params.items()}

    def forward(self, x: Array) -> tuple[Array, Cache]:
        return conv2d_forward(x, self.params["weight"], self.params.get("bias"), self.stride,
                              self.padding)  # fmt: skip

    def backward(self, dy: Array, cache: Cache) -> Array:
        dx, dW, db = conv2d_backward(dy, cache)
        self.grads["weight"] += dW
        if db is not None:
            self.grads["bias"] += db
        return dx


class BatchNorm2d(Module):
    r"""Batch normalisation over the channels of an image batch, as ``torch.nn.BatchNorm2d``.

    Args:
        num_features: C. eps, momentum: as PyTorch's. dtype: float32 or float64.

    Parameters: ``weight`` (C,) = 1 and ``bias`` (C,) = 0 at the start; the running
    statistics ``running_mean`` (0) and ``running_var`` (1) are buffers (``self.buffers``),
    updated by each training pass, not by gradients.

    Example:
        >>> bn = BatchNorm2d(2, dtype=np.float64)
        >>> x = np.arange(16.0).reshape(2, 2, 2, 2)
        >>> y, cache = bn.forward(x)
        >>> y.mean(axis=(0, 2, 3)).round(12).tolist(), bn.buffers["running_mean"].tolist()
        ([0.0, 0.0], [0.55, 0.95])
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: Any = np.float32) -> None:  # fmt: skip
        self.eps, self.momentum = float(eps), float(momentum)
        self.params: dict[str, Array] = {"weight": np.ones(num_features, dtype),
                                         "bias": np.zeros(num_features, dtype)}  # fmt: skip
        self.grads: dict[str, Array] = {n: np.zeros_like(p) for n, p in self.params.items()}
        self.buffers: dict[str, Array] = {"running_mean": np.zeros(num_features, dtype),
                                          "running_var": np.ones(num_features, dtype)}  # fmt: skip

    def forward(self, x: Array, training: bool = True) -> tuple[Array, Cache]:
        return batchnorm2d_forward(x, self.params["weight"], self.params["bias"],
                                   self.buffers["running_mean"], self.buffers["running_var"],
                                   training, self.momentum, self.eps)  # fmt: skip

    def backward(self, dy: Array, cache: Cache) -> Array:
        dx, dw, db = batchnorm2d_backward(dy, cache)
        self.grads["weight"] += dw
        self.grads["bias"] += db
        return dx
