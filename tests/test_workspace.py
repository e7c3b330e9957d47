"""rnnkit.fast.workspace: reused memory never handed out while an array still refers to it.

The layers take their large arrays (gates, states, gradients, packed weights) from the pool,
so these tests keep caches and outputs of one call alive across later calls and check them
against fresh, independent runs.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_layers_torch import compare

import rnnkit
from rnnkit.fast import workspace as ws

# compiled code under test: asked for by name (also under RNNKIT_BACKEND=numpy)
pytestmark = pytest.mark.usefixtures("compiled")


def test_buffers_are_reused_only_when_free():
    a = ws.empty((512, 1024), np.float32)  # 2 MiB
    b = ws.empty((512, 1024), np.float32)
    assert a.ctypes.data != b.ctypes.data
    view = a[10:20]
    addr = a.ctypes.data
    del a
    c = ws.empty((512, 1024), np.float32)  # a's buffer is still held by the view
    assert c.ctypes.data != addr
    del view
    d = ws.empty((500, 1024), np.float32)  # free now, and within 2x of the request
    assert d.ctypes.data == addr
    assert d.shape == (500, 1024) and d.dtype == np.float32 and d.flags.c_contiguous
    small = ws.empty((10, 10), np.float64)  # below MIN_BYTES: plain np.empty
    assert small.base is None


def test_release_and_limit(monkeypatch):
    ws.release()
    kept = ws.pooled_bytes()  # buffers still in use by arrays alive elsewhere
    a = ws.empty((1 << 19,), np.float32)  # 2 MiB
    assert ws.pooled_bytes() == kept + (1 << 21)
    del a
    rnnkit.release_memory()
    assert ws.pooled_bytes() == kept
    monkeypatch.setattr(ws, "LIMIT", kept + (3 << 20))
    x = ws.empty((1 << 19,), np.float32)
    y = ws.empty((1 << 19,), np.float32)  # over the limit: not pooled
    assert ws.pooled_bytes() == kept + (1 << 21) and y.base is None
    del x
    z = ws.empty((1 << 20,), np.float32)  # 4 MiB: x's free buffer is dropped, z not pooled
    assert ws.pooled_bytes() == kept and z.base is None


def _train(layer, x, dout):
    out, _, cache = layer.forward(x)
    layer.zero_grad()
    dx, _ = layer.backward(dout, cache)
    return out.copy(), dx.copy(), {k: v.copy() for k, v in layer.grads.items()}


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_kept_cache_and_output_survive_later_calls(mode, dtype):
    """Two forward passes whose caches are both alive, backward through the first after the
    second ran, and an output kept across calls: all as from independent layers."""
    rng = np.random.default_rng(0)
    B, T, D, H = 16, 64, 64, 128  # the gates (T+1) * B * 4H floats pass MIN_BYTES
    x1, x2 = (rng.standard_normal((B, T, D)).astype(dtype) for _ in range(2))
    dout = rng.standard_normal((B, T, 2 * H)).astype(dtype)
    layer = getattr(rnnkit, mode)(D, H, bidirectional=True, dtype=dtype, seed=3)
    ref1 = _train(getattr(rnnkit, mode)(D, H, bidirectional=True, dtype=dtype, seed=3), x1, dout)

    out1, _, cache1 = layer.forward(x1)
    kept_out1 = out1.copy()
    out2, _, cache2 = layer.forward(x2)
    inference_out, _ = layer(x2)
    layer.zero_grad()
    dx1, _ = layer.backward(dout, cache1)
    np.testing.assert_array_equal(out1, kept_out1)
    np.testing.assert_array_equal(out1, ref1[0])
    np.testing.assert_array_equal(dx1, ref1[1])
    for name, g in layer.grads.items():
        np.testing.assert_array_equal(g, ref1[2][name])
    np.testing.assert_array_equal(inference_out, out2)
    del cache2


def test_which_lstm_fuses_the_input_projection(monkeypatch):
    """The fused step only where it measured faster: batch >= 3, the two weights within
    FUSE_MAX_BYTES, and H whole panels, small weights or >= 32 rows per thread
    (BENCHMARKS.md, session 15); the sums are the same either way (the test below and
    test_backend)."""
    from rnnkit.fast import gemm, loops, recurrent

    def fuses(D, H, B, threads=1):
        monkeypatch.setattr(loops, "blas_threads", lambda: threads)
        layer = rnnkit.LSTM(D, H, dtype=np.float32)
        return recurrent.fuses_projection(layer, B, D)

    assert fuses(64, 4 * gemm.NR, 3) and not fuses(64, 4 * gemm.NR, 2)
    assert not fuses(1000, 1000, 16) and not fuses(1024, 1024, 64)  # 32 MB of weights
    assert fuses(512, 512, 64) and fuses(512, 512, 3, threads=2)  # whole panels, 8 MB
    # 650 and 201 units are whole panels of neither ISA: 13.5 MB, 1.3 MB
    assert fuses(650, 650, 32) and not fuses(650, 650, 31) and not fuses(650, 650, 32, 2)
    assert fuses(650, 650, 128, threads=2) and not fuses(650, 650, 3)
    assert fuses(201, 201, 3) and fuses(201, 201, 20, threads=2)
    assert not recurrent.fuses_projection(rnnkit.GRU(64, 64, dtype=np.float32), 64, 64)
    assert not recurrent.fuses_projection(rnnkit.LSTM(64, 64, dtype=np.float64), 64, 64)


@pytest.mark.parametrize("B", [1, 2, 3])
def test_float32_lstm_at_small_batches_matches_torch(B):
    """Batches below 3 hoist the input projection out of the loop, 3 and up (at this size)
    fuse it into each step (rnnkit.fast.recurrent.fuses_projection): both against torch."""
    rng = np.random.default_rng(B)
    layer = rnnkit.LSTM(20, 24, num_layers=2, bidirectional=True, dtype=np.float32, seed=B)
    lengths = rng.integers(1, 10, size=B) if B > 1 else None
    compare(layer, B, 9, lengths, rng)


@pytest.mark.parametrize("threads", [1, 2])
def test_float32_lstm_with_the_projection_hoisted_at_larger_batches_matches_torch(
    threads, monkeypatch
):
    """Where its weights are too large to fuse (here: every size), batch 3 and up hoist the
    input projection too, split between threads: against torch."""
    from threadpoolctl import threadpool_limits

    monkeypatch.setattr("rnnkit.fast.recurrent.FUSE_MAX_BYTES", 0)
    rng = np.random.default_rng(5)
    layer = rnnkit.LSTM(20, 24, num_layers=2, bidirectional=True, dtype=np.float32, seed=5)
    with threadpool_limits(threads):
        compare(layer, 7, 9, rng.integers(1, 10, size=7), rng)
