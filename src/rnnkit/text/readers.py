"""File readers of the task models' data (gzip accepted everywhere), each with one-line
errors that name the file and line:

- labelled sentences (:func:`read_labelled_tsv`, GLUE's TSV layout) and sentences to
  classify (:func:`read_sentences`);
- tagged sentences (:func:`read_tagged`): CoNLL column files (whitespace-separated columns,
  the word first, the tag in a chosen column, the last by default; a blank line ends a
  sentence; ``-DOCSTART-`` lines are skipped) and CoNLL-U (10 tab-separated columns; comment
  lines, multiword-token ranges ``3-4`` and empty nodes ``5.1`` skipped; the tag is UPOS or
  XPOS), or plain text (:func:`text_corpus`);
- pretrained word vectors in word2vec's text format (:func:`read_word2vec_text`,
  :func:`read_word2vec_words`, :func:`word2vec_dim`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.io import RnnkitError, read_lines
from rnnkit.text.vocab import PAD, Vocab

Array = np.ndarray

__all__ = [
    "CONLLU_TAGS",
    "LabelledText",
    "TaggedCorpus",
    "read_labelled_tsv",
    "read_sentences",
    "read_tagged",
    "read_word2vec_text",
    "read_word2vec_words",
    "text_corpus",
    "word2vec_dim",
]

CONLLU_TAGS = {"upos": 3, "xpos": 4}


# --- word vectors ----------------------------------------------------------------------------


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
        RnnkitError: naming the file and line, for a bad header, a line with the wrong
            number of values, or a value that is not a number.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "vec.txt")
        >>> _ = open(path, "w").write("2 3\\nfilm 1 0 0\\nFunny 0 1 0.5\\n")
        >>> from rnnkit.text.vocab import build_word_vocab
        >>> ids, vecs = read_word2vec_text(path, build_word_vocab([["funny", "film"]]))
        >>> ids.tolist(), vecs[1].tolist()
        ([2, 3], [0.0, 1.0, 0.5])
    """
    lines = read_lines(path, encoding)
    header = lines[0].split()
    if len(header) != 2 or not all(h.isdigit() and len(h) <= 18 for h in header):
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


def word2vec_dim(path: str | Path) -> int:
    """The dimension D of a word2vec text file, from its header line ``N D``.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "vec.txt")
    >>> _ = open(path, "w").write("2 3\\nfilm 1 0 0\\nfunny 0 1 0.5\\n")
    >>> word2vec_dim(path)
    3
    """
    head = read_lines(path)[0].split()
    if len(head) != 2 or not head[1].isdigit() or len(head[1]) > 18:
        raise RnnkitError(f"{path}:1: expected a header 'N D' (count and dimension)")
    return int(head[1])


# --- labelled sentences ----------------------------------------------------------------------


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
        RnnkitError: naming file and line, for a line with a wrong number of columns, an
            empty sentence or an empty label.

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


# --- tagged sentences ------------------------------------------------------------------------


@dataclass
class TaggedCorpus:
    """Sentences (token lists), their tags (or None), and where each token came from.

    ``rows[i][j]`` is the original line of token j of sentence i (None for plain text), so
    that predictions can be written back in the input's own format.
    """

    words: list[list[str]]
    tags: list[list[str]] | None
    path: str
    fmt: str  # conll | conllu | text
    rows: list[list[str | None]] = field(default_factory=list)
    first_lines: list[int] = field(default_factory=list)  # file line of each first token

    def __len__(self) -> int:
        return len(self.words)


def _detect_format(path: str, lines: Sequence[str]) -> str:
    name = path.lower()
    if name.endswith((".conllu", ".conllu.gz")):
        return "conllu"
    for line in lines:
        if line.strip() and not line.startswith("#"):
            cols = line.split("\t")
            if len(cols) == 10 and cols[0].split("-")[0].split(".")[0].isdigit():
                return "conllu"
            return "conll"
    return "conll"


