"""Every op's backward against finite differences (float64), and its forward against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.engine import ops
from rnnkit.engine.gradcheck import gradcheck, relative_error

RNG = np.random.default_rng(0)


def upstream(shape):
    return np.random.default_rng(1).standard_normal(shape)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
def test_activation_grads(name):
    fwd, bwd = ops.ACTIVATIONS[name]
    x = RNG.standard_normal((3, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    dy = upstream(x.shape)
    y, cache = fwd(x)
    gradcheck(lambda: float((fwd(x)[0] * dy).sum()), {"x": x}, {"x": bwd(dy, cache)})
    ref = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[name]
    assert relative_error(y, ref(torch.from_numpy(x)).numpy()) < 1e-15


def test_sigmoid_is_stable_at_extremes():
    y = ops.sigmoid(np.array([-800.0, 800.0]))
    assert np.all(np.isfinite(y)) and y[0] == 0.0 and y[1] == 1.0


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax(axis):
    x = RNG.standard_normal((3, 5)) * 3
    dy = upstream(x.shape)
    for fwd, bwd, ref in [
        (ops.softmax_forward, ops.softmax_backward, torch.softmax),
        (ops.log_softmax_forward, ops.log_softmax_backward, torch.log_softmax),
    ]:
        y, cache = fwd(x, axis)
        gradcheck(lambda f=fwd: float((f(x, axis)[0] * dy).sum()), {"x": x},
                  {"x": bwd(dy, cache)})  # fmt: skip
        assert relative_error(y, ref(torch.from_numpy(x), axis).numpy()) < 1e-14


def test_softmax_no_overflow():
    y, _ = ops.softmax_forward(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(y, [[0.5, 0.5, 0.0]])


def test_cross_entropy_matches_torch_with_padding_mask():
    N, V = 7, 5
    z = RNG.standard_normal((N, V)) * 2
    t = RNG.integers(0, V, N)
    mask = np.array([1, 1, 0, 1, 0, 1, 1.0])
    loss, cache = ops.cross_entropy_forward(z, t, mask)
    dz = ops.cross_entropy_backward(1.0, cache)
    zt = torch.tensor(z, requires_grad=True)
    tt = torch.tensor(np.where(mask > 0, t, -100))
    ref = torch.nn.functional.cross_entropy(zt, tt, ignore_index=-100)
    ref.backward()
    assert abs(loss - ref.item()) < 1e-14
    assert relative_error(dz, zt.grad.numpy()) < 1e-13
    gradcheck(lambda: ops.cross_entropy_forward(z, t, mask)[0], {"z": z}, {"z": dz})


def test_cross_entropy_3d_and_bad_targets():
    z = RNG.standard_normal((2, 3, 4))
    t = RNG.integers(0, 4, (2, 3))
    loss, cache = ops.cross_entropy_forward(z, t)
    dz = ops.cross_entropy_backward(2.0, cache)
    assert dz.shape == z.shape
    gradcheck(lambda: 2.0 * ops.cross_entropy_forward(z, t)[0], {"z": z}, {"z": dz})
    with pytest.raises(ValueError, match=r"targets: ids must lie in \[0, 4\)"):
        ops.cross_entropy_forward(z, t + 4)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    x = RNG.standard_normal((2, 3, 4))
    W = RNG.standard_normal((5, 4))
    b = RNG.standard_normal(5) if bias else None
    dy = upstream((2, 3, 5))
    y, cache = ops.linear_forward(x, W, b)
    dx, dW, db = ops.linear_backward(dy, cache)
    ref = torch.nn.functional.linear(
        torch.from_numpy(x), torch.from_numpy(W), None if b is None else torch.from_numpy(b)
    )
    assert relative_error(y, ref.numpy()) < 1e-14
    inputs, grads = {"x": x, "W": W}, {"x": dx, "W": dW}
    if bias:
        inputs["b"], grads["b"] = b, db
    gradcheck(lambda: float((ops.linear_forward(x, W, b)[0] * dy).sum()), inputs, grads)


def test_embedding_repeated_ids_accumulate():
    W = RNG.standard_normal((6, 3))
    ids = np.array([[1, 4, 1], [0, 1, 5]])
    dy = upstream((2, 3, 3))
    y, cache = ops.embedding_forward(ids, W)
    dW = ops.embedding_backward(dy, cache)
    np.testing.assert_array_equal(y, W[ids])
    gradcheck(lambda: float((ops.embedding_forward(ids, W)[0] * dy).sum()), {"W": W}, {"W": dW})
    with pytest.raises(ValueError, match="ids"):
        ops.embedding_forward(np.array([6]), W)


def test_dropout():
    x = RNG.standard_normal((50, 40))
    y, mask = ops.dropout_forward(x, 0.3, np.random.default_rng(5))
    kept = mask > 0
    assert 0.25 < 1 - kept.mean() < 0.35
    np.testing.assert_allclose(y[kept], x[kept] / 0.7)
    dy = upstream(x.shape)
    dx = ops.dropout_backward(dy, mask)

    def f():
        return float((ops.dropout_forward(x, 0.3, np.random.default_rng(5))[0] * dy).sum())

    gradcheck(f, {"x": x}, {"x": dx})
    y2, c2 = ops.dropout_forward(x, 0.3, np.random.default_rng(5), training=False)
    assert y2 is x and c2 is None
    # the same seed gives the same mask
    np.testing.assert_array_equal(ops.dropout_forward(x, 0.3, np.random.default_rng(5))[1], mask)
    with pytest.raises(ValueError, match="dropout"):
        ops.dropout_forward(x, 1.0, np.random.default_rng(0))
