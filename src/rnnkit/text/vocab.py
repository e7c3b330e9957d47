"""Vocabularies: the one :class:`Vocab` of every model, and the helpers around it.

- :class:`Vocab`: a bijection between symbols and ids, character or word level, with an
  explicit policy for symbols it has not seen (an unknown token, or a strict error naming
  them); built from a text (:meth:`Vocab.build`, the language model's), from a corpus of
  sentences (the same method, with word2vec's counts and order), or from listed tokens.
  Its JSON form (:meth:`Vocab.to_json`) is what checkpoints hold.
- :func:`build_word_vocab`, :func:`extend_vocab`, :func:`encode_words`: word vocabularies
  with special tokens first (``<pad>`` = 0, ``<unk>`` = 1, ...) for the task models, and
  words -> ids with ``<unk>`` for unknown words.
- :func:`pad_batch`: id sequences as one padded batch with their lengths.

>>> v = Vocab.build("the cat sat\\nthe cat ran\\n", level="word")
>>> v.tokens
['<eos>', 'cat', 'the', 'ran', 'sat', '<unk>']
>>> ids = v.encode("the dog sat\\n")
>>> ids.tolist(), v.decode(ids)
([2, 5, 4, 0], 'the <unk> sat\\n')
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError
from rnnkit.text.corpus import MAX_SENTENCE_LEN, EncodedCorpus, encode_sentences

__all__ = [
    "PAD",
    "UNK",
    "Vocab",
    "build_word_vocab",
    "encode_words",
    "extend_vocab",
    "pad_batch",
]

PAD, UNK = "<pad>", "<unk>"
_LEVELS = ("char", "word")
_DEFAULT: Any = object()  # "use the level's default" for unk/eos


class Vocab:
    """A bijection between symbols and ids 0..V-1, at character or word level.

    Character level: every character is a symbol, ``"\\n"`` included; by default there is no
    unknown token, so encoding a character never seen in training raises a
    :class:`RnnkitError` that names it. Word level: whitespace-separated words, with the
    end-of-sentence token ``<eos>`` appended to every line (Zaremba et al.'s PTB setup:
    newline -> ``<eos>``), and words outside the vocabulary mapped to ``<unk>``. A literal
    ``<unk>`` already in the text (PTB's own) is that same token.

    Build one with :meth:`build` (from a text, or from a corpus of sentences); store it with
    :meth:`to_json` / :meth:`from_json` (the counts, kept by a corpus's vocabulary for
    word2vec's sampling tables, are not stored).

    Args:
        tokens: the symbols; the id of a symbol is its index.
        level: ``"char"`` or ``"word"``.
        unk: the token for unseen symbols (must be in ``tokens``), or None for strict.
        eos: the end-of-line token of word level (must be in ``tokens``), or None.
        counts: (V,) how often each token was seen in the data built from, or None.

    Example:

    >>> v = Vocab.build("abca\\n")
    >>> len(v), v.tokens
    (4, ['a', '\\n', 'b', 'c'])
    >>> v.encode("cab").tolist()
    [3, 0, 2]
    >>> v.encode("cabz", where="--prime")
    Traceback (most recent call last):
    rnnkit.io.RnnkitError: --prime: 1 symbol not in the vocabulary: 'z' (first at line 1, \
character 4); the vocabulary has no unknown token
    """

    def __init__(
        self,
        tokens: Sequence[str],
        level: str,
        unk: str | None = None,
        eos: str | None = None,
        counts: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if level not in _LEVELS:
            raise RnnkitError(f"vocabulary level must be 'char' or 'word', got {level!r}")
        self.tokens = list(tokens)
        self.level = level
        self.unk = unk
        self.eos = eos
        self.stoi = {t: i for i, t in enumerate(self.tokens)}
        if len(self.stoi) != len(self.tokens):
            dup = next(t for t, c in Counter(self.tokens).items() if c > 1)
            raise RnnkitError(f"vocabulary lists {dup!r} twice")
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        if self.counts is not None and self.counts.shape != (len(self.tokens),):
            raise ValueError(f"counts: expected shape ({len(self.tokens)},), got "
                             f"{self.counts.shape}")  # fmt: skip
        for role, tok in (("unknown", unk), ("end-of-sentence", eos)):
            if tok is not None and tok not in self.stoi:
                raise RnnkitError(f"vocabulary lacks its {role} token {tok!r}")
        if level == "char":
            bad = [t for t in self.tokens if len(t) != 1 and t != unk]
            if bad:
                raise RnnkitError(f"character vocabulary holds a multi-character symbol {bad[0]!r}")
            # Lookup table for fast encoding: sorted code points and their ids.
            chars = sorted((ord(t), i) for i, t in enumerate(self.tokens) if len(t) == 1)
            if not chars:
                raise RnnkitError("character vocabulary holds no characters")
            self._codes = np.array([c for c, _ in chars], dtype=np.uint32)
            self._code_ids = np.array([i for _, i in chars], dtype=np.int64)

    @classmethod
    def build(
        cls,
        data: str | Iterable[Sequence[str]],
        min_count: int | None = None,
        max_size: int | None = None,
        *,
        level: str | None = None,
        unk: str | None = _DEFAULT,
        eos: str | None = _DEFAULT,
    ) -> Vocab:
        """The vocabulary of training data, most frequent symbols first.

        ``data`` is either

        - a text (a string), the language model's: symbols at ``level``, ties alphabetical,
          the special tokens ``unk`` and ``eos`` ranked by their own counts; or
        - a corpus of sentences (:class:`rnnkit.text.corpus.Corpus`, or any iterable of token
          lists), word embeddings': words, ties in gensim 4's order (the word that first
          appeared later comes first, so vocabularies line up with gensim's), no special
          tokens, ``counts`` kept.

        Args:
            data: the text or the corpus.
            min_count: drop symbols seen fewer times than this (default 1 for a text, 5 for
                a corpus, as word2vec).
            max_size: the largest vocabulary, special tokens included (rarer symbols are
                dropped and later map to ``unk``); None for no limit.
            level: a text's ``"char"`` (default) or ``"word"``.
            unk: a text's unknown token; default ``"<unk>"`` at word level, None (strict) at
                char level. Always part of the vocabulary when set.
            eos: a text's end-of-line token; default ``"<eos>"`` at word level, None at char
                level (where ``"\\n"`` is an ordinary character).

        Tip: for PTB's character files (symbols separated by spaces, ``_`` between words) use
        ``level="word", unk=None``: 49 symbols + ``<eos>`` = 50.

        Example:
            >>> from rnnkit.text.corpus import Corpus
            >>> Vocab.build(Corpus.from_sentences([["a", "b", "a"]]), min_count=3)
            Traceback (most recent call last):
            rnnkit.io.RnnkitError: --min-count 3 leaves no vocabulary: ... 'a' occurs 2 times ...
        """
        if not isinstance(data, str):
            if level not in (None, "word") or unk is not _DEFAULT or eos is not _DEFAULT:
                raise ValueError("Vocab.build: a corpus gives words without special tokens; "
                                 "level, unk and eos are for a text")  # fmt: skip
            return cls._from_corpus(data, 5 if min_count is None else min_count, max_size)
        text = data
        level = "char" if level is None else level
        min_count = 1 if min_count is None else min_count
        if level not in _LEVELS:
            raise RnnkitError(f"vocabulary level must be 'char' or 'word', got {level!r}")
        if unk is _DEFAULT:
            unk = "<unk>" if level == "word" else None
        if eos is _DEFAULT:
            eos = "<eos>" if level == "word" else None
        if max_size is not None and max_size < 1:
            raise RnnkitError(f"max vocabulary size must be positive, got {max_size}")
        if min_count < 1:
            raise RnnkitError(f"min count must be >= 1, got {min_count}")
        counts = Counter(_tokenize(text, level, eos))
        if not counts:
            raise RnnkitError("cannot build a vocabulary from an empty text")
        specials = [t for t in (unk, eos) if t is not None]
        for t in specials:
            counts.setdefault(t, 0)
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        kept = [t for t in ranked if t in specials or counts[t] >= min_count]
        if max_size is not None:
            if max_size < len(specials):
                raise RnnkitError(f"max vocabulary size {max_size} leaves no room for {specials}")
            ordinary = set([t for t in kept if t not in specials][: max_size - len(specials)])
            kept = [t for t in kept if t in specials or t in ordinary]
        dropped = len(counts) - len(kept)
        if dropped and unk is None:
            raise RnnkitError(
                f"max size / min count drop {dropped} symbols but there is no unknown token"
            )
        return cls(kept, level, unk, eos)

    @classmethod
    def _from_corpus(
        cls, corpus: Iterable[Sequence[str]], min_count: int, max_size: int | None
    ) -> Vocab:
        source = getattr(corpus, "source", "corpus")
        if min_count < 1:
            raise RnnkitError(f"--min-count must be at least 1, got {min_count}")
        counter: Counter[str] = Counter()
        for sent in corpus:
            counter.update(sent)
        if sum(counter.values()) == 0:
            raise RnnkitError(f"{source}: corpus has no words")
        # most frequent first; ties: the word that first appeared later comes first, which is
        # gensim 4's order (lexsort on (-first_index, -count)), so vocabularies line up
        items = list(counter.items())  # Counter keeps first-appearance order
        order = sorted(range(len(items)), key=lambda k: (-items[k][1], -k))
        ranked = [items[k] for k in order]
        kept = [(w, c) for w, c in ranked if c >= min_count]
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            w, c = ranked[0]
            raise RnnkitError(
                f"--min-count {min_count} leaves no vocabulary: the most frequent word {w!r} "
                f"occurs {c} times in {source}"
            )
        return cls([w for w, _ in kept], "word", counts=[c for _, c in kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"Vocab(level={self.level!r}, size={len(self)}, unk={self.unk!r}, eos={self.eos!r})"

    @property
    def words(self) -> list[str]:
        """The tokens, by id (gensim's ``index_to_key``)."""
        return self.tokens

    @property
    def unk_id(self) -> int | None:
        """Id of the unknown token, None when strict."""
        return None if self.unk is None else self.stoi[self.unk]

    def tokenize(self, text: str) -> list[str]:
        """The symbols of ``text`` at this vocabulary's level (``eos`` appended per line)."""
        return _tokenize(text, self.level, self.eos)

    def encode(
        self, data: str | Iterable[Sequence[str]], where: str = "text",
        max_len: int = MAX_SENTENCE_LEN,
    ) -> np.ndarray | EncodedCorpus:  # fmt: skip
        """Token ids of a text, int64 array (T,); or of a corpus, an :class:`EncodedCorpus`.

        A text (a string): symbols outside the vocabulary map to ``unk``; without one (strict
        policy) this raises :class:`RnnkitError` naming up to five of them and where the
        first occurs, prefixed by ``where`` (a file name, or an option such as ``--prime``).

        A corpus (an iterable of token lists): its words as one flat int32 array with
        sentence offsets; words outside the vocabulary are dropped (word2vec's convention)
        and sentences longer than ``max_len`` are cut into pieces.
        """
        if not isinstance(data, str):
            return encode_sentences(self.stoi, data, max_len)
        text = data
        if self.level == "char":
            # Vectorized lookup: each character's code point, found in the sorted table.
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
            pos = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
            known = self._codes[pos] == codes
            ids = self._code_ids[pos]
            if not known.all():
                if self.unk is None:
                    self._raise_unknown(text, where)
                ids = np.where(known, ids, self.stoi[self.unk])
            return ids
        unk_id = self.unk_id
        tokens = self.tokenize(text)
        if unk_id is None:
            if any(t not in self.stoi for t in tokens):
                self._raise_unknown(text, where)
            return np.array([self.stoi[t] for t in tokens], dtype=np.int64)
        return np.array([self.stoi.get(t, unk_id) for t in tokens], dtype=np.int64)

    def _raise_unknown(self, text: str, where: str) -> None:
        unknown: dict[str, None] = {}  # insertion-ordered set
        first = ""
        lines = text.split("\n")
        for lineno, line in enumerate(lines, start=1):
            if self.level == "char":  # the line's own newline is a symbol too
                symbols = list(line) + (["\n"] if lineno < len(lines) else [])
            else:
                symbols = line.split()
            for k, s in enumerate(symbols, start=1):
                if s not in self.stoi and s not in unknown:
                    if not first:
                        unit = "character" if self.level == "char" else "word"
                        first = f"line {lineno}, {unit} {k}"
                    unknown[s] = None
        shown = ", ".join(repr(s) for s in list(unknown)[:5]) + (
            ", ..." if len(unknown) > 5 else ""
        )
        plural = "symbol" if len(unknown) == 1 else "symbols"
        raise RnnkitError(
            f"{where}: {len(unknown)} {plural} not in the vocabulary: {shown} (first at {first}); "
            "the vocabulary has no unknown token"
        )

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of a sequence of ids: characters joined; words joined by spaces, eos as newline.

        >>> v = Vocab.build("a b\\nb c\\n", level="word")
        >>> v.decode(v.encode("c b a\\na\\n"))
        'c b a\\na\\n'
        """
        n = len(self.tokens)
        for i in ids:
            if not 0 <= int(i) < n:
                raise RnnkitError(f"token id {int(i)} outside the vocabulary (size {n})")
        symbols = [self.tokens[int(i)] for i in ids]
        if self.level == "char":
            return "".join(symbols)
        out: list[str] = []
        line: list[str] = []
        for s in symbols:
            if s == self.eos:
                out.append(" ".join(line) + "\n")
                line = []
            else:
                line.append(s)
        return "".join(out) + " ".join(line)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (for the checkpoint's JSON file)."""
        return {"level": self.level, "unk": self.unk, "eos": self.eos, "tokens": self.tokens}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | str) -> Vocab:
        """Inverse of :meth:`to_json`; accepts the dict or its JSON text.

        >>> v = Vocab.build("hello\\n")
        >>> Vocab.from_json(json.dumps(v.to_json())).tokens == v.tokens
        True
        """
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except (ValueError, RecursionError) as e:  # also [[[[..., a 5000-digit number
                raise RnnkitError(f"vocabulary: invalid JSON ({type(e).__name__}: {e})") from None
        if not isinstance(obj, Mapping):
            raise RnnkitError("vocabulary: expected a JSON object")
        tokens = obj.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise RnnkitError("vocabulary: 'tokens' must be a list of strings")
        return cls(tokens, obj.get("level", ""), obj.get("unk"), obj.get("eos"))


def _tokenize(text: str, level: str, eos: str | None) -> list[str]:
    if level == "char":
        return list(text)
    # One line = one sentence; every line, the last included, gets `eos` (PTB ends each
    # line with "\n", so this is Zaremba's text.replace("\n", "<eos>").split()).
    lines = text.split("\n")
    if lines and lines[-1].strip() == "":
        lines.pop()  # the text's final newline does not start another sentence
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        if eos is not None:
            tokens.append(eos)
    return tokens


# --- word vocabularies of the task models ------------------------------------------------------


def build_word_vocab(
    sentences: Iterable[Sequence[str]],
    min_count: int = 1,
    max_size: int | None = None,
    specials: Sequence[str] = (PAD, UNK),
    eos: str | None = None,
) -> Vocab:
    """A word vocabulary: the ``specials`` first (``<pad>`` = 0, ``<unk>`` = 1 by default),
    then the words seen at least ``min_count`` times, most frequent first, ties alphabetical.

    ``max_size`` counts the specials; ``<unk>`` is the unknown token (it must be among the
    specials), ``eos`` an end-of-sentence token among them, or None. Given words as
    ``sentences`` (e.g. the words of a sentence), this counts their characters.

    >>> v = build_word_vocab([["a", "b", "a"], ["c"]])
    >>> v.tokens, encode_words(v, ["a", "zzz"]).tolist()
    (['<pad>', '<unk>', 'a', 'b', 'c'], [2, 1])
    >>> build_word_vocab([["a", "b", "a"], ["c"]], 2, specials=("<pad>", "<unk>", "</s>"),
    ...                  eos="</s>").tokens
    ['<pad>', '<unk>', '</s>', 'a']
    """
    counts = Counter(w for s in sentences for w in s)
    for t in specials:
        counts.pop(t, None)
    ranked = sorted((w for w in counts if counts[w] >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        ranked = ranked[: max(0, max_size - len(specials))]
    return Vocab([*specials, *ranked], level="word", unk=UNK, eos=eos)


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


def encode_words(vocab: Vocab, words: Sequence[str]) -> np.ndarray:
    """Ids (T,) int64 of ``words``; unknown words map to ``<unk>``."""
    unk = vocab.stoi[UNK]
    return np.array([vocab.stoi.get(w, unk) for w in words], dtype=np.int64)


def pad_batch(seqs: Sequence[Sequence[int] | np.ndarray], pad: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Id sequences -> (ids (B, T_max) padded with ``pad``, lengths (B,)); each needs >= 1 id.

    >>> ids, lengths = pad_batch([[4, 5], [6]])
    >>> ids.tolist(), lengths.tolist()
    ([[4, 5], [6, 0]], [2, 1])
    """
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if lengths.size == 0 or lengths.min() < 1:
        raise ValueError("pad_batch: every sequence needs at least one token")
    ids = np.full((len(seqs), int(lengths.max())), pad, dtype=np.int64)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = s
    return ids, lengths
