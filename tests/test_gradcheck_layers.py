"""Finite-difference checks (float64) of every cell step and every layer configuration,
including those PyTorch lacks: peepholes, the sigmoid RNN and the textbook GRU."""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit
from rnnkit.engine import cells
from rnnkit.engine.gradcheck import gradcheck

B, T, D, H = 2, 3, 4, 5  # small, unequal sizes so swapped axes fail


def rng(seed=0):
    return np.random.default_rng(seed)


# --- single steps --------------------------------------------------------------------------


@pytest.mark.parametrize("nonlin", ["tanh", "relu", "sigmoid"])
def test_rnn_step(nonlin):
    r = rng(1)
    xw, h, w = r.standard_normal((B, H)), r.standard_normal((B, H)), r.standard_normal((H, H))
    dh = r.standard_normal((B, H))

    def f():
        return float((cells.rnn_step_forward(xw, h, w.T.copy(), nonlin)[0] * dh).sum())

    _, cache = cells.rnn_step_forward(xw, h, w.T.copy(), nonlin)
    da, dh_prev = cells.rnn_step_backward(dh, cache, w)
    dw = da.T @ h
    gradcheck(f, {"xw": xw, "h": h, "w": w}, {"xw": da, "h": dh_prev, "w": dw})


@pytest.mark.parametrize("peep", [False, True])
def test_lstm_step(peep):
    r = rng(2)
    xw, h, c = r.standard_normal((B, 4 * H)), r.standard_normal((B, H)), r.standard_normal((B, H))
    w = r.standard_normal((4 * H, H)) * 0.5
    pw = [r.standard_normal(H) for _ in range(3)] if peep else None
    dh, dc = r.standard_normal((B, H)), r.standard_normal((B, H))

    def f():
        hn, cn, _ = cells.lstm_step_forward(xw, h, c, w.T.copy(), tuple(pw) if peep else None)
        return float((hn * dh).sum() + (cn * dc).sum())

    _, _, cache = cells.lstm_step_forward(xw, h, c, w.T.copy(), tuple(pw) if peep else None)
    da, dh_prev, dc_prev, dpeep = cells.lstm_step_backward(
        dh, dc, cache, w, tuple(pw) if peep else None
    )
    inputs = {"xw": xw, "h": h, "c": c, "w": w}
    grads = {"xw": da, "h": dh_prev, "c": dc_prev, "w": da.T @ h}
    if peep:
        inputs.update(ci=pw[0], cf=pw[1], co=pw[2])
        grads.update(ci=dpeep[0], cf=dpeep[1], co=dpeep[2])
    gradcheck(f, inputs, grads)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_step(reset_after):
    r = rng(3)
    xw, h = r.standard_normal((B, 3 * H)), r.standard_normal((B, H))
    w, b = r.standard_normal((3 * H, H)) * 0.5, r.standard_normal(3 * H)
    dh = r.standard_normal((B, H))

    def f():
        return float((cells.gru_step_forward(xw, h, w.T.copy(), b, reset_after)[0] * dh).sum())

    _, cache = cells.gru_step_forward(xw, h, w.T.copy(), b, reset_after)
    dax, dah, dh_prev = cells.gru_step_backward(dh, cache, w)
    rec_in = cache[5]
    if reset_after:
        dw = dah.T @ h
    else:
        dw = np.concatenate([dah[:, : 2 * H].T @ h, dah[:, 2 * H :].T @ rec_in])
    gradcheck(f, {"xw": xw, "h": h, "w": w, "b": b},
              {"xw": dax, "h": dh_prev, "w": dw, "b": dah.sum(0)})  # fmt: skip


# --- whole layers --------------------------------------------------------------------------

LAYERS = {
    "rnn-tanh": lambda **k: rnnkit.RNN(D, H, nonlinearity="tanh", **k),
    "rnn-relu": lambda **k: rnnkit.RNN(D, H, nonlinearity="relu", **k),
    "rnn-sigmoid": lambda **k: rnnkit.RNN(D, H, nonlinearity="sigmoid", **k),
    "lstm": lambda **k: rnnkit.LSTM(D, H, **k),
    "lstm-peepholes": lambda **k: rnnkit.LSTM(D, H, peepholes=True, **k),
    "gru": lambda **k: rnnkit.GRU(D, H, **k),
    "gru-textbook": lambda **k: rnnkit.GRU(D, H, reset_after=False, **k),
}


