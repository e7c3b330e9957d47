"""Sequence-labelling metrics: chunk (entity) spans, span precision/recall/F1, tag accuracy.

Chunks are read from tag sequences with the rules of the CoNLL shared tasks' ``conlleval``
script (Tjong Kim Sang & Buchholz 2000; the form ``seqeval`` calls its default mode), so
IOB1, IOB2, IOE and IOBES input all score as the official script scores them: a tag is
``O`` or ``P-TYPE`` with prefix P in B, I, E, S. A chunk starts at a B or S tag, at an I or
E tag whose predecessor is O, E, S or of another type; it ends before a tag that starts a
new chunk or is O, and after an E or S tag. An I-X after O therefore opens a chunk, which is
what IOB1 means (and a lenient reading of ill-formed IOB2).

Span F1 (conlleval semantics): a predicted chunk is correct when its type, start and end all
equal those of a gold chunk. Precision = correct / predicted, recall = correct / gold,
F1 = 2PR / (P + R) (van Rijsbergen's F with beta = 1), micro-averaged over all chunks of
the corpus, and per type.

>>> spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"])   # IOB1: I-LOC after O opens a chunk
[('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5)]
>>> iob1_to_iob2(["I-ORG", "I-ORG", "B-ORG", "O", "I-PER"])
['B-ORG', 'I-ORG', 'B-ORG', 'O', 'B-PER']
>>> s = span_f1([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
>>> s["precision"], s["recall"], s["f1"]
(0.0, 0.0, 0.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rnnkit.io import RnnkitError

__all__ = ["is_chunk_tagset", "iob1_to_iob2", "span_f1", "spans", "split_tag", "tag_accuracy"]

_PREFIXES = ("B", "I", "E", "S")


def split_tag(tag: str) -> tuple[str, str]:
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", "")``; anything else is an error.

    >>> split_tag("I-MISC"), split_tag("O")
    (('I', 'MISC'), ('O', ''))
    """
    if tag == "O":
        return "O", ""
    prefix, dash, kind = tag.partition("-")
    if not dash or prefix not in _PREFIXES or not kind:
        raise RnnkitError(f"tag {tag!r}: expected O or B-/I-/E-/S- followed by a type")
    return prefix, kind


def is_chunk_tagset(tags: Sequence[str]) -> bool:
    """True when every tag is ``O`` or ``P-TYPE`` (P in B, I, E, S), i.e. chunk tags.

    >>> is_chunk_tagset(["O", "B-LOC", "I-LOC"]), is_chunk_tagset(["NOUN", "VERB"])
    (True, False)
    """
    for t in tags:
        if t == "O":
            continue
        prefix, dash, kind = t.partition("-")
        if not dash or prefix not in _PREFIXES or not kind:
            return False
    return len(tags) > 0


def _ends(prev_p: str, p: str, prev_t: str, t: str) -> bool:
    """conlleval's endOfChunk: does the chunk open at the previous tag end before this tag?"""
    if prev_p == "O":
        return False
    return prev_p in ("E", "S") or p in ("B", "S", "O") or prev_t != t


def _starts(prev_p: str, p: str, prev_t: str, t: str) -> bool:
    """conlleval's startOfChunk: does a chunk start at this tag?"""
    if p == "O":
        return False
    return p in ("B", "S") or prev_p in ("E", "S", "O") or prev_t != t


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks of one tag sequence as ``(type, start, end)``, end exclusive, in order."""
    out: list[tuple[str, int, int]] = []
    start = None
    prev_p, prev_t = "O", ""
    for i, tag in enumerate([*tags, "O"]):  # a final O closes a chunk open at the end
        p, t = split_tag(tag)
        if start is not None and _ends(prev_p, p, prev_t, t):
            out.append((prev_t, start, i))
            start = None
        if _starts(prev_p, p, prev_t, t):
            start = i
        prev_p, prev_t = p, t
    return out


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Rewrite IOB1 tags as IOB2: an I-X that opens a chunk (after O, another type, or at the
    start) becomes B-X. The chunks (:func:`spans`) do not change; IOB2 input is returned as is.
    """
    out = []
    prev = "O"
    for tag in tags:
        p, t = split_tag(tag)
        if p == "I":
            pp, pt = split_tag(prev)
            if pp == "O" or pt != t:
                tag = "B-" + t
        out.append(tag)
        prev = tag
    return out


def _prf(correct: int, predicted: int, gold: int) -> dict[str, float]:
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f}


def span_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Micro-averaged span precision, recall and F1 over a corpus, and the same per type.

    Args:
        gold, pred: one tag sequence per sentence; sentence i of both must have equal length.

    Returns:
        ``{"precision", "recall", "f1", "correct", "predicted", "gold",
        "per_type": {type: {"precision", "recall", "f1", "correct", "predicted", "gold"}}}``,
        the rates as fractions in [0, 1] (conlleval prints them times 100).
    """
    if len(gold) != len(pred):
        raise RnnkitError(f"span_f1: {len(gold)} gold sentences but {len(pred)} predicted")
    n_correct: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    for k, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise RnnkitError(
                f"span_f1: sentence {k + 1} has {len(g)} gold tags but {len(p)} predicted"
            )
        gs, ps = spans(g), spans(p)
        n_gold.update(s[0] for s in gs)
        n_pred.update(s[0] for s in ps)
        n_correct.update(s[0] for s in set(gs) & set(ps))
    per_type = {}
    for t in sorted(set(n_gold) | set(n_pred)):
        c, pr, go = n_correct[t], n_pred[t], n_gold[t]
        per_type[t] = {**_prf(c, pr, go), "correct": c, "predicted": pr, "gold": go}
    c, pr, go = sum(n_correct.values()), sum(n_pred.values()), sum(n_gold.values())
    return {**_prf(c, pr, go), "correct": c, "predicted": pr, "gold": go, "per_type": per_type}


def tag_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag.

    >>> tag_accuracy([["A", "B"], ["C"]], [["A", "C"], ["C"]])
    0.6666666666666666
    """
    right = total = 0
    for g, p in zip(gold, pred, strict=True):
        if len(g) != len(p):
            raise RnnkitError(f"tag_accuracy: {len(g)} gold tags but {len(p)} predicted")
        right += sum(a == b for a, b in zip(g, p, strict=True))
        total += len(g)
    return right / total if total else 0.0