def read_tagged(
    path: str | Path,
    fmt: str = "auto",
    tag_column: str | int | None = None,
    need_tags: bool = True,
    encoding: str = "utf-8",
    lines: Sequence[str] | None = None,
) -> TaggedCorpus:
    """Read a CoNLL column file or a CoNLL-U file (see the module doc).

    Args:
        path: the file (gzip accepted); with ``lines`` given, only its name for messages.
        fmt: ``"conll"``, ``"conllu"``, ``"text"`` (a sentence per line, tokens separated by
            whitespace, no tags) or ``"auto"`` (CoNLL-U by the extension ``.conllu[.gz]`` or
            a first token line of 10 tab-separated columns; otherwise CoNLL columns).
        tag_column: CoNLL: the 0-based column of the tag (default: the last); CoNLL-U:
            ``"upos"`` (default) or ``"xpos"``.
        need_tags: False to read words only (prediction input; a CoNLL file may then have a
            single column).

    Raises:
        RnnkitError: naming file and line, for a token line with a different number of
            columns than the file's first one, a CoNLL-U line without 10 columns, a missing
            tag (``_`` in CoNLL-U).

    Example:
        >>> lines = ["-DOCSTART- -X- O O", "", "EU NNP I-NP I-ORG", "rejects VBZ I-VP O", ""]
        >>> c = read_tagged("eng.train", lines=lines)
        >>> c.fmt, c.words, c.tags, c.first_lines
        ('conll', [['EU', 'rejects']], [['I-ORG', 'O']], [3])
    """
    where = str(path)
    if lines is None:
        lines = read_lines(path, encoding)
    if fmt == "auto":
        fmt = _detect_format(where, lines)
    if fmt == "text":
        return text_corpus(lines, where)
    if fmt not in ("conll", "conllu"):
        raise RnnkitError(f"format: expected auto, conll, conllu or text, got {fmt!r}")
    corpus = TaggedCorpus([], [] if need_tags else None, where, fmt)
    words: list[str] = []
    tags: list[str] = []
    rows: list[str | None] = []
    start = 0

    def flush() -> None:
        if words:
            corpus.words.append(list(words))
            if corpus.tags is not None:
                corpus.tags.append(list(tags))
            corpus.rows.append(list(rows))
            corpus.first_lines.append(start)
        words.clear()
        tags.clear()
        rows.clear()

    ncols = None
    if fmt == "conllu":
        if tag_column is None:
            tag_column = "upos"
        if tag_column not in CONLLU_TAGS:
            raise RnnkitError(f"tag column: CoNLL-U tags are 'upos' or 'xpos', got {tag_column!r}")
        tcol = CONLLU_TAGS[str(tag_column)]
    else:
        try:
            tcol = -1 if tag_column is None else int(tag_column)
        except ValueError:
            raise RnnkitError(f"tag column: expected a column number, got {tag_column!r}") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            flush()
            continue
        if fmt == "conllu":
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                raise RnnkitError(
                    f"{where}:{lineno}: expected 10 tab-separated CoNLL-U columns, got {len(cols)}"
                )
            tid = cols[0]
            if "-" in tid or "." in tid:
                continue  # multiword-token range or empty node: not a word of the tag sequence
            if not tid.isdigit():
                raise RnnkitError(f"{where}:{lineno}: bad token id {tid!r}")
            word, tag = cols[1], cols[tcol]
            if need_tags and tag == "_":
                raise RnnkitError(f"{where}:{lineno}: no {tag_column.upper()} tag ('_')")
        else:
            cols = line.split()
            if cols[0] == "-DOCSTART-":
                flush()
                continue
            if ncols is None:
                ncols = len(cols)
                if need_tags and ncols < 2:
                    raise RnnkitError(
                        f"{where}:{lineno}: expected a word and a tag column, got 1 column"
                    )
                if need_tags and (not -ncols <= tcol < ncols or tcol % ncols == 0):
                    raise RnnkitError(f"{where}:{lineno}: no tag column {tcol} in {ncols} columns")
            elif len(cols) != ncols:
                raise RnnkitError(
                    f"{where}:{lineno}: expected {ncols} columns (as on the first token line), "
                    f"got {len(cols)}"
                )
            word, tag = cols[0], (cols[tcol] if need_tags else "")
        if not words:
            start = lineno
        words.append(word)
        tags.append(tag)
        rows.append(line)
    flush()
    if need_tags and not corpus.words:
        raise RnnkitError(f"{where}: holds no sentences")
    return corpus


def text_corpus(lines: Sequence[str], where: str = "<stdin>") -> TaggedCorpus:
    """Plain text, one sentence per line, tokens separated by whitespace; no tags.

    An empty line is an empty sentence (its prediction is an empty sentence too).

    >>> text_corpus(["Paris is nice", ""]).words
    [['Paris', 'is', 'nice'], []]
    """
    words = [line.split() for line in lines]
    rows: list[list[str | None]] = [[None] * len(w) for w in words]
    return TaggedCorpus(words, None, where, "text", rows, list(range(1, len(words) + 1)))
