"""Word vectors: similarity, neighbours, analogies, evaluation, and the word2vec file formats.

:class:`KeyedVectors` holds V words and their vectors (V, E), most frequent word first. Cosine
similarity ``cos(u, v) = u . v / (|u| |v|)`` drives everything:

* :meth:`KeyedVectors.most_similar`: the words nearest to the normalised mean of the unit
  vectors of ``positive`` words minus those of ``negative`` words (gensim's definition);
* :meth:`KeyedVectors.analogy` ("a is to b as c is to ?"): 3CosAdd,
  argmax_d cos(d, b - a + c) over unit vectors, and 3CosMul,
  argmax_d cos'(d, b) cos'(d, c) / (cos'(d, a) + eps) with cos' = (1 + cos) / 2
  (Levy & Goldberg 2014, eq. 4 and footnote 7);
* :meth:`KeyedVectors.doesnt_match`: the word farthest from the mean of the unit vectors;
* :meth:`KeyedVectors.evaluate_word_pairs` (WordSim-353, SimLex-999: Spearman's rho between
  cosine and human scores) and :meth:`KeyedVectors.evaluate_word_analogies` (Google analogy
  set: accuracy per section) with gensim's conventions, stated in their docstrings.

Files use word2vec.c's formats, which gensim's ``KeyedVectors.load_word2vec_format`` reads:
a header line ``V E``, then per word either ``word x1 ... xE`` as text or ``word `` followed by
E little-endian float32 values and a newline (binary).

Example:
    >>> kv = KeyedVectors(["king", "queen", "man", "woman"],
    ...                   np.array([[1, 1], [1, -1], [0.9, 1.1], [0.9, -0.9]], np.float32))
    >>> kv.analogy("man", "woman", "king")[0][0]
    'queen'
    >>> round(kv.similarity("king", "man"), 3)
    0.995
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rnnkit.io import RnnkitError, atomic_write, read_bytes, read_lines

# ---------------------------------------------------------------------------------------------
# Correlations


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank (as Spearman's rho needs).

    Example:
        >>> rankdata([10, 20, 10, 30]).tolist()
        [1.5, 3.0, 1.5, 4.0]
    """
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    # runs of equal values share the mean of their 1-based positions
    starts = np.flatnonzero(np.concatenate([[True], sorted_a[1:] != sorted_a[:-1]]))
    ends = np.concatenate([starts[1:], [len(a)]])
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(a), np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def pearson(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Pearson's correlation coefficient (nan when either side is constant).

    Example:
        >>> round(pearson([1, 2, 3], [2, 4, 7]), 4)
        0.9934
    """
    a = np.asarray(x, np.float64) - np.mean(x)
    b = np.asarray(y, np.float64) - np.mean(y)
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else float("nan")


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's r of the (tie-averaged) ranks.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 30, 20, 40])
        0.8
    """
    return pearson(rankdata(x), rankdata(y))


# ---------------------------------------------------------------------------------------------
# Evaluation results


@dataclass
class PairEval:
    """Word-similarity evaluation: correlations over the pairs whose two words are known."""

    spearman: float
    pearson: float
    pairs: int  # pairs scored
    oov: int  # pairs skipped because a word is out of the (restricted) vocabulary

    @property
    def oov_rate(self) -> float:
        """Fraction of the file's pairs skipped as out of vocabulary."""
        return self.oov / (self.pairs + self.oov) if self.pairs + self.oov else 0.0


@dataclass
class AnalogySection:
    """One section (": name") of an analogy file."""

    name: str
    correct: int = 0
    incorrect: int = 0
    oov: int = 0  # questions skipped: a word outside the restricted vocabulary
    correct_items: list[tuple[str, str, str, str]] = field(default_factory=list, repr=False)

    @property
    def accuracy(self) -> float:
        """correct / (correct + incorrect); nan when every question was skipped."""
        n = self.correct + self.incorrect
        return self.correct / n if n else float("nan")


@dataclass
class AnalogyEval:
    """Analogy evaluation: per-section and total accuracy over the questions answered."""

    sections: list[AnalogySection]

    def _count(self, syntactic: bool | None = None) -> tuple[int, int, int]:
        # (correct, incorrect, oov) over all sections, or only the gram* (syntactic) ones
        secs = [
            s for s in self.sections if syntactic is None or s.name.startswith("gram") == syntactic
        ]
        return (
            sum(s.correct for s in secs),
            sum(s.incorrect for s in secs),
            sum(s.oov for s in secs),
        )

    def _accuracy(self, syntactic: bool | None = None) -> float:
        c, i, _ = self._count(syntactic)
        return c / (c + i) if c + i else float("nan")

    @property
    def accuracy(self) -> float:
        """Total accuracy (gensim's 'Total accuracy' section)."""
        return self._accuracy()

    @property
    def semantic_accuracy(self) -> float:
        """Accuracy over the non-``gram`` sections (Mikolov et al. 2013a's semantic part)."""
        return self._accuracy(False)

    @property
    def syntactic_accuracy(self) -> float:
        """Accuracy over the ``gram*`` sections."""
        return self._accuracy(True)

    @property
    def oov_rate(self) -> float:
        """Fraction of questions skipped as out of vocabulary."""
        c, i, o = self._count()
        return o / (c + i + o) if c + i + o else 0.0


# ---------------------------------------------------------------------------------------------
# KeyedVectors


class KeyedVectors:
    """Words and their vectors, with cosine-similarity queries.

    Args:
        words: V distinct words (most frequent first, for ``restrict_vocab``).
        vectors: (V, E) vectors, stored as float32.
        counts: optional (V,) corpus counts.

    Example:
        >>> kv = KeyedVectors(["a", "b", "c"], np.eye(3, dtype=np.float32))
        >>> kv["b"].tolist(), "d" in kv
        ([0.0, 1.0, 0.0], False)
        >>> kv["d"]
        Traceback (most recent call last):
        rnnkit.io.RnnkitError: word 'd' is not in the vocabulary (3 words)
    """

    def __init__(
        self, words: Sequence[str], vectors: np.ndarray, counts: np.ndarray | None = None
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"vectors {vectors.shape} do not match {len(words)} words")
        self.words = list(words)
        self.vectors = vectors
        self.counts = counts
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("words are not distinct")
        self._norms: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self.get_index(word)]

    @property
    def dim(self) -> int:
        """E, the vector size."""
        return int(self.vectors.shape[1])

    def get_index(self, word: str) -> int:
        """The row of ``word``; RnnkitError naming the word when it is unknown."""
        i = self.index.get(word)
        if i is None:
            raise RnnkitError(f"word {word!r} is not in the vocabulary ({len(self)} words)")
        return i

    @property
    def norms(self) -> np.ndarray:
        """(V,) Euclidean norms (computed once; call :meth:`reset_norms` after editing vectors)."""
        if self._norms is None:
            self._norms = np.linalg.norm(self.vectors, axis=1)
        return self._norms

    def reset_norms(self) -> None:
        """Forget cached norms (after changing ``vectors`` in place)."""
        self._norms = None

    def unit(self, word: str) -> np.ndarray:
        """The unit vector of ``word`` (zero vector stays zero)."""
        i = self.get_index(word)
        n = self.norms[i]
        return self.vectors[i] / n if n > 0 else self.vectors[i].copy()

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words.

        Example:
            >>> kv = KeyedVectors(["x", "y"], np.array([[1, 0], [1, 1]], np.float32))
            >>> kv.similarity("x", "y")
            0.7071067...
        """
        return float(np.dot(self.unit(a), self.unit(b)))

    def _scores(self, query: np.ndarray, restrict_vocab: int | None) -> np.ndarray:
        # cos(query, v_i) for the first restrict_vocab words; query is a unit vector
        r = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        norms = self.norms[:r]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (self.vectors[:r] @ query) / norms
        return np.where(norms > 0, s, -np.inf)

    def most_similar(
        self,
        positive: str | Sequence[str] = (),
        negative: str | Sequence[str] = (),
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest neighbours by cosine of the mean of unit vectors (+1 positive, -1 negative).

        The query words themselves are left out; ``restrict_vocab`` searches only the first
        that many words.

        Example:
            >>> kv = KeyedVectors(["a", "b", "c"], np.array([[1, 0], [1, .1], [0, 1]], np.float32))
            >>> [w for w, _ in kv.most_similar("a")]
            ['b', 'c']
        """
        pos = [positive] if isinstance(positive, str) else list(positive)
        neg = [negative] if isinstance(negative, str) else list(negative)
        if not pos and not neg:
            raise RnnkitError("most_similar needs at least one word")
        keys = pos + neg
        idx = [self.get_index(w) for w in keys]
        weights = np.array([1.0] * len(pos) + [-1.0] * len(neg), np.float32)
        units = np.stack([self.unit(w) for w in keys])
        mean = (weights[:, None] * units).sum(axis=0) / np.abs(weights).sum()
        n = float(np.linalg.norm(mean))
        mean = (mean / n if n > 0 else mean).astype(np.float32)
        scores = self._scores(mean, restrict_vocab)
        return self._top(scores, set(idx), topn)

    def _top(
        self, scores: np.ndarray, exclude: Iterable[int], topn: int
    ) -> list[tuple[str, float]]:
        scores = scores.copy()
        for i in exclude:
            if i < len(scores):
                scores[i] = -np.inf
        k = min(topn, len(scores))
        best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in best if np.isfinite(scores[i])][:topn]

    def analogy(
        self,
        a: str,
        b: str,
        c: str,
        topn: int = 1,
        method: str = "add",
        restrict_vocab: int | None = None,
        eps: float = 1e-3,
    ) -> list[tuple[str, float]]:
        """Answer "a is to b as c is to ?" by 3CosAdd (``method='add'``) or 3CosMul ('mul').

        3CosAdd ranks d by cos(d, b - a + c) over unit vectors (= gensim's most_similar with
        positive=[b, c], negative=[a]); 3CosMul by
        cos'(d, b) cos'(d, c) / (cos'(d, a) + eps), cos' = (1 + cos) / 2 (Levy & Goldberg
        2014; their eps = 0.001, gensim's most_similar_cosmul uses 1e-6). a, b, c are excluded.

        Example:
            >>> kv = KeyedVectors(["paris", "france", "rome", "italy"],
            ...     np.array([[1, 0, 1], [1, 1, 0], [-1, 0, 1], [-1, 1, 0]], np.float32))
            >>> kv.analogy("paris", "france", "rome", method="mul")[0][0]
            'italy'
        """
        if method == "add":
            return self.most_similar(positive=[b, c], negative=[a], topn=topn,
                                     restrict_vocab=restrict_vocab)  # fmt: skip
        if method != "mul":
            raise RnnkitError(f"analogy method must be 'add' or 'mul', got {method!r}")
        ia, ib, ic = (self.get_index(w) for w in (a, b, c))
        cos = [self._scores(self.unit(w).astype(np.float32), restrict_vocab) for w in (a, b, c)]
        ca, cb, cc = ((1.0 + s) / 2.0 for s in cos)
        with np.errstate(invalid="ignore"):  # zero vectors (cos = -inf) are never answers
            scores = np.where(np.isfinite(ca), cb * cc / (ca + eps), -np.inf)
        return self._top(scores, {ia, ib, ic}, topn)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word least similar to the mean of the unit vectors of all of them.

        Example:
            >>> kv = KeyedVectors(["a", "b", "c"], np.array([[1, 0], [1, .1], [0, 1]], np.float32))
            >>> kv.doesnt_match(["a", "b", "c"])
            'c'
        """
        if len(words) < 2:
            raise RnnkitError("doesnt_match needs at least two words")
        units = np.stack([self.unit(w) for w in words])
        mean = units.mean(axis=0)
        mean = mean / np.linalg.norm(mean)
        return words[int(np.argmin(units @ mean))]

    # -- evaluation --------------------------------------------------------------------------

    def _ok_vocab(self, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
        # gensim's convention: only the first restrict_vocab words count; upper-cased keys map
        # to the most frequent case variant (built in reverse so earlier words win)
        keys = self.words[:restrict_vocab]
        if case_insensitive:
            return {w.upper(): i for i, w in reversed(list(enumerate(keys)))}
        return {w: i for i, w in enumerate(keys)}

    def evaluate_word_pairs(
        self,
        path: str | os.PathLike[str],
        restrict_vocab: int = 300000,
        case_insensitive: bool = True,
    ) -> PairEval:
        """Spearman and Pearson correlation with human similarity scores (WordSim-353, SimLex-999).

        File format: ``word1<TAB>word2<TAB>score`` per line, ``#`` lines are comments. As in
        gensim's ``evaluate_word_pairs``: a pair is skipped (counted as OOV) unless both words
        are among the first ``restrict_vocab`` words; with ``case_insensitive`` words are
        matched upper-cased, taking the most frequent case variant.
        """
        ok = self._ok_vocab(restrict_vocab, case_insensitive)
        gold: list[float] = []
        model: list[float] = []
        oov = 0
        for no, line in enumerate(read_lines(path), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            try:
                a, b, score_s = (p.strip() for p in parts)
                score = float(score_s)
            except ValueError:
                raise RnnkitError(
                    f"{path}: line {no}: expected 'word1<TAB>word2<TAB>score', found {line!r}"
                ) from None
            if case_insensitive:
                a, b = a.upper(), b.upper()
            if a not in ok or b not in ok:
                oov += 1
                continue
            ia, ib = ok[a], ok[b]
            gold.append(score)
            model.append(self.similarity(self.words[ia], self.words[ib]))
        if not gold:
            raise RnnkitError(f"{path}: no pair has both words in the vocabulary ({oov} pairs)")
        return PairEval(spearman(gold, model), pearson(gold, model), len(gold), oov)

    def evaluate_word_analogies(
        self,
        path: str | os.PathLike[str],
        restrict_vocab: int = 300000,
        case_insensitive: bool = True,
        method: str = "add",
        batch: int = 512,
    ) -> AnalogyEval:
        """Accuracy on an analogy file (``: section`` lines, then ``a b c d`` questions).

        gensim's ``evaluate_word_analogies`` convention (and word2vec.c's compute-accuracy):
        only the first ``restrict_vocab`` words (the most frequent) are answers, and a question
        with any word outside them is skipped and counted as OOV, not as wrong; with
        ``case_insensitive`` words are compared upper-cased. The answer is the best-scoring
        word (3CosAdd or 3CosMul) among the top 5 that is not a, b or c.
        """
        ok = self._ok_vocab(restrict_vocab, case_insensitive)
        sections: list[AnalogySection] = []
        questions: list[tuple[int, tuple[str, str, str, str]]] = []
        for no, line in enumerate(read_lines(path), start=1):
            if not line.strip():
                continue
            if line.startswith(":"):
                sections.append(AnalogySection(line[1:].strip()))
                continue
            if not sections:
                raise RnnkitError(f"{path}: line {no}: question before the first ': section' line")
            parts = line.split()
            if len(parts) != 4:
                raise RnnkitError(f"{path}: line {no}: expected 4 words, found {len(parts)}")
            q = tuple(w.upper() for w in parts) if case_insensitive else tuple(parts)
            if any(w not in ok for w in q):
                sections[-1].oov += 1
                continue
            questions.append((len(sections) - 1, q))  # type: ignore[arg-type]
        r = min(restrict_vocab, len(self))
        norms = self.norms[:r]
        with np.errstate(divide="ignore", invalid="ignore"):
            unit = np.where(norms[:, None] > 0, self.vectors[:r] / norms[:, None], 0.0)
        unit = unit.astype(np.float32)
        for lo in range(0, len(questions), batch):
            chunk = questions[lo : lo + batch]
            ids = np.array([[ok[w] for w in q[:3]] for _, q in chunk])  # (B, 3): a, b, c
            if method == "add":
                query = unit[ids[:, 1]] + unit[ids[:, 2]] - unit[ids[:, 0]]  # (B, E)
                query /= np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-30)
                scores = query @ unit.T  # (B, r)
            elif method == "mul":
                cos = [(1.0 + unit[ids[:, k]] @ unit.T) / 2.0 for k in range(3)]
                scores = cos[1] * cos[2] / (cos[0] + 1e-3)
            else:
                raise RnnkitError(f"analogy method must be 'add' or 'mul', got {method!r}")
            rows = np.arange(len(chunk))[:, None]
            scores[rows, ids] = -np.inf
            k = min(5, r)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            top = np.take_along_axis(top, np.argsort(-scores[rows, top], axis=1), axis=1)
            for (sec, q), cand in zip(chunk, top, strict=True):
                ignore = set(q[:3])
                predicted = None
                for i in cand:
                    predicted = self.words[i].upper() if case_insensitive else self.words[i]
                    if predicted in ok and predicted not in ignore:
                        break
                s = sections[sec]
                if predicted == q[3]:
                    s.correct += 1
                    s.correct_items.append(q)
                else:
                    s.incorrect += 1
        return AnalogyEval(sections)

    # -- files -------------------------------------------------------------------------------

    def save_word2vec_format(self, path: str | os.PathLike[str], binary: bool = False) -> None:
        """Write word2vec.c's text or binary format (readable by gensim's load_word2vec_format).

        Text values are written with 9 significant digits, enough to restore float32 exactly.
        """
        for w in self.words:
            if not w or any(ch.isspace() for ch in w):
                raise RnnkitError(f"word {w!r} is empty or contains whitespace: cannot be saved")
        v, e = self.vectors.shape
        with atomic_write(path, "wb") as f:
            f.write(f"{v} {e}\n".encode())
            if binary:
                data = self.vectors.astype("<f4")
                for w, row in zip(self.words, data, strict=True):
                    f.write(w.encode("utf-8") + b" " + row.tobytes() + b"\n")
            else:
                fmt = " ".join(["%.9g"] * e)
                buf = io.StringIO()
                for w, row in zip(self.words, self.vectors.tolist(), strict=True):
                    buf.write(w + " " + fmt % tuple(row) + "\n")
                f.write(buf.getvalue().encode("utf-8"))

    @classmethod
    def load_word2vec_format(
        cls, path: str | os.PathLike[str], binary: bool | None = None
    ) -> KeyedVectors:
        """Read word2vec.c's text or binary format (gzip accepted; ``binary=None`` detects it).

        A text file without the ``V E`` header (GloVe's own output) is read too. Errors name
        the file and line (text) or entry and byte offset (binary).

        Example:
            >>> import tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "v.txt")
            >>> _ = open(p, "w").write("2 2\\nx 1 0\\ny 0.5\\n")
            >>> KeyedVectors.load_word2vec_format(p)
            Traceback (most recent call last):
            rnnkit.io.RnnkitError: ...v.txt: line 3: expected a word and 2 numbers, found 1 number
        """
        data = read_bytes(path)
        if not data.strip():
            raise RnnkitError(f"{path}: file is empty")
        nl = data.find(b"\n")
        first = data[: nl if nl >= 0 else len(data)]
        head = first.split()
        if len(head) == 2 and all(t.isdigit() for t in head):
            if max(len(t) for t in head) > 18:  # beyond int64; int() of 4300+ digits raises
                raise RnnkitError(f"{path}: line 1: header numbers too large ({first[:60]!r})")
            v, e = int(head[0]), int(head[1])
            if v < 1 or e < 1:
                raise RnnkitError(f"{path}: line 1: header says {v} words of size {e}")
            body = data[nl + 1 :] if nl >= 0 else b""
            if binary is None:
                binary = not _looks_like_text(body, e)
            first_line = 2
            if binary:
                words, vecs = _parse_binary(path, body, v, e, offset=nl + 1)
            else:
                words, vecs = _parse_text(path, body, e, first_line)
                if len(words) != v:
                    raise RnnkitError(f"{path}: header says {v} words, found {len(words)} lines")
        else:
            if binary:
                raise RnnkitError(
                    f"{path}: line 1: expected a header 'COUNT DIM', found {first[:60]!r}"
                )
            e = len(head) - 1
            if e < 1:
                raise RnnkitError(f"{path}: line 1: expected a header 'COUNT DIM' or a vector line")
            first_line = 1
            words, vecs = _parse_text(path, data, e, first_line)
        seen: set[str] = set()
        for i, w in enumerate(words):
            if w in seen:
                where = f"entry {i + 1}" if binary else f"line {i + first_line}"
                raise RnnkitError(f"{path}: {where}: word {w!r} appears twice")
            seen.add(w)
        return cls(words, vecs)


def _looks_like_text(body: bytes, e: int) -> bool:
    """Whether the first entry after the header parses as 'word x1 ... xE' text."""
    nl = body.find(b"\n")
    line = body[: nl if nl >= 0 else len(body)]
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
        if len(parts) != e + 1:
            return False
        [float(x) for x in parts[1:]]
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def _parse_text(
    path: str | os.PathLike[str], body: bytes, e: int, first_line: int
) -> tuple[list[str], np.ndarray]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + body.count(b"\n", 0, err.start)
        raise RnnkitError(f"{path}: line {line}: not valid utf-8") from None
    lines = text.split("\n")
    if lines and not lines[-1].strip():
        lines.pop()
    words: list[str] = []
    fields: list[str] = []
    for k, line in enumerate(lines):
        # split on single spaces as gensim does; word2vec.c leaves a trailing space
        parts = line.rstrip().split(" ")
        if len(parts) != e + 1:
            n = len(parts) - 1
            raise RnnkitError(
                f"{path}: line {first_line + k}: expected a word and {e} numbers, "
                f"found {n} number{'s' if n != 1 else ''}"
            )
        words.append(parts[0])
        fields.extend(parts[1:])
    try:
        with np.errstate(over="ignore"):  # beyond float32's range: inf, reported below
            vecs = np.array(fields, dtype=np.float64).astype(np.float32)
    except ValueError:
        vecs = None
    if vecs is None or not np.isfinite(vecs).all():
        top = float(np.finfo(np.float32).max)
        for k, line in enumerate(lines):
            for x in line.rstrip().split(" ")[1:]:
                try:
                    ok = math.isfinite(float(x))
                except ValueError:
                    ok = False
                if not ok:
                    raise RnnkitError(
                        f"{path}: line {first_line + k}: {x!r} is not a finite number"
                    )
                if abs(float(x)) > top:
                    raise RnnkitError(
                        f"{path}: line {first_line + k}: {x!r} is beyond float32's range"
                    )
    assert vecs is not None
    return words, vecs.reshape(len(words), e)


def _parse_binary(
    path: str | os.PathLike[str], body: bytes, v: int, e: int, offset: int
) -> tuple[list[str], np.ndarray]:
    # every entry takes at least a one-byte word, a space and 4 E bytes: a header claiming
    # more than the file can hold is refused before the (V, E) array is allocated
    least = v * (4 * e + 2)
    if least > len(body):
        raise RnnkitError(
            f"{path}: line 1: header says {v} words of {e} float32 values, which needs at "
            f"least {least:,} bytes; the file holds {len(body):,} after the header"
        )
    vecs = np.empty((v, e), np.float32)
    words: list[str] = []
    pos, nbytes = 0, 4 * e
    for i in range(v):
        while pos < len(body) and body[pos : pos + 1] in (b"\n", b"\r"):
            pos += 1  # word2vec.c ends each entry with a newline; gensim does not
        sp = body.find(b" ", pos)
        if sp < 0 or len(body) - (sp + 1) < nbytes:
            raise RnnkitError(
                f"{path}: entry {i + 1} (byte offset {offset + pos}): file ends early, "
                f"header says {v} words of {e} float32 values"
            )
        try:
            word = body[pos:sp].decode("utf-8")
        except UnicodeDecodeError:
            raise RnnkitError(
                f"{path}: entry {i + 1} (byte offset {offset + pos}): word is not valid utf-8"
            ) from None
        if not word:
            raise RnnkitError(f"{path}: entry {i + 1} (byte offset {offset + pos}): empty word")
        vecs[i] = np.frombuffer(body, dtype="<f4", count=e, offset=sp + 1)
        if not np.isfinite(vecs[i]).all():
            raise RnnkitError(
                f"{path}: entry {i + 1} (word {word!r}, byte offset {offset + pos}): "
                "vector holds a non-finite value"
            )
        words.append(word)
        pos = sp + 1 + nbytes
    if body[pos:].strip():
        raise RnnkitError(
            f"{path}: byte offset {offset + pos}: data after the {v} entries the header announces"
        )
    return words, vecs
