"""Corpus BLEU against sacrebleu 2.x (a test-only reference): the 13a tokenizer, every
smoothing method, multiple references, empty hypotheses, on Multi30k references with
perturbed hypotheses and on random corpora."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from rnnkit.text.bleu import corpus_bleu, tokenize_13a

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"
SMOOTHS = [("exp", None), ("none", None), ("floor", None), ("floor", 0.3), ("add-k", None),
           ("add-k", 2.0)]  # fmt: skip


def _lines(name):
    with gzip.open(DATA / name, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def _perturb(line, r, vocab):
    """A plausible system output: words dropped, replaced, swapped, repeated; some empty."""
    words = line.split()
    u = r.random()
    if u < 0.03:
        return ""
    out = []
    for w in words:
        v = r.random()
        if v < 0.1:
            continue
        if v < 0.2:
            w = vocab[r.integers(len(vocab))]
        out.append(w)
        if r.random() < 0.03:
            out.append(w)
    if len(out) > 2 and r.random() < 0.3:
        i = r.integers(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    if r.random() < 0.1:
        out = out[: max(1, len(out) // 3)]  # short outputs exercise the brevity penalty
    return " ".join(out)


def _check(hyps, refs, **kw):
    smooth, value = kw.pop("smooth", "exp"), kw.pop("smooth_value", None)
    ours = corpus_bleu(hyps, refs, smooth=smooth, smooth_value=value, **kw)
    ref = BLEU(
        smooth_method=smooth,
        smooth_value=value,
        tokenize=kw.get("tokenize", "13a"),
        lowercase=kw.get("lowercase", False),
        effective_order=kw.get("effective_order", False),
    ).corpus_score(hyps, refs)
    assert abs(ours.score - ref.score) < 0.01, (str(ours), str(ref))
    assert (ours.sys_len, ours.ref_len) == (ref.sys_len, ref.ref_len)
    assert np.allclose(ours.precisions, ref.precisions, atol=1e-9), (str(ours), str(ref))
    assert abs(ours.bp - ref.bp) < 1e-12
    return ours, ref


@pytest.fixture(scope="module")
def multi30k():
    en = _lines("test_2016_flickr.en.gz")
    de = _lines("test_2016_flickr.de.gz")
    return en, de


def test_tokenizer_matches_sacrebleu(multi30k):
    tok = Tokenizer13a()
    en, de = multi30k
    r = np.random.default_rng(0)
    alphabet = list("ab1 9.,-'\"&;:!?()[]{}<>/\\@#$%^*_=+|~`") + [
        "&quot;",
        "&amp;",
        "&lt;",
        "<skipped>",
        "é",
        "\t",
    ]
    rand = ["".join(r.choice(alphabet, size=r.integers(0, 30))) for _ in range(500)]
    for line in en + de + rand:
        assert tokenize_13a(line) == tok(line), line


@pytest.mark.parametrize("smooth,value", SMOOTHS)
def test_multi30k_perturbed(multi30k, smooth, value):
    en, de = multi30k
    r = np.random.default_rng(1)
    vocab = " ".join(en).split()
    hyps = [_perturb(line, r, vocab) for line in en]
    assert sum(h == "" for h in hyps) > 10  # empty hypotheses included
    ours, _ = _check(hyps, [en], smooth=smooth, smooth_value=value)
    assert 20 < ours.score < 80
    if smooth in ("exp", "add-k"):
        # two reference streams: the true one and another perturbation
        refs2 = [en, [_perturb(line, r, vocab) for line in en]]
        _check(hyps, refs2, smooth=smooth, smooth_value=value)
        _check(hyps, [en], smooth=smooth, smooth_value=value, lowercase=True)


def test_multi30k_identity_and_swapped(multi30k):
    en, de = multi30k
    assert corpus_bleu(en, [en]).score == pytest.approx(100.0)
    _check(de, [en])  # German against English: a low score, all orders still exercised


@pytest.mark.parametrize("seed", range(6))
def test_random_corpora(seed):
    r = np.random.default_rng(seed)
    V = ["a", "b", "c", "d", "e", "f", ".", ",", "3", "-"]
    n = int(r.integers(1, 30))
    n_refs = int(r.integers(1, 4))

    def sent(lo=0):
        return " ".join(r.choice(V, size=int(r.integers(lo, 9))))

    hyps = [sent() for _ in range(n)]  # lengths 0..8: empty hypotheses and totals of 0
    refs = [[sent(1) for _ in range(n)] for _ in range(n_refs)]
    for smooth, value in SMOOTHS:
        _check(hyps, refs, smooth=smooth, smooth_value=value)
        _check(hyps, refs, smooth=smooth, smooth_value=value, tokenize="none")
        _check(hyps, refs, smooth=smooth, smooth_value=value, effective_order=True)


@pytest.mark.parametrize("hyps,refs", [
    ([""], [["a b"]]),                       # only empty hypotheses
    (["x y z"], [["a b c"]]),                # no unigram match
    (["a b"], [["a b c d e"]]),              # no 3-grams: the product ends
    (["a b c"], [["a b c"], ["a b c d"]]),   # ties and multiple references
    (["a"], [[""]]),                         # an empty reference
])  # fmt: skip
def test_edge_cases(hyps, refs):
    for smooth, value in SMOOTHS:
        _check(hyps, refs, smooth=smooth, smooth_value=value)
        _check(hyps, refs, smooth=smooth, smooth_value=value, effective_order=True)


def test_summary_line_and_signature(multi30k):
    en, _ = multi30k
    hyps = [_perturb(line, np.random.default_rng(2), en[0].split()) for line in en[:200]]
    ours, ref = _check(hyps, [en[:200]])
    assert str(ours) == str(ref)
    b = BLEU(smooth_method="floor", lowercase=True)
    b.corpus_score(hyps, [en[:200]])
    sig = corpus_bleu(hyps, [en[:200]], smooth="floor", lowercase=True).signature
    assert sig.rsplit("|", 1)[0] == str(b.get_signature()).rsplit("|", 1)[0]


def test_errors():
    with pytest.raises(ValueError, match="2 lines but there are 3"):
        corpus_bleu(["a", "b", "c"], [["a", "b"]])
    with pytest.raises(ValueError, match="smooth"):
        corpus_bleu(["a"], [["a"]], smooth="add-one")
    with pytest.raises(ValueError, match="reference streams"):
        corpus_bleu(["a"], [])
