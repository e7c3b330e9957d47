"""The n-gram model as an ARPA file holds it, in NumPy arrays; scoring and perplexity."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rnnkit.io import RnnkitError, read_lines
from rnnkit.ngram.counting import BOS, EOS, UNK, encode_lines, padded_stream

NEG_INF_LOG10 = -99.0  # what ARPA files write for "never predicted" (<s>)

Array = np.ndarray


def find_keys(table: Array, key: Array) -> Array:
    """Index of each key in the sorted ``table``, -1 where it is absent."""
    if len(table) == 0:
        return np.full(np.shape(key), -1, dtype=np.int64)
    pos = np.searchsorted(table, key)
    hit = table[np.minimum(pos, len(table) - 1)] == key
    return np.where(hit, pos, -1)


@dataclass
class NgramModel:
    """A backoff n-gram model, exactly what an ARPA file holds, in NumPy arrays.

    p(w | h) = 10 ** logprob[hw] when the n-gram h w is listed, else
    10 ** backoff[h] * p(w | h minus its first word) (backoff 0 when h is not listed).

    Args:
        vocab: id -> word; must contain ``<s>``, ``</s>`` and ``<unk>``.
        keys: per order n, ``(M_n,) int64`` sorted keys as in :class:`NgramCounts`.
        logprob: per order, ``(M_n,) float64`` log10 probabilities (-99: never predicted).
        backoff: per order 1..N-1, ``(M_n,) float64`` log10 backoff weights.
        method: how it was estimated (``"arpa"`` when read from a file).
        discounts: per order, the discounts used (Kneser-Ney only).
        notes: warnings from estimation (discount fallbacks).
        closed: whether unknown words are an error; by default, when ``<unk>`` has log10
            probability -99 or less.

    Example:
        >>> from rnnkit.ngram import train_lines
        >>> lm = train_lines(["a b a", "b b"], order=2, method="add-k", k=0.5)
        >>> lm.order, len(lm.vocab), [len(k) for k in lm.keys]   # 7 distinct bigrams
        (2, 5, [5, 7])
        >>> round(float(lm.distribution(["<s>"]).sum()), 12)
        1.0
    """

    vocab: list[str]
    keys: list[Array]
    logprob: list[Array]
    backoff: list[Array]
    method: str = "arpa"
    discounts: list[list[float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    closed: bool | None = None

    def __post_init__(self) -> None:
        self.word_to_id = {w: i for i, w in enumerate(self.vocab)}
        self.unk_id = self.word_to_id[UNK]
        self.bos_id = self.word_to_id[BOS]
        self.eos_id = self.word_to_id[EOS]
        if self.closed is None:
            self.closed = bool(self.logprob[0][self.unk_id] <= NEG_INF_LOG10)

    @property
    def order(self) -> int:
        return len(self.keys)

    def _lookup(self, n: int, key: Array) -> Array:
        """Entry index of each key among order n's n-grams, -1 where absent."""
        return find_keys(self.keys[n - 1], key)

    def context_indices(self, context: Sequence[int]) -> list[int]:
        """Entry index of the last j context ids among order j's entries (-1: not listed).

        Returns one index per j = 1 .. min(len(context), N-1).
        """
        V = len(self.vocab)
        ctx = list(context)[max(len(context) - (self.order - 1), 0) :] if self.order > 1 else []
        out = []
        for j in range(1, len(ctx) + 1):
            words = ctx[len(ctx) - j :]
            idx = int(words[0])  # a unigram's entry index is its id
            for m, w in enumerate(words[1:], start=2):
                idx = int(self._lookup(m, np.int64(idx * V + w))) if idx >= 0 else -1
            out.append(idx)
        return out

    def distribution(self, context: Sequence[str]) -> Array:
        """p(w | context) for every word id w: ``(V,)``, summing to 1 (``<s>`` gets 0).

        ``context`` is a list of words; start it with ``<s>`` for the start of a sentence
        (anything before the last ``<s>`` is ignored). Unknown words are read as ``<unk>``.
        """
        ctx = list(context)
        if BOS in ctx:
            ctx = ctx[len(ctx) - 1 - ctx[::-1].index(BOS) :]
        return self._distribution_ids([self.word_to_id.get(w, self.unk_id) for w in ctx])

    def _distribution_ids(self, context: Sequence[int]) -> Array:
        V = len(self.vocab)
        logp = self.logprob[0].copy()  # (V,) the unigram model
        # Grow the context one word at a time: everything is multiplied by the backoff of the
        # context, then the n-grams listed after it overwrite their words (ARPA semantics).
        for j, c in enumerate(self.context_indices(context), start=1):
            if c < 0:
                continue
            logp += self.backoff[j - 1][c]
            lo, hi = np.searchsorted(self.keys[j], [c * V, (c + 1) * V])
            logp[self.keys[j][lo:hi] % V] = self.logprob[j][lo:hi]
        p = 10.0**logp
        p[self.bos_id] = 0.0  # never predicted
        if self.closed:
            p[self.unk_id] = 0.0
        return p

    def score_ids(self, ids: Array, lengths: Array) -> Array:
        """log10 p of every prediction: ``(T + S,)``, each sentence's words then its ``</s>``.

        ids (T,), lengths (S,) as from :func:`encode_lines`. Vectorised over the whole text:
        for every order n the entry of the n-gram ending at each position is looked up; a
        prediction takes the longest listed n-gram's log10 p plus the log10 backoffs of the
        longer contexts it had to give up (Katz 1987; the ARPA format).
        """
        V, N = len(self.vocab), self.order
        stream, offset = padded_stream(ids, lengths, self.bos_id, self.eos_id)  # (P,) (P,)
        index = [stream]  # index[n-1][p]: entry of the n-gram ending at p, -1 if not listed
        for n in range(2, N + 1):
            prev = index[-1]
            idx = np.full(len(stream), -1, dtype=np.int64)
            end = np.flatnonzero(offset >= n - 1)
            end = end[prev[end - 1] >= 0]
            idx[end] = self._lookup(n, prev[end - 1].astype(np.int64) * V + stream[end])
            index.append(idx)
        logp = np.zeros(len(stream))  # (P,)
        done = offset == 0  # <s> is never predicted
        for n in range(N, 0, -1):
            hit = ~done & (index[n - 1] >= 0)
            logp[hit] += self.logprob[n - 1][index[n - 1][hit]]
            done |= hit
            if n >= 2:  # the n-gram is not listed: pay the backoff of its (n-1)-word context
                miss = np.flatnonzero(~done)
                ctx = index[n - 2][miss - 1]
                listed = ctx >= 0
                logp[miss[listed]] += self.backoff[n - 2][ctx[listed]]
        return logp[offset > 0]

    def sample(self, rng: np.random.Generator, max_words: int = 50) -> list[str]:
        """Draw one sentence word by word from p(w | history), stopping at ``</s>``.

        >>> from rnnkit.ngram import train_lines
        >>> lm = train_lines(["a b", "a c", "a b"], order=2)
        >>> lm.sample(np.random.default_rng(0))[0]
        'a'
        """
        context, words = [self.bos_id], []
        while len(words) < max_words:
            cdf = np.cumsum(self._distribution_ids(context))
            w = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            w = min(w, len(cdf) - 1)
            if w == self.eos_id:
                break
            words.append(self.vocab[w])
            context.append(w)
        return words


