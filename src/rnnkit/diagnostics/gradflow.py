"""Gradient flow through time: what backpropagation carries from step T back to step k.

For a loss E_T on the last step only, Pascanu, Mikolov & Bengio (2013, sec. 2.1)
write the gradient reaching an earlier state as a product of step Jacobians,

    dE_T/dh_k = dE_T/dh_T  prod_{i=k+1..T} dh_i/dh_{i-1},

and for the RNN h_i = act(W_ih x_i + W_hh h_{i-1} + b) each factor is
dh_i/dh_{i-1} = diag(act'(a_i)) W_hh. With |act'| <= gamma (gamma = 1 for tanh and ReLU,
1/4 for the logistic sigmoid) and lambda_1 the largest singular value of W_hh,

    ||dE_T/dh_k|| <= ||dE_T/dh_T|| (gamma lambda_1)^(T-k)          (sec. 2.1),

so gamma * lambda_1 < 1 is sufficient for the gradient to vanish exponentially; > 1 is
necessary (not sufficient) for it to explode. For the LSTM, the memory cell's own path
gives dc_T/dc_k = diag(prod_{i=k+1..T} f_i) (the constant error carousel with a forget
gate, Gers et al. 2000), so the forget-gate products show how far the cell carries error.

What this module measures, for any ``rnnkit.engine.layers`` RNN/LSTM/GRU (stacked too):

- :func:`bptt_hidden_grads` / ``GradFlow.grad_norm``: ||dE_T/dh_k|| for every k, read off
  the layer's own BPTT pass (``return_hidden_grads=True``); not finite differences.
- :func:`rnn_step_jacobians`: the RNN's Jacobians formed explicitly from the cell math,
  diag(act'(a_i)) W_hh, with act' written in terms of h_i (tanh: 1 - h^2, sigmoid:
  h (1 - h), ReLU: [h > 0]).
- :func:`step_jacobians`: any cell's (also stacked layers' and the LSTM's (h, c)) step
  Jacobians, built by the layer's own backward pass: one step is run forward from state
  s_{i-1} for S copies of the sample, and backpropagating the S unit vectors e_j from the
  new state gives the rows e_j^T ds_i/ds_{i-1}. Exact (no finite differences); the tests
  check both constructions against central differences.
- :func:`product_norms`: the spectral norms ||prod_{i=k+1..T} dh_i/dh_{i-1}|| for every k.
- :func:`gate_products`: the mean over units of prod f_i (LSTM) or prod z_i (GRU, whose
  h_i = (1 - z) n + z h_{i-1} has the analogous direct path).
- :func:`global_grad_norm`: the L2 norm of all gradients together, per training step.

States are counted as in the paper: h_0 is the initial state, h_i the state after step i,
i = 1..T; results are indexed by the distance d = T - k = 0..T.

>>> from rnnkit.engine.layers import RNN
>>> rnn = RNN(3, 4, dtype=np.float64, seed=0)
>>> x = np.random.default_rng(1).standard_normal((2, 6, 3))
>>> flow = gradient_flow(rnn, x)
>>> flow.grad_norm.shape, flow.jacobian_norm.shape, flow.gamma
((2, 7), (2, 7), 1.0)
>>> bool(np.all(flow.jacobian_norm <= flow.bound() + 1e-12))   # sec. 2.1's bound holds
True
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent

Array = np.ndarray

__all__ = [
    "GAMMA",
    "GradFlow",
    "bptt_hidden_grads",
    "gate_products",
    "global_grad_norm",
    "gradient_flow",
    "jacobian_product",
    "largest_singular_value",
    "product_norms",
    "rnn_step_jacobians",
    "step_jacobians",
    "step_states",
]

# sup |act'(a)|: the gamma of Pascanu et al. 2013, sec. 2.1
GAMMA = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0}


def largest_singular_value(w: Array) -> float:
    """lambda_1 = ||W||_2, the largest singular value (the spectral norm).

    >>> largest_singular_value(np.diag([0.5, -3.0]))
    3.0
    """
    return float(np.linalg.norm(np.asarray(w, np.float64), 2))


def global_grad_norm(grads: Mapping[str, Array]) -> float:
    """sqrt(sum_i ||g_i||^2) over every gradient array: the norm that clipping looks at.

    >>> global_grad_norm({"a": np.array([3.0]), "b": np.array([[4.0]])})
    5.0
    """
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


@contextlib.contextmanager
def _grads_untouched(layer: Recurrent) -> Iterator[None]:
    """Measurements run the layer's backward, which adds into ``grads``: undo that."""
    saved = {k: g.copy() for k, g in layer.grads.items()}
    try:
        yield
    finally:
        for k, g in layer.grads.items():
            np.copyto(g, saved[k])


