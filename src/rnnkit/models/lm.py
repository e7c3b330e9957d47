"""Recurrent language models: embedding -> stacked RNN/LSTM/GRU -> linear -> softmax.

The model of Mikolov et al. 2010 (RNNLM) with the LSTM and dropout of Zaremba et al. 2014
(dropout on the non-recurrent connections only: the embedding output, between stacked
layers, and the last layer's output) and optional tied input/output embeddings (Press &
Wolf 2017; Inan et al. 2017). The loss is the mean negative log-likelihood per token,
L = -(1/N) sum_t log P(w_t | w_<t); perplexity is exp(L) and bits per character L / ln 2.

Parameter names follow PyTorch's word-language-model example (``encoder.weight``,
``rnn.weight_ih_l0``, ..., ``decoder.weight``, ``decoder.bias``), so the weights load into an
equivalent torch model.

>>> cfg = LMConfig(vocab_size=7, cell="gru", embed=4, hidden=5, layers=2)
>>> lm = LanguageModel(cfg, seed=0)
>>> ids = np.array([[1, 2, 3, 4], [4, 3, 2, 1]])
>>> loss, state, cache = lm.forward(ids[:, :-1], ids[:, 1:])
>>> lm.backward(cache)
>>> sorted(lm.grads)[:3], 1.5 < loss < 2.5   # about log 7 at initialisation
(['decoder.bias', 'decoder.weight', 'encoder.weight'], True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent, State
from rnnkit.engine.module import ModelConfig, Module

Array = np.ndarray

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


@dataclass
class LMConfig(ModelConfig):
    """Everything needed to rebuild a language model; saved as JSON beside its weights."""

    vocab_size: int  # V
    cell: str = "lstm"  # rnn | lstm | gru
    embed: int = 200  # E, the embedding size
    hidden: int = 200  # H, per layer
    layers: int = 2  # L
    dropout: float = 0.0  # on embeddings, between layers and before the decoder (training)
    tie_weights: bool = False  # decoder.weight is encoder.weight (needs embed == hidden)
    init_range: float | None = None  # all weights ~ U(-a, a); None: PyTorch's defaults
    nonlinearity: str = "tanh"  # for cell == "rnn"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.check_positive("vocab_size", "embed", "hidden", "layers")
        self.check_choice("cell", CELLS)
        self.check_probability("dropout")
        if self.tie_weights and self.embed != self.hidden:
            raise ValueError(
                f"tie_weights: needs embed == hidden, got embed={self.embed}, hidden={self.hidden}"
            )
        self.check_dtype()


class LanguageModel(Module):
    """Embedding -> recurrent stack -> linear decoder, trained by next-token cross-entropy.

    Args:
        config: the :class:`LMConfig`.
        seed: int or ``np.random.Generator`` for initialisation and dropout.

    Inputs/outputs of :meth:`forward`: ids (B, T) int, targets (B, T) int or None,
    state as the recurrent layer's; returns (mean loss or None, final state, cache) and the
    logits (B, T, V) are in ``cache["logits"]``.
    """

    def __init__(self, config: LMConfig, seed: int | np.random.Generator | None = None) -> None:
        self.config = c = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        dtype = np.dtype(c.dtype)
        kw: dict[str, Any] = dict(
            num_layers=c.layers, dropout=c.dropout, dtype=dtype, seed=self.rng,
            init_range=c.init_range,
        )  # fmt: skip
        if c.cell == "rnn":
            kw["nonlinearity"] = c.nonlinearity
        self.rnn: Recurrent = CELLS[c.cell](c.embed, c.hidden, **kw)
        # PyTorch's defaults: nn.Embedding ~ N(0, 1), nn.Linear ~ U(+-1/sqrt(H)).
        if c.init_range is None:
            enc = self.rng.standard_normal((c.vocab_size, c.embed))
            k = 1.0 / math.sqrt(c.hidden)
            dec_w = self.rng.uniform(-k, k, (c.vocab_size, c.hidden))
            dec_b = self.rng.uniform(-k, k, c.vocab_size)
        else:
            a = c.init_range
            enc = self.rng.uniform(-a, a, (c.vocab_size, c.embed))
            dec_w = self.rng.uniform(-a, a, (c.vocab_size, c.hidden))
            dec_b = np.zeros(c.vocab_size)
        self.params: dict[str, Array] = {"encoder.weight": enc.astype(dtype)}
        self.params.update({"rnn." + k: v for k, v in self.rnn.params.items()})
        if not c.tie_weights:
            self.params["decoder.weight"] = dec_w.astype(dtype)
        self.params["decoder.bias"] = dec_b.astype(dtype)
        # the recurrent layer's arrays are shared, not copied: updating one updates both
        self.grads: dict[str, Array] = {
            "encoder.weight": np.zeros_like(self.params["encoder.weight"])
        }
        self.grads.update({"rnn." + k: v for k, v in self.rnn.grads.items()})
        for k in ("decoder.weight", "decoder.bias"):
            if k in self.params:
                self.grads[k] = np.zeros_like(self.params[k])

    @property
    def decoder_weight(self) -> Array:
        return self.params["encoder.weight" if self.config.tie_weights else "decoder.weight"]

    def init_state(self, batch_size: int) -> State:
        shape = (self.config.layers, batch_size, self.config.hidden)
        z = np.zeros(shape, self.rnn.dtype)
        return (z, z.copy()) if self.config.cell == "lstm" else z

    def forward(
        self, ids: Array, targets: Array | None = None, state: State | None = None,
        training: bool = True,
    ) -> tuple[float | None, State, dict[str, Any]]:  # fmt: skip
        """ids (B, T) -> logits (B, T, V); the loss is the mean NLL of ``targets``."""
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids: expected shape (B, T), got {ids.shape}")
        p = self.config.dropout
        emb, emb_cache = ops.embedding_forward(ids, self.params["encoder.weight"])  # (B, T, E)
        emb, drop_in = ops.dropout_forward(emb, p, self.rng, training)
        out, state, rnn_cache = self.rnn.forward(emb, state, training=training)  # (B, T, H)
        out, drop_out = ops.dropout_forward(out, p, self.rng, training)
        logits, lin_cache = ops.linear_forward(
            out, self.decoder_weight, self.params["decoder.bias"]
        )  # (B, T, V)
        loss, ce_cache = None, None
        if targets is not None:
            loss, ce_cache = ops.cross_entropy_forward(logits, targets)
        cache = dict(
            logits=logits, emb=emb_cache, drop_in=drop_in, rnn=rnn_cache, drop_out=drop_out,
            lin=lin_cache, ce=ce_cache,
        )  # fmt: skip
        return loss, state, cache

    def backward(self, cache: dict[str, Any], dstate: Any = None, dloss: float = 1.0) -> None:
        """Backpropagate ``dloss`` times the mean loss of :meth:`forward` into ``grads`` (+=).

        ``dstate`` (the gradient w.r.t. the final state) is None in truncated BPTT, where
        the state is carried to the next window without gradient. ``dloss = T`` turns the
        mean over all B*T tokens into Zaremba et al.'s loss: summed over the T steps of the
        window, averaged over the batch.
        """
        if cache["ce"] is None:
            raise ValueError("backward: the forward pass had no targets, so there is no loss")
        dlogits = ops.cross_entropy_backward(dloss, cache["ce"])  # (B, T, V)
        dout, dW, db = ops.linear_backward(dlogits, cache["lin"])
        self.grads["encoder.weight" if self.config.tie_weights else "decoder.weight"] += dW
        self.grads["decoder.bias"] += db
        dout = ops.dropout_backward(dout, cache["drop_out"])
        demb, _ = self.rnn.backward(dout, cache["rnn"], dstate)
        demb = ops.dropout_backward(demb, cache["drop_in"])
        self.grads["encoder.weight"] += ops.embedding_backward(demb, cache["emb"])

    # --- generation ------------------------------------------------------------------------

    def step_logits(self, token: Array, state: State | None) -> tuple[Array, State]:
        """One step of inference: token ids (B,) -> next-token logits (B, V), new state."""
        _, state, cache = self.forward(np.asarray(token)[:, None], None, state, training=False)
        return cache["logits"][:, 0], state

    def generate(
        self,
        prime: Array,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        greedy: bool = False,
        rng: np.random.Generator | None = None,
    ) -> Array:
        """Continue the id sequence ``prime`` by ``length`` tokens.

        Sampling draws from softmax(logits / temperature), restricted to the ``top_k`` most
        likely tokens if given; ``greedy`` takes the arg max at every step.
        """
        prime = np.asarray(prime, dtype=np.int64).reshape(-1)
        if prime.size == 0:
            raise ValueError("prime: needs at least one token")
        if not greedy and temperature <= 0:
            raise ValueError(f"temperature: must be positive, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k: must be positive, got {top_k}")
        rng = rng or np.random.default_rng()
        # the prime one token at a time too, as generation goes on: the layers then run
        # steps of T = 1, which backend "auto" gives to NumPy (no compilation to wait for)
        state = None
        for token in prime:
            lg, state = self.step_logits(np.array([token]), state)
        logits = lg[0].astype(np.float64)
        out = []
        for _ in range(length):
            if greedy:
                nxt = int(np.argmax(logits))
            else:
                z = logits / temperature
                if top_k is not None and top_k < z.size:
                    cut = np.partition(z, -top_k)[-top_k]
                    z = np.where(z >= cut, z, -np.inf)
                p = np.exp(z - z.max())
                p /= p.sum()
                nxt = int(rng.choice(p.size, p=p))
            out.append(nxt)
            lg, state = self.step_logits(np.array([nxt]), state)
            logits = lg[0].astype(np.float64)
        return np.array(out, dtype=np.int64)


def perplexity(mean_nll: float) -> float:
    """exp of the mean negative log-likelihood per token (nats).

    >>> round(perplexity(math.log(100.0)), 6)
    100.0
    """
    return float(math.exp(mean_nll))


def bits_per_char(mean_nll: float) -> float:
    """Mean NLL in nats per character, in bits: L / ln 2.

    >>> bits_per_char(math.log(2.0))
    1.0
    """
    return float(mean_nll / math.log(2.0))
