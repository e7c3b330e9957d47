r"""Recurrent layers: stacking, directions, padding masks, and backpropagation through time.

This module is the reference engine: the loop over time of every layer is written out
below in NumPy, over the one-step functions of :mod:`rnnkit.engine.cells`, forward beside
backward. The compiled engine (:mod:`rnnkit.fast`) runs the same arithmetic faster; which one
runs a layer is its ``backend`` (:mod:`rnnkit.engine.backend`). Parameters carry PyTorch's
names, shapes and gate order, so ``state_dict()`` loads into ``torch.nn.LSTM`` and back.

Contract (batch-first)::

    out, state, cache = layer.forward(x, state=None, lengths=None, training=True)
    dx, dstate = layer.backward(dout, cache, dstate=None)   # adds into layer.grads
    out, state = layer(x, state=None, lengths=None)          # inference, no cache kept

x (B, T, D) -> out (B, T, dirs*H); state h (L*dirs, B, H), for the LSTM the pair (h, c).
With ``lengths`` (B,), steps t >= lengths[b] give zero output and leave b's state unchanged,
so the final state is the state at each sequence's last valid step and the reverse
direction starts there (PyTorch's packed-sequence semantics, without sorting).

Backpropagation through time, for one direction of one layer (Werbos 1990; the notation of
Goodfellow, Bengio & Courville 2016, section 10.2.2). The forward pass, for t = 1..T:

    (1)  a_t = W_ih x_t + b + W_hh h_{t-1}          pre-activations of the G gates
    (2)  s_t = cell(a_t, s_{t-1})                   the state s = h, or (h, c) for the LSTM

and the loss L depends on every output h_t, directly (dout_t) and through s_{t+1}. Going
backwards, t = T..1, the gradient reaching the state after step t is

    (3)  dL/ds_t = dout_t + (dL/ds_{t+1}) (ds_{t+1}/ds_t)       (dL/ds_T: dstate, or 0)

and the step's backward (the cell's chain rule) turns it into the gradient of the
pre-activations da_t and the part that flows on to s_{t-1}. Since W_ih, W_hh and b are
shared by all steps, their gradients are sums over steps, each one product over all T*B
rows after the loop (X: every x_t stacked, H_prev: every h_{t-1} stacked):

    (4)  dW_ih = sum_t da_t^T x_t = dA^T X       (5)  dW_hh = sum_t da_t^T h_{t-1} = dA^T H_prev
    (6)  db = sum_t sum_rows da_t                (7)  dx_t = da_t W_ih

Likewise the input projection W_ih x_t + b of (1) is one product over all steps before the
loop. The states of a layer live in one array ``hbuf`` (T + 2, B, dirs*H) (T + 1 slots with
one direction): slot 0 holds the forward direction's initial state, slot t + 1 the state after
step t (t = 0..T-1, both directions), slot T + 1 the reverse direction's initial state. So the
output of the layer is ``hbuf[1:T+1]``, and H_prev of (5) is ``hbuf[0:T]`` (forward) or
``hbuf[2:T+2]`` (reverse).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.engine import backend as _backend
from rnnkit.engine.cells import (
    gru_step_backward,
    gru_step_forward,
    lstm_step_backward,
    lstm_step_forward,
    rnn_step_backward,
    rnn_step_forward,
)
from rnnkit.engine.module import Module
from rnnkit.engine.ops import ACTIVATIONS, dropout_backward, dropout_forward

Array = np.ndarray
State = Array | tuple[Array, Array]


def _as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# --- the reference engine: one direction of one layer, in NumPy ------------------------------


def direction_forward(
    layer: Recurrent, p: dict[str, Array], xs: Array, hbuf: Array, direction: int,
    init: list[Array], valid: Array, keep: bool,
) -> tuple[list[Array], Any]:  # fmt: skip
    """Run one direction of one layer over all steps; equations (1)-(2) of the module.

    Args:
        layer: the layer (its cell's step: :meth:`Recurrent.step_forward`).
        p: the direction's parameters under their base names (``weight_ih``, ...).
        xs: (T, B, D) the layer's input, time-major.
        hbuf: (T + 2, B, dirs*H) (T + 1 with one direction): receives the initial state and
            h_t in columns ``direction*H`` to ``direction*H + H`` (layout: module docstring).
        direction: 0 forward, 1 reverse (steps T-1 down to 0).
        init: the initial state, [h0] or [h0, c0], each (B, H).
        valid: (T, B) uint8, 1 where step t of sequence b is real; (0, 0): no padding.
        keep: return what backward needs (else None: inference).

    Returns:
        The final state [h] or [h, c] (each (B, H)) and the cache for
        :func:`direction_backward`.
    """
    T, B, D = xs.shape
    H = layer.hidden_size
    reverse, col = bool(direction), direction * H
    hbuf[T + 1 if reverse else 0, :, col : col + H] = init[0]
    # (1), input part, for all T steps at once: W_ih x_t + b   (T, B, G*H)
    xw = (xs.reshape(T * B, D) @ p["weight_ih"].T + layer.input_bias(p)).reshape(T, B, -1)
    state = list(init)
    caches: list[Any] = [None] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        # (1)-(2): the recurrent product and the cell's pointwise arithmetic
        new, caches[t] = layer.step_forward(xw[t], state, p)
        if valid.size:  # padding: a sequence past its end keeps its state
            real = valid[t][:, None] != 0  # (B, 1)
            new = [np.where(real, n, s) for n, s in zip(new, state, strict=True)]
        state = new
        hbuf[t + 1, :, col : col + H] = state[0]
    return state, ((xs, hbuf, col, valid, reverse, caches) if keep else None)


def direction_backward(
    layer: Recurrent, p: dict[str, Array], g: dict[str, Array], dout: Array,
    dfinal: list[Array], cache: Any, dxs: Array, accumulate: bool, hid: Array,
) -> list[Array]:  # fmt: skip
    """Backpropagation through time for one direction of one layer; equations (3)-(7).

    Args:
        layer, p: as :func:`direction_forward`; g: the gradients under the same names,
            added into.
        dout: (T, B, dirs*H) the gradient of the layer's output, read only, maybe a view
            of the caller's array (this direction's columns are read; those of padding
            steps are ignored: padded outputs are constant zeros).
        dfinal: the gradient of the final state, [dh] or [dh, dc], each (B, H).
        cache: what :func:`direction_forward` returned.
        dxs: (T, B, D) receives dL/dxs, or with ``accumulate`` has it added; for the
            first layer with one direction it is ``xs`` itself (the cache's copy of the
            input, read for the last time here: every read of it comes before the writes).
        hid: (T, B, H) receives dL/dh_t, the total gradient reaching each step's state (for
            diagnostics), or has 0 rows (not asked).

    Returns:
        The gradient of the initial state, [dh0] or [dh0, dc0].
    """
    xs, hbuf, col, valid, reverse, caches = cache
    T, B, D = xs.shape
    H = layer.hidden_size
    G = layer.gates * H
    dax = np.empty((T, B, G), layer.dtype)  # dL/d(input-side pre-activations) of every step
    dah = None  # ... and of the recurrent side: dax itself but in the GRU (cells.py)
    dstate = [d.astype(layer.dtype, copy=True) for d in dfinal]  # dL/ds_t, (3)
    for t in range(T) if reverse else range(T - 1, -1, -1):
        real = valid[t][:, None] != 0 if valid.size else None  # (B, 1), or no padding
        # (3): the output h_t's own gradient joins what came back from step t + 1
        d_out = dout[t, :, col : col + H]
        dstate[0] = dstate[0] + (d_out if real is None else np.where(real, d_out, 0))
        if hid.shape[0]:
            hid[t] = dstate[0]
        # padding steps pass dL/ds through unchanged and add nothing
        dnew = dstate if real is None else [np.where(real, d, 0) for d in dstate]
        dax_t, dah_t, dprev = layer.step_backward(dnew, caches[t], p, g)
        if dah is None:
            dah = dax if dah_t is dax_t else np.empty_like(dax)
        dax[t], dah[t] = dax_t, dah_t
        dstate = dprev if real is None else [
            np.where(real, dp, d) for dp, d in zip(dprev, dstate, strict=True)
        ]  # fmt: skip
    # (4)-(7): the shared weights' gradients, one product each over all T*B rows
    x2, dax2, dah2 = xs.reshape(T * B, D), dax.reshape(T * B, G), dah.reshape(T * B, G)
    h_prev = (hbuf[2:] if reverse else hbuf[:T])[:, :, col : col + H]  # every h_{t-1}
    g["weight_ih"] += dax2.T @ x2  # (4)
    layer._add_weight_hh_grad(g["weight_hh"], dah2, h_prev.reshape(T * B, H), caches)  # (5)
    if layer.bias:  # (6)
        g["bias_ih"] += dax2.sum(axis=0)
        g["bias_hh"] += dah2.sum(axis=0)
    dx2 = dax2 @ p["weight_ih"]  # (7)
    if accumulate:
        dxs += dx2.reshape(T, B, D)
    else:
        dxs[...] = dx2.reshape(T, B, D)
    return dstate


class NumpyEngine:
    """The reference engine under the contract of :mod:`rnnkit.engine.backend`."""

    name = "numpy"
    direction_forward = staticmethod(direction_forward)
    direction_backward = staticmethod(direction_backward)

    @staticmethod
    def empty(shape: tuple[int, ...], dtype: Any) -> Array:
        return np.empty(shape, dtype)

    @staticmethod
    def copy(a: Array, dtype: Any = None) -> Array:
        # always a new array (np.ascontiguousarray would hand back ``a`` itself when it is
        # already contiguous, e.g. a transposed view with B = 1): the cache must not share
        # memory with what the caller may change
        return np.array(a, dtype=dtype or a.dtype, order="C", copy=True)

    @staticmethod
    def layer_input(layer: Recurrent, x: Array, keep: bool) -> Array:
        return NumpyEngine.copy(x.transpose(1, 0, 2))  # (T, B, D)


def _engine(name: str) -> Any:
    if name == "numpy":
        return NumpyEngine
    from rnnkit import fast

    return fast.engine()


# --- the layers ----------------------------------------------------------------------------------


class Recurrent(Module):
    """Base class of the recurrent layers: parameters, validation, stacking, directions.

    Subclasses set ``mode`` and ``gates`` and implement one step of their cell,
    :meth:`step_forward` and :meth:`step_backward` (the reference engine's loop calls them;
    diagnostics may step a layer with them too). The loop over time itself is the engine's
    (:func:`direction_forward` here, or the compiled one of :mod:`rnnkit.fast`).
    """

    mode = ""
    gates = 1
    n_states = 1  # 2 for the LSTM (h, c)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
        dtype: Any = np.float32,
        seed: int | np.random.Generator | None = None,
        init_range: float | None = None,
        recurrent_init: str = "uniform",
        backend: str | None = None,
    ) -> None:
        for name, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: expected float32 or float64, got {self.dtype}")
        if recurrent_init not in ("uniform", "orthogonal"):
            raise ValueError(
                f"recurrent_init: expected 'uniform' or 'orthogonal', got {recurrent_init!r}"
            )
        # the engine of the time loops: "auto" | "numpy" | "compiled"; None follows the
        # process default (rnnkit.engine.backend)
        self.backend = None if backend is None else _backend.check(backend)
        self.input_size = int(input_size)
        self.hidden_size = H = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.bias = bool(bias)
        self.rng = _as_generator(seed)

        # PyTorch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in its
        # order (per layer, per direction: weight_ih, weight_hh, bias_ih, bias_hh).
        k = 1.0 / np.sqrt(H) if init_range is None else float(init_range)
        GH = self.gates * H
        self.params: dict[str, Array] = {}
        for layer in range(self.num_layers):
            d_in = self.input_size if layer == 0 else H * self.num_directions
            for direction in range(self.num_directions):
                sfx = self._suffix(layer, direction)
                shapes = [("weight_ih", (GH, d_in)), ("weight_hh", (GH, H))]
                if self.bias:
                    shapes += [("bias_ih", (GH,)), ("bias_hh", (GH,))]
                shapes += [(n, (H,)) for n in self._extra_params()]
                for name, shape in shapes:
                    w = self.rng.uniform(-k, k, size=shape)
                    if name == "weight_hh" and recurrent_init == "orthogonal":
                        w = np.concatenate([self._orthogonal(H) for _ in range(self.gates)])
                    self.params[name + sfx] = w.astype(self.dtype)
        self._bases = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", *self._extra_params()]
        self.grads: dict[str, Array] = {n: np.zeros_like(p) for n, p in self.params.items()}

    # --- parameters ------------------------------------------------------------------------

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _extra_params(self) -> list[str]:
        return []

    def _orthogonal(self, n: int) -> Array:
        q, r = np.linalg.qr(self.rng.standard_normal((n, n)))
        return q * np.sign(np.diag(r))  # sign fix makes the distribution uniform (Haar)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
            f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
            f"dropout={self.dropout}, bias={self.bias}, dtype={self.dtype.name}"
            + (f", backend={self.backend!r})" if self.backend is not None else ")")
        )

    # --- validation ------------------------------------------------------------------------

    def _check_input(self, x: Any) -> Array:
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"x: expected 3 dimensions (B, T, D), got shape {x.shape}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"x: expected feature size D={self.input_size}, got shape {x.shape}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x: batch and time must be non-empty, got shape {x.shape}")
        if x.dtype != self.dtype:
            raise ValueError(f"x: dtype {x.dtype} does not match the layer's dtype {self.dtype}")
        return x

    def _check_lengths(self, lengths: Any, B: int, T: int) -> Array | None:
        if lengths is None:
            return None
        lengths = np.asarray(lengths)
        if lengths.shape != (B,):
            raise ValueError(f"lengths: expected shape ({B},), got {lengths.shape}")
        if not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths: expected integers, got dtype {lengths.dtype}")
        bad = (lengths < 1) | (lengths > T)
        if bad.any():
            b = int(np.argmax(bad))
            raise ValueError(f"lengths: each must lie in [1, T={T}], got lengths[{b}]={lengths[b]}")
        return lengths

    def _state_shape(self, B: int) -> tuple[int, int, int]:
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _check_state(self, state: Any, B: int) -> list[Array]:
        """Returns the state as a list of n_states arrays (L*dirs, B, H)."""
        shape = self._state_shape(B)
        if state is None:
            return [np.zeros(shape, self.dtype) for _ in range(self.n_states)]
        if self.n_states == 2:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError("state: the LSTM's state is a pair (h, c)")
            parts, names = [np.asarray(s) for s in state], ["state h", "state c"]
        else:
            if isinstance(state, (tuple, list)):
                raise ValueError(f"state: {self.mode} takes one array h, not a tuple")
            parts, names = [np.asarray(state)], ["state"]
        for s, name in zip(parts, names, strict=True):
            if s.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {s.shape}")
            if s.dtype != self.dtype:
                raise ValueError(
                    f"{name}: dtype {s.dtype} does not match the layer's dtype {self.dtype}"
                )
        return parts

    def _pack_state(self, parts: list[Array]) -> State:
        return (parts[0], parts[1]) if self.n_states == 2 else parts[0]

    # --- one step, the cell's (public: diagnostics step through a layer with these) ----------

    def direction_params(
        self, layer: int, direction: int = 0
    ) -> tuple[dict[str, Array], dict[str, Array]]:
        """The parameters and gradients of one layer and direction, under their base names
        (``weight_ih``, ``weight_hh``, ``bias_ih``, ...): views, not copies."""
        sfx = self._suffix(layer, direction)
        p = {b: self.params[b + sfx] for b in self._bases if b + sfx in self.params}
        g = {b: self.grads[b + sfx] for b in p}
        return p, g

    def input_bias(self, p: dict[str, Array]) -> Array | float:
        """The bias added to the input projection: ``xw = W_ih x_t + input_bias(p)`` is what
        :meth:`step_forward` takes (b_ih + b_hh; the GRU's b_hh stays inside its step)."""
        if not self.bias:
            return 0.0
        return p["bias_ih"] + p["bias_hh"]

    def step_forward(
        self, xw: Array, state: list[Array], p: dict[str, Array]
    ) -> tuple[list[Array], Any]:
        """One step of the cell (:mod:`rnnkit.engine.cells`): ``xw`` (B, G*H) the input
        projection W_ih x_t + :meth:`input_bias`, ``state`` [h] or [h, c] (each (B, H)).
        Returns the new state and the step's cache (the cell's: e.g. the LSTM's gates)."""
        raise NotImplementedError

    def step_backward(
        self, dstate: list[Array], cache: Any, p: dict[str, Array],
        g: dict[str, Array] | None = None,
    ) -> tuple[Array, Array, list[Array]]:  # fmt: skip
        """The step's backward: ``dstate`` the gradient reaching the new state. Returns dax,
        dah (B, G*H), the gradients of the input-side and recurrent-side pre-activations
        (the same array but in the GRU), and the gradient of the previous state. Parameter
        gradients that only the step can form (peepholes) are added into ``g`` if given."""
        raise NotImplementedError

    def _add_weight_hh_grad(
        self, gw: Array, dah2: Array, h_prev2: Array, caches: list[Any]
    ) -> None:
        """(5): dW_hh += dA^T H_prev, one product over all T*B rows."""
        gw += dah2.T @ h_prev2

    # --- the whole stack -----------------------------------------------------------------------

    def engine(self, x: Any = None) -> str:
        """The engine that runs this layer: ``"numpy"`` or ``"compiled"`` (see
        :mod:`rnnkit.engine.backend`; ``backend=None`` follows the process default)."""
        return _backend.choose(self.backend, self, x)

    def forward(
        self,
        x: Any,
        state: Any = None,
        lengths: Any = None,
        training: bool = True,
    ) -> tuple[Array, State, Any]:
        """Run the layer over a batch, keeping what backward needs.

        Args:
            x: (B, T, D) input of the layer's dtype.
            state: initial state, h (L*dirs, B, H) or for the LSTM (h, c); zeros if None.
            lengths: optional integers (B,) in [1, T], in any order.
            training: apply dropout between stacked layers.

        Returns:
            out (B, T, dirs*H), final state (same layout as ``state``), cache for backward.
            Without ``lengths``, ``out`` is a read-only view of the hidden states the cache
            keeps (time-major, as torch's ``batch_first`` output is a transposed view):
            copy it to change it.
        """
        return self._forward(x, state, lengths, training, keep=True)

    def __call__(self, x: Any, state: Any = None, lengths: Any = None) -> tuple[Array, State]:
        """Inference: ``out, state = layer(x)``; no dropout, no cache kept."""
        out, st, _ = self._forward(x, state, lengths, training=False, keep=False)
        return out, st

    def _forward(
        self, x: Any, state: Any, lengths: Any, training: bool, keep: bool
    ) -> tuple[Array, State, Any]:
        x = self._check_input(x)
        B, T, _ = x.shape
        lengths = self._check_lengths(lengths, B, T)
        init = self._check_state(state, B)
        E = _engine(self.engine(x))
        mask = None
        valid = np.zeros((0, 0), np.uint8)  # no padding
        if lengths is not None:
            valid = (np.arange(T)[:, None] < lengths[None, :]).astype(np.uint8)  # (T, B)
            mask = valid[:, :, None].astype(self.dtype)  # (T, B, 1): 1 valid, 0 padding
        dirs, H = self.num_directions, self.hidden_size
        finals = [np.empty(self._state_shape(B), self.dtype) for _ in range(self.n_states)]
        layer_in = E.layer_input(self, x, keep)  # (T, B, D) time-major
        layer_caches = []
        for layer in range(self.num_layers):
            drop_cache = None
            if layer > 0 and self.dropout > 0:
                layer_in, drop_cache = dropout_forward(layer_in, self.dropout, self.rng, training)
            # slot 0: forward initial state, 1..T: outputs, T+1: reverse initial state
            hbuf = E.empty((T + dirs, B, dirs * H), self.dtype)
            dir_caches = []
            for d in range(dirs):
                p, _ = self.direction_params(layer, d)
                idx = layer * dirs + d
                final, c = E.direction_forward(
                    self, p, layer_in, hbuf, d, [s[idx] for s in init], valid, keep
                )
                for f, s in zip(finals, final, strict=True):
                    f[idx] = s
                dir_caches.append(c)
            out = hbuf[1 : T + 1]  # (T, B, dirs*H), contiguous
            if mask is not None:
                out = out * mask  # steps past a sequence's end output zeros (hbuf keeps states)
            layer_caches.append((drop_cache, dir_caches))
            layer_in = out
        out_b = layer_in.transpose(1, 0, 2)  # (B, T, dirs*H), a view, as torch's batch_first
        if keep and mask is None:
            # a view of the states the cache holds (padding made ``out`` a new array): no
            # copy (a training step's memory), and read-only, so that changing it in place
            # cannot corrupt the cache (torch checks such changes with version counters)
            out_b.flags.writeable = False
        cache = (E, layer_caches, x.shape) if keep else None
        return out_b, self._pack_state(finals), cache

    def backward(
        self,
        dout: Any,
        cache: Any,
        dstate: Any = None,
        return_hidden_grads: bool = False,
    ) -> tuple[Array, State] | tuple[Array, State, Array]:
        """Backpropagation through time (by the engine that ran the forward pass).

        Args:
            dout: (B, T, dirs*H) gradient of the loss w.r.t. ``out`` (read, not changed).
            cache: what ``forward`` returned; one backward pass uses it up, as PyTorch
                frees a graph's saved tensors (dx is written over the input it kept).
            dstate: gradient w.r.t. the final state (same layout as the state), or None.
            return_hidden_grads: also return dL/dh_t for every layer, direction and step.

        Returns:
            dx (B, T, D) and d(initial state); with ``return_hidden_grads`` also an array
            (L*dirs, B, T, H) holding the total gradient reaching each step's hidden state.
            Parameter gradients are added into ``self.grads``.
        """
        if cache is None:
            raise ValueError(
                "cache: None (was the forward pass run with layer(...) for inference?)"
            )
        E, layer_caches, (B, T, D) = cache
        if not layer_caches:
            raise ValueError(
                "cache: already used by a backward pass, which writes dx over the input it "
                "kept (run forward again for another backward pass)"
            )
        dirs, H = self.num_directions, self.hidden_size
        dout = np.asarray(dout)
        if dout.shape != (B, T, dirs * H):
            raise ValueError(f"dout: expected shape {(B, T, dirs * H)}, got {dout.shape}")
        dfinal = self._check_state(dstate, B)
        # (T, B, dirs*H): a time-major view of the caller's array, which the engines only
        # read (a copy where it has another dtype); the loops ignore the gradient of padded
        # outputs (constants)
        d_out_tm = dout.transpose(1, 0, 2)
        if d_out_tm.dtype != self.dtype:
            d_out_tm = E.copy(d_out_tm, self.dtype)
        dinit = [np.empty(self._state_shape(B), self.dtype) for _ in range(self.n_states)]
        hidden = (
            np.empty((self.num_layers * dirs, B, T, H), self.dtype) if return_hidden_grads else None
        )
        no_hidden = np.empty((0, B, H), self.dtype)
        # the cache is used from here on, even if this pass stops half-way: the first
        # layer's input may already hold part of dx
        layer_caches = cache[1].copy()
        cache[1].clear()
        for layer in range(self.num_layers - 1, -1, -1):
            drop_cache, dir_caches = layer_caches[layer]
            d_in = None
            for d in range(dirs):
                p, g = self.direction_params(layer, d)
                idx = layer * dirs + d
                if d_in is None:
                    xs = dir_caches[d][0]
                    # the first layer's input is the cache's own copy (layer_input), last
                    # read by this direction's backward pass: with one direction dx goes
                    # over it (each step's rows are written after they were read)
                    d_in = xs if layer == 0 and dirs == 1 else E.empty(xs.shape, self.dtype)
                hid = E.empty((T, B, H), self.dtype) if hidden is not None else no_hidden
                d0 = E.direction_backward(
                    self, p, g, d_out_tm, [s[idx] for s in dfinal], dir_caches[d], d_in, d > 0,
                    hid,
                )  # fmt: skip
                for di, s in zip(dinit, d0, strict=True):
                    di[idx] = s
                if hidden is not None:
                    hidden[idx] = hid.transpose(1, 0, 2)
            d_out_tm = dropout_backward(d_in, drop_cache)
        dx = d_out_tm.transpose(1, 0, 2)
        if hidden is not None:
            return dx, self._pack_state(dinit), hidden
        return dx, self._pack_state(dinit)


class RNN(Recurrent):
    r"""Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act in tanh, relu, sigmoid.

    Args:
        input_size: D. hidden_size: H. num_layers: L stacked layers.
        nonlinearity: 'tanh' (default), 'relu' or 'sigmoid' (the last has no PyTorch twin).
        bidirectional: run a second, reversed pass per layer and concatenate the outputs.
        dropout: dropout on the outputs of each layer but the last, in training.
        bias: learn b_ih and b_hh. dtype: float32 or float64.
        seed: int or ``np.random.Generator`` for initialisation and dropout.
        init_range: weights ~ U(-a, a); default a = 1/sqrt(H) as PyTorch.
        recurrent_init: 'uniform' or 'orthogonal' (each gate block of W_hh orthogonal).
        backend: the engine of the loop over time, 'auto', 'numpy' (the loop in this
            module) or 'compiled' (:mod:`rnnkit.fast`); None: the process default
            (:mod:`rnnkit.engine.backend`). Results agree to rounding.

    Inputs/outputs: see :class:`Recurrent` (``forward``, ``backward``, ``__call__``).
    Parameters: ``weight_ih_l{k}`` (H, D or dirs*H), ``weight_hh_l{k}`` (H, H),
    ``bias_ih_l{k}`` (H,), ``bias_hh_l{k}`` (H,), ``_reverse`` suffix for the reverse direction.

    Example:
        >>> rnn = RNN(4, 5, num_layers=2, seed=0, backend="numpy")
        >>> x = np.ones((2, 3, 4), np.float32)
        >>> out, h = rnn(x)
        >>> out.shape, h.shape
        ((2, 3, 5), (2, 2, 5))
    """

    mode = "RNN"
    gates = 1

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1,
        nonlinearity: str = "tanh", **kwargs: Any,
    ) -> None:  # fmt: skip
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(
                f"nonlinearity: expected one of {sorted(ACTIVATIONS)}, got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def step_forward(self, xw, state, p):  # type: ignore[no-untyped-def]
        h, cache = rnn_step_forward(xw, state[0], p["weight_hh"].T, self.nonlinearity)
        return [h], cache

    def step_backward(self, dstate, cache, p, g=None):  # type: ignore[no-untyped-def]
        da, dh_prev = rnn_step_backward(dstate[0], cache, p["weight_hh"])
        return da, da, [dh_prev]


class LSTM(Recurrent):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000).

    i, f, g, o = sigma, sigma, tanh, sigma (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

    Args: as :class:`RNN` (without nonlinearity), plus
        peepholes: add diagonal peephole weights ``weight_ci_l{k}``, ``weight_cf_l{k}``,
            ``weight_co_l{k}`` (H,): the i and f gates see c_{t-1}, the o gate sees c_t
            (Gers & Schmidhuber 2000; Graves 2013 eq. 7-11). PyTorch has no peepholes, so
            such a state_dict does not load into ``torch.nn.LSTM``.
        forget_bias: if given, the forget-gate part of b_ih is set to it and that of b_hh
            to 0 (Jozefowicz et al. 2015 recommend 1.0).

    State: the pair (h, c), each (L*dirs, B, H). Parameters: ``weight_ih_l{k}`` (4H, D),
    ``weight_hh_l{k}`` (4H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4H,), gates i, f, g, o.

    Example:
        >>> lstm = LSTM(4, 5, bidirectional=True, seed=0, backend="numpy")
        >>> x = np.ones((2, 3, 4), np.float32)
        >>> out, (h, c) = lstm(x, lengths=np.array([3, 1]))
        >>> out.shape, h.shape, float(abs(out[1, 1:]).max())
        ((2, 3, 10), (2, 2, 5), 0.0)
    """

    mode = "LSTM"
    gates = 4
    n_states = 2

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1,
        peepholes: bool = False, forget_bias: float | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.peepholes = bool(peepholes)
        super().__init__(input_size, hidden_size, num_layers, **kwargs)
        if forget_bias is not None:
            if not self.bias:
                raise ValueError("forget_bias: needs bias=True")
            H = self.hidden_size
            for name, p in self.params.items():
                if name.startswith("bias_ih"):
                    p[H : 2 * H] = forget_bias
                elif name.startswith("bias_hh"):
                    p[H : 2 * H] = 0.0

    def _extra_params(self) -> list[str]:
        return ["weight_ci", "weight_cf", "weight_co"] if self.peepholes else []

    def _peep(self, p: dict[str, Array]) -> tuple[Array, Array, Array] | None:
        return (p["weight_ci"], p["weight_cf"], p["weight_co"]) if self.peepholes else None

    def step_forward(self, xw, state, p):  # type: ignore[no-untyped-def]
        h, c, cache = lstm_step_forward(xw, state[0], state[1], p["weight_hh"].T, self._peep(p))
        return [h, c], cache

    def step_backward(self, dstate, cache, p, g=None):  # type: ignore[no-untyped-def]
        da, dh_prev, dc_prev, dpeep = lstm_step_backward(
            dstate[0], dstate[1], cache, p["weight_hh"], self._peep(p)
        )
        if g is not None and dpeep is not None:  # peepholes: dw_c* = sum over rows
            g["weight_ci"] += dpeep[0]
            g["weight_cf"] += dpeep[1]
            g["weight_co"] += dpeep[2]
        return da, da, [dh_prev, dc_prev]


class GRU(Recurrent):
    r"""Gated recurrent unit (Cho et al. 2014), gates r, z, n.

    r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    reset_after=True:  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   (PyTorch, cuDNN)
    reset_after=False: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)   (Cho et al. 2014)
    h_t = (1 - z) * n + z * h_{t-1}

    Args: as :class:`RNN` (without nonlinearity), plus ``reset_after``. Both forms have the
    same parameters as ``torch.nn.GRU``: ``weight_ih_l{k}`` (3H, D), ``weight_hh_l{k}``
    (3H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (3H,). The textbook form needs two dependent
    matmuls per step instead of one.

    Example:
        >>> gru = GRU(4, 5, reset_after=False, seed=0, backend="numpy")
        >>> out, h = gru(np.ones((2, 3, 4), np.float32))
        >>> out.shape, h.shape
        ((2, 3, 5), (1, 2, 5))
    """

    mode = "GRU"
    gates = 3

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1,
        reset_after: bool = True, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def input_bias(self, p: dict[str, Array]) -> Array | float:
        # b_hh is applied inside the step (cells.gru_step_forward): b_hn sits inside r * (...)
        return p["bias_ih"] if self.bias else 0.0

    def _b_hh(self, p: dict[str, Array]) -> Array:
        if self.bias:
            return p["bias_hh"]
        return np.zeros(self.gates * self.hidden_size, self.dtype)

    def step_forward(self, xw, state, p):  # type: ignore[no-untyped-def]
        h, cache = gru_step_forward(xw, state[0], p["weight_hh"].T, self._b_hh(p), self.reset_after)
        return [h], cache

    def step_backward(self, dstate, cache, p, g=None):  # type: ignore[no-untyped-def]
        dax, dah, dh_prev = gru_step_backward(dstate[0], cache, p["weight_hh"])
        return dax, dah, [dh_prev]

    def _add_weight_hh_grad(
        self, gw: Array, dah2: Array, h_prev2: Array, caches: list[Any]
    ) -> None:
        if self.reset_after:
            super()._add_weight_hh_grad(gw, dah2, h_prev2, caches)
            return
        # the textbook form: the n rows of W_hh multiply r * h_{t-1} (cached as rec_in),
        # the r and z rows h_{t-1}
        H = self.hidden_size
        rec_in = np.concatenate([c[5] for c in caches])  # (T*B, H), steps in order
        gw[: 2 * H] += dah2[:, : 2 * H].T @ h_prev2
        gw[2 * H :] += dah2[:, 2 * H :].T @ rec_in