def _check_layer(layer: Any) -> Recurrent:
    if not isinstance(layer, Recurrent):
        raise TypeError(f"layer: expected an rnnkit RNN, LSTM or GRU, got {type(layer).__name__}")
    return layer


def _parts(layer: Recurrent, state: Any) -> list[Array]:
    if state is None:
        return []
    return list(state) if layer.n_states == 2 else [state]


def _pack(layer: Recurrent, parts: list[Array]) -> Any:
    return (parts[0], parts[1]) if layer.n_states == 2 else parts[0]


def _flatten(layer: Recurrent, state: Any) -> Array:
    """Layer state, h (L, B, H) or (h, c), -> (B, S) with S = n_states * L * H.

    Layout of S: [h of layer 0, ..., h of layer L-1, (c of layer 0, ..., c of layer L-1)].
    """
    parts = [np.asarray(p).transpose(1, 0, 2) for p in _parts(layer, state)]  # (B, L, H)
    return np.concatenate([p.reshape(p.shape[0], -1) for p in parts], axis=1)


def _unflatten(layer: Recurrent, flat: Array) -> Any:
    N = flat.shape[0]
    L, H = layer.num_layers, layer.hidden_size
    parts = [
        np.ascontiguousarray(
            flat[:, i * L * H : (i + 1) * L * H].reshape(N, L, H).transpose(1, 0, 2)
        )
        for i in range(layer.n_states)
    ]
    return _pack(layer, parts)


def _top_h(layer: Recurrent) -> slice:
    """Where the top layer's h lies in the flattened state."""
    L, H = layer.num_layers, layer.hidden_size
    return slice((L - 1) * H, L * H)


def _zero_state(layer: Recurrent, B: int) -> Any:
    shape = (layer.num_layers * layer.num_directions, B, layer.hidden_size)
    return _pack(layer, [np.zeros(shape, layer.dtype) for _ in range(layer.n_states)])


# --- gradients from the BPTT pass --------------------------------------------------------------


def bptt_hidden_grads(
    layer: Recurrent, x: Array, dh_last: Array, state: Any = None
) -> tuple[Array, Array]:
    """dE_T/dh_k for every layer, direction and step, from the layer's own backward pass.

    The loss is E_T = <dh_last, out_T>: only the output of the last step receives a gradient.

    Args:
        layer: an rnnkit RNN, LSTM or GRU (its ``grads`` are left unchanged).
        x: (B, T, D) input. dh_last: (B, dirs*H) gradient reaching the last output.
        state: initial state or None.

    Returns:
        hidden (L*dirs, B, T, H), hidden[:, :, t] = dE_T/dh_{t+1}, and dE_T/dh_0
        (L*dirs, B, H), the gradient reaching the initial h.

    >>> from rnnkit.engine.layers import LSTM
    >>> lstm = LSTM(2, 3, num_layers=2, dtype=np.float64, seed=0)
    >>> hid, dh0 = bptt_hidden_grads(lstm, np.ones((1, 4, 2)), np.ones((1, 3)))
    >>> hid.shape, dh0.shape
    ((2, 1, 4, 3), (2, 1, 3))
    """
    layer = _check_layer(layer)
    out, _, cache = layer.forward(x, state, training=False)
    dout = np.zeros_like(out)
    dout[:, -1] = dh_last
    with _grads_untouched(layer):
        _, dinit, hidden = layer.backward(dout, cache, return_hidden_grads=True)
    dh0 = dinit[0] if layer.n_states == 2 else dinit
    return hidden, dh0


# --- step Jacobians ----------------------------------------------------------------------------


