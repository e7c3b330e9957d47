"""The compiled loops of rnnkit.fast.loops against references we did not write or have proven.

- activations against NumPy; the BLAS wrappers (and their no-BLAS fallbacks) against
  NumPy's matmul and transpose;
- every layer configuration, float32 and float64, bidirectional with unsorted ragged
  lengths, against backpropagation through time assembled from the NumPy cells of
  rnnkit.engine.cells (finite-difference checked in test_gradcheck_layers) in float64, including
  the configurations PyTorch lacks (peepholes, the sigmoid RNN, the textbook GRU);
- the fallback without BLAS against torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from torch_ref import max_rel, torch_reference

import rnnkit
from rnnkit.fast import loops as K
from rnnkit.engine import cells

NO_BLAS = (0, 0, 0, 0, 0)


# --- activations and BLAS wrappers -------------------------------------------------------------


def test_tanh_float32_approximation_is_accurate():
    x = np.concatenate([np.linspace(-20, 20, 400_001), [0.0, -0.0, 1e-30, -1e-30, 7.9, 8.0]])
    x = x.astype(np.float32)
    y = np.empty_like(x)
    K.tanh_array(x, y)
    err = np.abs(y.astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert err.max() < 3e-7, f"max abs error {err.max():.2e} at x={x[err.argmax()]}"
    special = np.array([np.nan, np.inf, -np.inf], np.float32)
    out = np.empty_like(special)
    K.tanh_array(special, out)
    assert np.isnan(out[0]) and out[1] == pytest.approx(1, abs=3e-7) and out[2] == -out[1]


def test_tanh_float64_is_exact_and_sigmoid_matches_the_logistic():
    x = np.linspace(-30, 30, 10_001)
    y = np.empty_like(x)
    K.tanh_array(x, y)
    np.testing.assert_allclose(y, np.tanh(x), rtol=1e-15, atol=1e-300)
    for v in (-30.0, -2.0, 0.0, 0.3, 5.0):
        expect = 1 / (1 + np.exp(-v))
        assert abs(K._sigmoid(v) - expect) < 1e-15
        assert abs(K._sigmoid(np.float32(v)) - expect) < 3e-7


@pytest.mark.parametrize("blas", [K.BLAS, NO_BLAS], ids=["blas", "fallback"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_matches_numpy(blas, dtype):
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for trans_a in (False, True):
        for trans_b in (False, True):
            for beta in (0.0, 1.0):
                m, n, k = 5, 7, 3
                big_a = rng.standard_normal((9, 11)).astype(dtype)  # operands are sub-blocks
                a = big_a[1 : 1 + (k if trans_a else m), 2 : 2 + (m if trans_a else k)]
                b = rng.standard_normal((k, n) if not trans_b else (n, k)).astype(dtype)
                c = rng.standard_normal((6, 10)).astype(dtype)
                expect = c.copy()
                sub = expect[1:, 2:9]
                sub *= beta
                sub += 0.5 * (a.T if trans_a else a) @ (b.T if trans_b else b)
                K.gemm(blas, trans_a, trans_b, 0.5, a, b, beta, c[1:, 2:9])
                assert max_rel(c, expect) < tol, (trans_a, trans_b, beta)


@pytest.mark.parametrize("blas", [K.BLAS, NO_BLAS], ids=["blas", "fallback"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (37, 70), (64, 32)])
def test_transpose_matches_numpy(blas, shape):
    for dtype in (np.float32, np.float64):
        a = np.random.default_rng(1).standard_normal(shape).astype(dtype)
        np.testing.assert_array_equal(K.transpose(blas, a), a.T)


# --- whole loops against BPTT from the NumPy cells ---------------------------------------------

CONFIGS = {
    "rnn-tanh": lambda **k: rnnkit.RNN(3, 5, nonlinearity="tanh", **k),
    "rnn-relu": lambda **k: rnnkit.RNN(3, 5, nonlinearity="relu", **k),
    "rnn-sigmoid": lambda **k: rnnkit.RNN(3, 5, nonlinearity="sigmoid", **k),
    "lstm": lambda **k: rnnkit.LSTM(3, 5, **k),
    "lstm-peepholes": lambda **k: rnnkit.LSTM(3, 5, peepholes=True, **k),
    "gru": lambda **k: rnnkit.GRU(3, 5, **k),
    "gru-textbook": lambda **k: rnnkit.GRU(3, 5, reset_after=False, **k),
}


def _step_backward(layer, dnew, cache, p, h_prev, g):
    """One step of the cells' backward; adds W_hh and peephole grads into g. Returns
    (dax, dah, dprev)."""
    H = layer.hidden_size
    if layer.mode == "RNN":
        da, dh_prev = cells.rnn_step_backward(dnew[0], cache, p["weight_hh"])
        g["weight_hh"] += da.T @ h_prev
        return da, da, [dh_prev]
    if layer.mode == "LSTM":
        peep = layer._peep(p)
        da, dh_prev, dc_prev, dpeep = cells.lstm_step_backward(
            dnew[0], dnew[1], cache, p["weight_hh"], peep
        )
        g["weight_hh"] += da.T @ h_prev
        if dpeep is not None:
            for name, d in zip(("weight_ci", "weight_cf", "weight_co"), dpeep, strict=True):
                g[name] += d
        return da, da, [dh_prev, dc_prev]
    dax, dah, dh_prev = cells.gru_step_backward(dnew[0], cache, p["weight_hh"])
    if layer.reset_after:
        g["weight_hh"] += dah.T @ h_prev
    else:  # the n rows of W_hh multiply r * h_prev (cached as rec_in)
        g["weight_hh"][: 2 * H] += dah[:, : 2 * H].T @ h_prev
        g["weight_hh"][2 * H :] += dah[:, 2 * H :].T @ cache[5]
    return dax, dah, [dh_prev]


def cells_reference(layer, x, init, lengths, dout, dfinal):
    """One layer, every direction, stepped by rnnkit.engine.cells in float64 with PyTorch's
    packed-sequence semantics. Returns out, final states, dx, d(initial states), grads."""
    B, T, _ = x.shape
    H = layer.hidden_size
    x = x.astype(np.float64)
    valid = np.arange(T)[:, None] < np.asarray(lengths)[None, :]  # (T, B)
    outs, finals, dinits, grads = [], [], [], {}
    dx = np.zeros(x.shape)
    for d in range(layer.num_directions):
        p = {k: v.astype(np.float64) for k, v in layer._views(0, d)[0].items()}
        xw = x @ p["weight_ih"].T + layer._input_bias(p)  # (B, T, G)
        state = [s[d].astype(np.float64) for s in init]
        order = list(range(T - 1, -1, -1) if d else range(T))
        caches, prevs, out = {}, {}, np.zeros((B, T, H))
        for t in order:
            new, caches[t] = layer._step_forward(xw[:, t], state, p, p["weight_hh"].T.copy())
            m = valid[t][:, None]
            prevs[t] = state
            state = [np.where(m, n, s) for n, s in zip(new, state, strict=True)]
            out[:, t] = state[0] * m
        outs.append(out)
        finals.append(state)
        g = {k: np.zeros_like(v) for k, v in p.items()}
        dstate = [s[d].astype(np.float64) for s in dfinal]
        for t in reversed(order):
            m = valid[t][:, None]
            dstate[0] = dstate[0] + dout[:, t, d * H : (d + 1) * H] * m
            dnew = [s * m for s in dstate]
            dax, dah, dprev = _step_backward(layer, dnew, caches[t], p, prevs[t][0], g)
            g["weight_ih"] += dax.T @ x[:, t]
            if layer.bias:
                g["bias_ih"] += dax.sum(0)
                g["bias_hh"] += dah.sum(0)
            dx[:, t] += dax @ p["weight_ih"]
            dstate = [a + s * (1 - m) for a, s in zip(dprev, dstate, strict=True)]
        dinits.append(dstate)
        sfx = layer._suffix(0, d)
        grads.update({k + sfx: v for k, v in g.items()})
    out = np.concatenate(outs, axis=2)
    stack = [np.stack([f[k] for f in finals]) for k in range(layer.n_states)]
    dstack = [np.stack([f[k] for f in dinits]) for k in range(layer.n_states)]
    return out, stack, dx, dstack, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_layer_matches_cells_reference(name, dtype):
    rng = np.random.default_rng(7)
    layer = CONFIGS[name](bidirectional=True, dtype=dtype, seed=3)
    B, T = 4, 6
    lengths = np.array([4, 6, 1, 3])  # unsorted, one of length 1
    x = rng.standard_normal((B, T, 3)).astype(dtype)
    shape = (2, B, 5)
    init = [rng.standard_normal(shape).astype(dtype) for _ in range(layer.n_states)]
    dout = rng.standard_normal((B, T, 10)).astype(dtype)
    dfinal = [rng.standard_normal(shape).astype(dtype) for _ in range(layer.n_states)]
    pack = (lambda s: tuple(s)) if layer.n_states == 2 else (lambda s: s[0])

    out, final, cache = layer.forward(x, pack(init), lengths)
    layer.zero_grad()
    dx, dinit = layer.backward(dout, cache, pack(dfinal))
    ref_out, ref_final, ref_dx, ref_dinit, ref_grads = cells_reference(
        layer, x, init, lengths, dout.astype(np.float64), dfinal
    )
    final = final if isinstance(final, tuple) else (final,)
    dinit = dinit if isinstance(dinit, tuple) else (dinit,)
    errors = {"out": max_rel(out, ref_out), "dx": max_rel(dx, ref_dx)}
    for k in range(layer.n_states):
        errors[f"final[{k}]"] = max_rel(final[k], ref_final[k])
        errors[f"dinit[{k}]"] = max_rel(dinit[k], ref_dinit[k])
    assert set(layer.grads) == set(ref_grads)
    for k, v in layer.grads.items():
        errors[k] = max_rel(v, ref_grads[k])
    tol = 1e-4 if dtype == np.float32 else 1e-11
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"over tolerance {tol}: {bad}"


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_fallback_without_blas_matches_torch(mode, monkeypatch):
    monkeypatch.setattr(K, "BLAS", NO_BLAS)
    rng = np.random.default_rng(11)
    layer = getattr(rnnkit, mode)(3, 4, bidirectional=True, dtype=np.float64, seed=5)
    B, T = 3, 5
    lengths = np.array([5, 2, 4])
    x = rng.standard_normal((B, T, 3))
    shape = (2, B, 4)
    state = tuple(rng.standard_normal(shape) for _ in range(layer.n_states))
    state = state if layer.n_states == 2 else state[0]
    out, final, cache = layer.forward(x, state, lengths)
    dout = rng.standard_normal(out.shape)
    layer.zero_grad()
    dx, _ = layer.backward(dout, cache)
    zero = tuple(np.zeros(shape) for _ in range(layer.n_states))
    ref = torch_reference(layer, x, state, lengths, dout, zero if layer.n_states == 2 else zero[0])
    assert max_rel(out, ref["out"]) < 1e-10
    assert max_rel(dx, ref["dx"]) < 1e-10
    for name, g in layer.grads.items():
        assert max_rel(g, ref["grads"][name]) < 1e-10, name
