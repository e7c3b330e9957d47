"""CIDEr-D (Vedantam et al. 2015), as the MS COCO caption evaluation computes it.

Each sentence becomes, for n = 1..4, a TF-IDF vector over its n-grams::

    g_k(s) = count_k(s) * log(N / max(1, df_k))

N the number of images and df_k the number of images whose references contain n-gram k
(document frequencies come from the references of the scored corpus). For a candidate c of
an image with references S = {s_1 .. s_m}::

    CIDEr-D_n(c, S) = (10 / m) sum_j exp(-(l(c) - l(s_j))^2 / (2 sigma^2))
                      * <min(g(c), g(s_j)), g(s_j)> / (||g(c)|| ||g(s_j)||)

    CIDEr-D(c, S) = (1/4) sum_{n=1..4} CIDEr-D_n(c, S),     sigma = 6

The "-D" changes against plain CIDEr are the clipping min(g(c), g(s_j)) (repeating a
reference n-gram gains nothing) and the Gaussian length penalty. As in the COCO evaluation
code, the length l is the number of bigrams of the sentence (its word count minus one, so the
difference of two lengths is that of the word counts unless a sentence is empty). The corpus
figure is the mean over images. Sentences are split on whitespace (tokenize them first).

>>> refs = [["a large 3 above a small 7", "a small 7 below a large 3"],
...         ["one small 2 at the top", "a small 2 at the top"]]
>>> score, per_image = cider_d(["a large 3 above a small 7", "a small 5 at the top"], refs)
>>> [round(v, 3) for v in per_image]
[7.188, 3.585]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from rnnkit.text.bleu import ngrams

__all__ = ["cider_d"]


def _vector(counts: Counter[tuple[str, ...]], df: Counter[tuple[str, ...]], log_n: float,
            n: int) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:  # fmt: skip
    """TF-IDF weights per order, their norms, and the length (the number of bigrams)."""
    vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(n)]
    for gram, tf in counts.items():
        vec[len(gram) - 1][gram] = tf * (log_n - math.log(max(1.0, df[gram])))
    norms = [math.sqrt(sum(w * w for w in v.values())) for v in vec]
    length = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return vec, norms, length


def cider_d(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 4,
    sigma: float = 6.0,
) -> tuple[float, list[float]]:  # fmt: skip
    """CIDEr-D of each hypothesis against its image's references, and their mean.

    Args:
        hypotheses: one tokenized caption per image (tokens separated by spaces).
        references: ``references[i]``: the tokenized reference captions of image i.
        n: the largest n-gram order. sigma: the length penalty's width.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if any(not r for r in references):
        raise ValueError("every image needs at least one reference")
    if not hypotheses:
        return 0.0, []
    refs = [[ngrams(s.split(), n) for s in rs] for rs in references]
    df: Counter[tuple[str, ...]] = Counter()
    for rs in refs:
        df.update({g for r in rs for g in r})
    log_n = math.log(float(len(refs)))
    scores = []
    for hyp, rs in zip(hypotheses, refs, strict=True):
        vh, nh, lh = _vector(ngrams(hyp.split(), n), df, log_n, n)
        total = [0.0] * n
        for r in rs:
            vr, nr, lr = _vector(r, df, log_n, n)
            penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma**2))
            for k in range(n):
                dot = sum(min(w, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0) for g, w in vh[k].items())
                if nh[k] != 0 and nr[k] != 0:
                    dot /= nh[k] * nr[k]
                total[k] += dot * penalty
        scores.append(10.0 * sum(total) / n / len(rs))
    return sum(scores) / len(scores), scores
