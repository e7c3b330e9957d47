"""Corpus BLEU (Papineni et al. 2002), computed as sacrebleu 2.x computes it (Post 2018).

For a corpus of hypotheses and one or more reference streams::

    p_n  = sum_sentences sum_{g in n-grams(hyp)} min(count_hyp(g), max_ref count_ref(g))
           / sum_sentences max(0, |hyp| - n + 1)                  (clipped precision)
    BP   = 1 if c >= r else exp(1 - r / c)                      (brevity penalty)
    BLEU = 100 * BP * exp((1/N) sum_{n=1..N} log p_n),  N = 4

c is the total hypothesis length and r the total of each sentence's closest reference length
(ties to the shorter). Tokenization is mteval-v13a.pl's (WMT's "13a", the default of
sacrebleu), applied to hypotheses and references alike, so systems are scored on their
detokenized output. Smoothing of zero precisions (Chen & Cherry 2014):

    none   p_n = 0 (BLEU 0 whenever some n-gram order has no match)
    floor  p_n = eps / total_n for a zero count (eps = 0.1 by default; method 1)
    add-k  count_n + k and total_n + k for n >= 2 (k = 1 by default; method 2)
    exp    the k-th zero precision becomes 1 / (2^k total_n) (mteval's; method 3; default)

Edge cases follow sacrebleu: no unigram match at all gives BLEU 0; an order with no
n-grams in the hypotheses (total_n = 0) ends the product, which then scores 0 unless
``effective_order``, which averages over the orders seen (for sentence-level BLEU).
The signature line identifies the setting, e.g. ``nrefs:1|case:mixed|eff:no|tok:13a|
smooth:exp|version:rnnkit-0.1.0``.

>>> s = corpus_bleu(["The cat sat on the mat."], [["The cat sat on the mat."]])
>>> print(s)
BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 7 ref_len = 7)
>>> s.signature
'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:rnnkit-0.1.0'
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["SMOOTHING", "TOKENIZERS", "BLEUScore", "corpus_bleu", "ngrams", "tokenize_13a"]

SMOOTHING = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}  # method -> default value
TOKENIZERS = ("13a", "none")

# mteval-v13a.pl, sub tokenization (NIST's scorer, the WMT standard "13a"):
#   s/([\{-\~\[-\` -\&\(-\+\:-\@\/])/ $1 /g   punctuation and symbols apart
#   s/([^0-9])([\.,])/$1 $2 /g                 period and comma, unless after a digit
#   s/([\.,])([^0-9])/ $1 $2/g                 period and comma, unless before a digit
#   s/([0-9])(-)/$1 $2 /g                      a dash after a digit
_13A_RULES = [
    (re.compile(r"([{-~\[-` -&(-+:-@/])"), r" \1 "),
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]
_13A_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))


def tokenize_13a(line: str) -> str:
    """The 13a tokenization of one line (mteval-v13a.pl), tokens joined by single spaces.

    >>> tokenize_13a("A man, 3.5 feet tall, isn't (quite) there.")
    "A man , 3.5 feet tall , isn't ( quite ) there ."
    >>> tokenize_13a("1990-2000: &quot;ok&quot;")
    '1990 - 2000 : " ok "'
    """
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:  # SGML entities back to characters
        for entity, char in _13A_ENTITIES:
            line = line.replace(entity, char)
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


def ngrams(tokens: Sequence[str], max_order: int = 4) -> Counter[tuple[str, ...]]:
    """Counts of every n-gram of orders 1..max_order.

    >>> sorted(ngrams("a b a".split(), 2).items())
    [(('a',), 2), (('a', 'b'), 1), (('b',), 1), (('b', 'a'), 1)]
    """
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_order + 1):
        counts.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return counts


@dataclass
class BLEUScore:
    """A corpus BLEU score with its statistics; ``str()`` prints sacrebleu's summary line."""

    score: float  # 0..100
    counts: list[float]  # clipped n-gram matches per order (after add-k)
    totals: list[float]  # hypothesis n-grams per order (after add-k)
    precisions: list[float]  # percentages, as used in the score
    bp: float
    sys_len: int
    ref_len: int
    signature: str = field(default="")

    @property
    def ratio(self) -> float:
        return self.sys_len / self.ref_len if self.ref_len > 0 else 0.0

    def __str__(self) -> str:
        prec = "/".join(f"{p:.1f}" for p in self.precisions)
        return (f"BLEU = {self.score:.2f} {prec} (BP = {self.bp:.3f} ratio = {self.ratio:.3f} "
                f"hyp_len = {self.sys_len:d} ref_len = {self.ref_len:d})")  # fmt: skip


