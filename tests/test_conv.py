"""Convolution and max-pooling: finite differences in float64, and torch.nn.Conv2d /
MaxPool2d on the same weights (outputs, input and parameter gradients; float64 1e-9, float32
1e-4), strides, padding and overlapping windows included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.engine.conv import (
    Conv2d,
    col2im,
    conv2d_backward,
    conv2d_forward,
    im2col,
    maxpool2d_backward,
    maxpool2d_forward,
)
from rnnkit.engine.gradcheck import gradcheck

B, C, H, W, O = 2, 3, 7, 6, 4  # unequal sizes: a swapped axis fails
TOL = {np.float64: 1e-9, np.float32: 1e-4}


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("k,stride,padding", [(3, 1, 1), (3, 2, 0), (2, 2, 1), (1, 1, 0)])
def test_conv2d_gradcheck(k, stride, padding):
    r = np.random.default_rng(k + 10 * stride + padding)
    x = r.standard_normal((B, C, H, W))
    conv = Conv2d(C, O, k, stride, padding, dtype=np.float64, seed=1)
    y, cache = conv.forward(x)
    wy = r.standard_normal(y.shape)  # a random upstream gradient
    conv.zero_grad()
    dx = conv.backward(wy, cache)
    gradcheck(lambda: float((conv.forward(x)[0] * wy).sum()), {"x": x, **conv.params},
              {"x": dx, **{n: g.copy() for n, g in conv.grads.items()}})  # fmt: skip


@pytest.mark.parametrize("k,stride,padding", [(2, None, 0), (3, 2, 1), (3, 1, 0)])
def test_maxpool2d_gradcheck(k, stride, padding):
    x = np.random.default_rng(k).standard_normal((B, C, H, W))  # continuous: no ties
    y, cache = maxpool2d_forward(x, k, stride, padding)
    wy = np.random.default_rng(5).standard_normal(y.shape)
    dx = maxpool2d_backward(wy, cache)
    gradcheck(lambda: float((maxpool2d_forward(x, k, stride, padding)[0] * wy).sum()),
              {"x": x}, {"x": dx})  # fmt: skip


def test_col2im_is_the_adjoint_of_im2col():
    """<im2col(x), g> = <x, col2im(g)> for every x, g: the defining property of the backward."""
    r = np.random.default_rng(3)
    x = r.standard_normal((B, C, H, W))
    cols = im2col(x, 3, 2, stride=2, padding=1)
    g = r.standard_normal(cols.shape)
    lhs = float((cols * g).sum())
    rhs = float((x * col2im(g, x.shape, 3, 2, stride=2, padding=1)).sum())
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k,stride,padding,bias", [(3, 1, 1, True), (5, 2, 2, False),
                                                   (2, 3, 0, True)])  # fmt: skip
def test_conv2d_matches_torch(dtype, k, stride, padding, bias):
    r = np.random.default_rng(7)
    x = r.standard_normal((B, C, H, W)).astype(dtype)
    conv = Conv2d(C, O, k, stride, padding, bias=bias, dtype=dtype, seed=2)
    ref = torch.nn.Conv2d(C, O, k, stride, padding, bias=bias).to(getattr(torch, dtype.__name__))
    ref.load_state_dict({n: torch.from_numpy(p.copy()) for n, p in conv.params.items()})
    assert sorted(ref.state_dict()) == sorted(conv.params)  # PyTorch's parameter names
    y, cache = conv.forward(x)
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    wy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(wy))
    conv.zero_grad()
    dx = conv.backward(wy, cache)
    tol = TOL[dtype]
    assert y.dtype == dtype and dx.dtype == dtype
    assert _rel(y, ty.detach().numpy()) < tol
    assert _rel(dx, tx.grad.numpy()) < tol
    for name, p in ref.named_parameters():
        assert _rel(conv.grads[name], p.grad.numpy()) < tol, name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k,stride,padding", [(2, None, 0), (3, 2, 1), (3, 1, 1)])
def test_maxpool2d_matches_torch(dtype, k, stride, padding):
    r = np.random.default_rng(11)
    x = r.standard_normal((B, C, H, W)).astype(dtype)
    x[0, 0, :2, :2] = 1.5  # a tie: the gradient goes to the first maximum, as in torch
    y, cache = maxpool2d_forward(x, k, stride, padding)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.MaxPool2d(k, stride, padding)(tx)
    wy = r.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(wy))
    dx = maxpool2d_backward(wy, cache)
    assert _rel(y, ty.detach().numpy()) < TOL[dtype]
    assert _rel(dx, tx.grad.numpy()) < TOL[dtype]


def test_conv_stack_matches_torch_sequential():
    """conv -> relu -> pool -> conv, as a captioner's encoder stacks them (float64)."""
    from rnnkit.engine.ops import relu_backward, relu_forward

    r = np.random.default_rng(4)
    c1, c2 = (
        Conv2d(1, 3, 3, padding=1, dtype=np.float64, seed=0),
        Conv2d(3, 5, 3, dtype=np.float64, seed=1),
    )
    ref = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(3, 5, 3),
    ).double()
    ref.load_state_dict({"0.weight": torch.tensor(c1.params["weight"]),
                         "0.bias": torch.tensor(c1.params["bias"]),
                         "3.weight": torch.tensor(c2.params["weight"]),
                         "3.bias": torch.tensor(c2.params["bias"])})  # fmt: skip
    x = r.standard_normal((2, 1, 10, 9))
    a, k1 = c1.forward(x)
    b, k2 = relu_forward(a)
    p, k3 = maxpool2d_forward(b, 2)
    y, k4 = c2.forward(p)
    wy = r.standard_normal(y.shape)
    dx = c1.backward(relu_backward(maxpool2d_backward(c2.backward(wy, k4), k3), k2), k1)
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    ty.backward(torch.tensor(wy))
    assert _rel(y, ty.detach().numpy()) < 1e-9
    assert _rel(dx, tx.grad.numpy()) < 1e-9
    assert _rel(c1.grads["weight"], ref[0].weight.grad.numpy()) < 1e-9