def layer_gradcheck(layer, lengths=None, seed=0):
    r = rng(seed)
    x = r.standard_normal((B, T, D))
    shape = (layer.num_layers * layer.num_directions, B, H)
    init = [r.standard_normal(shape) for _ in range(layer.n_states)]
    gout = r.standard_normal((B, T, layer.num_directions * H))
    gfin = [r.standard_normal(shape) for _ in range(layer.n_states)]
    pack = (lambda p: tuple(p)) if layer.n_states == 2 else (lambda p: p[0])
    rng_state = layer.rng.bit_generator.state

    def f():
        layer.rng.bit_generator.state = rng_state  # the same dropout masks every call
        out, fin, _ = layer.forward(x, pack(init), lengths)
        fin = fin if isinstance(fin, tuple) else (fin,)
        extra = sum((a * g).sum() for a, g in zip(fin, gfin, strict=True))
        return float((out * gout).sum() + extra)

    layer.rng.bit_generator.state = rng_state
    _, _, cache = layer.forward(x, pack(init), lengths)
    layer.zero_grad()
    dx, dinit = layer.backward(gout, cache, pack(gfin))
    dinit = dinit if isinstance(dinit, tuple) else (dinit,)
    inputs = {"x": x, **{f"init{k}": s for k, s in enumerate(init)}, **layer.params}
    grads = {"x": dx, **{f"init{k}": s for k, s in enumerate(dinit)}, **layer.grads}
    gradcheck(f, inputs, grads, rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layer_single(kind, engine):
    layer_gradcheck(LAYERS[kind](dtype=np.float64, seed=1))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layer_stacked_bidirectional_ragged_dropout(kind, engine):
    layer = LAYERS[kind](num_layers=2, bidirectional=True, dropout=0.3, dtype=np.float64, seed=2)
    layer_gradcheck(layer, lengths=np.array([1, 3]), seed=3)


def test_layer_without_bias(engine):
    layer_gradcheck(rnnkit.GRU(D, H, bias=False, dtype=np.float64, seed=4), np.array([3, 2]))
    layer_gradcheck(rnnkit.LSTM(D, H, bias=False, peepholes=True, dtype=np.float64, seed=4))


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru-textbook"])
def test_hidden_grads_match_finite_differences(kind, engine):
    """dL/dh_t for every t, kept by backward, against perturbing h_t and re-running the rest."""
    layer = LAYERS[kind](dtype=np.float64, seed=5)
    r = rng(6)
    TT = 5
    x = r.standard_normal((B, TT, D))
    gout = r.standard_normal((B, TT, H))
    gfin = [r.standard_normal((1, B, H)) for _ in range(layer.n_states)]
    pack = (lambda p: tuple(p)) if layer.n_states == 2 else (lambda p: p[0])
    _, _, cache = layer.forward(x)
    _, _, hidden = layer.backward(gout, cache, pack(gfin), return_hidden_grads=True)
    assert hidden.shape == (1, B, TT, H)
    for t in range(TT):
        # the state after step t, then the loss of everything that depends on it
        _, st, _ = layer.forward(x[:, : t + 1])
        st = [s.copy() for s in (st if isinstance(st, tuple) else (st,))]
        h_t = st[0]

        def rest(t=t, st=st, h_t=h_t):
            loss = float((h_t[0] * gout[:, t]).sum())
            if t + 1 < TT:
                out, fin, _ = layer.forward(x[:, t + 1 :], pack([h_t, *st[1:]]))
                loss += float((out * gout[:, t + 1 :]).sum())
            else:
                fin = pack([h_t, *st[1:]])
            fin = fin if isinstance(fin, tuple) else (fin,)
            return loss + sum(float((a * g).sum()) for a, g in zip(fin, gfin, strict=True))

        gradcheck(rest, {f"h_{t}": h_t}, {f"h_{t}": hidden[0, :, t][None]})