def _tokens(line: str, tokenize: str, lowercase: bool) -> list[str]:
    if lowercase:
        line = line.lower()
    return (tokenize_13a(line) if tokenize == "13a" else line).split()


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    smooth: str = "exp",
    smooth_value: float | None = None,
    tokenize: str = "13a",
    lowercase: bool = False,
    effective_order: bool = False,
    max_order: int = 4,
) -> BLEUScore:
    """Corpus BLEU of detokenized ``hypotheses`` against reference streams.

    Args:
        hypotheses: one string per sentence.
        references: one or more streams, each a sequence with one string per sentence
            (``references[k][i]`` is the k-th reference of sentence i), as sacrebleu takes.
        smooth: ``"exp"`` (default), ``"floor"``, ``"add-k"`` or ``"none"``.
        smooth_value: eps of floor (0.1) or k of add-k (1); None for the default.
        tokenize: ``"13a"`` or ``"none"`` (split on whitespace).
        lowercase: compare lowercased text (signature ``case:lc``).
        effective_order: average over the n-gram orders present (sentence-level use).
        max_order: N.

    Raises ``ValueError`` when a reference stream's length differs from the hypotheses'.

    >>> s = corpus_bleu(["a b c d", ""], [["a b c d e", "x"], ["a b c", "y"]])
    >>> round(s.score, 2), s.sys_len, s.ref_len
    (100.0, 4, 4)
    """
    if smooth not in SMOOTHING:
        raise ValueError(f"smooth: expected one of {list(SMOOTHING)}, got {smooth!r}")
    if tokenize not in TOKENIZERS:
        raise ValueError(f"tokenize: expected one of {list(TOKENIZERS)}, got {tokenize!r}")
    if isinstance(references, str) or not references:
        raise ValueError("references: expected one or more reference streams")
    for k, stream in enumerate(references):
        if isinstance(stream, str) or len(stream) != len(hypotheses):
            n = 1 if isinstance(stream, str) else len(stream)
            raise ValueError(f"reference stream {k + 1} has {n} lines but there are "
                             f"{len(hypotheses)} hypotheses")  # fmt: skip
    value = SMOOTHING[smooth] if smooth_value is None else float(smooth_value)
    N = max_order
    correct, total = [0.0] * N, [0.0] * N
    sys_len = ref_len = 0
    for i, hyp in enumerate(hypotheses):
        h = _tokens(hyp, tokenize, lowercase)
        h_counts = ngrams(h, N)
        max_ref: Counter[tuple[str, ...]] = Counter()
        closest = None
        for stream in references:
            r = _tokens(stream[i], tokenize, lowercase)
            # the closest reference length; on a tie the shorter one
            if closest is None or (abs(len(r) - len(h)), len(r)) < (abs(closest - len(h)),
                                                                     closest):  # fmt: skip
                closest = len(r)
            max_ref |= ngrams(r, N)  # element-wise maximum over the references
        sys_len += len(h)
        ref_len += closest or 0
        for g, c in h_counts.items():
            correct[len(g) - 1] += min(c, max_ref[g])
        for n in range(1, N + 1):
            total[n - 1] += max(0, len(h) - n + 1)

    if sys_len >= ref_len:
        bp = 1.0
    else:
        bp = math.exp(1.0 - ref_len / sys_len) if sys_len > 0 else 0.0
    precisions = [0.0] * N
    order = N
    if correct[0] > 0:  # without a single unigram match BLEU is 0 (sacrebleu's rule)
        zeros = 0
        for n in range(1, N + 1):
            if smooth == "add-k" and n > 1:
                correct[n - 1] += value
                total[n - 1] += value
            if total[n - 1] == 0:
                break  # no n-grams of this order: the product ends here
            if effective_order:
                order = n
            if correct[n - 1] > 0:
                precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
            elif smooth == "exp":
                zeros += 1
                precisions[n - 1] = 100.0 / (2**zeros * total[n - 1])
            elif smooth == "floor":
                precisions[n - 1] = 100.0 * value / total[n - 1]
    if min(precisions[:order]) > 0:
        score = bp * math.exp(sum(math.log(p) for p in precisions[:order]) / order)
    else:
        score = 0.0
    return BLEUScore(score, correct, total, precisions, bp, sys_len, ref_len,
                     signature(len(references), smooth, value, tokenize, lowercase,
                               effective_order))  # fmt: skip


def signature(
    nrefs: int, smooth: str = "exp", smooth_value: float | None = None, tokenize: str = "13a",
    lowercase: bool = False, effective_order: bool = False,
) -> str:  # fmt: skip
    """The setting as one line, in the form of sacrebleu's BLEU signature.

    >>> signature(2, "floor", 0.1, lowercase=True)
    'nrefs:2|case:lc|eff:no|tok:13a|smooth:floor[0.10]|version:rnnkit-0.1.0'
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("rnnkit")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        v = "unknown"
    sm = smooth if smooth in ("exp", "none") else f"{smooth}[{smooth_value:.2f}]"
    return (f"nrefs:{nrefs}|case:{'lc' if lowercase else 'mixed'}|"
            f"eff:{'yes' if effective_order else 'no'}|tok:{tokenize}|smooth:{sm}|"
            f"version:rnnkit-{v}")  # fmt: skip
