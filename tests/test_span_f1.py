"""Span F1 against seqeval (conlleval semantics) on real CoNLL-2003 tags and on random,
often ill-formed, tag sequences; IOB1 -> IOB2 against seqeval's strict IOB2 entities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, Entities

from rnnkit.io import RnnkitError
from rnnkit.text.metrics import iob1_to_iob2, span_f1, spans, split_tag, tag_accuracy
from rnnkit.text.readers import read_tagged

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tagging"


def _check_against_seqeval(gold, pred):
    ours = span_f1(gold, pred)
    for key, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
        ref = fn(gold, pred)
        assert abs(ours[key] - ref) < 1e-12, (key, ours[key], ref)
    for t, s in ours["per_type"].items():
        ref = f1_score(gold, pred, average=None)  # per type, sorted by type name
        types = sorted({e[0] for seq in (gold, pred) for e in get_entities(seq)})
        assert abs(s["f1"] - ref[types.index(t)]) < 1e-12, t
    return ours


def _random_tags(rng, n_sent, types=("PER", "LOC", "ORG"), prefixes=("B", "I")):
    vocab = ["O"] + [f"{p}-{t}" for p in prefixes for t in types]
    return [list(rng.choice(vocab, size=rng.integers(1, 12))) for _ in range(n_sent)]


@pytest.mark.parametrize("seed", range(4))
def test_random_bio_sequences(seed):
    rng = np.random.default_rng(seed)
    gold = _random_tags(rng, 300)
    # predictions: gold with ~30% of the tags replaced, so that many spans match
    pred = [[t if rng.random() > 0.3 else str(rng.choice(["O", "B-PER", "I-PER", "I-LOC"]))
             for t in s] for s in gold]  # fmt: skip
    ours = _check_against_seqeval(gold, pred)
    assert 0.2 < ours["f1"] < 0.95  # neither trivial case
    for s in gold:  # the spans themselves, not only the counts
        assert spans(s) == [(t, a, b + 1) for t, a, b in get_entities(s)]


def test_random_iobes_sequences():
    rng = np.random.default_rng(9)
    gold = _random_tags(rng, 200, prefixes=("B", "I", "E", "S"))
    pred = _random_tags(rng, 200, prefixes=("B", "I", "E", "S"))
    pred = [p[: len(g)] + ["O"] * (len(g) - len(p)) for g, p in zip(gold, pred, strict=True)]
    _check_against_seqeval(gold, pred)


def test_real_conll2003_tags():
    c = read_tagged(DATA / "conll2003" / "eng.testa")
    gold = c.tags[:800]
    rng = np.random.default_rng(0)
    labels = sorted({t for s in gold for t in s})
    pred = [[t if rng.random() > 0.1 else str(rng.choice(labels)) for t in s] for s in gold]
    ours = _check_against_seqeval(gold, pred)
    assert ours["gold"] > 1000
    # a perfect prediction, and the same corpus as IOB2
    assert span_f1(gold, gold)["f1"] == 1.0
    assert span_f1(gold, [iob1_to_iob2(s) for s in gold])["f1"] == 1.0


def test_iob1_to_iob2_matches_seqeval_strict_entities():
    rng = np.random.default_rng(3)
    seqs = _random_tags(rng, 400)
    iob2 = [iob1_to_iob2(s) for s in seqs]
    for s, s2 in zip(seqs, iob2, strict=True):
        assert spans(s) == spans(s2)
    # strict IOB2 reading of the converted tags (every span opens with B-) equals the
    # lenient reading of the originals
    strict = Entities(iob2, IOB2).entities
    for k, (s, ents) in enumerate(zip(seqs, strict, strict=True)):
        assert [(e.tag, e.start, e.end) for e in ents] == spans(s), k
    assert iob1_to_iob2(iob2[0]) == iob2[0]  # idempotent


def test_errors_and_accuracy():
    with pytest.raises(RnnkitError, match="expected O or B-/I-/E-/S-"):
        split_tag("PER")
    with pytest.raises(RnnkitError, match="sentence 1 has 2 gold tags but 1 predicted"):
        span_f1([["O", "O"]], [["O"]])
    assert tag_accuracy([["A", "B"]], [["A", "A"]]) == 0.5
