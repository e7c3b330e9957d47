"""Corpora of sentences and their encoded layout (word-embedding training reads these).

A corpus is a sequence of sentences, each a list of tokens (one sentence per line of a text
file, tokens split on whitespace). :meth:`rnnkit.text.vocab.Vocab.build` counts one into a
vocabulary and :meth:`rnnkit.text.vocab.Vocab.encode` turns it into one flat ``int32``
array of word ids plus sentence offsets (an :class:`EncodedCorpus`): the layout the
compiled training loops walk through.

Words outside the vocabulary are dropped from the sentences, so windows span across them
(word2vec.c, gensim and the GloVe tool all do this).

Example:
    >>> from rnnkit.text.vocab import Vocab
    >>> corpus = Corpus.from_sentences([["the", "cat", "sat"], ["the", "dog"]])
    >>> vocab = Vocab.build(corpus, min_count=1)
    >>> vocab.words, vocab.counts.tolist()
    (['the', 'dog', 'sat', 'cat'], [2, 1, 1, 1])
    >>> enc = vocab.encode(corpus)
    >>> enc.ids.tolist(), enc.sent_starts.tolist()
    ([0, 3, 2, 0, 1], [0, 3, 5])
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rnnkit.io import RnnkitError, read_text

# gensim's MAX_WORDS_IN_BATCH: longer sentences are cut into pieces of this many words
MAX_SENTENCE_LEN = 10000

__all__ = ["MAX_SENTENCE_LEN", "Corpus", "EncodedCorpus", "encode_sentences"]


class Corpus:
    """Sentences of tokens, iterable more than once.

    Args:
        sentences: token lists (kept as given), or None when ``lines`` is given.
        lines: raw text lines, tokenised on whitespace each time the corpus is iterated.
        lowercase: lower-case every token.
        source: a name for error messages (the file path for :meth:`from_file`).

    Example:
        >>> [s for s in Corpus(lines=["A b", "", "c"], lowercase=True)]
        [['a', 'b'], ['c']]
    """

    def __init__(
        self,
        sentences: Iterable[Sequence[str]] | None = None,
        *,
        lines: Sequence[str] | None = None,
        lowercase: bool = False,
        source: str = "corpus",
    ) -> None:
        if (sentences is None) == (lines is None):
            raise ValueError("give exactly one of sentences or lines")
        self._sentences = None if sentences is None else [list(s) for s in sentences]
        self._lines = lines
        self.lowercase = lowercase
        self.source = source

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, lowercase: bool = False, encoding: str = "utf-8"
    ) -> Corpus:
        """One sentence per line of a text file (gzip accepted); an empty file is an error."""
        text = read_text(path, encoding=encoding)
        return cls(lines=text.splitlines(), lowercase=lowercase, source=str(path))

    @classmethod
    def from_sentences(
        cls, sentences: Iterable[Sequence[str]], *, lowercase: bool = False
    ) -> Corpus:
        """A corpus from token lists already in memory."""
        return cls(sentences, lowercase=lowercase)

    def __iter__(self) -> Iterator[list[str]]:
        if self._lines is not None:
            for line in self._lines:
                toks = (line.lower() if self.lowercase else line).split()
                if toks:
                    yield toks
        else:
            assert self._sentences is not None
            for s in self._sentences:
                if s:
                    yield [t.lower() for t in s] if self.lowercase else s


@dataclass
class EncodedCorpus:
    """A corpus as word ids: sentence ``s`` is ``ids[sent_starts[s]:sent_starts[s+1]]``.

    Attributes:
        ids: (N,) int32 word ids, out-of-vocabulary words removed.
        sent_starts: (S+1,) int64 sentence offsets into ``ids``.
        raw_words: tokens in the corpus before removing out-of-vocabulary words.
    """

    ids: np.ndarray
    sent_starts: np.ndarray
    raw_words: int

    @property
    def n_words(self) -> int:
        """In-vocabulary tokens (N)."""
        return int(self.ids.shape[0])

    def chunks(self, words_per_chunk: int = MAX_SENTENCE_LEN) -> np.ndarray:
        """Sentence indices that cut the corpus into chunks of about ``words_per_chunk`` words.

        Returns (C+1,) int64: chunk ``c`` holds sentences ``bounds[c]:bounds[c+1]``. Chunks are
        the unit of work a thread takes and the unit a random stream is seeded for.
        """
        n_sent = len(self.sent_starts) - 1
        targets = np.arange(words_per_chunk, self.n_words, words_per_chunk)
        cuts = np.searchsorted(self.sent_starts, targets, side="left")
        bounds = np.unique(np.concatenate([[0], cuts, [n_sent]])).astype(np.int64)
        return bounds


def encode_sentences(
    index: Mapping[str, int], corpus: Iterable[Sequence[str]], max_len: int = MAX_SENTENCE_LEN
) -> EncodedCorpus:
    """Map a corpus to word ids with ``index`` (word -> id), dropping unknown words;
    sentences longer than ``max_len`` are cut into pieces."""
    pieces: list[np.ndarray] = []
    lengths: list[int] = []
    raw = 0
    for sent in corpus:
        raw += len(sent)
        ids = np.fromiter((index.get(w, -1) for w in sent), dtype=np.int32, count=len(sent))
        ids = ids[ids >= 0]
        for lo in range(0, len(ids), max_len):
            piece = ids[lo : lo + max_len]
            pieces.append(piece)
            lengths.append(len(piece))
    if not pieces or sum(lengths) == 0:
        source = getattr(corpus, "source", "corpus")
        raise RnnkitError(f"{source}: no word of the vocabulary occurs in the corpus")
    ids_all = np.concatenate(pieces).astype(np.int32)
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return EncodedCorpus(ids_all, starts, raw)
