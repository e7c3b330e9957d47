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
(:func:`read_word2vec_text`, word2vec's text format).

This module also holds the plain-text helpers shared with the tagger: word vocabularies,
padding, and the word2vec reader.

>>> cfg = ClassifierConfig(vocab_size=10, num_classes=3, embed=4, hidden=5, pooling="max")
>>> model = SequenceClassifier(cfg, seed=0)
>>> ids, lengths = pad_batch([np.array([2, 3, 4]), np.array([5])])
>>> loss, logits, cache = model.forward(ids, lengths, np.array([0, 2]))
>>> model.zero_grad(); model.backward(cache); logits.shape
(2, 3)
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.io import RnnkitError, read_lines
from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.engine.module import ModelConfig, Module
from rnnkit.text.vocab import Vocab

Array = np.ndarray

__all__ = [
    "PAD",
    "UNK",
    "ClassifierConfig",
    "LabelledText",
    "SequenceClassifier",
    "build_word_vocab",
    "encode_words",
    "pad_batch",
    "pool_backward",
    "pool_forward",
    "read_labelled_tsv",
    "read_sentences",
    "read_word2vec_text",
]

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
POOLINGS = ("last", "mean", "max")
PAD, UNK = "<pad>", "<unk>"


# --- words -----------------------------------------------------------------------------------


def build_word_vocab(
    sentences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
) -> Vocab:
    """A word vocabulary with ``<pad>`` = 0 and ``<unk>`` = 1, then words by frequency.

    >>> v = build_word_vocab([["a", "b", "a"], ["c"]])
    >>> v.tokens, encode_words(v, ["a", "zzz"]).tolist()
    (['<pad>', '<unk>', 'a', 'b', 'c'], [2, 1])
    """
    counts = Counter(w for s in sentences for w in s)
    counts.pop(PAD, None)
    counts.pop(UNK, None)
    ranked = sorted((w for w in counts if counts[w] >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        ranked = ranked[: max(0, max_size - 2)]
    return Vocab([PAD, UNK, *ranked], level="word", unk=UNK, eos=None)


def extend_vocab(vocab: Vocab, words: Iterable[str]) -> Vocab:
    """``vocab`` with the ``words`` it lacks appended (in their order; ids of ``vocab`` kept).

    Used to give words that training never saw their pretrained vectors (``--pretrained-extend``,
    like building a torchtext or AllenNLP vocabulary from the training data and the vector
    file together): their embedding rows get no gradient from the training data, so they keep
    the pretrained vectors, and at prediction time such words are read instead of ``<unk>``.

    >>> extend_vocab(build_word_vocab([["a", "b"]]), ["b", "c", "<pad>", "c"]).tokens
    ['<pad>', '<unk>', 'a', 'b', 'c']
    """
    tokens = list(vocab.tokens)
    seen = set(tokens)
    for w in words:
        if w not in seen:
            seen.add(w)
            tokens.append(w)
    return Vocab(tokens, level=vocab.level, unk=vocab.unk, eos=vocab.eos)


def encode_words(vocab: Vocab, words: Sequence[str]) -> Array:
    """Ids (T,) of ``words``; unknown words map to ``<unk>``."""
    unk = vocab.stoi[UNK]
    return np.array([vocab.stoi.get(w, unk) for w in words], dtype=np.int64)


def pad_batch(seqs: Sequence[Array], pad: int = 0) -> tuple[Array, Array]:
    """Id sequences -> (ids (B, T_max) padded with ``pad``, lengths (B,)); each needs >= 1 id."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if lengths.size == 0 or lengths.min() < 1:
        raise ValueError("pad_batch: every sequence needs at least one token")
    ids = np.full((len(seqs), int(lengths.max())), pad, dtype=np.int64)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = s
    return ids, lengths


def read_word2vec_text(
    path: str | Path, vocab: Vocab, encoding: str = "utf-8"
) -> tuple[Array, Array]:
    """Vectors of the vocabulary's words from a word2vec text file (gzip accepted).

    The format (Mikolov et al.'s word2vec, gensim ``save_word2vec_format(binary=False)``): a
    header line ``N D``, then N lines ``word v_1 ... v_D``. Words absent from ``vocab`` are
    skipped; a word that occurs exactly only in another case is matched through its lowercase
    form when the vocabulary is lowercase.

    Returns:
        (ids (K,), vectors (K, D) float64) for the K vocabulary words found.

    Raises:
        RnnkitError naming the file and line for a bad header, a line with the wrong number
        of values, or a value that is not a number.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "vec.txt")
        >>> _ = open(path, "w").write("2 3\\nfilm 1 0 0\\nFunny 0 1 0.5\\n")
        >>> ids, vecs = read_word2vec_text(path, build_word_vocab([["funny", "film"]]))
        >>> ids.tolist(), vecs[1].tolist()
        ([2, 3], [0.0, 1.0, 0.5])
    """
    lines = read_lines(path, encoding)
    header = lines[0].split()
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise RnnkitError(f"{path}:1: expected a header 'N D' (count and dimension), got "
                          f"{lines[0][:60]!r}")  # fmt: skip
    n, dim = int(header[0]), int(header[1])
    if dim < 1:
        raise RnnkitError(f"{path}:1: dimension must be positive, got {dim}")
    ids, vecs, seen = [], [], set()
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.rstrip().split(" ")
        if len(parts) == 1 and not parts[0]:
            continue
        if len(parts) != dim + 1:
            raise RnnkitError(
                f"{path}:{lineno}: expected a word and {dim} values, got {len(parts) - 1} values"
            )
        word = parts[0]
        i = vocab.stoi.get(word)
        if i is None:
            i = vocab.stoi.get(word.lower())
        if i is None or i in seen or word in (PAD,):
            continue
        try:
            v = np.array(parts[1:], dtype=np.float64)
        except ValueError:
            raise RnnkitError(f"{path}:{lineno}: a vector value is not a number") from None
        if not np.isfinite(v).all():
            raise RnnkitError(f"{path}:{lineno}: the vector holds inf or nan")
        ids.append(i)
        vecs.append(v)
        seen.add(i)
    if len(lines) - 1 < n:
        print(f"rnnkit: warning: {path}: header announces {n} vectors, file holds "
              f"{len(lines) - 1}", file=sys.stderr)  # fmt: skip
    return np.array(ids, dtype=np.int64), np.array(vecs, dtype=np.float64).reshape(-1, dim)


def read_word2vec_words(path: str | Path, encoding: str = "utf-8") -> list[str]:
    """The words of a word2vec text file, in file order (the format of
    :func:`read_word2vec_text`, which reports malformed lines).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "vec.txt")
    >>> _ = open(path, "w").write("2 3\\nfilm 1 0 0\\nfunny 0 1 0.5\\n")
    >>> read_word2vec_words(path)
    ['film', 'funny']
    """
    return [line.split(" ", 1)[0] for line in read_lines(path, encoding)[1:] if line.strip()]


# --- reading labelled text -------------------------------------------------------------------


@dataclass
class LabelledText:
    """Tokenised sentences with their labels and the file line each came from."""

    sentences: list[list[str]]
    labels: list[str]
    lines: list[int]
    path: str

    def __len__(self) -> int:
        return len(self.sentences)


def _tokens(text: str, lower: bool) -> list[str]:
    return (text.lower() if lower else text).split()


def read_labelled_tsv(path: str | Path, lower: bool = False, encoding: str = "utf-8"
                      ) -> LabelledText:  # fmt: skip
    """Sentences and labels from a tab-separated file (gzip accepted).

    The first line is a header when it names a ``sentence`` and a ``label`` column (GLUE's
    layout, any column order); otherwise every line is ``sentence<TAB>label``. Sentences are
    split at whitespace (SST-2 is tokenised already); ``lower`` lowercases them.

    Raises:
        RnnkitError naming file and line for a line with a wrong number of columns, an empty
        sentence or an empty label.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.tsv")
        >>> _ = open(path, "w").write("sentence\\tlabel\\na fine film \\t1\\n\\t0\\n")
        >>> read_labelled_tsv(path)
        Traceback (most recent call last):
        rnnkit.io.RnnkitError: ...a.tsv:3: empty sentence
    """
    lines = read_lines(path, encoding)
    head = [h.strip().lower() for h in lines[0].split("\t")]
    if "sentence" in head and "label" in head:
        s_col, l_col, ncol, first = head.index("sentence"), head.index("label"), len(head), 1
    else:
        s_col, l_col, ncol, first = 0, 1, 2, 0
    out = LabelledText([], [], [], str(path))
    for lineno, line in enumerate(lines[first:], start=first + 1):
        if not line.strip():
            continue  # blank lines (a trailing newline, spacing) carry nothing
        cols = line.split("\t")
        if len(cols) != ncol:
            raise RnnkitError(
                f"{path}:{lineno}: expected {ncol} tab-separated columns, got {len(cols)}"
            )
        words, label = _tokens(cols[s_col], lower), cols[l_col].strip()
        if not words:
            raise RnnkitError(f"{path}:{lineno}: empty sentence")
        if not label:
            raise RnnkitError(f"{path}:{lineno}: empty label")
        out.sentences.append(words)
        out.labels.append(label)
        out.lines.append(lineno)
    if not out.sentences:
        raise RnnkitError(f"{path}: holds no labelled sentences")
    return out


def read_sentences(
    lines: Sequence[str], where: str, fmt: str = "auto", lower: bool = False
) -> list[list[str]]:
    """Sentences to classify, one per line, as token lists (empty lines give empty lists).

    ``fmt``: ``"text"`` (a sentence per line), ``"tsv"`` (a header naming a ``sentence``
    column, e.g. GLUE's test.tsv; other columns ignored), or ``"auto"`` (tsv when the first
    line has a tab and names a ``sentence`` column).

    >>> read_sentences(["index\\tsentence", "0\\tGood fun", "1\\t"], "test.tsv", lower=True)
    [['good', 'fun'], []]
    """
    if fmt not in ("auto", "text", "tsv"):
        raise RnnkitError(f"--format: expected auto, text or tsv, got {fmt!r}")
    head = [h.strip().lower() for h in lines[0].split("\t")] if lines else []
    is_tsv = fmt == "tsv" or (fmt == "auto" and len(head) > 1 and "sentence" in head)
    if not is_tsv:
        return [_tokens(line, lower) for line in lines]
    if "sentence" not in head:
        raise RnnkitError(f"{where}:1: the header names no 'sentence' column")
    col, ncol = head.index("sentence"), len(head)
    out = []
    for lineno, line in enumerate(lines[1:], start=2):
        cols = line.split("\t")
        if len(cols) != ncol:
            raise RnnkitError(
                f"{where}:{lineno}: expected {ncol} tab-separated columns, got {len(cols)}"
            )
        out.append(_tokens(cols[col], lower))
    return out


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
