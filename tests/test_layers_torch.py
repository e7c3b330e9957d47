"""The recurrent layers against torch.nn.RNN/LSTM/GRU: outputs, final states and all gradients.

Matrix: RNN (tanh, relu), LSTM, GRU x 1-3 layers x uni/bidirectional x no lengths / ragged
unsorted lengths (one of them 1) x float32/float64, with random weights, inputs, initial
states and random upstream gradients on both the outputs and the final states.
Tolerances (relative to the largest magnitude): float64 1e-9, float32 1e-4. Each case runs
on both engines (the ``engine`` fixture of conftest.py): the NumPy reference and the compiled one.
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
import torch
from torch_ref import max_rel, torch_reference, torch_twin

import rnnkit

TOL = {np.float64: 1e-9, np.float32: 1e-4}
CELLS = [("RNN", "tanh"), ("RNN", "relu"), ("LSTM", None), ("GRU", None)]


def make_layer(mode, nonlin, D, H, L, bi, dtype, seed):
    kw = dict(num_layers=L, bidirectional=bi, dtype=dtype, seed=seed)
    if mode == "RNN":
        return rnnkit.RNN(D, H, nonlinearity=nonlin, **kw)
    return getattr(rnnkit, mode)(D, H, **kw)


def random_state(layer, B, rng):
    shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    parts = [rng.standard_normal(shape).astype(layer.dtype) for _ in range(layer.n_states)]
    return tuple(parts) if layer.n_states == 2 else parts[0]


def compare(layer, B, T, lengths, rng, with_state=True):
    if layer.backend is None and rnnkit.get_backend() != "auto":
        assert layer.engine() == rnnkit.get_backend(), "the fixture's engine is not the one run"
    x = rng.standard_normal((B, T, layer.input_size)).astype(layer.dtype)
    state = random_state(layer, B, rng) if with_state else None
    out, final, cache = layer.forward(x, state, lengths)
    if layer.dropout == 0:  # inference (its own paths: x read in place, two cell slots)
        out_inf, final_inf = layer(x, state, lengths)
        np.testing.assert_array_equal(out_inf, out)
        for a, b in zip(final_inf if isinstance(final, tuple) else (final_inf,),
                        final if isinstance(final, tuple) else (final,), strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)
    dout = rng.standard_normal(out.shape).astype(layer.dtype)
    dstate = random_state(layer, B, rng)
    layer.zero_grad()
    dx, dinit = layer.backward(dout, cache, dstate)
    ref = torch_reference(layer, x, state, lengths, dout, dstate)

    tol = TOL[layer.dtype.type]
    final = final if isinstance(final, tuple) else (final,)
    dinit = dinit if isinstance(dinit, tuple) else (dinit,)
    errors = {"out": max_rel(out, ref["out"]), "dx": max_rel(dx, ref["dx"])}
    for k, (a, b) in enumerate(zip(final, ref["final"], strict=True)):
        errors[f"final[{k}]"] = max_rel(a, b)
    if with_state:
        for k, (a, b) in enumerate(zip(dinit, ref["dinit"], strict=True)):
            errors[f"dinit[{k}]"] = max_rel(a, b)
    assert set(layer.grads) == set(ref["grads"])
    for name, g in layer.grads.items():
        errors[name] = max_rel(g, ref["grads"][name])
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"over tolerance {tol}: {bad}"
    return errors


MATRIX = list(
    itertools.product(CELLS, [1, 2, 3], [False, True], [False, True], [np.float64, np.float32])
)


@pytest.mark.parametrize(
    "cell,L,bi,ragged,dtype",
    MATRIX,
    ids=[
        f"{c[0]}{'-' + c[1] if c[1] else ''}-L{L}-{'bi' if bi else 'uni'}-"
        f"{'ragged' if r else 'full'}-{np.dtype(d).name}"
        for c, L, bi, r, d in MATRIX
    ],
)
def test_matches_torch(cell, L, bi, ragged, dtype, engine):
    mode, nonlin = cell
    seed = zlib.crc32(f"{mode}{nonlin}{L}{bi}{ragged}{np.dtype(dtype).name}".encode())
    rng = np.random.default_rng(seed)
    B, T, D, H = 4, 6, 3, 5
    layer = make_layer(mode, nonlin, D, H, L, bi, dtype, seed)
    lengths = np.array([4, 6, 1, 3]) if ragged else None  # unsorted, one of length 1
    compare(layer, B, T, lengths, rng)


@pytest.mark.parametrize("trial", range(6))
def test_random_configurations_match_torch(trial, engine):
    """Configurations outside the matrix: other sizes, seeds, lengths, no initial state."""
    rng = np.random.default_rng(1000 + trial)
    mode, nonlin = CELLS[trial % 4]
    B, T = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    D, H, L = int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 4))
    bi, dtype = bool(rng.integers(2)), [np.float64, np.float32][trial % 2]
    layer = make_layer(mode, nonlin, D, H, L, bi, dtype, int(rng.integers(1 << 30)))
    lengths = rng.integers(1, T + 1, size=B) if rng.random() < 0.7 else None
    compare(layer, B, T, lengths, rng, with_state=bool(rng.integers(2)))


def test_zero_state_by_default_and_padding_outputs_zero(engine):
    layer = rnnkit.LSTM(3, 4, bidirectional=True, dtype=np.float64, seed=3)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    out, (h, c), _ = layer.forward(x, lengths=np.array([2, 5]))
    assert np.all(out[0, 2:] == 0.0)
    t = torch_twin(layer)
    with torch.no_grad():
        o_ref, _ = t(torch.from_numpy(x[:1, :2]))  # the short sequence alone, unpadded
    assert max_rel(out[0, :2], o_ref[0].numpy()) < 1e-12


def test_state_dict_round_trip_through_torch():
    layer = rnnkit.GRU(3, 4, num_layers=2, bidirectional=True, seed=0)
    t = torch_twin(layer)
    other = rnnkit.GRU(3, 4, num_layers=2, bidirectional=True, seed=1)
    other.load_state_dict(t.state_dict())  # torch tensors in
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(other.params[k], v)
    assert set(layer.state_dict()) == set(t.state_dict())


def test_default_init_is_pytorchs_uniform():
    H = 16
    layer = rnnkit.LSTM(8, H, seed=0, dtype=np.float64)
    k = 1 / np.sqrt(H)
    for name, p in layer.params.items():
        assert np.abs(p).max() <= k, name
        assert np.abs(p).max() > 0.9 * k, name  # spread over the whole range
    t = torch.nn.LSTM(8, H)
    assert {n: tuple(p.shape) for n, p in t.named_parameters()} == {
        n: p.shape for n, p in layer.params.items()
    }


def test_init_options():
    H = 6
    layer = rnnkit.LSTM(3, H, seed=0, dtype=np.float64, init_range=0.1, forget_bias=1.0,
                        recurrent_init="orthogonal")  # fmt: skip
    w = layer.params["weight_hh_l0"]
    for gate in range(4):
        block = w[gate * H : (gate + 1) * H]
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-12)
    assert np.abs(layer.params["weight_ih_l0"]).max() <= 0.1
    np.testing.assert_array_equal(layer.params["bias_ih_l0"][H : 2 * H], 1.0)
    np.testing.assert_array_equal(layer.params["bias_hh_l0"][H : 2 * H], 0.0)