def step_states(layer: Recurrent, x: Array, state: Any = None) -> Array:
    """The full state after every step, flattened: (T+1, B, S), [0] the initial state.

    Runs the layer one step at a time (inference mode, no dropout). Unidirectional only.

    >>> from rnnkit.engine.layers import LSTM
    >>> lstm = LSTM(2, 3, num_layers=2, dtype=np.float64, seed=0)
    >>> step_states(lstm, np.ones((4, 5, 2))).shape      # S = 2 (h, c) * 2 layers * 3
    (6, 4, 12)
    """
    layer = _check_layer(layer)
    if layer.bidirectional:
        raise ValueError("layer: step states need a unidirectional layer")
    x = np.asarray(x)
    B, T = x.shape[0], x.shape[1]
    st = _zero_state(layer, B) if state is None else state
    out = [_flatten(layer, st)]
    for t in range(T):
        _, st = layer(x[:, t : t + 1], st)
        out.append(_flatten(layer, st))
    return np.stack(out)


def step_jacobians(layer: Recurrent, x: Array, state: Any = None) -> tuple[Array, Array]:
    """ds_i/ds_{i-1} of the full state s (every layer's h, and c for the LSTM), i = 1..T.

    Built with the layer's own backward pass (see the module docstring): for each step the
    S = n_states * L * H unit vectors are backpropagated through one step in one batch.

    Args:
        layer: a unidirectional RNN, LSTM or GRU, any number of layers.
        x: (B, T, D). state: initial state or None.

    Returns:
        J (T, B, S, S) with J[i-1, b] = ds_i/ds_{i-1} (row j: d s_i[j] / d s_{i-1}),
        and the states (T+1, B, S).

    >>> gru = GRU(2, 3, dtype=np.float64, seed=0)
    >>> J, states = step_jacobians(gru, np.ones((1, 4, 2)))
    >>> J.shape, states.shape
    ((4, 1, 3, 3), (5, 1, 3))
    """
    layer = _check_layer(layer)
    if layer.bidirectional:
        raise ValueError("layer: step Jacobians need a unidirectional layer")
    x = np.asarray(x)
    B, T = x.shape[0], x.shape[1]
    states = step_states(layer, x, state)
    S = states.shape[2]
    eye = np.tile(np.eye(S, dtype=layer.dtype), (B, 1))  # (B*S, S): row b*S + j is e_j
    J = np.empty((T, B, S, S), layer.dtype)
    with _grads_untouched(layer):
        for t in range(T):
            prev = _unflatten(layer, np.repeat(states[t], S, axis=0))  # S copies per sample
            out, _, cache = layer.forward(
                np.repeat(x[:, t : t + 1], S, axis=0), prev, training=False
            )
            _, dprev = layer.backward(np.zeros_like(out), cache, _unflatten(layer, eye))
            J[t] = _flatten(layer, dprev).reshape(B, S, S)
    return J, states


def rnn_step_jacobians(layer: RNN, x: Array, state: Array | None = None) -> Array:
    """The RNN's step Jacobians from the cell math: dh_i/dh_{i-1} = diag(act'(a_i)) W_hh.

    Single-layer, unidirectional :class:`~rnnkit.engine.layers.RNN` only. Returns (T, B, H, H).

    >>> rnn = RNN(2, 3, dtype=np.float64, seed=0)
    >>> x = np.random.default_rng(0).standard_normal((1, 4, 2))
    >>> J_cell = rnn_step_jacobians(rnn, x)
    >>> J_bptt, _ = step_jacobians(rnn, x)
    >>> bool(np.allclose(J_cell, J_bptt))
    True
    """
    if not isinstance(layer, RNN) or layer.num_layers != 1 or layer.bidirectional:
        raise ValueError("layer: the explicit Jacobian needs a single-layer unidirectional RNN")
    h, _ = layer(x, state)  # (B, T, H): h_1..h_T
    h = h.transpose(1, 0, 2)  # (T, B, H)
    # act'(a_i) in terms of h_i = act(a_i)
    if layer.nonlinearity == "tanh":
        deriv = 1.0 - h * h
    elif layer.nonlinearity == "sigmoid":
        deriv = h * (1.0 - h)
    else:
        deriv = (h > 0).astype(h.dtype)
    return deriv[..., None] * layer.params["weight_hh_l0"]  # (T, B, H, H), rows scaled


