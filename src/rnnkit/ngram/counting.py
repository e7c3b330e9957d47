"""Vocabulary, encoding and n-gram counting with NumPy (no Python dicts of tuples).

Words are ids; an n-gram is one int64 key, ``(index of its (n-1)-gram prefix) * V + (last
word id)``, so the sorted keys of each order list n-grams in lexicographic order, a lookup
is a ``searchsorted``, and the ids of a 5-gram never need to fit together in 64 bits.
Counting sorts the keys of every window of the corpus, one order after another.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rnnkit.io import RnnkitError

UNK, BOS, EOS = "<unk>", "<s>", "</s>"

Array = np.ndarray


def build_vocab(lines: Iterable[str], min_count: int = 1, where: str = "text") -> list[str]:
    """The vocabulary of a training text: ``<unk> <s> </s>``, then words by falling count.

    Words seen fewer than ``min_count`` times are left out (they become ``<unk>``). Ties are
    broken alphabetically, so the result is deterministic.

    >>> build_vocab(["b a b", "c b a"], min_count=2)
    ['<unk>', '<s>', '</s>', 'b', 'a']
    """
    if min_count < 1:
        raise RnnkitError(f"--min-count: expected an integer >= 1, got {min_count}")
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(line.split())
    for reserved in (BOS, EOS):
        if reserved in counts:
            raise RnnkitError(
                f"{where}: the token {reserved} is reserved for sentence boundaries; "
                "remove it (each line is one sentence)"
            )
    words = sorted(
        (w for w, c in counts.items() if c >= min_count and w != UNK), key=lambda w: (-counts[w], w)
    )
    return [UNK, BOS, EOS, *words]


def encode_lines(
    lines: Iterable[str], word_to_id: dict[str, int]
) -> tuple[Array, Array, Array, int]:
    """Word ids of every non-blank line, end to end.

    Returns ``ids (T,) int32``, ``lengths (S,) int64`` (words per sentence),
    ``line_numbers (S,) int64`` (1-based) and the number of out-of-vocabulary tokens, which
    are encoded as ``<unk>``.

    >>> ids, lengths, line_no, oov = encode_lines(["a b", "", "b zz"], {"<unk>": 0, "a": 3, "b": 4})
    >>> ids.tolist(), lengths.tolist(), line_no.tolist(), oov
    ([3, 4, 4, 0], [2, 2], [1, 3], 1)
    """
    lookup = WordLookup(word_to_id, word_to_id[UNK])
    ids = array("i")
    lengths = array("q")
    line_numbers = array("q")
    for no, line in enumerate(lines, start=1):
        toks = line.split()
        if toks:
            lengths.append(len(toks))
            line_numbers.append(no)
            ids.extend(map(lookup.__getitem__, toks))
    return (
        np.array(ids, dtype=np.int32),
        np.array(lengths, dtype=np.int64),
        np.array(line_numbers, dtype=np.int64),
        lookup.misses,
    )


class WordLookup(dict):
    """A word -> id dict that answers ``unk`` (and counts the miss) for unknown words."""

    def __init__(self, word_to_id: dict[str, int], unk: int) -> None:
        super().__init__(word_to_id)
        self.unk = unk
        self.misses = 0

    def __missing__(self, key: str) -> int:
        self.misses += 1
        return self.unk


def padded_stream(ids: Array, lengths: Array, bos: int, eos: int) -> tuple[Array, Array]:
    """``<s> w_1 .. w_T </s>`` for every sentence, end to end, and each position's offset.

    ids (T,), lengths (S,) -> stream (P,) int32, offset (P,) int32 where P = T + 2 S and
    offset is 0 at every ``<s>``.
    """
    padded = lengths.astype(np.int64) + 2  # (S,)
    ends = np.cumsum(padded)  # (S,) one past each </s>
    starts = ends - padded  # (S,) where each <s> sits
    P = int(ends[-1]) if len(ends) else 0
    stream = np.empty(P, dtype=np.int32)
    boundary = np.zeros(P, dtype=bool)
    boundary[starts] = True
    boundary[ends - 1] = True
    stream[~boundary] = ids
    stream[starts] = bos
    stream[ends - 1] = eos
    offset = np.ones(P, dtype=np.int32)  # offset = cumulative count of 1s, restarted at <s>
    offset[starts] = 0
    offset[starts[1:]] = -(padded[:-1] - 1)
    np.cumsum(offset, out=offset)
    return stream, offset


def _unique_inverse(keys: Array) -> tuple[Array, Array, Array]:
    """``np.unique(keys, return_inverse=True, return_counts=True)`` in less memory.

    keys (W,) int64 -> unique (U,) int64, inverse (W,) int32, counts (U,) int64; the
    temporaries are one argsort and one sorted copy.
    """
    perm = np.argsort(keys)  # (W,)
    ordered = keys[perm]  # (W,)
    new = np.empty(len(ordered), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    unique = ordered[new]  # (U,)
    del ordered
    starts = np.flatnonzero(new)
    counts = np.diff(starts, append=len(keys))
    group = np.cumsum(new, dtype=np.int32)  # (W,) 1-based group of each sorted key
    del new
    inverse = np.empty(len(keys), dtype=np.int32)
    inverse[perm] = group - 1
    return unique, inverse, counts


# ----------------------------------------------------------------------------------------
# Counting


@dataclass
class NgramCounts:
    """Raw n-gram counts of a corpus, orders 1..N, stored as sorted int64 keys.

    Order n (list index n-1) holds M_n distinct n-grams:

    - ``keys[n-1] (M_n,)``: sorted; ``keys // V`` is the index of the (n-1)-gram prefix
      among order n-1's entries (for n = 2, the first word's id), ``keys % V`` the last word.
      Unigrams are dense: ``keys[0] = arange(V)``.
    - ``counts[n-1] (M_n,)``: how often the n-gram occurs (as a prediction: ``<s>`` has 0).
    - ``suffix[n-1] (M_n,)``: index of w_2 .. w_n among order n-1's entries (empty for n = 1).
    - ``first[n-1] (M_n,)``: id of w_1.
    """

    vocab: list[str]
    keys: list[Array]
    counts: list[Array]
    suffix: list[Array]
    first: list[Array]
    n_sentences: int
    n_tokens: int

    @property
    def order(self) -> int:
        return len(self.keys)


def count_ngrams(ids: Array, lengths: Array, vocab: list[str], order: int) -> NgramCounts:
    """Count every n-gram of orders 1..``order`` that lies inside one padded sentence.

    ids (T,), lengths (S,): the output of :func:`encode_lines`. Each order is one sort of
    the int64 keys of all its windows; memory peaks at about 45 bytes per token (T + 2 S
    positions: int32 stream, offsets and entry indices, int64 keys, argsort and sorted copy).

    >>> vocab = ["<unk>", "<s>", "</s>", "a", "b"]
    >>> c = count_ngrams(np.array([3, 4, 3]), np.array([3]), vocab, 2)
    >>> c.counts[0].tolist()                 # <unk> <s> </s> a b
    [0, 0, 1, 2, 1]
    >>> [(vocab[k // 5], vocab[k % 5]) for k in c.keys[1].tolist()]
    [('<s>', 'a'), ('a', '</s>'), ('a', 'b'), ('b', 'a')]
    """
    if order < 1:
        raise RnnkitError(f"--order: expected an integer >= 1, got {order}")
    if len(lengths) == 0:
        raise RnnkitError("no sentences to count (every line is blank)")
    V = len(vocab)
    bos, eos = vocab.index(BOS), vocab.index(EOS)
    stream, offset = padded_stream(ids, lengths, bos, eos)  # (P,), (P,)
    counts1 = np.bincount(stream[offset > 0], minlength=V).astype(np.int64)  # (V,)
    keys, counts = [np.arange(V, dtype=np.int64)], [counts1]
    suffix, first = [np.zeros(0, np.int64)], [np.arange(V, dtype=np.int64)]
    # index[p]: entry index of the (n-1)-gram ending at position p (-1 where none fits).
    # For unigrams that is the word id itself.
    index = stream  # (P,) int32
    for n in range(2, order + 1):
        if len(keys[-1]) * V >= 2**63:
            raise RnnkitError(f"too many {n - 1}-grams for 64-bit n-gram keys")
        fits = offset >= n - 1  # (P,) an n-gram ends here; never at position 0
        # key of the n-gram ending at p: (entry of the (n-1)-gram ending at p-1) * V + w_p
        window = index[:-1][fits[1:]].astype(np.int64)  # (W,)
        window *= V
        window += stream[fits]
        uniq, inverse, cnt = _unique_inverse(window)  # (U,), (W,), (U,)
        del window
        suf = np.empty(len(uniq), dtype=np.int64)
        suf[inverse] = index[fits]  # every occurrence of an n-gram has the same suffix
        keys.append(uniq)
        counts.append(cnt)
        suffix.append(suf)
        first.append(first[-1][uniq // V])
        index = np.full(len(stream), -1, dtype=np.int32)
        index[fits] = inverse
        del inverse, fits
    return NgramCounts(vocab, keys, counts, suffix, first, len(lengths), int(lengths.sum()))
