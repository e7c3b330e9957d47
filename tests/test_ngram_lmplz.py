"""The Kneser-Ney estimator against KenLM's own estimator, lmplz.

``tests/data/kenlm/shakespeare1500.o{3,5}.arpa.gz`` were written by lmplz (kenlm 0.3.0's
``lm/builder``, built by ``tools/kenlm/build_lmplz.sh``; files made by
``tools/kenlm/make_fixtures.sh``) from the first 1,500 non-blank lines of the bundled Tiny
Shakespeare. rnnkit estimates the same models from the same lines; every n-gram's log10
probability and back-off weight must match lmplz's, and the two must list the same n-grams.
The ARPA files are read here by a few lines of our own, not by rnnkit's reader.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest

from rnnkit.ngram import evaluate_lines, read_arpa, train_lines, write_arpa
from rnnkit.recipes.lm import bundled_corpus

DATA = Path(__file__).resolve().parent / "data" / "kenlm"


def _lines() -> list[str]:
    return [ln for ln in bundled_corpus().splitlines() if ln.strip()][:1500]


def parse_arpa(text: str) -> dict[tuple[str, ...], tuple[float, float]]:
    """{n-gram: (log10 p, log10 back-off (0 when absent))} of an ARPA file."""
    out: dict[tuple[str, ...], tuple[float, float]] = {}
    order = 0
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1:].split("-")[0])
            continue
        if not order or not line.strip() or line.startswith("\\"):
            continue
        cols = line.split("\t")
        words = tuple(cols[1].split(" "))
        assert len(words) == order, line
        out[words] = (float(cols[0]), float(cols[2]) if len(cols) > 2 else 0.0)
    return out


@pytest.mark.parametrize("order", [3, 5])
def test_every_ngram_matches_lmplz(order, tmp_path):
    with gzip.open(DATA / f"shakespeare1500.o{order}.arpa.gz", "rt", encoding="utf-8") as f:
        theirs = parse_arpa(f.read())
    ours_model = train_lines(_lines(), order=order, method="kn-modified")
    path = tmp_path / "ours.arpa"
    write_arpa(ours_model, path)
    ours = parse_arpa(path.read_text(encoding="utf-8"))
    assert set(ours) == set(theirs), (len(ours), len(theirs))
    assert len(theirs) == (18_989 if order == 3 else 32_277)  # the n-grams lmplz listed
    # <s> is never predicted: lmplz writes its log10 probability as 0, rnnkit as SRILM does,
    # -99; neither is ever used
    assert theirs[("<s>",)][0] == 0.0 and ours[("<s>",)][0] == -99.0
    del theirs[("<s>",)]
    worst_p = max(abs(ours[g][0] - theirs[g][0]) for g in theirs)
    worst_b = max(abs(ours[g][1] - theirs[g][1]) for g in theirs)
    # lmplz prints 8 significant digits; ours are the same numbers before rounding
    assert worst_p < 2e-6 and worst_b < 2e-6, (worst_p, worst_b)
    if order == 5:  # lmplz's --discount_fallback for the 4- and 5-grams, rnnkit's own
        assert any("fallback" in note for note in ours_model.notes), ours_model.notes


def test_perplexity_through_either_file(tmp_path):
    """The same held-out lines scored with lmplz's model (read by rnnkit's ARPA reader) and
    with rnnkit's estimate: the same perplexity."""
    held_out = [ln for ln in bundled_corpus().splitlines() if ln.strip()][1500:1800]
    raw = gzip.decompress((DATA / "shakespeare1500.o5.arpa.gz").read_bytes())
    (tmp_path / "k.arpa").write_bytes(raw)
    theirs = evaluate_lines(read_arpa(tmp_path / "k.arpa"), held_out)
    ours = evaluate_lines(train_lines(_lines(), order=5), held_out)
    assert theirs.n_predictions == ours.n_predictions > 2000
    assert math.isclose(theirs.perplexity, ours.perplexity, rel_tol=1e-5)