def jacobian_product(J: Array, k: int) -> Array:
    """prod_{i=k+1..T} ds_i/ds_{i-1} = ds_T/ds_k, (B, S, S); the identity for k = T.

    >>> J = np.stack([np.eye(2)[None] * 2.0, np.eye(2)[None] * 3.0])   # T = 2, B = 1
    >>> jacobian_product(J, 0)[0]
    array([[6., 0.],
           [0., 6.]])
    """
    T, B, S, _ = J.shape
    if not 0 <= k <= T:
        raise ValueError(f"k: expected 0 <= k <= T={T}, got {k}")
    P = np.broadcast_to(np.eye(S, dtype=J.dtype), (B, S, S)).copy()
    for i in range(T - 1, k - 1, -1):  # J[i] = ds_{i+1}/ds_i
        P = P @ J[i]
    return P


def product_norms(J: Array, block: slice | None = None) -> Array:
    """Spectral norms ||ds_T/ds_{T-d}|| for d = 0..T, (B, T+1).

    ``block`` restricts rows and columns to part of the state (e.g. the top layer's h: the
    total derivative dh_T/dh_k with every other part of the state at step k held fixed).

    >>> J = np.broadcast_to(np.diag([0.5, 2.0]), (3, 1, 2, 2))    # T = 3 equal steps
    >>> product_norms(J)
    array([[1., 2., 4., 8.]])
    >>> product_norms(J, slice(0, 1))                              # the first unit only
    array([[1.   , 0.5  , 0.25 , 0.125]])
    """
    T, B, S, _ = J.shape
    sl = block or slice(0, S)
    P = np.broadcast_to(np.eye(S, dtype=np.float64), (B, S, S)).copy()
    out = np.empty((B, T + 1))
    out[:, 0] = np.linalg.norm(P[:, sl, sl], 2, axis=(1, 2))
    for d in range(1, T + 1):
        P = P @ J[T - d]
        out[:, d] = np.linalg.norm(P[:, sl, sl], 2, axis=(1, 2))
    return out


# --- gates -------------------------------------------------------------------------------------


def gate_products(layer: LSTM | GRU, x: Array, state: Any = None) -> Array:
    """Mean over units of prod_{i=T-d+1..T} g_i for d = 0..T: (L, B, T+1).

    g is the LSTM's forget gate f (dc_T/dc_k = diag(prod f) along the cell's own path)
    or the GRU's update gate z (h_i = (1 - z) n + z h_{i-1}). The gates are recomputed from
    the states of :func:`step_states` with the layer's own step function.

    >>> lstm = LSTM(2, 3, dtype=np.float64, seed=0, forget_bias=20.0)   # f = sigma(20) ~ 1
    >>> np.round(gate_products(lstm, np.zeros((1, 4, 2))), 6)
    array([[[1., 1., 1., 1., 1.]]])
    """
    if not isinstance(layer, (LSTM, GRU)):
        raise ValueError("layer: gate products are defined for the LSTM and the GRU")
    x = np.asarray(x)
    states = step_states(layer, x, state)  # (T+1, B, S)
    T, B = x.shape[1], x.shape[0]
    L, H = layer.num_layers, layer.hidden_size
    gates = np.empty((L, T, B, H))
    for t in range(T):
        prev = _unflatten(layer, states[t])
        new_h = _unflatten(layer, states[t + 1])
        new_h = new_h[0] if layer.n_states == 2 else new_h
        for layer_idx in range(L):
            p, _ = layer.direction_params(layer_idx, 0)  # parameters under base names
            inp = x[:, t] if layer_idx == 0 else new_h[layer_idx - 1]
            xw = inp @ p["weight_ih"].T + layer.input_bias(p)
            prev_l = [s[layer_idx] for s in _parts(layer, prev)]
            _, cache = layer.step_forward(xw, prev_l, p)
            gates[layer_idx, t] = cache[1]  # f (LSTM cache i, f, g, ...) or z (GRU r, z, n, ...)
    out = np.ones((L, B, T + 1))
    prod = np.ones((L, B, H))
    for d in range(1, T + 1):
        prod = prod * gates[:, T - d]
        out[:, :, d] = prod.mean(axis=2)
    return out


