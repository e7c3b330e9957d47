"""The Stanford Sentiment Treebank's trees (Socher et al. 2013) as labelled sentences.

Each line of ``trees/{train,dev,test}.txt`` is one binarized parse tree in bracket notation,
every node labelled 0 (very negative) to 4 (very positive): ``(3 (2 It) (4 (4 works) (2 .)))``.
The root's label is the sentence's. The binary task (SST-2) drops neutral sentences (2) and
maps 0, 1 to 0 and 3, 4 to 1: on the test trees that leaves the 1,821 sentences that binary
results on SST are reported on (Socher et al. 2013, Kim 2014, Tai et al. 2015).

:func:`sst_sentence` writes the leaves the way GLUE's SST-2 files have them (lowercased,
``-LRB-``/``-RRB-`` as brackets, the escapes ``\\/`` and ``\\*`` undone), so a model trained
on GLUE's ``train.tsv`` reads the test trees with the same tokens; the tests check that the
dev trees converted this way are exactly GLUE's ``dev.tsv``.

>>> sst_sentence("(3 (2 (2 The) (2 -LRB-)) (4 (3 good\\\\/great) (2 -RRB-)))")
('the ( good/great )', 3)
>>> read_sst_binary.__name__
'read_sst_binary'
"""

from __future__ import annotations

import re
from pathlib import Path

from rnnkit.io import RnnkitError, read_lines

__all__ = ["read_sst_binary", "sst_sentence"]

_LEAF = re.compile(r"\(([0-4]) ([^()\s]+)\)")
_ROOT = re.compile(r"^\(([0-4]) ")
_GLUE = {"-LRB-": "(", "-RRB-": ")"}


def sst_sentence(tree: str, where: str = "<tree>") -> tuple[str, int]:
    """The sentence (GLUE's tokens: lowercased, brackets restored) and root label of a tree.

    A line that is not a tree of SST's form is one :class:`RnnkitError` naming ``where``.
    """
    line = tree.strip()
    root = _ROOT.match(line)
    leaves = _LEAF.findall(line)
    if root is None or not leaves or line.count("(") != line.count(")"):
        raise RnnkitError(f"{where}: not a sentiment tree such as '(3 (2 It) (4 works))'")
    words = [_GLUE.get(w, w).replace("\\/", "/").replace("\\*", "*").lower() for _, w in leaves]
    return " ".join(words), int(root.group(1))


def read_sst_binary(path: str | Path, encoding: str = "utf-8") -> list[tuple[str, int]]:
    """The non-neutral sentences of an SST tree file with binary labels (0: 0-1, 1: 3-4).

    Errors (missing file, a line that is not a tree) are one line naming the file and line.
    """
    out = []
    for i, line in enumerate(read_lines(path, encoding), start=1):
        if not line.strip():
            continue
        sentence, label = sst_sentence(line, f"{path}:{i}")
        if label != 2:
            out.append((sentence, int(label > 2)))
    if not out:
        raise RnnkitError(f"{path}: no non-neutral sentence")
    return out
