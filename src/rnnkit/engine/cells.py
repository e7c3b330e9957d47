"""One time step of the vanilla RNN, the LSTM and the GRU, each a forward/backward pair.

These are the reference arithmetic: the NumPy engine of :mod:`rnnkit.engine.layers` loops
over time calling them (through each layer's ``step_forward`` / ``step_backward``), the
compiled engine (:mod:`rnnkit.fast`) runs the same formulas for all steps without returning
to Python and is tested against that loop, and the diagnostics step through them one step at
a time. Each is finite-difference checked (tests/test_gradcheck_layers.py).

The input projection ``W_ih x_t + b_ih`` of every step is computed by the layer before its
time loop (one matmul for all T steps), so a step receives it ready-made as ``xw`` (B, G*H).
A step does the recurrent matmul and the pointwise gate math; its backward returns the
gradient of the gate pre-activations, from which the layer computes all weight gradients
after the loop with one matmul each. Weights are passed already transposed for the forward
matmul (``w_hh_t`` = W_hh^T, (H, G*H); a transposed view will do) and as stored for the
backward one.

Gate order and formulas are PyTorch's (``torch.nn.RNN``, ``LSTM``, ``GRU`` docs):

RNN:  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
LSTM: i, f, g, o = sigma, sigma, tanh, sigma of (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
      c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
      with peepholes (Gers & Schmidhuber 2000; Graves 2013, eq. 7-11): the i and f
      pre-activations add w_ci * c_{t-1} and w_cf * c_{t-1}, the o pre-activation adds
      w_co * c_t (diagonal, i.e. element-wise, peephole weights).
GRU:  r, z = sigma(W_i{r,z} x_t + b_i{r,z} + W_h{r,z} h_{t-1} + b_h{r,z})
      reset_after=True (PyTorch, cuDNN):  n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
      reset_after=False (Cho et al. 2014): n = tanh(W_in x_t + b_in + W_hn (r * h_{t-1}) + b_hn)
      h_t = (1 - z) * n + z * h_{t-1}

>>> rng = np.random.default_rng(0)
>>> B, H = 2, 3
>>> xw = rng.standard_normal((B, 4 * H)); w = rng.standard_normal((4 * H, H))
>>> h, c, cache = lstm_step_forward(xw, np.zeros((B, H)), np.zeros((B, H)), w.T.copy())
>>> h.shape, c.shape
((2, 3), (2, 3))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.engine.ops import ACTIVATIONS, sigmoid

Array = np.ndarray
Peepholes = tuple[Array, Array, Array] | None


# --- vanilla RNN ---------------------------------------------------------------------------


def rnn_step_forward(
    xw: Array, h_prev: Array, w_hh_t: Array, nonlinearity: str = "tanh"
) -> tuple[Array, Any]:
    """h = act(xw + h_prev W_hh^T). xw (B, H) already holds W_ih x + b_ih + b_hh."""
    a = h_prev @ w_hh_t  # (B, H)
    a += xw
    h, act_cache = ACTIVATIONS[nonlinearity][0](a)
    return h, (act_cache, nonlinearity)


def rnn_step_backward(dh: Array, cache: Any, w_hh: Array) -> tuple[Array, Array]:
    """Returns (da, dh_prev): da = dL/d(pre-activation) (B, H), dh_prev = da W_hh."""
    act_cache, nonlinearity = cache
    da = ACTIVATIONS[nonlinearity][1](dh, act_cache)
    return da, da @ w_hh


# --- LSTM ------------------------------------------------------------------------------------


def lstm_step_forward(
    xw: Array, h_prev: Array, c_prev: Array, w_hh_t: Array, peepholes: Peepholes = None
) -> tuple[Array, Array, Any]:
    """One LSTM step. xw (B, 4H) holds W_ih x + b_ih + b_hh; gates in order i, f, g, o."""
    H = h_prev.shape[1]
    a = h_prev @ w_hh_t  # (B, 4H)
    a += xw
    if peepholes is not None:
        w_ci, w_cf, w_co = peepholes
        a[:, :H] += w_ci * c_prev
        a[:, H : 2 * H] += w_cf * c_prev
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    g = np.tanh(a[:, 2 * H : 3 * H])
    c = f * c_prev + i * g
    if peepholes is not None:
        a[:, 3 * H :] += peepholes[2] * c
    o = sigmoid(a[:, 3 * H :])
    tc = np.tanh(c)
    h = o * tc
    # cached: the gate activations, tanh(c_t) and c_{t-1}; c_t is needed only for peepholes
    return h, c, (i, f, g, o, tc, c_prev, c if peepholes is not None else None)


def lstm_step_backward(
    dh: Array, dc: Array, cache: Any, w_hh: Array, peepholes: Peepholes = None
) -> tuple[Array, Array, Array, tuple[Array, Array, Array] | None]:
    """Returns (da, dh_prev, dc_prev, dpeepholes).

    ``dh`` and ``dc`` are the total gradients reaching h_t and c_t (from the output, the
    next step and, for dc, nothing else). da (B, 4H) is the gradient of the gate
    pre-activations, in gate order i, f, g, o.
    """
    i, f, g, o, tc, c_prev, c = cache
    # h = o * tanh(c)
    do = dh * tc
    da_o = do * o * (1.0 - o)
    # dL/dc_t = dc_next (via c_{t+1} = f c_t + ...) + dh o (1 - tanh(c)^2) [+ da_o w_co]
    dc = dc + dh * o * (1.0 - tc * tc)
    if peepholes is not None:
        dc += da_o * peepholes[2]
    # c = f * c_prev + i * g
    da_i = dc * g * i * (1.0 - i)
    da_f = dc * c_prev * f * (1.0 - f)
    da_g = dc * i * (1.0 - g * g)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H)
    # the constant error carousel: dc_{t-1} = dc_t * f_t
    dc_prev = dc * f
    dpeep = None
    if peepholes is not None:
        w_ci, w_cf, _ = peepholes
        dc_prev += da_i * w_ci + da_f * w_cf
        dpeep = ((da_i * c_prev).sum(0), (da_f * c_prev).sum(0), (da_o * c).sum(0))
    return da, da @ w_hh, dc_prev, dpeep


# --- GRU -------------------------------------------------------------------------------------


def gru_step_forward(
    xw: Array, h_prev: Array, w_hh_t: Array, b_hh: Array, reset_after: bool = True
) -> tuple[Array, Any]:
    """One GRU step. xw (B, 3H) holds W_ih x + b_ih (b_hh is applied here); gates r, z, n."""
    H = h_prev.shape[1]
    if reset_after:
        gh = h_prev @ w_hh_t  # (B, 3H)
        gh += b_hh
        r = sigmoid(xw[:, :H] + gh[:, :H])
        z = sigmoid(xw[:, H : 2 * H] + gh[:, H : 2 * H])
        ghn = gh[:, 2 * H :]
        n = np.tanh(xw[:, 2 * H :] + r * ghn)
        rec_in = None
    else:
        gh_rz = h_prev @ w_hh_t[:, : 2 * H]  # (B, 2H)
        gh_rz += b_hh[: 2 * H]
        r = sigmoid(xw[:, :H] + gh_rz[:, :H])
        z = sigmoid(xw[:, H : 2 * H] + gh_rz[:, H:])
        rec_in = r * h_prev  # what W_hn multiplies
        ghn = rec_in @ w_hh_t[:, 2 * H :]
        ghn += b_hh[2 * H :]
        n = np.tanh(xw[:, 2 * H :] + ghn)
    h = (1.0 - z) * n + z * h_prev
    return h, (r, z, n, ghn, h_prev, rec_in, reset_after)


def gru_step_backward(dh: Array, cache: Any, w_hh: Array) -> tuple[Array, Array, Array]:
    """Returns (dax, dah, dh_prev).

    dax (B, 3H): gradient of the input-side pre-activations (W_ih x + b_ih), rows r, z, n.
    dah (B, 3H): gradient of the recurrent-side pre-activations: for reset_after,
    gh = W_hh h_{t-1} + b_hh; for the textbook form, the r and z rows of W_hh h_{t-1} + b_hh
    and the n row of W_hn (r * h_{t-1}) + b_hn.
    """
    r, z, n, ghn, h_prev, rec_in, reset_after = cache
    H = h_prev.shape[1]
    # h = (1 - z) n + z h_prev
    dn = dh * (1.0 - z)
    da_z = dh * (h_prev - n) * z * (1.0 - z)
    dh_prev = dh * z
    da_n = dn * (1.0 - n * n)  # gradient of n's pre-activation
    if reset_after:
        # a_n = xn + r * ghn
        da_r = da_n * ghn * r * (1.0 - r)
        dgh_n = da_n * r
        dax = np.concatenate([da_r, da_z, da_n], axis=1)
        dah = np.concatenate([da_r, da_z, dgh_n], axis=1)
        dh_prev += dah @ w_hh
    else:
        # a_n = xn + W_hn (r * h_prev) + b_hn
        drec = da_n @ w_hh[2 * H :]  # (B, H), gradient of r * h_prev
        da_r = drec * h_prev * r * (1.0 - r)
        dh_prev += drec * r
        dax = np.concatenate([da_r, da_z, da_n], axis=1)
        dah = dax
        dh_prev += dax[:, : 2 * H] @ w_hh[: 2 * H]
    return dax, dah, dh_prev
