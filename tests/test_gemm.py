"""rnnkit.fast.gemm (the float32 kernel on packed weights) against NumPy's float64 matmul, and the
layers at sizes that take it, in one and two threads, against torch.

The layer tests of test_layers_torch use small shapes, where each product runs in one
thread; here T * B passes _gemm.MIN_ROWS, so that the layers' products over all steps are
split between threads, and every width leaves a partial panel.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_layers_torch import compare, make_layer
from threadpoolctl import threadpool_limits
from torch_ref import max_rel

from rnnkit.fast import gemm as G

# compiled code under test: asked for by name (also under RNNKIT_BACKEND=numpy)
pytestmark = pytest.mark.usefixtures("compiled")


def _operand(rng, rows, cols, transposed, strided):
    """A float32 (rows, cols) view: a transposed array, or a strided block of a larger one."""
    if transposed:
        return rng.standard_normal((cols, rows)).astype(np.float32).T
    if strided:
        return rng.standard_normal((rows + 3, 2 * cols + 1)).astype(np.float32)[2:, 1::2][:rows]
    return rng.standard_normal((rows, cols)).astype(np.float32)


SHAPES = [(1, 1, 1), (5, 3, 7), (6, 64, 64), (13, 130, 70), (9, 20, 104), (64, 256, 1024),
          (300, 1030, 90),
          # 1-3 rows over several whole panels at once (G._wide_panels), and what is left
          (1, 70, 5 * G.NR + 3), (2, 33, 3 * G.NR), (3, 1030, 2 * G.NR + 1)]  # fmt: skip


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("beta", [0, 1, 2])
def test_gemm_packed_matches_numpy(m, k, n, beta):
    rng = np.random.default_rng(m * 1000 + k + n + beta)
    for t_a, s_a, t_b, s_b in [(0, 0, 0, 0), (1, 0, 0, 1), (0, 1, 1, 0)]:
        a = _operand(rng, m, k, t_a, s_a)
        b = _operand(rng, k, n, t_b, s_b)
        bias = rng.standard_normal(n).astype(np.float32)
        big = rng.standard_normal((m + 2, n + 5)).astype(np.float32)
        c = big[1 : m + 1, 2 : n + 2]  # a block with row stride n + 5: the rest must stay
        before = big.copy()
        start = {0: 0.0, 1: c.astype(np.float64), 2: bias.astype(np.float64)}[beta]
        expect = start + a.astype(np.float64) @ b.astype(np.float64)
        padded = G.pad_bias(bias) if beta == 2 else G.NO_BIAS
        G.gemm_packed(a, G.pack(b), n, beta, c, 0, m, padded)
        assert max_rel(c, expect) < 2e-6, (t_a, s_a, t_b, s_b)
        outside = np.ones(big.shape, bool)
        outside[1 : m + 1, 2 : n + 2] = False
        np.testing.assert_array_equal(big[outside], before[outside])


@pytest.mark.parametrize("m,k1,k2,n", [(1, 1, 1, 1), (7, 5, 3, 40), (13, 1100, 70, 104),
                                       (64, 256, 256, 1024)])  # fmt: skip
def test_gemm_packed2_matches_numpy(m, k1, k2, n):
    rng = np.random.default_rng(m + k1 + k2 + n)
    a1 = _operand(rng, m, k1, False, True)
    a2 = _operand(rng, m, k2, True, False)
    b1, b2 = (rng.standard_normal((k, n)).astype(np.float32) for k in (k1, k2))
    bias = rng.standard_normal(n).astype(np.float32)
    c = np.full((m, n + 3), np.nan, np.float32)[:, 1 : n + 1]  # written, never read
    G.gemm_packed2(a1, G.pack(b1), a2, G.pack(b2), n, c, G.pad_bias(bias))
    f64 = np.float64
    expect = bias.astype(f64) + a1.astype(f64) @ b1.astype(f64) + a2.astype(f64) @ b2.astype(f64)
    assert max_rel(c, expect) < 2e-6


def test_row_blocks_cover_the_rows_evenly():
    """The kernels' blocks of rows: every row once, in order, at most MR rows a block, and
    sizes at most one apart (no short last block)."""
    for m in range(1, 200):
        blocks = G._row_blocks(m)
        spans = [G._row_block(i, blocks, m) for i in range(blocks)]
        assert [lo + r for lo, n in spans for r in range(n)] == list(range(m))
        sizes = [n for _, n in spans]
        assert max(sizes) <= G.MR and max(sizes) - min(sizes) <= 1, m


def test_gemm_packed_row_range_and_empty_k():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((20, 9)).astype(np.float32)
    b = rng.standard_normal((9, 70)).astype(np.float32)
    c = np.full((20, 70), 7.0, np.float32)
    G.gemm_packed(a, G.pack(b), 70, 0, c, 5, 13, G.NO_BIAS)  # rows 5..12 only
    np.testing.assert_allclose(c[5:13], a[5:13] @ b, rtol=2e-6, atol=1e-5)
    assert (c[:5] == 7).all() and (c[13:] == 7).all()
    empty = np.empty((20, 0), np.float32)
    G.gemm_packed(empty, G.pack(np.empty((0, 70), np.float32)), 70, 2, c, 0, 20,
                  G.pad_bias(np.arange(70, dtype=np.float32)))  # fmt: skip
    np.testing.assert_array_equal(c, np.tile(np.arange(70, dtype=np.float32), (20, 1)))


def test_pack_is_zero_padded_panels():
    b = np.arange(3 * (G.NR + 5), dtype=np.float32).reshape(3, G.NR + 5)
    p = G.pack(b)
    assert p.shape == (2, 3, G.NR)
    np.testing.assert_array_equal(p[0], b[:, : G.NR])
    np.testing.assert_array_equal(p[1, :, :5], b[:, G.NR :])
    assert (p[1, :, 5:] == 0).all()


@pytest.mark.parametrize("rows,cols", [(200, 128), (70, 256), (130, 650), (1030, 300), (600, 512)])
def test_packing_a_transposed_matrix_and_in_parallel(rows, cols):
    """W^T packs as its contiguous copy does (blocks transposed in registers, and the
    edges: k past the last whole block, a last partial panel), and the layers' packing
    split over threads gives the same."""
    from rnnkit.fast import recurrent

    w = np.random.default_rng(rows).standard_normal((rows, cols)).astype(np.float32)
    panels = -(-rows // G.NR)
    padded = np.zeros((cols, panels * G.NR), np.float32)  # W^T, zero columns up to panels
    padded[:, :rows] = w.T
    expect = padded.reshape(cols, panels, G.NR).transpose(1, 0, 2)
    np.testing.assert_array_equal(G.pack(w.T), expect)
    for threads in (1, 2):
        with threadpool_limits(threads):
            np.testing.assert_array_equal(recurrent._packed(w.T), expect)
            np.testing.assert_array_equal(recurrent._packed(w), G.pack(w))


def test_gemm_packed_rejects_bad_arguments():
    a = np.ones((6, 4), np.float32)
    p = G.pack(np.ones((4, 8), np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        G.gemm_packed(a, p, 8, 0, np.ones((6, 16), np.float32)[:, ::2], 0, 6, G.NO_BIAS)
    with pytest.raises(ValueError, match="padded"):
        G.gemm_packed(a, p, 8, 2, np.ones((6, 8), np.float32), 0, 6, np.ones(8, np.float32))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("m,k1,units,k2,keep,padded", [
    (1, 1, 1, 1, True, False), (13, 70, 2, 0, True, True), (20, 130, 2, 2, False, True),
    (64, 64, 4, 4, False, False)])  # fmt: skip
def test_lstm_step_matches_numpy(m, k1, units, k2, keep, padded):
    """The blocked LSTM step (H = units panels; h_prev's product over k2 panels of it, 0
    for a zero initial state) against float64 NumPy: c, h, and the gates and tanh(c) where
    kept; padding rows carry h and c; h_prev is a column block of a wider array, as in
    the bidirectional layers' state buffer."""
    rng = np.random.default_rng(m + k1 + units + k2)
    H, nr = units * G.NR, G.NR
    k2 *= nr
    x = _operand(rng, m, k1, False, True)
    hbuf = rng.standard_normal((m, 2 * H + 5)).astype(np.float32)
    h_prev = hbuf[:, H : 2 * H]
    c_prev = rng.standard_normal((m, H)).astype(np.float32)
    w_ih, w_hh = (rng.standard_normal((4 * H, k)).astype(np.float32) * 0.3 for k in (k1, H))
    bias = rng.standard_normal(4 * H).astype(np.float32)
    real = (rng.random(m) < 0.7).astype(np.uint8) if padded else np.empty(0, np.uint8)
    c_new, h_new = (np.full((m, H), np.nan, np.float32) for _ in range(2))
    g = np.full((m if keep else 0, 4 * H), np.nan, np.float32)
    tc = np.full((m if keep else 0, H), np.nan, np.float32)
    G.lstm_step(x, G.pack(w_ih.T), h_prev, k2, G.pack(w_hh.T), G.pad_bias(bias), c_prev,
                c_new, h_new, g, tc, real)  # fmt: skip
    f64 = np.float64
    h_used = h_prev.astype(f64).copy()
    h_used[:, k2:] = 0
    pre = bias.astype(f64) + x.astype(f64) @ w_ih.T.astype(f64) + h_used @ w_hh.T.astype(f64)
    i, f, gg, o = (pre[:, k * H : (k + 1) * H] for k in range(4))
    i, f, gg, o = _sigmoid(i), _sigmoid(f), np.tanh(gg), _sigmoid(o)
    c = f * c_prev + i * gg
    h = o * np.tanh(c)
    rows = real.astype(bool) if padded else np.ones(m, bool)
    assert max_rel(c_new[rows], c[rows]) < 2e-5
    assert max_rel(h_new[rows], h[rows]) < 2e-5
    np.testing.assert_array_equal(c_new[~rows], c_prev[~rows])  # carried
    np.testing.assert_array_equal(h_new[~rows], h_prev[~rows])
    if keep:
        assert max_rel(g[rows], np.concatenate([i, f, gg, o], axis=1)[rows]) < 2e-5
        assert max_rel(tc[rows], np.tanh(c)[rows]) < 2e-5


