"""Bad input to the layers: one ValueError naming the argument, expected and actual value."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import rnnkit

X = np.zeros((2, 3, 4), np.float32)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: m.forward(np.zeros((3, 4), np.float32)), r"x: expected 3 dim.* \(3, 4\)"),
        (lambda m: m.forward(np.zeros((2, 3, 5), np.float32)), r"x: expected feature size D=4"),
        (lambda m: m.forward(X.astype(np.float64)), r"x: dtype float64 does not match .*float32"),
        (lambda m: m.forward(X, lengths=[3, 0]), r"lengths: each must lie in \[1, T=3\].*\[1\]=0"),
        (lambda m: m.forward(X, lengths=[4, 1]), r"lengths: .*lengths\[0\]=4"),
        (lambda m: m.forward(X, lengths=[3]), r"lengths: expected shape \(2,\), got \(1,\)"),
        (lambda m: m.forward(X, lengths=[1.5, 2.0]), r"lengths: expected integers"),
        (lambda m: m.forward(X, np.zeros((1, 2, 6), np.float32)),
         r"state: expected shape \(1, 2, 5\), got \(1, 2, 6\)"),
        (lambda m: m.forward(X, np.zeros((1, 2, 5))), r"state: dtype float64 does not match"),
        (lambda m: m.forward(X, (np.zeros((1, 2, 5), np.float32),) * 2), r"state: GRU takes one"),
        (lambda m: m.backward(np.zeros((2, 3, 6)), m.forward(X)[2]),
         r"dout: expected shape \(2, 3, 5\), got \(2, 3, 6\)"),
        (lambda m: m.backward(np.zeros((2, 3, 5)), None), r"cache: None"),
    ],
)  # fmt: skip
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(rnnkit.GRU(4, 5, seed=0))


def test_lstm_state_must_be_pair():
    with pytest.raises(ValueError, match=r"pair \(h, c\)"):
        rnnkit.LSTM(4, 5).forward(X, np.zeros((1, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"state c: expected shape \(1, 2, 5\)"):
        rnnkit.LSTM(4, 5).forward(X, (np.zeros((1, 2, 5), np.float32),) * 1 + (np.zeros(3),))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: rnnkit.RNN(4, 5, nonlinearity="gelu"), r"nonlinearity: expected one of"),
        (lambda: rnnkit.LSTM(0, 5), r"input_size: expected a positive integer, got 0"),
        (lambda: rnnkit.GRU(4, 5, num_layers=0), r"num_layers: expected a positive integer"),
        (lambda: rnnkit.GRU(4, 5, dropout=1.0), r"dropout: expected a probability"),
        (lambda: rnnkit.GRU(4, 5, dtype=np.int32), r"dtype: expected float32 or float64"),
        (lambda: rnnkit.GRU(4, 5, recurrent_init="xavier"), r"recurrent_init"),
    ],
)
def test_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_load_state_dict_checks_names_and_shapes():
    m = rnnkit.LSTM(4, 5)
    sd = m.state_dict()
    sd["weight_hh_l0"] = np.zeros((20, 4))
    with pytest.raises(ValueError, match=r"weight_hh_l0.*expected shape \(20, 5\)"):
        m.load_state_dict(sd)
    with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l0'\]"):
        m.load_state_dict({k: v for k, v in m.state_dict().items() if k != "bias_hh_l0"})


def test_engine_imports_numpy_alone():
    code = (
        "import sys, rnnkit, rnnkit.engine.ops, rnnkit.engine.cells, rnnkit.engine.layers;"
        "bad = [m for m in ('torch', 'click', 'matplotlib', 'numba', 'tqdm', 'safetensors')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