# --- everything at once ------------------------------------------------------------------------


@dataclass
class GradFlow:
    """Gradient-flow measurements of one layer on one batch, indexed by distance d = T - k.

    Attributes:
        label: a name for plots. distance: (T+1,) 0..T.
        grad_norm: (B, T+1) ||dE_T/dh_{T-d}|| of the top layer, from BPTT, for a loss on
            the last step whose gradient dE_T/dh_T has norm 1.
        jacobian_norm: (B, T+1) ||dh_T/dh_{T-d}||_2 (top layer; every other part of the
            state at step T-d held fixed), or None for bidirectional layers.
        lambda1: the largest singular value of the top layer's W_hh (the whole (G*H, H)
            stack for gated cells).
        gamma: sup |act'| for the RNN, None for gated cells (no such bound).
        gate_product: (B, T+1) mean prod f (LSTM) / prod z (GRU) of the top layer, or None.
    """

    label: str
    distance: Array
    grad_norm: Array
    jacobian_norm: Array | None
    lambda1: float
    gamma: float | None
    gate_product: Array | None

    @property
    def eta(self) -> float | None:
        """gamma * lambda_1 (RNN only)."""
        return None if self.gamma is None else self.gamma * self.lambda1

    def typical(self, values: Array | None = None) -> Array:
        """Geometric mean over the batch (of ``grad_norm`` by default): the typical value on
        a log scale, (T+1,)."""
        a = self.grad_norm if values is None else values
        return np.exp(np.log(np.maximum(a, np.finfo(np.float64).tiny)).mean(axis=0))

    def bound(self) -> Array | None:
        """(gamma lambda_1)^d for every distance d (RNN only), Pascanu et al. sec. 2.1."""
        return None if self.eta is None else self.eta ** self.distance.astype(np.float64)


def gradient_flow(
    layer: Recurrent,
    x: Array,
    state: Any = None,
    dh_last: Array | None = None,
    seed: int = 0,
    label: str | None = None,
) -> GradFlow:
    """Measure the gradient flow of ``layer`` on the batch ``x``; see :class:`GradFlow`.

    Args:
        layer: an rnnkit RNN, LSTM or GRU (any layers; Jacobians need unidirectional).
        x: (B, T, D) of the layer's dtype. state: initial state or None.
        dh_last: (B, dirs*H) gradient reaching the last output; default random unit
            vectors drawn with ``seed``.
    """
    layer = _check_layer(layer)
    x = np.asarray(x)
    B, T = x.shape[0], x.shape[1]
    dirs, H, L = layer.num_directions, layer.hidden_size, layer.num_layers
    if dh_last is None:
        g = np.random.default_rng(seed).standard_normal((B, dirs * H))
        dh_last = g / np.linalg.norm(g, axis=1, keepdims=True)
    dh_last = np.asarray(dh_last, layer.dtype)
    hidden, dh0 = bptt_hidden_grads(layer, x, dh_last, state)
    top = (L - 1) * dirs  # the top layer's forward direction
    grad = np.empty((B, T + 1))
    grad[:, :T] = np.linalg.norm(hidden[top][:, ::-1], axis=2)  # d = T - k for k = T..1
    grad[:, T] = np.linalg.norm(dh0[top], axis=1)
    jac = None
    if not layer.bidirectional:
        if isinstance(layer, RNN) and L == 1:
            J = rnn_step_jacobians(layer, x, state)
            jac = product_norms(J)
        else:
            J, _ = step_jacobians(layer, x, state)
            jac = product_norms(J, _top_h(layer))
    sfx = f"_l{L - 1}"
    lam = largest_singular_value(layer.params["weight_hh" + sfx])
    gamma = GAMMA[layer.nonlinearity] if isinstance(layer, RNN) else None
    gates = None
    if isinstance(layer, (LSTM, GRU)) and not layer.bidirectional:
        gates = gate_products(layer, x, state)[-1]
    return GradFlow(
        label=label or layer.mode,
        distance=np.arange(T + 1),
        grad_norm=grad,
        jacobian_norm=jac,
        lambda1=lam,
        gamma=gamma,
        gate_product=gates,
    )
