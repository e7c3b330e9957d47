"""Translating with a trained encoder-decoder, analysing its errors, drawing its attention.

A :class:`Translator` is a :class:`rnnkit.models.seq2seq.Seq2Seq` with its two vocabularies
(``<pad> <unk> <s> </s>`` first, :data:`SPECIALS`) and its text settings (the training
run's tokenization and lowercasing, :mod:`rnnkit.text.parallel`):

- :func:`translate_tokens` / :func:`translate_lines`: decode with
  :meth:`Seq2Seq.translate` (beam search, greedy, sampling). Translating lines, an empty
  line gives an empty output line; a line longer than ``max_src_len`` tokens is an error
  naming the file and line; unknown words become ``<unk>`` (``replace_unk`` copies, for each
  ``<unk>`` output, the source word it attended to most: the unknown-word replacement of
  Luong et al. 2015, "Addressing the rare word problem in NMT", with the attention weights
  as the alignment).
- :func:`analyze` / :func:`format_analysis`: seed 002's error analysis of beam search
  versus the model (search errors against model errors).
- :func:`plot_attention`: a heatmap of the attention weights of one translation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rnnkit.io import RnnkitError, atomic_write
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.text.bleu import corpus_bleu
from rnnkit.text.parallel import ParallelText, detokenize, tokenize
from rnnkit.text.vocab import PAD, UNK, Vocab, encode_words

Array = np.ndarray
BOS, EOS = "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3

__all__ = [
    "BOS",
    "EOS",
    "SPECIALS",
    "AnalysisRow",
    "TextSettings",
    "Translation",
    "Translator",
    "analyze",
    "format_analysis",
    "plot_attention",
    "translate_lines",
    "translate_tokens",
]


class TextSettings(Protocol):
    """How a translator's input is tokenized (a training run's settings hold these)."""

    tokenize: str  # 13a | space
    lower: bool


@dataclass
class Translator:
    """A loaded model with its vocabularies and training settings (``cfg``: at least its
    :class:`TextSettings`)."""

    model: Seq2Seq
    src_vocab: Vocab
    tgt_vocab: Vocab
    cfg: TextSettings

    def src_ids(self, tokens: Sequence[str]) -> list[int]:
        """Token ids of a source sentence, unknown words -> ``<unk>``."""
        return encode_words(self.src_vocab, tokens).tolist()

    def tgt_ids(self, tokens: Sequence[str]) -> list[int]:
        """Token ids of a target sentence, unknown words -> ``<unk>``."""
        return encode_words(self.tgt_vocab, tokens).tolist()

    def words(self, ids: Sequence[int]) -> list[str]:
        return [self.tgt_vocab.tokens[i] for i in ids]

    @property
    def bos(self) -> int:
        return self.tgt_vocab.stoi[BOS]

    @property
    def eos(self) -> int:
        return self.tgt_vocab.stoi[EOS]


@dataclass
class Translation:
    """One output sentence: tokens, text, score, and the attention (len(tokens)+1, len(src))."""

    tokens: list[str]
    text: str
    score: float
    attention: Array | None = field(default=None, repr=False)


def translate_tokens(
    tr: Translator, sentences: Sequence[Sequence[str]], method: str = "beam",
    beam_size: int = 5, alpha: float = 1.0, penalty: str = "length", n_best: int = 1,
    replace_unk: bool = False, with_attention: bool = False, batch_size: int = 64,
    **decode: Any,
) -> list[list[Translation]]:  # fmt: skip
    """Translate tokenized, non-empty sentences; ``n_best`` translations each, best first.

    ``method``, ``beam_size``, ``alpha``, ``penalty``, ``n_best`` and ``decode`` (e.g.
    ``max_len_a``, ``max_len_b``, ``temperature``, ``rng``) go to :meth:`Seq2Seq.translate`;
    the score is the search's objective (log P for greedy and sampling).
    """
    src = [tr.src_ids(s) for s in sentences]
    hyps = tr.model.translate(src, tr.bos, tr.eos, method=method, beam_size=beam_size,
                              alpha=alpha, penalty=penalty, n_best=n_best,
                              batch_size=batch_size, **decode)  # fmt: skip
    need_attention = (with_attention or replace_unk) and tr.model.attention is not None
    out = []
    for s_tokens, s_ids, hs in zip(sentences, src, hyps, strict=True):
        alphas: list[Array | None] = [None] * len(hs)
        if need_attention:
            _, alphas = tr.model.score([s_ids] * len(hs), [h.tokens for h in hs], tr.bos,
                                       tr.eos)  # fmt: skip
        row = []
        for h, a in zip(hs, alphas, strict=True):
            words = tr.words(h.tokens)
            if replace_unk and a is not None:
                words = [s_tokens[int(np.argmax(a[t]))] if w == UNK else w
                         for t, w in enumerate(words)]  # fmt: skip
            row.append(Translation(words, detokenize(words), h.score, a))
        out.append(row)
    return out


def translate_lines(
    tr: Translator, lines: Sequence[str], where: str = "<input>", max_src_len: int = 250,
    **kw: Any,
) -> list[list[Translation]]:  # fmt: skip
    """Translate raw lines (see the module doc for empty and over-long lines)."""
    toks = [tokenize(line, tr.cfg.tokenize, tr.cfg.lower) for line in lines]
    for k, t in enumerate(toks, start=1):
        if len(t) > max_src_len:
            raise RnnkitError(f"{where}:{k}: {len(t)} tokens, more than --max-src-len "
                              f"{max_src_len}")  # fmt: skip
    keep = [i for i, t in enumerate(toks) if t]
    done = translate_tokens(tr, [toks[i] for i in keep], **kw)
    out: list[list[Translation]] = [[Translation([], "", 0.0)] for _ in lines]
    for i, d in zip(keep, done, strict=True):
        out[i] = d
    return out


# --- error analysis ------------------------------------------------------------------------------


@dataclass
class AnalysisRow:
    """One test pair: the reference y*, the output y^, and the two scores under the model."""

    line: int
    source: str
    reference: str
    output: str
    ref_score: float  # log P(y*|x) / T*^alpha
    out_score: float  # log P(y^|x) / T^^alpha
    ref_logp: float  # log P(y*|x)
    out_logp: float
    ref_has_unk: bool
    verdict: str  # "correct" | "search" | "model"


def analyze(
    tr: Translator, data: ParallelText, beam_size: int = 5, alpha: float = 1.0, **decode: Any,
) -> dict[str, Any]:  # fmt: skip
    """Seed 002's error analysis of beam search versus the model.

    For each pair, y^ is the beam-search output and y* the reference (as the model's token
    ids: words outside the vocabulary become ``<unk>``). If y^ = y* the pair is correct.
    Otherwise both are scored under the model with the beam's objective,
    log P(y|x) / T^alpha (T with EOS): if the reference scores higher, the search missed a
    better sequence (a search error: widen the beam); if not, the model prefers its wrong
    output (a model error: more data, regularisation, a better architecture).

    Returns ``{"rows": [AnalysisRow...], "counts": {...}, "fractions": {...}}``; fractions
    are over the erroneous pairs.
    """
    hyps = translate_tokens(tr, data.src, "beam", beam_size=beam_size, alpha=alpha, **decode)
    src = [tr.src_ids(s) for s in data.src]
    ref_ids = [tr.tgt_ids(t) for t in data.tgt]
    out_ids = [tr.tgt_ids(h[0].tokens) for h in hyps]
    ref_lp, _ = tr.model.score(src, ref_ids, tr.bos, tr.eos)
    out_lp, _ = tr.model.score(src, out_ids, tr.bos, tr.eos)
    unk = tr.tgt_vocab.stoi[UNK]
    rows = []
    for k in range(len(data)):
        r_norm = float(ref_lp[k]) / (len(ref_ids[k]) + 1) ** alpha
        o_norm = float(out_lp[k]) / (len(out_ids[k]) + 1) ** alpha
        if out_ids[k] == ref_ids[k]:
            verdict = "correct"
        else:
            verdict = "search" if r_norm > o_norm else "model"
        rows.append(AnalysisRow(
            data.line_numbers[k], " ".join(data.src[k]), data.tgt_raw[k], hyps[k][0].text,
            r_norm, o_norm, float(ref_lp[k]), float(out_lp[k]), unk in ref_ids[k], verdict,
        ))  # fmt: skip
    counts = Counter(r.verdict for r in rows)
    errors = counts["search"] + counts["model"]
    result = {
        "rows": rows,
        "counts": {"pairs": len(rows), "correct": counts["correct"], "search": counts["search"],
                   "model": counts["model"],
                   "ref_has_unk": sum(r.ref_has_unk for r in rows if r.verdict != "correct")},
        "fractions": {"search": counts["search"] / errors if errors else 0.0,
                      "model": counts["model"] / errors if errors else 0.0},
        "beam_size": beam_size, "alpha": alpha,
        "bleu": corpus_bleu([h[0].text for h in hyps], [data.tgt_raw], lowercase=tr.cfg.lower),
    }  # fmt: skip
    return result


def format_analysis(result: dict[str, Any], examples: int = 3) -> str:
    """The analysis as a table and example sentences (plain text)."""
    c, f = result["counts"], result["fractions"]
    errors = c["search"] + c["model"]
    lines = [
        f"beam search (K={result['beam_size']}, alpha={result['alpha']}) vs model, "
        f"{c['pairs']} pairs: {c['correct']} exactly right, {errors} wrong; "
        f"BLEU {result['bleu'].score:.2f}",
        "",
        "| error attributed to | pairs | fraction of errors | remedy |",
        "|---|---|---|---|",
        f"| search: P(y*|x) > P(y^|x) | {c['search']} | {100 * f['search']:.1f}% | a wider beam |",
        f"| model: P(y*|x) <= P(y^|x) | {c['model']} | {100 * f['model']:.1f}% | "
        "a better model, more data, regularisation |",
        "",
        f"({c['ref_has_unk']} of the wrong pairs have a reference with out-of-vocabulary "
        "words, scored as <unk>; scores are log P / T^alpha, T with EOS)",
    ]
    for verdict in ("search", "model"):
        picked = [r for r in result["rows"] if r.verdict == verdict][:examples]
        if picked:
            lines += ["", f"examples of {verdict} errors:"]
        for r in picked:
            lines += [f"  line {r.line}: {r.source}",
                      f"    y* {r.ref_score:8.3f}  {r.reference}",
                      f"    y^ {r.out_score:8.3f}  {r.output}"]  # fmt: skip
    return "\n".join(lines)


# --- pictures ----------------------------------------------------------------------------------


def plot_attention(
    alpha: Array, src_tokens: Sequence[str], out_tokens: Sequence[str], path: str | Path,
    title: str | None = None,
) -> None:  # fmt: skip
    """Heatmap of attention weights alpha (len(out), len(src)) as a PNG, written atomically.

    Rows: output tokens (the last is ``</s>`` when alpha has one more row); columns: source
    tokens; darker is more weight.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alpha = np.asarray(alpha, dtype=float)
    rows = list(out_tokens) + ([EOS] if alpha.shape[0] == len(out_tokens) + 1 else [])
    if alpha.shape != (len(rows), len(src_tokens)):
        raise ValueError(f"alpha: expected shape ({len(rows)}, {len(src_tokens)}), "
                         f"got {alpha.shape}")  # fmt: skip
    w = max(4.0, 0.45 * len(src_tokens) + 2)
    h = max(3.0, 0.35 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(alpha, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_tokens)))
    ax.set_xticklabels(src_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
