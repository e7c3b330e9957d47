"""Parallel text for translation: two plain-text files aligned line by line (gzip accepted),
tokenized by the 13a rules of :func:`rnnkit.text.bleu.tokenize_13a` (punctuation apart;
``mode="space"`` splits at whitespace only), optionally lowercased.

Files of different line counts are an error naming both files and counts; pairs with an
empty side, or longer than ``max_len`` tokens on either side, are skipped and counted (or,
for evaluation sets, an empty line is an error naming its file and line).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rnnkit.io import RnnkitError, read_lines
from rnnkit.text.bleu import tokenize_13a

__all__ = ["ParallelText", "detokenize", "read_parallel", "tokenize"]


def tokenize(line: str, mode: str = "13a", lower: bool = False) -> list[str]:
    """Tokens of one sentence: 13a rules (punctuation apart) or whitespace.

    >>> tokenize("Ein Mann, 2.5 m groß.")
    ['Ein', 'Mann', ',', '2.5', 'm', 'groß', '.']
    """
    if lower:
        line = line.lower()
    return (tokenize_13a(line) if mode == "13a" else line).split()


_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}])")
_NO_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens back to text: no space before closing punctuation or after opening brackets.

    Inverse enough of the 13a rules that BLEU (which re-tokenizes by 13a) is unchanged.

    >>> detokenize(["A", "man", "(", "tall", ")", ",", "smiles", "."])
    'A man (tall), smiles.'
    """
    text = " ".join(tokens)
    text = _NO_SPACE_BEFORE.sub(r"\1", text)
    return _NO_SPACE_AFTER.sub(r"\1", text)


@dataclass
class ParallelText:
    """Aligned sentence pairs, tokenized, with their raw target lines (BLEU references)."""

    src: list[list[str]]
    tgt: list[list[str]]
    tgt_raw: list[str]
    line_numbers: list[int]  # 1-based line of each kept pair in the files
    skipped_empty: int = 0
    skipped_long: int = 0
    path: str = ""

    def __len__(self) -> int:
        return len(self.src)


def read_parallel(
    src_path: str, tgt_path: str, mode: str = "13a", lower: bool = False,
    max_len: int | None = None, encoding: str = "utf-8", skip_empty: bool = True,
) -> ParallelText:  # fmt: skip
    """Read two aligned files; see the module doc for empty and over-long pairs.

    With ``skip_empty=False`` an empty line is an error naming its file and line (used for
    evaluation sets, whose every line must be scored).
    """
    src_lines = read_lines(src_path, encoding)
    tgt_lines = read_lines(tgt_path, encoding)
    if len(src_lines) != len(tgt_lines):
        raise RnnkitError(f"{src_path} has {len(src_lines)} lines but {tgt_path} has "
                          f"{len(tgt_lines)}; the files must be aligned line by line")  # fmt: skip
    out = ParallelText([], [], [], [], path=f"{src_path} / {tgt_path}")
    for k, (s_line, t_line) in enumerate(zip(src_lines, tgt_lines, strict=True), start=1):
        s, t = tokenize(s_line, mode, lower), tokenize(t_line, mode, lower)
        if not s or not t:
            if not skip_empty:
                where = src_path if not s else tgt_path
                raise RnnkitError(f"{where}:{k}: empty line")
            out.skipped_empty += 1
            continue
        if max_len is not None and max(len(s), len(t)) > max_len:
            out.skipped_long += 1
            continue
        out.src.append(s)
        out.tgt.append(t)
        out.tgt_raw.append(t_line.lower() if lower else t_line)
        out.line_numbers.append(k)
    if not out.src:
        raise RnnkitError(f"{out.path}: no usable sentence pairs ({out.skipped_empty} with an "
                          f"empty side, {out.skipped_long} over --max-len)")  # fmt: skip
    return out
