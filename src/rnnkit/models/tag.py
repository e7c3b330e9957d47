"""Sequence tagging (many-to-many, aligned): one label per token.

Model (Lample et al. 2016 without the CRF; Ling et al. 2015 / Plank et al. 2016 for tagging):

    x_t = [ word_embedding(w_t) ; char_BiLSTM(w_t) ]       (the char part optional)
    h_1 ... h_T = deep BiLSTM(x_1 ... x_T)                  (or RNN / GRU)
    P(y_t | w) = softmax(W h_t + b)                          for every valid t

The character features of a word are the final states of a one-layer bidirectional LSTM run
over its characters (forward final state ; backward final state), so that unseen words still
get informative input (suffixes, capitals, digits). Each distinct word of a batch runs through
the character LSTM once; its features are gathered to every position where it occurs, and
the gradients scattered back (summed). The loss is the mean cross-entropy over all valid
tokens of the batch.

The files (CoNLL, CoNLL-U, plain text) are read by :func:`rnnkit.text.readers.read_tagged`.

>>> cfg = TaggerConfig(vocab_size=8, num_tags=3, char_vocab_size=6, embed=4, char_embed=3,
...                    char_hidden=2, hidden=5, layers=2)
>>> tagger = SequenceTagger(cfg, seed=0)
>>> batch = make_tag_batch([["ab", "b"], ["ba"]], [np.array([2, 3]), np.array([4])],
...                        Vocab(["<pad>", "<unk>", "a", "b"], "word", unk="<unk>"))
>>> loss, logits, cache = tagger.forward(batch, np.array([[0, 1], [2, 0]]))
>>> tagger.zero_grad(); tagger.backward(cache); logits.shape
(2, 2, 3)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.engine.module import ModelConfig, Module
from rnnkit.io import RnnkitError
from rnnkit.text.vocab import UNK, Vocab, build_word_vocab, pad_batch

Array = np.ndarray

__all__ = [
    "TagBatch",
    "SequenceTagger",
    "TaggerConfig",
    "build_char_vocab",
    "make_tag_batch",
    "normalize_word",
]

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
_DIGITS = re.compile(r"\d")


# --- words and characters --------------------------------------------------------------------


def normalize_word(word: str, lower: bool, zero_digits: bool) -> str:
    """The key of a word in the word vocabulary: optionally lowercased, digits -> 0.

    >>> normalize_word("Paris-1996", lower=True, zero_digits=True)
    'paris-0000'
    """
    if lower:
        word = word.lower()
    if zero_digits:
        word = _DIGITS.sub("0", word)
    return word


def build_char_vocab(sentences: Sequence[Sequence[str]], min_count: int = 1) -> Vocab:
    """Characters of the training words, ``<pad>`` = 0 and ``<unk>`` = 1 first.

    >>> build_char_vocab([["aba", "c"]]).tokens
    ['<pad>', '<unk>', 'a', 'b', 'c']
    """
    return build_word_vocab((w for s in sentences for w in s), min_count)  # counts characters


@dataclass
class TagBatch:
    """A padded batch: word ids (B, T), lengths (B,), and the distinct words' characters
    ``chars`` (U, Lc) with ``char_lengths`` (U,), ``word_index`` (B, T) into those U words
    (None without character features)."""

    ids: Array
    lengths: Array
    chars: Array | None = None
    char_lengths: Array | None = None
    word_index: Array | None = None


def make_tag_batch(
    words: Sequence[Sequence[str]],
    word_ids: Sequence[Array],
    char_vocab: Vocab | None,
    max_word_len: int = 30,
) -> TagBatch:
    """Pad a batch; with ``char_vocab``, list each distinct word once as character ids.

    Words longer than ``max_word_len`` characters keep their first and last
    ``max_word_len // 2`` characters (prefix and suffix carry the information).

    >>> chars = build_char_vocab([["ab"]])
    >>> b = make_tag_batch([["ab", "b", "ab"]], [np.array([2, 3, 2])], chars)
    >>> b.chars.tolist(), b.char_lengths.tolist(), b.word_index.tolist()
    ([[2, 3], [3, 0]], [2, 1], [[0, 1, 0]])
    """
    ids, lengths = pad_batch(word_ids)
    if char_vocab is None:
        return TagBatch(ids, lengths)
    index: dict[str, int] = {}
    word_index = np.zeros(ids.shape, dtype=np.int64)
    for b, sent in enumerate(words):
        for t, w in enumerate(sent):
            word_index[b, t] = index.setdefault(w, len(index))
    unk = char_vocab.stoi[UNK]
    half = max_word_len // 2
    seqs = []
    for w in index:
        if len(w) > max_word_len:
            w = w[:half] + w[-half:]
        seqs.append(np.array([char_vocab.stoi.get(ch, unk) for ch in w], dtype=np.int64))
    chars, char_lengths = pad_batch(seqs)
    return TagBatch(ids, lengths, chars, char_lengths, word_index)


# --- the model -------------------------------------------------------------------------------


@dataclass
class TaggerConfig(ModelConfig):
    """Everything needed to rebuild a tagger; saved as JSON beside its weights."""

    vocab_size: int  # V words, including <pad> (0) and <unk> (1)
    num_tags: int  # K
    char_vocab_size: int = 0  # characters incl. <pad>, <unk>; 0: no character features
    cell: str = "lstm"  # the word-level stack: rnn | lstm | gru
    embed: int = 100  # E, word embedding size
    char_embed: int = 25  # character embedding size
    char_hidden: int = 25  # per direction of the character BiLSTM
    hidden: int = 100  # H per direction and layer of the word-level stack
    layers: int = 2  # L (bidirectional always)
    dropout: float = 0.0  # on the stack's input, between layers, on its output (training)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.check_positive("vocab_size", "num_tags", "embed", "char_embed", "char_hidden",
                            "hidden", "layers")  # fmt: skip
        if not isinstance(self.char_vocab_size, int) or self.char_vocab_size < 0:
            raise ValueError(
                f"char_vocab_size: expected an integer >= 0, got {self.char_vocab_size}"
            )
        self.check_choice("cell", CELLS)
        self.check_probability("dropout")
        self.check_dtype()


class SequenceTagger(Module):
    r"""Word embedding (+ character BiLSTM) -> deep BiLSTM -> per-token linear -> softmax.

    Parameters (PyTorch-style names): ``embedding.weight`` (V, E); with characters
    ``char_embedding.weight`` (V_c, E_c) and ``char_rnn.weight_ih_l0`` ... (a bidirectional
    ``torch.nn.LSTM``); ``rnn.weight_ih_l0`` ... (input E + 2 H_c); ``fc.weight`` (K, 2H),
    ``fc.bias`` (K,).

    Inputs/outputs of :meth:`forward`: a :class:`TagBatch`, tags (B, T) int or None (padding
    positions ignored); returns (mean cross-entropy per valid token or None, logits
    (B, T, K), cache).

    Example:
        >>> tagger = SequenceTagger(TaggerConfig(vocab_size=5, num_tags=3, embed=4, hidden=3))
        >>> tagger.predict(TagBatch(np.array([[2, 3, 4]]), np.array([3]))).shape
        (1, 3)
    """

    def __init__(self, config: TaggerConfig, seed: int | np.random.Generator | None = None):
        self.config = c = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        dtype = self.dtype = np.dtype(c.dtype)
        self.use_chars = c.char_vocab_size > 0
        d_in = c.embed + (2 * c.char_hidden if self.use_chars else 0)
        self.params: dict[str, Array] = {
            "embedding.weight": self.rng.standard_normal((c.vocab_size, c.embed)).astype(dtype)
        }
        shared: dict[str, Array] = {}
        shared_grads: dict[str, Array] = {}
        if self.use_chars:
            self.params["char_embedding.weight"] = self.rng.standard_normal(
                (c.char_vocab_size, c.char_embed)
            ).astype(dtype)
            self.char_rnn = LSTM(c.char_embed, c.char_hidden, bidirectional=True, dtype=dtype,
                                 seed=self.rng)  # fmt: skip
            shared.update({"char_rnn." + n: p for n, p in self.char_rnn.params.items()})
            shared_grads.update({"char_rnn." + n: g for n, g in self.char_rnn.grads.items()})
        self.rnn: Recurrent = CELLS[c.cell](
            d_in, c.hidden, num_layers=c.layers, bidirectional=True, dropout=c.dropout,
            dtype=dtype, seed=self.rng,
        )  # fmt: skip
        shared.update({"rnn." + n: p for n, p in self.rnn.params.items()})
        shared_grads.update({"rnn." + n: g for n, g in self.rnn.grads.items()})
        k = 1.0 / math.sqrt(2 * c.hidden)
        own = {
            "fc.weight": self.rng.uniform(-k, k, (c.num_tags, 2 * c.hidden)).astype(dtype),
            "fc.bias": self.rng.uniform(-k, k, c.num_tags).astype(dtype),
        }
        self.params.update(shared)
        self.params.update(own)
        # the recurrent layers' arrays are shared, not copied
        self.grads = {n: np.zeros_like(p) for n, p in self.params.items() if n not in shared}
        self.grads.update(shared_grads)

    def set_embeddings(self, ids: Array, vectors: Array) -> None:
        """Overwrite the word-embedding rows ``ids`` with pretrained ``vectors`` (K, E)."""
        E = self.config.embed
        if vectors.ndim != 2 or vectors.shape[1] != E:
            raise RnnkitError(f"pretrained vectors have dimension {vectors.shape[-1]}, the "
                              f"embedding has {E}")  # fmt: skip
        self.params["embedding.weight"][ids] = vectors

    def _chars_forward(self, batch: TagBatch, training: bool) -> tuple[Array, Any]:
        """Character features of every position: (B, T, 2 H_c)."""
        if batch.chars is None or batch.word_index is None:
            raise ValueError("batch: the model uses character features; build the batch with "
                             "a character vocabulary")  # fmt: skip
        cemb, emb_cache = ops.embedding_forward(batch.chars, self.params["char_embedding.weight"])
        # only the final states are used: forward direction after the last character,
        # backward direction after the first
        _, (h, _), rnn_cache = self.char_rnn.forward(cemb, None, batch.char_lengths, training)
        feats = np.concatenate([h[0], h[1]], axis=1)  # (U, 2 H_c)
        return feats[batch.word_index], (emb_cache, rnn_cache, batch.word_index, feats.shape)

    def _chars_backward(self, dwf: Array, cache: Any) -> None:
        emb_cache, rnn_cache, word_index, shape = cache
        U, H2 = shape
        Hc = H2 // 2
        dfeats = np.zeros(shape, dwf.dtype)
        # each distinct word sums the gradients of all positions where it occurs
        np.add.at(dfeats, word_index.reshape(-1), dwf.reshape(-1, H2))
        dh = np.stack([dfeats[:, :Hc], dfeats[:, Hc:]])  # (2, U, H_c)
        Lc = emb_cache[0].shape[1]
        dout = np.zeros((U, Lc, H2), dwf.dtype)
        dcemb, _ = self.char_rnn.backward(dout, rnn_cache, (dh, np.zeros_like(dh)))
        self.grads["char_embedding.weight"] += ops.embedding_backward(dcemb, emb_cache)

    def forward(
        self, batch: TagBatch, tags: Array | None = None, training: bool = True
    ) -> tuple[float | None, Array, dict[str, Any]]:
        """See the class doc."""
        c = self.config
        ids, lengths = np.asarray(batch.ids), np.asarray(batch.lengths)
        if ids.ndim != 2:
            raise ValueError(f"ids: expected shape (B, T), got {ids.shape}")
        x, emb_cache = ops.embedding_forward(ids, self.params["embedding.weight"])  # (B, T, E)
        char_cache = None
        if self.use_chars:
            wf, char_cache = self._chars_forward(batch, training)  # (B, T, 2 H_c)
            x = np.concatenate([x, wf], axis=2)
        x, drop_in = ops.dropout_forward(x, c.dropout, self.rng, training)
        h, _, rnn_cache = self.rnn.forward(x, None, lengths, training)  # (B, T, 2H)
        h, drop_out = ops.dropout_forward(h, c.dropout, self.rng, training)
        logits, lin = ops.linear_forward(h, self.params["fc.weight"], self.params["fc.bias"])
        loss, ce = None, None
        if tags is not None:
            tags = np.asarray(tags)
            if tags.shape != ids.shape:
                raise ValueError(f"tags: expected shape {ids.shape}, got {tags.shape}")
            mask = np.arange(ids.shape[1])[None, :] < lengths[:, None]  # (B, T)
            loss, ce = ops.cross_entropy_forward(logits, np.where(mask, tags, 0), mask)
        cache = dict(emb=emb_cache, chars=char_cache, drop_in=drop_in, rnn=rnn_cache,
                     drop_out=drop_out, lin=lin, ce=ce)  # fmt: skip
        return loss, logits, cache

    def backward(self, cache: dict[str, Any]) -> None:
        """Backpropagate the mean loss of :meth:`forward`; gradients are added into ``grads``."""
        if cache["ce"] is None:
            raise ValueError("backward: the forward pass had no tags, so there is no loss")
        dlogits = ops.cross_entropy_backward(1.0, cache["ce"])  # (B, T, K)
        dh, dW, db = ops.linear_backward(dlogits, cache["lin"])
        self.grads["fc.weight"] += dW
        self.grads["fc.bias"] += db
        dh = ops.dropout_backward(dh, cache["drop_out"])
        dx, _ = self.rnn.backward(dh, cache["rnn"])
        dx = ops.dropout_backward(dx, cache["drop_in"])
        E = self.config.embed
        if self.use_chars:
            self._chars_backward(dx[:, :, E:], cache["chars"])
        self.grads["embedding.weight"] += ops.embedding_backward(
            np.ascontiguousarray(dx[:, :, :E]), cache["emb"]
        )

    def predict(self, batch: TagBatch) -> Array:
        """Tag ids (B, T) by the arg max at every position (padding positions arbitrary)."""
        _, logits, _ = self.forward(batch, None, training=False)
        return logits.argmax(axis=2)
