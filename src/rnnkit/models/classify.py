"""Sequence classification (many-to-one): embedding -> (bi)directional stacked RNN/LSTM/GRU ->
pooling over the valid steps -> dense -> softmax.

Pooling turns the top layer's outputs h_1 ... h_T (T = the sentence's length; padding past it
is ignored) into one vector:

- ``last``: the state after the last valid step; for a bidirectional RNN the forward half
  at t = T and the backward half at t = 1 (each direction's final state).
- ``mean``: (1/T) sum_t h_t.
- ``max``: the element-wise maximum over t (Collobert et al. 2011; Conneau et al. 2017's
  BiLSTM-max sentence encoder); its gradient goes to the arg max step of each feature.

The loss is the mean cross-entropy of the gold class. Batches are padded to their longest
sentence and carry ``lengths``; nothing is sorted, the recurrent layers mask the padding
(PyTorch's packed-sequence semantics). Pretrained word vectors can initialise the embedding
(:func:`rnnkit.text.readers.read_word2vec_text`, word2vec's text format). Vocabularies, padding
and the readers of labelled files are :mod:`rnnkit.text`'s.

>>> from rnnkit.text.vocab import pad_batch
>>> cfg = ClassifierConfig(vocab_size=10, num_classes=3, embed=4, hidden=5, pooling="max")
>>> model = SequenceClassifier(cfg, seed=0)
>>> ids, lengths = pad_batch([np.array([2, 3, 4]), np.array([5])])
>>> loss, logits, cache = model.forward(ids, lengths, np.array([0, 2]))
>>> model.zero_grad(); model.backward(cache); logits.shape
(2, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.engine.module import ModelConfig, Module
from rnnkit.io import RnnkitError

Array = np.ndarray

__all__ = [
    "ClassifierConfig",
    "SequenceClassifier",
    "pool_backward",
    "pool_forward",
]

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
POOLINGS = ("last", "mean", "max")


# --- pooling ---------------------------------------------------------------------------------


def pool_forward(h: Array, lengths: Array, mode: str, directions: int = 1) -> tuple[Array, Any]:
    """Pool h (B, T, D) over each row's valid steps t < lengths[b] -> (B, D).

    For ``last`` with two directions, D = 2H: the forward half is taken at the last valid
    step and the backward half at step 0 (where the reverse pass ends).

    >>> h = np.arange(12.0).reshape(1, 3, 4)       # B=1, T=3, D=4 (H=2 per direction)
    >>> pool_forward(h, np.array([2]), "last", directions=2)[0].tolist()
    [[4.0, 5.0, 2.0, 3.0]]
    >>> pool_forward(h, np.array([2]), "max")[0].tolist()
    [[4.0, 5.0, 6.0, 7.0]]
    """
    B, T, D = h.shape
    lengths = np.asarray(lengths)
    rows = np.arange(B)
    if mode == "last":
        last = lengths - 1
        if directions == 1:
            return h[rows, last], (mode, h.shape, last, None)
        H = D // 2
        out = np.concatenate([h[rows, last, :H], h[:, 0, H:]], axis=1)
        return out, (mode, h.shape, last, H)
    valid = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    if mode == "mean":
        inv = (1.0 / lengths).astype(h.dtype)[:, None]  # (B, 1)
        # padded steps of a recurrent layer's output are zero already; mask anyway
        out = (h * valid[:, :, None]).sum(axis=1) * inv
        return out, (mode, h.shape, valid, inv)
    if mode == "max":
        masked = np.where(valid[:, :, None], h, -np.inf)
        arg = masked.argmax(axis=1)  # (B, D), the step that wins each feature
        out = np.take_along_axis(h, arg[:, None, :], axis=1)[:, 0]
        return out, (mode, h.shape, arg, None)
    raise ValueError(f"pooling: expected one of {POOLINGS}, got {mode!r}")


def pool_backward(dout: Array, cache: Any) -> Array:
    """d pooled (B, D) -> d h (B, T, D).

    >>> h = np.array([[[1.0], [3.0], [2.0]]])
    >>> _, cache = pool_forward(h, np.array([3]), "max")
    >>> pool_backward(np.array([[10.0]]), cache)[0, :, 0].tolist()
    [0.0, 10.0, 0.0]
    """
    mode, shape, a, b = cache
    B, T, D = shape
    dh = np.zeros(shape, dout.dtype)
    rows = np.arange(B)
    if mode == "last":
        if b is None:
            dh[rows, a] = dout
        else:
            dh[rows, a, :b] = dout[:, :b]
            dh[:, 0, b:] += dout[:, b:]
        return dh
    if mode == "mean":
        # out = (1/T_b) sum_{t < T_b} h_t
        return dout[:, None, :] * (a[:, :, None] * b[:, :, None]).astype(dout.dtype)
    # max: only the winning step of each feature receives the gradient
    np.put_along_axis(dh, a[:, None, :], dout[:, None, :], axis=1)
    return dh


# --- the model -------------------------------------------------------------------------------


@dataclass
class ClassifierConfig(ModelConfig):
    """Everything needed to rebuild a classifier; saved as JSON beside its weights."""

    vocab_size: int  # V, including <pad> (id 0) and <unk>
    num_classes: int  # C
    cell: str = "lstm"  # rnn | lstm | gru
    embed: int = 100  # E
    hidden: int = 128  # H per direction and layer
    layers: int = 1  # L
    bidirectional: bool = True
    pooling: str = "max"  # last | mean | max
    embed_dropout: float = 0.0  # on the word embeddings (training)
    dropout: float = 0.0  # between stacked layers and on the pooled vector (training)
    nonlinearity: str = "tanh"  # for cell == "rnn"
    dtype: str = "float32"
    freeze_embed: bool = False  # the embedding gets no gradient (torch: freeze=True)

    def __post_init__(self) -> None:
        self.check_positive("vocab_size", "num_classes", "embed", "hidden", "layers")
        if self.num_classes < 2:
            raise ValueError(f"num_classes: needs at least 2 classes, got {self.num_classes}")
        self.check_choice("cell", CELLS)
        self.check_choice("pooling", POOLINGS)
        self.check_probability("dropout", "embed_dropout")
        self.check_dtype()


class SequenceClassifier(Module):
    r"""Embedding -> recurrent stack -> pooling -> linear -> softmax over C classes.

    Parameters (PyTorch-style names): ``embedding.weight`` (V, E), ``rnn.weight_ih_l0`` ...
    as ``torch.nn.LSTM`` etc. name them, ``fc.weight`` (C, dirs*H), ``fc.bias`` (C,).
    Initialisation is PyTorch's default (embedding ~ N(0, 1), the rest ~ U(+-1/sqrt(fan))).
    With ``freeze_embed`` (``nn.Embedding.from_pretrained(..., freeze=True)`` in PyTorch) the
    embedding has no entry in ``grads``: optimizers, penalties and clipping leave it alone
    and the backward pass stops at the recurrent layer's input.

    Inputs/outputs of :meth:`forward`: ids (B, T) int (padding anywhere past ``lengths``),
    lengths (B,) in [1, T], labels (B,) int or None; returns (mean cross-entropy or None,
    logits (B, C), cache).

    Example:
        >>> cfg = ClassifierConfig(vocab_size=6, num_classes=2, embed=3, hidden=4, pooling="mean")
        >>> clf = SequenceClassifier(cfg, seed=0)
        >>> clf.predict_proba(np.array([[2, 3, 0], [4, 5, 1]]), np.array([2, 3])).shape
        (2, 2)
    """

    def __init__(self, config: ClassifierConfig, seed: int | np.random.Generator | None = None):
        self.config = c = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        dtype = self.dtype = np.dtype(c.dtype)
        kw: dict[str, Any] = dict(
            num_layers=c.layers, bidirectional=c.bidirectional, dropout=c.dropout, dtype=dtype,
            seed=self.rng,
        )  # fmt: skip
        if c.cell == "rnn":
            kw["nonlinearity"] = c.nonlinearity
        self.rnn: Recurrent = CELLS[c.cell](c.embed, c.hidden, **kw)
        self.directions = 2 if c.bidirectional else 1
        D = self.directions * c.hidden
        k = 1.0 / math.sqrt(D)
        self.params: dict[str, Array] = {
            "embedding.weight": self.rng.standard_normal((c.vocab_size, c.embed)).astype(dtype)
        }
        self.params.update({"rnn." + n: p for n, p in self.rnn.params.items()})
        self.params["fc.weight"] = self.rng.uniform(-k, k, (c.num_classes, D)).astype(dtype)
        self.params["fc.bias"] = self.rng.uniform(-k, k, c.num_classes).astype(dtype)
        # the recurrent layer's arrays are shared, not copied
        self.grads = {n: np.zeros_like(p) for n, p in self.params.items() if n[:4] != "rnn."}
        self.grads.update({"rnn." + n: g for n, g in self.rnn.grads.items()})
        if c.freeze_embed:
            del self.grads["embedding.weight"]

    def set_embeddings(self, ids: Array, vectors: Array) -> None:
        """Overwrite the embedding rows ``ids`` with pretrained ``vectors`` (K, E)."""
        E = self.config.embed
        if vectors.ndim != 2 or vectors.shape[1] != E:
            raise RnnkitError(f"pretrained vectors have dimension {vectors.shape[-1]}, the "
                              f"embedding has {E}")  # fmt: skip
        self.params["embedding.weight"][ids] = vectors

    def forward(
        self, ids: Array, lengths: Array, labels: Array | None = None, training: bool = True
    ) -> tuple[float | None, Array, dict[str, Any]]:
        """See the class doc."""
        c = self.config
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids: expected shape (B, T), got {ids.shape}")
        emb, emb_cache = ops.embedding_forward(ids, self.params["embedding.weight"])  # (B,T,E)
        emb, drop_e = ops.dropout_forward(emb, c.embed_dropout, self.rng, training)
        h, _, rnn_cache = self.rnn.forward(emb, None, lengths, training)  # (B, T, dirs*H)
        pooled, pool_cache = pool_forward(h, lengths, c.pooling, self.directions)  # (B, D)
        pooled, drop_p = ops.dropout_forward(pooled, c.dropout, self.rng, training)
        logits, lin = ops.linear_forward(pooled, self.params["fc.weight"], self.params["fc.bias"])
        loss, ce = None, None
        if labels is not None:
            loss, ce = ops.cross_entropy_forward(logits, labels)
        cache = dict(emb=emb_cache, drop_e=drop_e, rnn=rnn_cache, pool=pool_cache,
                     drop_p=drop_p, lin=lin, ce=ce)  # fmt: skip
        return loss, logits, cache

    def backward(self, cache: dict[str, Any]) -> None:
        """Backpropagate the mean loss of :meth:`forward`; gradients are added into ``grads``."""
        if cache["ce"] is None:
            raise ValueError("backward: the forward pass had no labels, so there is no loss")
        dlogits = ops.cross_entropy_backward(1.0, cache["ce"])  # (B, C)
        dpooled, dW, db = ops.linear_backward(dlogits, cache["lin"])
        self.grads["fc.weight"] += dW
        self.grads["fc.bias"] += db
        dpooled = ops.dropout_backward(dpooled, cache["drop_p"])
        dh = pool_backward(dpooled, cache["pool"])  # (B, T, dirs*H)
        demb, _ = self.rnn.backward(dh, cache["rnn"])
        if "embedding.weight" in self.grads:
            demb = ops.dropout_backward(demb, cache["drop_e"])
            self.grads["embedding.weight"] += ops.embedding_backward(demb, cache["emb"])

    def predict_proba(self, ids: Array, lengths: Array) -> Array:
        """Class probabilities (B, C), no dropout."""
        _, logits, _ = self.forward(ids, lengths, None, training=False)
        return np.exp(ops.log_softmax(logits.astype(np.float64)))