def test_lstm_step_rejects_bad_arguments():
    H = G.NR
    x, h, c = (np.zeros((2, H), np.float32) for _ in range(3))
    w, bias = G.pack(np.zeros((H, 4 * H), np.float32)), G.pad_bias(np.zeros(4 * H, np.float32))
    none, real = np.zeros((0, H), np.float32), np.empty(0, np.uint8)
    with pytest.raises(ValueError, match="whole number of panels"):  # H not whole panels
        h1 = np.zeros((2, H + 1), np.float32)
        G.lstm_step(x, w, h1, H, w, bias, h1, h1, h1, none, none, real)
    with pytest.raises(ValueError, match="whole number of panels"):  # weights of another H
        G.lstm_step(x, G.pack(np.zeros((H, 8 * H), np.float32)), h, H, w, bias, c, c, h, none,
                    none, real)  # fmt: skip
    with pytest.raises(ValueError, match="contiguous"):
        strided = np.zeros((2, 2 * H), np.float32)[:, ::2]
        G.lstm_step(x, w, h, H, w, bias, c, strided, h, none, none, real)


# T * B = 300 rows; gate widths 4*70, 3*90, 260 and inputs of 70 all >= 256 or partial panels;
# the second LSTM has H a whole number of panels, which takes the blocked step (lstm_step)
LAYERS = [("LSTM", None, 70), ("GRU", None, 90), ("RNN", "tanh", 260), ("LSTM", None, 2 * G.NR)]
IDS = ["LSTM", "GRU", "RNN", "LSTM-blocked"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode,nonlin,H", LAYERS, ids=IDS)
def test_layers_on_the_kernel_match_torch(mode, nonlin, H, threads):
    rng = np.random.default_rng(H + threads)
    layer = make_layer(mode, nonlin, 70, H, 2, True, np.float32, seed=H)
    B, T = 12, 25
    lengths = rng.integers(1, T + 1, size=B)
    with threadpool_limits(threads):
        compare(layer, B, T, lengths, rng)


@pytest.mark.parametrize("mode,nonlin,H", LAYERS, ids=IDS)
def test_two_threads_give_the_one_thread_results(mode, nonlin, H):
    """Rows are split between threads, not sums: outputs and input gradients are the same
    bits; bias gradients add per-thread partial sums, so they agree to rounding."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 40, 70)).astype(np.float32)
    lengths = rng.integers(1, 41, size=7)
    results = []
    for threads in (1, 2):
        layer = make_layer(mode, nonlin, 70, H, 1, True, np.float32, seed=2)
        with threadpool_limits(threads):
            out, final, cache = layer.forward(x, None, lengths)
            layer.zero_grad()
            dx, _ = layer.backward(np.ones_like(out), cache)
        results.append((out, dx, dict(layer.grads)))
    (out1, dx1, g1), (out2, dx2, g2) = results
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(dx1, dx2)
    for name in g1:
        assert max_rel(g2[name], g1[name]) < 1e-6, name


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode,nonlin", [("LSTM", None), ("RNN", "tanh"), ("GRU", None)])
def test_joined_weight_gradients_match_torch(mode, nonlin, threads, monkeypatch):
    """With D a whole number of panels (64 here, and 2H = 64 for the second layer), the
    LSTM's and RNN's dW_ih and dW_hh come from one product over [X | H_prev]; the GRU keeps
    two (its dA for W_hh differs), and so do all where the configuration sends a transposed
    A to BLAS (AVX2, one thread). Against torch, in one and two threads."""
    from rnnkit.fast import recurrent

    joined = []
    real = recurrent._joins_weight_grads

    def spy(*args):  # type: ignore[no-untyped-def]
        joined.append(real(*args))
        return joined[-1]

    monkeypatch.setattr(recurrent, "_joins_weight_grads", spy)
    rng = np.random.default_rng(threads)
    layer = make_layer(mode, nonlin, G.NR, G.NR // 2, 2, True, np.float32, seed=7)
    with threadpool_limits(threads):
        compare(layer, 12, 30, rng.integers(1, 31, size=12), rng)
    # with AVX2 in one thread the weight gradients go to BLAS, two products
    # (rnnkit.fast.target, rnnkit.fast.recurrent._transposed_a_on_blas)
    to_blas = G.CONFIG.transposed_a_on_blas and threads == 1
    assert any(joined) == (mode != "GRU" and not to_blas)