def test_bad_shapes_are_one_clear_error():
    with pytest.raises(ValueError, match="channels"):
        conv2d_forward(np.zeros((1, 2, 5, 5)), np.zeros((1, 3, 3, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_forward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        maxpool2d_forward(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match="padding"):
        maxpool2d_forward(np.zeros((1, 1, 4, 4)), 2, padding=2)
    # the backward of a conv with no bias gives no bias gradient
    _, cache = conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)))
    assert conv2d_backward(np.ones((1, 1, 1, 1)), cache)[2] is None


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d_gradcheck(training):
    from rnnkit.engine.conv import BatchNorm2d

    r = np.random.default_rng(8)
    bn = BatchNorm2d(C, dtype=np.float64)
    bn.params["weight"][:] = r.standard_normal(C)
    bn.params["bias"][:] = r.standard_normal(C)
    bn.buffers["running_mean"][:] = r.standard_normal(C)
    bn.buffers["running_var"][:] = r.random(C) + 0.5
    x = r.standard_normal((B, C, H, W))
    wy = r.standard_normal(x.shape)
    saved = {k: v.copy() for k, v in bn.buffers.items()}

    def loss():
        for k, v in saved.items():  # the running statistics as they were (training moves them)
            bn.buffers[k][:] = v
        return float((bn.forward(x, training)[0] * wy).sum())

    loss()
    _, cache = bn.forward(x, training)
    bn.zero_grad()
    dx = bn.backward(wy, cache)
    gradcheck(loss, {"x": x, **bn.params}, {"x": dx, **{n: g.copy() for n, g in bn.grads.items()}})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm2d_matches_torch(dtype):
    """Two training steps then one evaluation step: outputs, gradients and running statistics
    (PyTorch's names: weight, bias, running_mean, running_var)."""
    from rnnkit.engine.conv import BatchNorm2d

    r = np.random.default_rng(9)
    bn = BatchNorm2d(C, momentum=0.2, dtype=dtype)
    ref = torch.nn.BatchNorm2d(C, momentum=0.2).to(getattr(torch, dtype.__name__))
    bn.params["weight"][:] = r.standard_normal(C)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(bn.params["weight"]))
    tol = TOL[dtype]
    for training in (True, True, False):
        ref.train(training)
        x = (2 * r.standard_normal((B, C, H, W)) + 1).astype(dtype)
        wy = r.standard_normal(x.shape).astype(dtype)
        y, cache = bn.forward(x, training)
        bn.zero_grad()
        dx = bn.backward(wy, cache)
        tx = torch.tensor(x, requires_grad=True)
        ref.zero_grad()
        ty = ref(tx)
        ty.backward(torch.from_numpy(wy))
        assert y.dtype == dtype and _rel(y, ty.detach().numpy()) < tol
        assert _rel(dx, tx.grad.numpy()) < tol
        for name in ("weight", "bias"):
            assert _rel(bn.grads[name], getattr(ref, name).grad.numpy()) < tol, name
        for name in ("running_mean", "running_var"):
            assert _rel(bn.buffers[name], getattr(ref, name).numpy()) < tol, name