@dataclass
class Perplexity:
    """Scores of a text: total and per sentence (conventions: see :mod:`rnnkit.ngram`).

    ``sentence_log10prob (S,)``, ``sentence_words (S,)`` (without ``</s>``) and
    ``line_numbers (S,)`` (1-based, in the file) are per sentence.
    """

    log10prob: float
    n_sentences: int
    n_words: int  # tokens, <unk> and OOV included, without </s>
    n_oov: int
    sentence_log10prob: Array
    sentence_words: Array
    line_numbers: Array

    @property
    def n_predictions(self) -> int:
        return self.n_words + self.n_sentences

    @property
    def perplexity(self) -> float:
        return float(10.0 ** (-self.log10prob / self.n_predictions))

    def sentence_perplexity(self) -> Array:
        """Per-sentence perplexity ``(S,)``: 10 ** (-log10 p / (words + 1))."""
        return 10.0 ** (-self.sentence_log10prob / (self.sentence_words + 1))


def evaluate_lines(model: NgramModel, lines: Sequence[str], where: str = "text") -> Perplexity:
    """Score sentences, one per line; blank lines are skipped.

    >>> from rnnkit.ngram import train_lines
    >>> lm = train_lines(["a b", "b a"], order=2)
    >>> r = evaluate_lines(lm, ["a b", "", "b b b"])
    >>> r.n_sentences, r.n_words, r.n_predictions, r.line_numbers.tolist()
    (2, 5, 7, [1, 3])
    """
    ids, lengths, line_numbers, n_oov = encode_lines(lines, model.word_to_id)
    if len(lengths) == 0:
        raise RnnkitError(f"{where}: no sentences to score (every line is blank)")
    for reserved in (model.bos_id, model.eos_id):
        if np.any(ids == reserved):
            sentence = int(np.searchsorted(np.cumsum(lengths), np.argmax(ids == reserved), "right"))
            raise RnnkitError(
                f"{where}:{line_numbers[sentence]}: the token {model.vocab[reserved]} is "
                "reserved for sentence boundaries; remove it (each line is one sentence)"
            )
    if n_oov and model.closed:
        for no, line in enumerate(lines, start=1):
            for w in line.split():
                if w not in model.word_to_id:
                    raise RnnkitError(
                        f"{where}:{no}: {w!r} is not in the closed vocabulary of the model "
                        "(train with --unk open to score unknown words as <unk>)"
                    )
    logp = model.score_ids(ids, lengths)  # (T + S,)
    bounds = np.cumsum(lengths + 1)
    per_sentence = np.add.reduceat(logp, bounds - (lengths + 1))  # (S,)
    return Perplexity(
        float(per_sentence.sum()),
        len(lengths),
        int(lengths.sum()),
        n_oov,
        per_sentence,
        lengths,
        line_numbers,
    )


def evaluate_file(model: NgramModel, path: str | os.PathLike[str]) -> Perplexity:
    """:func:`evaluate_lines` on a text file (gzip accepted)."""
    return evaluate_lines(model, read_lines(path), where=str(path))
