"""Gradient-flow measurements against central differences (float64) and against the
closed forms they must obey: ||dE_T/dh_k|| from BPTT, the step Jacobians (explicit RNN
formula and the backward-pass construction), their products and norms, the bound of
Pascanu et al. 2013 sec. 2.1 (attained exactly in the linear regime), the LSTM forget-gate
and GRU update-gate products, and the global gradient norm against torch."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.diagnostics import (
    bptt_hidden_grads,
    gate_products,
    global_grad_norm,
    gradient_flow,
    jacobian_product,
    largest_singular_value,
    product_norms,
    rnn_step_jacobians,
    step_jacobians,
)
from rnnkit.engine.gradcheck import numerical_grad, relative_error
from rnnkit.engine.layers import GRU, LSTM, RNN

B, T, D, H = 2, 5, 3, 4  # small, unequal sizes


def make(kind: str, layers: int = 1, seed: int = 0):
    kw = dict(num_layers=layers, dtype=np.float64, seed=seed)
    if kind == "rnn":
        return RNN(D, H, **kw)
    if kind == "rnn-sigmoid":
        return RNN(D, H, nonlinearity="sigmoid", **kw)
    if kind == "lstm":
        return LSTM(D, H, **kw)
    if kind == "gru":
        return GRU(D, H, **kw)
    return GRU(D, H, reset_after=False, **kw)


def inputs(seed: int = 1):
    return np.random.default_rng(seed).standard_normal((B, T, D))


def run_from(layer, x, k, state):
    """Final state after running steps k+1..T from ``state`` (the state after k steps)."""
    if k == x.shape[1]:
        return state
    _, st = layer(x[:, k:], state)
    return st


def state_after(layer, x, k):
    if k == 0:
        shape = (layer.num_layers, x.shape[0], layer.hidden_size)
        z = np.zeros(shape)
        return (z, z.copy()) if isinstance(layer, LSTM) else z
    _, st = layer(x[:, :k])
    return st


def h_of(layer, st):
    return st[0] if isinstance(layer, LSTM) else st


# --- ||dE_T/dh_k|| from BPTT against finite differences ---------------------------------------


@pytest.mark.parametrize("kind,layers", [("rnn", 1), ("rnn-sigmoid", 2), ("lstm", 2), ("gru", 1),
                                         ("gru-textbook", 2)])  # fmt: skip
def test_per_step_gradient_norms_match_finite_differences(kind, layers):
    layer, x = make(kind, layers), inputs()
    g = np.random.default_rng(2).standard_normal((B, H))
    flow = gradient_flow(layer, x, dh_last=g)
    hidden, dh0 = bptt_hidden_grads(layer, x, g)
    top = layers - 1
    for k in range(T + 1):
        st = state_after(layer, x, k)
        h_top = h_of(layer, st)[top]  # perturbed in place by numerical_grad

        def loss():
            return float((h_of(layer, run_from(layer, x, k, st))[top] * g).sum())  # noqa: B023

        num = numerical_grad(loss, h_top)  # (B, H): dE_T/dh_k, every sample at once
        ana = dh0[top] if k == 0 else hidden[top][:, k - 1]
        assert relative_error(num, ana) < 1e-6, (k, np.abs(num - ana).max())
        np.testing.assert_allclose(
            flow.grad_norm[:, T - k], np.linalg.norm(num, axis=1), rtol=1e-6, atol=1e-12
        )


def test_measurements_leave_the_layer_gradients_alone():
    layer = make("lstm")
    layer.grads["weight_hh_l0"][...] = 3.0
    gradient_flow(layer, inputs())
    assert np.all(layer.grads["weight_hh_l0"] == 3.0)
    assert all(np.all(g == 0) for n, g in layer.grads.items() if n != "weight_hh_l0")


# --- Jacobians and their products -----------------------------------------------------------


def fd_jacobian(layer, x, k, steps=None):
    """d h_T / d h_k (top layer h; the rest of the state at step k fixed), central differences.

    Returns (B, H, H): [b, i, j] = d h_T[b, i] / d h_k[b, j]."""
    st = state_after(layer, x, k)
    h_top = h_of(layer, st)[-1]
    eps = 1e-6
    J = np.empty((B, H, H))
    for j in range(H):
        old = h_top[:, j].copy()
        h_top[:, j] = old + eps
        plus = h_of(layer, run_from(layer, x, k, st))[-1].copy()
        h_top[:, j] = old - eps
        minus = h_of(layer, run_from(layer, x, k, st))[-1].copy()
        h_top[:, j] = old
        J[:, :, j] = (plus - minus) / (2 * eps)
    return J


@pytest.mark.parametrize("nonlin", ["tanh", "sigmoid", "relu"])
def test_rnn_jacobian_product_equals_finite_differences(nonlin):
    layer = RNN(D, H, nonlinearity=nonlin, dtype=np.float64, seed=3, init_range=1.0)
    x = inputs(4)
    J = rnn_step_jacobians(layer, x)
    norms = product_norms(J)
    for k in range(T + 1):
        P = jacobian_product(J, k)
        num = fd_jacobian(layer, x, k)
        assert relative_error(num, P) < 1e-6, (k, np.abs(num - P).max())
        np.testing.assert_allclose(norms[:, T - k], np.linalg.norm(num, 2, axis=(1, 2)),
                                   rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize("kind,layers", [("rnn", 1), ("rnn", 2), ("lstm", 2), ("gru", 1),
                                         ("gru-textbook", 1)])  # fmt: skip
def test_backward_built_jacobians_equal_finite_differences(kind, layers):
    layer, x = make(kind, layers, seed=5), inputs(6)
    J, states = step_jacobians(layer, x)
    S = layer.num_layers * H * (2 if isinstance(layer, LSTM) else 1)
    assert J.shape == (T, B, S, S) and states.shape == (T + 1, B, S)
    top = slice((layers - 1) * H, layers * H)
    for k in (0, 2, T - 1):
        P = jacobian_product(J, k)[:, top, top]
        num = fd_jacobian(layer, x, k)
        assert relative_error(num, P) < 1e-6, (k, np.abs(num - P).max())
    if kind == "rnn" and layers == 1:
        np.testing.assert_allclose(J, rnn_step_jacobians(layer, x), rtol=1e-12, atol=1e-14)


def test_bptt_gradient_is_upstream_gradient_times_jacobian_product():
    layer, x = make("lstm", 2, seed=7), inputs(8)
    g = np.random.default_rng(9).standard_normal((B, H))
    hidden, dh0 = bptt_hidden_grads(layer, x, g)
    J, _ = step_jacobians(layer, x)
    top = slice(H, 2 * H)
    for k in range(T + 1):
        P = jacobian_product(J, k)[:, top, top]  # dh_T/dh_k
        via_jac = np.einsum("bi,bij->bj", g, P)  # g^T dh_T/dh_k
        ana = dh0[1] if k == 0 else hidden[1][:, k - 1]
        np.testing.assert_allclose(ana, via_jac, rtol=1e-10, atol=1e-12)


# --- the bound (gamma lambda_1)^(T-k) ---------------------------------------------------------


def test_bound_is_attained_in_the_linear_regime():
    # zero input, zero bias, h_0 = 0: every h_t = 0, tanh'(0) = 1, so dh_i/dh_{i-1} = W_hh;
    # with W_hh = lambda Q (Q orthogonal) the product has norm lambda^(T-k) exactly.
    layer = RNN(D, H, dtype=np.float64, seed=0, bias=False)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((H, H)))
    layer.params["weight_hh_l0"][...] = 0.8 * q
    flow = gradient_flow(layer, np.zeros((B, T, D)))
    assert flow.gamma == 1.0 and flow.lambda1 == pytest.approx(0.8)
    np.testing.assert_allclose(flow.jacobian_norm, np.broadcast_to(flow.bound(), (B, T + 1)),
                               rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(flow.grad_norm, np.broadcast_to(0.8 ** np.arange(T + 1),
                                                               (B, T + 1)), rtol=1e-12)  # fmt: skip


@pytest.mark.parametrize("nonlin,gamma", [("tanh", 1.0), ("sigmoid", 0.25), ("relu", 1.0)])
@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_bound_holds(nonlin, gamma, scale):
    layer = RNN(D, H, nonlinearity=nonlin, dtype=np.float64, seed=1, init_range=scale)
    flow = gradient_flow(layer, inputs(2) * 2.0)
    assert flow.gamma == gamma
    w = layer.params["weight_hh_l0"]
    assert flow.lambda1 == pytest.approx(np.linalg.svd(w, compute_uv=False)[0])
    assert flow.eta == pytest.approx(gamma * flow.lambda1)
    bound = flow.bound()
    assert np.all(flow.jacobian_norm <= bound * (1 + 1e-10))
    assert np.all(flow.grad_norm <= bound * (1 + 1e-10))  # ||dE/dh_T|| = 1


def test_largest_singular_value():
    w = np.random.default_rng(0).standard_normal((7, 5))
    assert largest_singular_value(w) == pytest.approx(np.linalg.svd(w, compute_uv=False)[0])


# --- gate products --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru-textbook"])
def test_gate_products_are_the_direct_path_jacobian(kind):
    # With W_hh = 0 the gates do not depend on h_{i-1}: the LSTM's dc_i/dc_{i-1} = diag(f_i)
    # and the GRU's dh_i/dh_{i-1} = diag(z_i) exactly, so the Jacobian products (checked
    # against finite differences above) are diag(prod f) and diag(prod z).
    layer, x = make(kind, seed=11), inputs(12)
    layer.params["weight_hh_l0"][...] = 0.0
    prods = gate_products(layer, x)
    assert prods.shape == (1, B, T + 1)
    J, _ = step_jacobians(layer, x)
    blk = slice(H, 2 * H) if kind == "lstm" else slice(0, H)  # c for the LSTM, h for the GRU
    for k in range(T + 1):
        P = jacobian_product(J, k)[:, blk, blk]
        diag = np.einsum("bii->bi", P)
        np.testing.assert_allclose(P - np.einsum("bi,ij->bij", diag, np.eye(H)), 0, atol=1e-14)
        np.testing.assert_allclose(diag.mean(axis=1), prods[0, :, T - k], rtol=1e-12)


def test_forget_gate_product_follows_the_forget_bias():
    x = inputs(3)
    lo = gate_products(LSTM(D, H, dtype=np.float64, seed=0, forget_bias=-2.0), x)
    hi = gate_products(LSTM(D, H, dtype=np.float64, seed=0, forget_bias=4.0), x)
    assert np.all(hi[0, :, -1] > 0.5) and np.all(lo[0, :, -1] < 1e-2)


# --- the global gradient norm ----------------------------------------------------------------


def test_global_grad_norm_matches_torch():
    import torch  # the reference: a test-only dependency, missing = failure

    rng = np.random.default_rng(0)
    grads = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    ts = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for t, g in zip(ts, grads.values(), strict=True):
        t.grad = torch.tensor(g)
    ref = float(torch.nn.utils.clip_grad_norm_(ts, max_norm=1e9))
    assert global_grad_norm(grads) == pytest.approx(ref, rel=1e-12)


def test_bidirectional_layers_get_gradient_norms_but_no_jacobians():
    layer = LSTM(D, H, bidirectional=True, dtype=np.float64, seed=0)
    flow = gradient_flow(layer, inputs())
    assert flow.grad_norm.shape == (B, T + 1) and flow.jacobian_norm is None
    with pytest.raises(ValueError, match="unidirectional"):
        step_jacobians(layer, inputs())
