"""Conditional generation (one-to-many) and the decoders shared by every sequence generator.

Decoders work on any model that offers a *step function*::

    step(tokens, state) -> (log_probs, state)
    tokens (K,) int, the last token of each of K hypotheses; log_probs (K, V) float

:func:`greedy_decode` and :func:`sample_decode` run a batch of K independent sequences; beam
search, which keeps the K likeliest prefixes of a sequence and ranks the finished ones by
length-normalised log-probability, is :mod:`rnnkit.models.beam`'s.

:class:`ConditionalGenerator` is the one-to-many model: a feature vector x (an image, a
class, an encoder summary) sets the initial state, h0 = tanh(W_h x + b_h) (and for the LSTM
c0 = tanh(W_c x + b_c)), optionally x is also concatenated to the input of every step
(as in Mao et al. 2015's m-RNN, where the image feeds each step, versus Vinyals et al. 2015's
"Show and Tell", where it enters once); the decoder is trained with teacher forcing,
maximising sum_t log P(y_t | y_<t, x) (inputs BOS y_1 ... y_T, targets y_1 ... y_T EOS).

>>> table = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.4, 0.4, 0.2]]))
>>> step = lambda tokens, state: (table[tokens], state)   # a first-order Markov chain
>>> greedy_decode(step, None, bos=0, eos=2, max_len=5, batch_size=1)
[[1, 0, 1, 0, 1]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.engine.module import ModelConfig, Module
from rnnkit.models.beam import StepFn, beam_search

Array = np.ndarray

__all__ = [
    "ConditionalGenerator",
    "GeneratorConfig",
    "greedy_decode",
    "sample_decode",
    "teacher_forcing",
]

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


# --- decoders --------------------------------------------------------------------------------


def _strip(seq: list[int], eos: int) -> list[int]:
    return seq[: seq.index(eos)] if eos in seq else seq


def greedy_decode(
    step: StepFn, state: Any, bos: int, eos: int, max_len: int, batch_size: int
) -> list[list[int]]:
    """Take the arg max at every step, for ``batch_size`` sequences at once.

    Returns one token list per sequence, without BOS and EOS; a sequence that has not
    produced EOS after ``max_len`` tokens is returned with ``max_len`` tokens.
    """
    return _decode(step, state, bos, eos, max_len, batch_size, None, 1.0)


def sample_decode(
    step: StepFn, state: Any, bos: int, eos: int, max_len: int, batch_size: int,
    rng: np.random.Generator, temperature: float = 1.0,
) -> list[list[int]]:  # fmt: skip
    """Draw each token from softmax(log_probs / temperature); otherwise as :func:`greedy_decode`."""
    if temperature <= 0:
        raise ValueError(f"temperature: must be positive, got {temperature}")
    return _decode(step, state, bos, eos, max_len, batch_size, rng, temperature)


def _decode(
    step: StepFn, state: Any, bos: int, eos: int, max_len: int, batch_size: int,
    rng: np.random.Generator | None, temperature: float,
) -> list[list[int]]:  # fmt: skip
    if max_len < 1 or batch_size < 1:
        raise ValueError(f"max_len and batch_size must be positive, got {max_len}, {batch_size}")
    tokens = np.full(batch_size, bos, dtype=np.int64)
    out = np.empty((batch_size, max_len), dtype=np.int64)
    done = np.zeros(batch_size, dtype=bool)
    for t in range(max_len):
        logp, state = step(tokens, state)
        logp = np.asarray(logp, dtype=np.float64)
        if rng is None:
            tokens = logp.argmax(axis=1)
        else:
            # inverse-CDF draw per row from softmax(logp / temperature)
            z = logp / temperature
            p = np.exp(z - z.max(axis=1, keepdims=True))
            cdf = np.cumsum(p, axis=1)
            u = rng.random(batch_size)[:, None] * cdf[:, -1:]
            tokens = np.minimum((cdf < u).sum(axis=1), logp.shape[1] - 1)
        out[:, t] = tokens
        done |= tokens == eos
        if done.all():
            out = out[:, : t + 1]
            break
    return [_strip(row.tolist(), eos) for row in out]


def teacher_forcing(
    seqs: Sequence[Sequence[int]], bos: int, eos: int, pad: int = 0
) -> tuple[Array, Array, Array]:
    """Inputs ``BOS y_1 .. y_n`` and targets ``y_1 .. y_n EOS`` of target sequences, padded.

    Returns inputs (B, T), targets (B, T) and lengths (B,) = n + 1, T = the largest length.

    >>> inp, tgt, lengths = teacher_forcing([[5, 6], [7]], bos=1, eos=2)
    >>> inp.tolist(), tgt.tolist(), lengths.tolist()
    ([[1, 5, 6], [1, 7, 0]], [[5, 6, 2], [7, 2, 0]], [3, 2])
    """
    lengths = np.array([len(s) + 1 for s in seqs], dtype=np.int64)
    T = int(lengths.max())
    inputs = np.full((len(seqs), T), pad, dtype=np.int64)
    targets = np.full((len(seqs), T), pad, dtype=np.int64)
    for b, s in enumerate(seqs):
        inputs[b, : len(s) + 1] = [bos, *s]
        targets[b, : len(s) + 1] = [*s, eos]
    return inputs, targets, lengths


# --- the conditional generator ---------------------------------------------------------------


@dataclass
class GeneratorConfig(ModelConfig):
    """Everything needed to rebuild a conditional generator; saved as JSON beside its weights."""

    feature_size: int  # F, the size of the conditioning vector x
    vocab_size: int  # V, output symbols including the special ones
    cell: str = "lstm"  # rnn | lstm | gru
    embed: int = 32  # E
    hidden: int = 64  # H per layer
    layers: int = 1  # L
    feed_input: bool = False  # concatenate x to the input of every step
    dropout: float = 0.0  # on x, on the embeddings, between layers, before the output layer
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.check_positive("feature_size", "vocab_size", "embed", "hidden", "layers")
        self.check_choice("cell", CELLS)
        self.check_probability("dropout")
        self.check_dtype()


class ConditionalGenerator(Module):
    r"""One-to-many: a vector x in, a token sequence out.

    h0 = tanh(W_h x + b_h) reshaped to (L, B, H) (LSTM: also c0 = tanh(W_c x + b_c));
    input of step t: embed(y_{t-1}) (and x, with ``feed_input``); output
    P(y_t | y_<t, x) = softmax(W_o h_t + b_o).

    Parameters (PyTorch-style names): ``init_h.weight`` (L*H, F), ``init_h.bias`` (L*H,),
    for the LSTM ``init_c.weight``/``init_c.bias``, ``embedding.weight`` (V, E),
    ``rnn.weight_ih_l0`` ... (input E, or E + F with ``feed_input``), ``out.weight`` (V, H),
    ``out.bias`` (V,).

    Inputs/outputs of :meth:`forward`: x (B, F); inputs (B, T) int (BOS then the target
    shifted right, padded anywhere past ``lengths``); targets (B, T) int; lengths (B,) in
    [1, T]. Returns (mean NLL per target token or None, logits (B, T, V), cache).

    Example:
        >>> cfg = GeneratorConfig(feature_size=3, vocab_size=6, hidden=4, embed=2)
        >>> gen = ConditionalGenerator(cfg, seed=0)
        >>> x = np.ones((2, 3), np.float32)
        >>> inp, tgt = np.array([[1, 3, 4], [1, 5, 0]]), np.array([[3, 4, 2], [5, 2, 0]])
        >>> loss, logits, cache = gen.forward(x, inp, tgt, np.array([3, 2]))
        >>> gen.zero_grad(); dx = gen.backward(cache); logits.shape, dx.shape
        ((2, 3, 6), (2, 3))
        >>> len(gen.decode(x, bos=1, eos=2, max_len=4, method="beam", beam_size=2))
        2
    """

    def __init__(self, config: GeneratorConfig, seed: int | np.random.Generator | None = None):
        self.config = c = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        dtype = self.dtype = np.dtype(c.dtype)
        d_in = c.embed + (c.feature_size if c.feed_input else 0)
        self.rnn: Recurrent = CELLS[c.cell](
            d_in, c.hidden, num_layers=c.layers, dropout=c.dropout, dtype=dtype, seed=self.rng
        )
        LH = c.layers * c.hidden
        kf, kh = 1.0 / math.sqrt(c.feature_size), 1.0 / math.sqrt(c.hidden)
        u = self.rng.uniform
        p: dict[str, Array] = {
            "init_h.weight": u(-kf, kf, (LH, c.feature_size)),
            "init_h.bias": u(-kf, kf, LH),
        }
        if c.cell == "lstm":
            p["init_c.weight"] = u(-kf, kf, (LH, c.feature_size))
            p["init_c.bias"] = u(-kf, kf, LH)
        p["embedding.weight"] = self.rng.standard_normal((c.vocab_size, c.embed))
        p["out.weight"] = u(-kh, kh, (c.vocab_size, c.hidden))
        p["out.bias"] = u(-kh, kh, c.vocab_size)
        self.params = {k: v.astype(dtype) for k, v in p.items()}
        self.params.update({"rnn." + k: v for k, v in self.rnn.params.items()})
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items() if k[:4] != "rnn."}
        self.grads.update({"rnn." + k: v for k, v in self.rnn.grads.items()})

    # --- the initial state ---------------------------------------------------------------------

    def _init_forward(self, x: Array) -> tuple[Any, Any]:
        """x (B, F) -> state ((L, B, H) each) and a cache."""
        c = self.config
        B = x.shape[0]
        parts, caches = [], []
        for name in ("init_h", "init_c") if c.cell == "lstm" else ("init_h",):
            a, lin = ops.linear_forward(
                x, self.params[name + ".weight"], self.params[name + ".bias"]
            )
            s, act = ops.tanh_forward(a)  # (B, L*H)
            parts.append(np.ascontiguousarray(s.reshape(B, c.layers, c.hidden).transpose(1, 0, 2)))
            caches.append((name, lin, act))
        state = (parts[0], parts[1]) if c.cell == "lstm" else parts[0]
        return state, caches

    def _init_backward(self, dstate: Any, caches: Any) -> Array:
        """Gradient w.r.t. the initial state -> d x (B, F); parameter gradients added."""
        c = self.config
        parts = dstate if c.cell == "lstm" else (dstate,)
        dx = None
        for d, (name, lin, act) in zip(parts, caches, strict=True):
            B = d.shape[1]
            da = ops.tanh_backward(d.transpose(1, 0, 2).reshape(B, -1), act)
            dxi, dW, db = ops.linear_backward(da, lin)
            self.grads[name + ".weight"] += dW
            self.grads[name + ".bias"] += db
            dx = dxi if dx is None else dx + dxi
        return dx

    def initial_state(self, x: Array) -> Any:
        """The decoder's initial state for features x (B, F)."""
        return self._init_forward(self._check_x(x))[0]

    def _check_x(self, x: Any) -> Array:
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.config.feature_size:
            raise ValueError(
                f"x: expected shape (B, {self.config.feature_size}), got {np.shape(x)}"
            )
        return x

    # --- teacher forcing ---------------------------------------------------------------------

    def forward(
        self, x: Array, inputs: Array, targets: Array | None = None,
        lengths: Array | None = None, training: bool = True,
    ) -> tuple[float | None, Array, dict[str, Any]]:  # fmt: skip
        """Teacher-forced pass; see the class doc for shapes."""
        c = self.config
        x = self._check_x(x)
        inputs = np.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[0] != x.shape[0]:
            raise ValueError(f"inputs: expected shape ({x.shape[0]}, T), got {inputs.shape}")
        B, T = inputs.shape
        xd, drop_x = ops.dropout_forward(x, c.dropout, self.rng, training)
        state, init_cache = self._init_forward(xd)
        emb, emb_cache = ops.embedding_forward(inputs, self.params["embedding.weight"])  # (B,T,E)
        emb, drop_e = ops.dropout_forward(emb, c.dropout, self.rng, training)
        if c.feed_input:
            emb = np.concatenate([emb, np.broadcast_to(xd[:, None, :], (B, T, xd.shape[1]))], 2)
        out, _, rnn_cache = self.rnn.forward(emb, state, lengths, training)  # (B, T, H)
        out, drop_o = ops.dropout_forward(out, c.dropout, self.rng, training)
        logits, lin = ops.linear_forward(out, self.params["out.weight"], self.params["out.bias"])
        loss, ce = None, None
        if targets is not None:
            mask = None
            if lengths is not None:
                mask = np.arange(T)[None, :] < np.asarray(lengths)[:, None]  # (B, T)
            loss, ce = ops.cross_entropy_forward(logits, targets, mask)
        cache = dict(drop_x=drop_x, init=init_cache, emb=emb_cache, drop_e=drop_e,
                     rnn=rnn_cache, drop_o=drop_o, lin=lin, ce=ce)  # fmt: skip
        return loss, logits, cache

    def backward(self, cache: dict[str, Any]) -> Array:
        """Backpropagate the mean loss; parameter gradients are added. Returns d x (B, F)."""
        c = self.config
        if cache["ce"] is None:
            raise ValueError("backward: the forward pass had no targets, so there is no loss")
        dlogits = ops.cross_entropy_backward(1.0, cache["ce"])  # (B, T, V)
        dout, dW, db = ops.linear_backward(dlogits, cache["lin"])
        self.grads["out.weight"] += dW
        self.grads["out.bias"] += db
        dout = ops.dropout_backward(dout, cache["drop_o"])
        demb, dstate = self.rnn.backward(dout, cache["rnn"])
        dxd = self._init_backward(dstate, cache["init"])
        if c.feed_input:
            dxd = dxd + demb[:, :, c.embed :].sum(axis=1)
            demb = demb[:, :, : c.embed]
        demb = ops.dropout_backward(demb, cache["drop_e"])
        self.grads["embedding.weight"] += ops.embedding_backward(demb, cache["emb"])
        return ops.dropout_backward(dxd, cache["drop_x"])

    # --- decoding ----------------------------------------------------------------------------

    def step_fn(self, x: Array) -> StepFn:
        """The step function for features x (B, F), or (1, F) broadcast to any number of
        hypotheses (beam search over one input)."""
        x = self._check_x(x)
        W, b = self.params["out.weight"], self.params["out.bias"]
        emb_w = self.params["embedding.weight"]

        def step(tokens: Array, state: Any) -> tuple[Array, Any]:
            inp = emb_w[np.asarray(tokens)][:, None, :]  # (K, 1, E)
            if self.config.feed_input:
                xs = np.broadcast_to(x, (inp.shape[0], x.shape[1]))
                inp = np.concatenate([inp, xs[:, None, :]], axis=2)
            out, state = self.rnn(inp, state)
            logits = out[:, 0] @ W.T + b  # (K, V)
            return ops.log_softmax(logits.astype(np.float64)), state

        return step

    def decode(
        self, x: Array, bos: int, eos: int, max_len: int, method: str = "greedy",
        beam_size: int = 5, alpha: float = 1.0, temperature: float = 1.0,
        rng: np.random.Generator | None = None,
    ) -> list[list[int]]:  # fmt: skip
        """Token lists (no BOS/EOS) for each row of x (B, F).

        ``method``: ``"greedy"``, ``"sample"`` (from softmax(logits / temperature)) or
        ``"beam"`` (:func:`rnnkit.models.beam.beam_search` per row, K = ``beam_size``,
        normalisation ``alpha``).
        """
        x = self._check_x(x)
        if method == "greedy":
            return greedy_decode(self.step_fn(x), self.initial_state(x), bos, eos, max_len,
                                 x.shape[0])  # fmt: skip
        if method == "sample":
            rng = rng or np.random.default_rng()
            return sample_decode(self.step_fn(x), self.initial_state(x), bos, eos, max_len,
                                 x.shape[0], rng, temperature)  # fmt: skip
        if method == "beam":
            out = []
            for row in x:
                xr = row[None, :]
                hyps = beam_search(self.step_fn(xr), self.initial_state(xr), bos, eos,
                                   beam_size, max_len, alpha)  # fmt: skip
                out.append(hyps[0][0])
            return out
        raise ValueError(f"method: expected greedy, sample or beam, got {method!r}")
