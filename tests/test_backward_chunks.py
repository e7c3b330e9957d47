"""The compiled RNN's and GRU's backward pass over chunks of a few steps
(rnnkit.fast.recurrent.CHUNK_ROWS): chunks of one step and of two with an uneven last one,
both directions, two layers, unsorted ragged lengths, both GRU forms, float32 and float64,
against the NumPy engine in float64 (the tests elsewhere use shapes that fit one chunk)."""

from __future__ import annotations

import numpy as np
import pytest
from test_kernels import compare_engines
from torch_ref import max_rel

import rnnkit
from rnnkit.fast import recurrent

pytestmark = pytest.mark.usefixtures("compiled")


@pytest.mark.parametrize("rows", [1, 6])  # B = 3: chunks of 1 step, of 2 (T = 7: 2, 2, 2, 1)
@pytest.mark.parametrize("kind", ["rnn-tanh", "rnn-relu", "gru", "gru-textbook"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_in_chunks_matches_the_numpy_engine(kind, dtype, rows, monkeypatch):
    monkeypatch.setattr(recurrent, "CHUNK_ROWS", rows)
    compare_engines(kind, 3, 5, 2, True, True, dtype, 3, 7, np.array([7, 2, 5]), seed=11)


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
def test_hidden_gradients_in_chunks_match_the_numpy_engine(mode, monkeypatch):
    """return_hidden_grads: each chunk writes its own steps of dL/dh_t."""
    monkeypatch.setattr(recurrent, "CHUNK_ROWS", 2)
    rng = np.random.default_rng(4)
    x, dout = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 8))
    got = []
    for backend in ("compiled", "numpy"):
        layer = getattr(rnnkit, mode)(3, 4, bidirectional=True, dtype=np.float64, seed=2,
                                      backend=backend)  # fmt: skip
        _, _, cache = layer.forward(x, lengths=np.array([3, 5]))
        got.append(layer.backward(dout, cache, return_hidden_grads=True)[2])
    assert max_rel(got[0], got[1]) < 1e-12
