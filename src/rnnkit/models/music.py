"""Polyphonic music as a piano roll: a recurrent network with an independent Bernoulli per
pitch at every time step (Boulanger-Lewandowski et al. 2012's "RNN" baseline; Chung et al.
2014's model of the music data sets).

At step t the network has read the frames x_1 .. x_{t-1} (a frame of zeros stands before
x_1) and gives each pitch k the probability p_tk = sigmoid(o_tk) of sounding in x_t:

    h_t = cell(x_{t-1}, h_{t-1}),   o_t = W h_t + b,
    -log P(x_t | x_<t) = sum_k softplus(o_tk) - x_tk o_tk,

and the loss is that negative log-likelihood (nats) summed over the pitches and averaged
over every time step of every sequence (padding excluded): the "NLL per time step" the
papers report. Every frame is predicted, the first one too.

Parameter names: ``rnn.weight_ih_l0`` ... (PyTorch's), ``out.weight`` (P, H), ``out.bias``.

The token form of the chorales (:mod:`rnnkit.text.chorales`) needs no model of its own: it
is a sequence of words for :class:`rnnkit.models.lm.LanguageModel`.

>>> m = PianoRollModel(PianoRollConfig(pitches=6, cell="gru", hidden=5), seed=0)
>>> x = (np.random.default_rng(0).random((2, 4, 6)) < 0.3).astype(np.float32)
>>> loss, _, cache = m.forward(x, lengths=np.array([4, 2]))
>>> m.backward(cache)
>>> 3.0 < loss < 5.0, sorted(m.grads)[:2]   # about 6 log 2 = 4.16 at initialisation
(True, ['out.bias', 'out.weight'])
>>> hidden_for_budget("lstm", pitches=6, budget=m.num_parameters()) <= 5
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.layers import Recurrent, State
from rnnkit.engine.module import ModelConfig, Module
from rnnkit.models.lm import CELLS

Array = np.ndarray
GATES = {"rnn": 1, "gru": 3, "lstm": 4}

__all__ = [
    "PianoRollConfig",
    "PianoRollModel",
    "bernoulli_nll_backward",
    "bernoulli_nll_forward",
    "count_parameters",
    "hidden_for_budget",
]


# --- the loss ----------------------------------------------------------------------------------


def bernoulli_nll_forward(logits: Array, targets: Array, mask: Array | None = None
                          ) -> tuple[float, Any]:  # fmt: skip
    """Independent Bernoulli NLL per time step: sum over the last axis (pitches) of
    softplus(o) - y o, averaged over the steps where ``mask`` (B, T) is 1 (all if None).

    softplus(o) = max(o, 0) + log(1 + exp(-|o|)) never overflows.

    >>> o = np.array([[[0.0, 2.0]]]); y = np.array([[[1.0, 0.0]]])
    >>> loss, cache = bernoulli_nll_forward(o, y)
    >>> round(loss, 6) == round(math.log(2) + math.log(1 + math.exp(2)), 6)
    True
    """
    if logits.shape != targets.shape:
        raise ValueError(f"targets: expected shape {logits.shape}, got {targets.shape}")
    o = logits.astype(np.float64)
    per = np.maximum(o, 0.0) - targets * o + np.log1p(np.exp(-np.abs(o)))  # (B, T, P)
    per_step = per.sum(axis=-1)  # (B, T)
    if mask is None:
        mask = np.ones(per_step.shape)
    count = float(mask.sum())
    if count == 0:
        raise ValueError("bernoulli_nll: no step to score (the mask is all zeros)")
    return float((per_step * mask).sum() / count), (logits, targets, mask, count)


def bernoulli_nll_backward(dloss: float, cache: Any) -> Array:
    """d loss / d logits = (sigmoid(o) - y) * mask / count."""
    logits, targets, mask, count = cache
    g = (ops.sigmoid(logits) - targets) * (mask[..., None] * (dloss / count))
    return g.astype(logits.dtype, copy=False)


# --- the model ---------------------------------------------------------------------------------


def count_parameters(cell: str, pitches: int, hidden: int, layers: int = 1) -> int:
    """Parameters of a :class:`PianoRollModel`: G H (D + H + 2) per layer (two bias
    vectors, as PyTorch's layers have), D = P for the first layer and H above, and the
    output layer's P H + P."""
    G, H, P = GATES[cell], hidden, pitches
    rec = sum(G * H * ((P if layer == 0 else H) + H + 2) for layer in range(layers))
    return rec + P * H + P


def hidden_for_budget(cell: str, pitches: int, budget: int, layers: int = 1) -> int:
    """The hidden size whose model has the parameter count nearest ``budget`` (ties: the
    smaller), so that cells can be compared at the same size (Chung et al. 2014 gave each
    cell about 20,000 parameters)."""
    if cell not in GATES:
        raise ValueError(f"cell: expected one of {sorted(GATES)}, got {cell!r}")
    best, gap = 1, math.inf
    for h in range(1, 4096):
        d = abs(count_parameters(cell, pitches, h, layers) - budget)
        if d < gap:
            best, gap = h, d
        elif count_parameters(cell, pitches, h, layers) > budget:
            break
    return best


@dataclass
class PianoRollConfig(ModelConfig):
    """Everything needed to rebuild a piano-roll model; saved as JSON beside its weights."""

    pitches: int  # P, the width of a frame
    cell: str = "gru"  # rnn (tanh) | gru | lstm
    hidden: int = 64  # H, per layer
    layers: int = 1  # L
    dropout: float = 0.0  # between stacked layers and before the output layer (training)
    init_range: float | None = None  # all weights ~ U(-a, a); None: PyTorch's defaults
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.check_positive("pitches", "hidden", "layers")
        self.check_choice("cell", CELLS)
        self.check_probability("dropout")
        self.check_dtype()


class PianoRollModel(Module):
    """Frames in, per-pitch Bernoulli probabilities of the next frame out (see the module doc).

    Args:
        config: the :class:`PianoRollConfig`.
        seed: int or ``np.random.Generator`` for initialisation and dropout.

    :meth:`forward` takes frames (B, T, P) of 0/1 and optional lengths (B,); returns (mean
    NLL per step, final state, cache); the logits (B, T, P) are in ``cache["logits"]``.
    """

    def __init__(self, config: PianoRollConfig, seed: int | np.random.Generator | None = None
                 ) -> None:  # fmt: skip
        self.config = c = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        dtype = np.dtype(c.dtype)
        self.rnn: Recurrent = CELLS[c.cell](
            c.pitches, c.hidden, num_layers=c.layers, dropout=c.dropout, dtype=dtype,
            seed=self.rng, init_range=c.init_range,
        )  # fmt: skip
        a = 1.0 / math.sqrt(c.hidden) if c.init_range is None else c.init_range
        self.params: dict[str, Array] = {"rnn." + k: v for k, v in self.rnn.params.items()}
        self.params["out.weight"] = self.rng.uniform(-a, a, (c.pitches, c.hidden)).astype(dtype)
        self.params["out.bias"] = self.rng.uniform(-a, a, c.pitches).astype(dtype)
        # the recurrent layer's arrays are shared, not copied
        self.grads: dict[str, Array] = {"rnn." + k: v for k, v in self.rnn.grads.items()}
        for k in ("out.weight", "out.bias"):
            self.grads[k] = np.zeros_like(self.params[k])

    @property
    def dtype(self) -> np.dtype:
        return self.rnn.dtype

    def forward(
        self, frames: Array, lengths: Array | None = None, state: State | None = None,
        training: bool = True, score: bool = True,
    ) -> tuple[float | None, State, dict[str, Any]]:  # fmt: skip
        """Predict every frame from those before it; the loss is the mean NLL per step.

        With ``score=False`` the frames are inputs only (no frame of zeros is put first and
        no loss is computed): the logits at step t are then for the frame after ``frames[t]``.
        """
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.shape[2] != self.config.pitches:
            raise ValueError(f"frames: expected shape (B, T, {self.config.pitches}), "
                             f"got {frames.shape}")  # fmt: skip
        B, T, _ = frames.shape
        x = frames.astype(self.dtype, copy=False)
        if score:  # input at t is frame t-1; a frame of zeros before the first
            x = np.concatenate([np.zeros((B, 1, x.shape[2]), self.dtype), x[:, :-1]], axis=1)
        out, state, rnn_cache = self.rnn.forward(x, state, lengths=lengths, training=training)
        out, drop = ops.dropout_forward(out, self.config.dropout, self.rng, training)
        logits, lin = ops.linear_forward(out, self.params["out.weight"], self.params["out.bias"])
        loss, nll = None, None
        if score:
            mask = None
            if lengths is not None:
                mask = (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)
            loss, nll = bernoulli_nll_forward(logits, frames, mask)
        return loss, state, {"logits": logits, "rnn": rnn_cache, "drop": drop, "lin": lin,
                             "nll": nll}  # fmt: skip

    def backward(self, cache: dict[str, Any], dstate: Any = None, dloss: float = 1.0) -> None:
        """Backpropagate ``dloss`` times the mean NLL of :meth:`forward` into ``grads`` (+=)."""
        if cache["nll"] is None:
            raise ValueError("backward: the forward pass computed no loss (score=False)")
        dlogits = bernoulli_nll_backward(dloss, cache["nll"])  # (B, T, P)
        dout, dW, db = ops.linear_backward(dlogits, cache["lin"])
        self.grads["out.weight"] += dW
        self.grads["out.bias"] += db
        dout = ops.dropout_backward(dout, cache["drop"])
        self.rnn.backward(dout, cache["rnn"], dstate)

    def sample(
        self, steps: int, rng: np.random.Generator, prime: Array | None = None,
        temperature: float = 1.0,
    ) -> Array:  # fmt: skip
        """A roll (T0 + steps, P): the ``prime`` frames (T0, P), if any, then ``steps``
        frames drawn one at a time, each pitch from Bernoulli(sigmoid(o / temperature))."""
        if temperature <= 0:
            raise ValueError(f"temperature: must be positive, got {temperature}")
        P = self.config.pitches
        frames = [np.zeros(P, self.dtype)]
        if prime is not None and len(prime):
            prime = np.asarray(prime, self.dtype)
            if prime.ndim != 2 or prime.shape[1] != P:
                raise ValueError(f"prime: expected shape (T, {P}), got {prime.shape}")
            frames += list(prime)
        _, state, cache = self.forward(np.stack(frames)[None], None, None, training=False,
                                       score=False)  # fmt: skip
        logits = cache["logits"][0, -1]
        drawn = []
        for _ in range(steps):
            p = ops.sigmoid(logits.astype(np.float64) / temperature)
            frame = (rng.random(P) < p).astype(self.dtype)
            drawn.append(frame)
            _, state, cache = self.forward(frame[None, None], None, state, training=False,
                                           score=False)  # fmt: skip
            logits = cache["logits"][0, -1]
        rows = frames[1:] + drawn
        return np.stack(rows) if rows else np.zeros((0, P), self.dtype)
