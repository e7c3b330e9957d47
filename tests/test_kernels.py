"""The compiled engine (rnnkit.fast) against references we did not write or have proven.

- activations against NumPy; the BLAS wrappers (and their no-BLAS fallbacks) against
  NumPy's matmul and transpose;
- the compiled engine (every layer configuration, float32 and float64, bidirectional with
  unsorted ragged lengths, and random configurations) against the NumPy engine in float64,
  including the configurations PyTorch lacks (peepholes, the sigmoid RNN, the textbook GRU);
- the fallback without BLAS against torch.
"""

from __future__ import annotations

import numpy as np
import pytest
from torch_ref import max_rel, torch_reference

import rnnkit
from rnnkit.fast import loops as K

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


# --- the compiled engine against the NumPy engine -----------------------------------------------
#
# The NumPy engine (rnnkit.engine.layers over rnnkit.engine.cells) is finite-difference checked
# in float64 (test_gradcheck_layers) and checked against torch (test_layers_torch) for every
# configuration, including those PyTorch lacks (peepholes, the sigmoid RNN, the textbook GRU).
# Here the compiled engine, in float32 and float64, is held to it, run in float64.

KINDS = {
    "rnn-tanh": (rnnkit.RNN, {"nonlinearity": "tanh"}),
    "rnn-relu": (rnnkit.RNN, {"nonlinearity": "relu"}),
    "rnn-sigmoid": (rnnkit.RNN, {"nonlinearity": "sigmoid"}),
    "lstm": (rnnkit.LSTM, {}),
    "lstm-peepholes": (rnnkit.LSTM, {"peepholes": True}),
    "gru": (rnnkit.GRU, {}),
    "gru-textbook": (rnnkit.GRU, {"reset_after": False}),
}


def compare_engines(kind, D, H, L, bi, bias, dtype, B, T, lengths, seed, with_state=True):
    """The compiled layer in ``dtype`` against the NumPy engine's twin in float64: outputs,
    final states, dx, d(initial state) and every parameter gradient. Returns the errors."""
    cls, kw = KINDS[kind]
    args = dict(num_layers=L, bidirectional=bi, bias=bias, seed=seed, **kw)
    fast = cls(D, H, dtype=dtype, backend="compiled", **args)
    ref = cls(D, H, dtype=np.float64, backend="numpy", **args)
    ref.load_state_dict(fast.state_dict())
    rng = np.random.default_rng(seed)
    shape = (L * (2 if bi else 1), B, H)
    x = rng.standard_normal((B, T, D))
    init = [rng.standard_normal(shape) for _ in range(fast.n_states)] if with_state else None
    dout = rng.standard_normal((B, T, shape[0] // L * H))
    dfinal = [rng.standard_normal(shape) for _ in range(fast.n_states)]

    def run(layer):
        cast = layer.dtype.type
        pack = (lambda s: tuple(a.astype(cast) for a in s)) if layer.n_states == 2 else (
            lambda s: s[0].astype(cast))  # fmt: skip
        out, final, cache = layer.forward(x.astype(cast), init and pack(init), lengths)
        layer.zero_grad()
        dx, dinit = layer.backward(dout.astype(cast), cache, pack(dfinal))
        as_list = (lambda s: list(s)) if layer.n_states == 2 else (lambda s: [s])
        return out, as_list(final), dx, as_list(dinit), layer.grads

    got, want = run(fast), run(ref)
    errors = {"out": max_rel(got[0], want[0]), "dx": max_rel(got[2], want[2])}
    for k in range(fast.n_states):
        errors[f"final[{k}]"] = max_rel(got[1][k], want[1][k])
        if with_state:
            errors[f"dinit[{k}]"] = max_rel(got[3][k], want[3][k])
    assert set(got[4]) == set(want[4])
    for k in got[4]:
        errors[k] = max_rel(got[4][k], want[4][k])
    tol = 1e-4 if dtype == np.float32 else 1e-11
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"over tolerance {tol}: {bad}"
    return errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_compiled_engine_matches_numpy_engine(kind, dtype):
    compare_engines(kind, 3, 5, 1, True, True, dtype, 4, 6, np.array([4, 6, 1, 3]), seed=3)


@pytest.mark.parametrize("trial", range(14))
def test_compiled_engine_matches_numpy_engine_on_random_configurations(trial):
    """Random cells, sizes (H up to 70: whole vector blocks and their tails), depths,
    directions, biases, batches, lengths and dtypes."""
    r = np.random.default_rng(500 + trial)
    kind = sorted(KINDS)[trial % len(KINDS)]
    B, T = int(r.integers(1, 9)), int(r.integers(1, 9))
    lengths = r.integers(1, T + 1, size=B) if r.random() < 0.6 else None
    compare_engines(
        kind, int(r.integers(1, 40)), int(r.integers(1, 71)), int(r.integers(1, 4)),
        bool(r.integers(2)), bool(r.random() < 0.8), [np.float32, np.float64][trial % 2 ^ 1],
        B, T, lengths, seed=int(r.integers(1 << 30)), with_state=bool(r.integers(2)),
    )  # fmt: skip


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
