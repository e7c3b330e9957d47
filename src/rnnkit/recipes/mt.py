"""Training, applying and analysing translation models: the work behind ``rnnkit mt``.

Data: two plain-text files aligned line by line (gzip accepted), tokenized by the 13a rules
of :func:`rnnkit.text.bleu.tokenize_13a` (punctuation apart; ``--tokenize space`` splits at
whitespace only), optionally lowercased. Vocabularies come from the training side of each
language, ``<pad> <unk> <s> </s>`` first; rarer words (``min_count``, ``max_vocab``) and words
never seen become ``<unk>``. Handling of bad input, the same everywhere:

- files of different line counts: an error naming both files and counts;
- training pairs with an empty side, or longer than ``max_len`` tokens on either side, are
  skipped and counted (the run's first lines say how many);
- translating: an empty line gives an empty output line; a line longer than
  ``max_src_len`` tokens is an error naming the file and line; unknown words become
  ``<unk>`` (``replace_unk`` copies, for each ``<unk>`` output, the source word it attended
  to most: the unknown-word replacement of Luong et al. 2015, "Addressing the rare word
  problem in NMT", with the attention weights as the alignment).

The loop itself is the shared one of :mod:`rnnkit.recipes.task` (length-bucketed
batches, Adam + global-norm clipping by default, ``metrics.jsonl``, ``loss.png``, exact
``--resume``, Ctrl-C -> checkpoint + exit 130, ``OUT/best`` = the epoch of the best
validation BLEU); validation BLEU is corpus BLEU (:mod:`rnnkit.text.bleu`) of the greedy
translations of the validation set against its raw references.

Output folder layout::

    OUT/checkpoint/    the latest checkpoint, for --resume
    OUT/best/          the weights of the best validation epoch (what translate loads)
    OUT/metrics.jsonl  one JSON object per logged step and per epoch (valid_bleu per epoch)
    OUT/loss.png       training and validation loss
    OUT/summary.json   final figures
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.text.bleu import BLEUScore, corpus_bleu, tokenize_13a
from rnnkit.io import RnnkitError, atomic_write, read_lines
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig, make_batch
from rnnkit.text.vocab import Vocab
from rnnkit.train.loop import (
    LoopConfig,
    Task,
    fit,
    load_run,
    replace_singletons,
    score_best,
    start_run,
)

Array = np.ndarray
KIND = "mt"
PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3

__all__ = [
    "MTTrainConfig",
    "ParallelText",
    "Translation",
    "Translator",
    "analyze",
    "build_vocab",
    "detokenize",
    "load_translator",
    "plot_attention",
    "read_parallel",
    "tokenize",
    "train_mt",
    "translate_lines",
]


# --- configuration -----------------------------------------------------------------------------


@dataclass
class MTTrainConfig(LoopConfig):
    """Translation hyperparameters (see :class:`rnnkit.models.seq2seq.Seq2SeqConfig`) + the loop."""

    cell: str = "gru"
    embed: int = 256
    hidden: int = 256  # encoder units per direction
    dec_hidden: int | None = None  # None: 2 * hidden if bidirectional, else hidden
    layers: int = 1
    bidirectional: bool = True
    attention: str = "general"  # none | dot | general | additive
    attn_size: int | None = None
    input_feed: bool = True
    reverse_source: bool = False
    dropout: float = 0.3
    tokenize: str = "13a"  # 13a | space
    max_len: int = 50  # training pairs longer than this (tokens, either side) are skipped
    valid_max: int | None = None  # validate on the first N validation pairs only (speed)
    min_count: int = 2
    batch_size: int = 64
    epochs: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokenize not in ("13a", "space"):
            raise RnnkitError(f"--tokenize: expected 13a or space, got {self.tokenize!r}")
        if self.max_len < 1:
            raise RnnkitError(f"--max-len: must be positive, got {self.max_len}")

    def model_config(self, src_vocab: int, tgt_vocab: int) -> Seq2SeqConfig:
        try:
            return Seq2SeqConfig(
                src_vocab=src_vocab, tgt_vocab=tgt_vocab, cell=self.cell, embed=self.embed,
                hidden=self.hidden, dec_hidden=self.dec_hidden, layers=self.layers,
                bidirectional=self.bidirectional, attention=self.attention,
                attn_size=self.attn_size, input_feed=self.input_feed,
                reverse_source=self.reverse_source, dropout=self.dropout,
            )  # fmt: skip
        except ValueError as e:
            raise RnnkitError(str(e)) from None


# --- text ------------------------------------------------------------------------------------


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


def build_vocab(sentences: Sequence[Sequence[str]], min_count: int = 1,
                max_size: int | None = None) -> Vocab:  # fmt: skip
    """Words by frequency (ties alphabetical) after the specials ``<pad> <unk> <s> </s>``.

    >>> build_vocab([["a", "b", "a"], ["c"]], min_count=2).tokens
    ['<pad>', '<unk>', '<s>', '</s>', 'a']
    """
    counts = Counter(w for s in sentences for w in s)
    for t in SPECIALS:
        counts.pop(t, None)
    words = [w for w in sorted(counts, key=lambda w: (-counts[w], w)) if counts[w] >= min_count]
    if max_size is not None:
        words = words[: max(0, max_size - len(SPECIALS))]
    return Vocab([*SPECIALS, *words], level="word", unk=UNK, eos=EOS)


def encode(vocab: Vocab, tokens: Sequence[str]) -> list[int]:
    """Token ids, unknown words -> ``<unk>``."""
    unk = vocab.stoi[UNK]
    return [vocab.stoi.get(t, unk) for t in tokens]


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


# --- the translator ------------------------------------------------------------------------------


@dataclass
class Translator:
    """A loaded model with its vocabularies and training settings."""

    model: Seq2Seq
    src_vocab: Vocab
    tgt_vocab: Vocab
    cfg: MTTrainConfig

    def src_ids(self, tokens: Sequence[str]) -> list[int]:
        return encode(self.src_vocab, tokens)

    def tgt_ids(self, tokens: Sequence[str]) -> list[int]:
        return encode(self.tgt_vocab, tokens)

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


def bleu_of(
    tr: Translator, data: ParallelText, method: str = "greedy", beam_size: int = 5,
    alpha: float = 1.0, limit: int | None = None,
) -> tuple[BLEUScore, list[str]]:  # fmt: skip
    """Corpus BLEU of the model's translations of ``data`` (first ``limit`` pairs)."""
    n = len(data) if limit is None else min(limit, len(data))
    hyps = translate_tokens(tr, data.src[:n], method=method, beam_size=beam_size, alpha=alpha)
    texts = [h[0].text for h in hyps]
    return corpus_bleu(texts, [data.tgt_raw[:n]], lowercase=tr.cfg.lower), texts


def mean_nll(tr: Translator, data: ParallelText, limit: int | None = None,
             batch_size: int = 64) -> float:  # fmt: skip
    """Teacher-forced mean negative log-likelihood per target token (EOS included)."""
    n = len(data) if limit is None else min(limit, len(data))
    src = [tr.src_ids(s) for s in data.src[:n]]
    tgt = [tr.tgt_ids(t) for t in data.tgt[:n]]
    logp, _ = tr.model.score(src, tgt, tr.bos, tr.eos, batch_size=batch_size)
    return float(-logp.sum() / sum(len(t) + 1 for t in tgt))


# --- training --------------------------------------------------------------------------------


def train_mt(
    cfg: MTTrainConfig | None,
    train: ParallelText,
    out: str | Path,
    valid: ParallelText | None = None,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue) a translation model; see the module doc for the outputs.

    Args:
        cfg: hyperparameters (ignored on resume: the checkpoint's are used).
        train: training pairs (:func:`read_parallel`); valid: validation pairs (their BLEU,
            greedy, is computed after every epoch and selects ``OUT/best``).
        epochs: on resume, a new total number of epochs.
        max_steps: stop after this many steps in this call (tests), as Ctrl-C does.
        data: where the data came from (JSON-able), kept in the checkpoint.
    """
    out = Path(out)
    ck = start_run(out, resume, KIND)
    if ck is not None:
        cfg = MTTrainConfig.from_dict(ck.config["train"])
        src_vocab = Vocab.from_json(ck.vocab["src"])
        tgt_vocab = Vocab.from_json(ck.vocab["tgt"])
    else:
        if cfg is None:
            raise ValueError("train_mt: cfg is required for a new run")
        src_vocab = build_vocab(train.src, cfg.min_count, cfg.max_vocab)
        tgt_vocab = build_vocab(train.tgt, cfg.min_count, cfg.max_vocab)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    model = Seq2Seq(cfg.model_config(len(src_vocab), len(tgt_vocab)), seed=cfg.seed)
    tr = Translator(model, src_vocab, tgt_vocab, cfg)
    src = [tr.src_ids(s) for s in train.src]
    tgt = [tr.tgt_ids(t) for t in train.tgt]
    lengths = np.array([max(len(s), len(t)) for s, t in zip(src, tgt, strict=True)])
    singleton = np.zeros(len(src_vocab), dtype=bool)
    counts = Counter(w for s in train.src for w in s)
    for w, c in counts.items():
        if c == 1 and w in src_vocab.stoi:
            singleton[src_vocab.stoi[w]] = True
    unk = src_vocab.stoi[UNK]

    def batch(idx: Array, training: bool) -> tuple[Any, Any]:
        s, sl, ti, to, tl = make_batch([src[i] for i in idx], [tgt[i] for i in idx], tr.bos,
                                       tr.eos)  # fmt: skip
        if training and cfg.unk_replace > 0:
            s = replace_singletons(s, singleton, cfg.unk_replace, unk, model.rng)
        return (s, sl, ti, tl), to

    def loss(inputs: Any, targets: Any, training: bool) -> tuple[float, Any]:
        s, sl, ti, tl = inputs
        value, cache = model.forward(s, sl, ti, targets, tl, training)
        return float(value), cache

    def evaluate() -> dict[str, float]:
        assert valid is not None
        score, _ = bleu_of(tr, valid, "greedy", limit=cfg.valid_max)
        return {"loss": mean_nll(tr, valid, cfg.valid_max), "bleu": score.score}

    c = model.config
    arch = (f"{'bi' if c.bidirectional else ''}{c.cell.upper()} {c.layers}x{c.hidden} -> "
            f"{c.cell.upper()} {c.layers}x{c.decoder_size}, attention {c.attention}"
            f"{' + input feeding' if c.input_feed else ''}"
            f"{', reversed source' if c.reverse_source else ''}")  # fmt: skip
    skipped = ""
    if train.skipped_empty or train.skipped_long:
        skipped = (f" (skipped {train.skipped_empty} with an empty side, "
                   f"{train.skipped_long} longer than {cfg.max_len} tokens)")  # fmt: skip
    task = Task(
        kind=KIND, model=model, lengths=lengths, batch=batch, loss=loss,
        evaluate=evaluate if valid is not None else None, select="bleu",
        config={"model": c.to_dict(), "train": asdict(cfg), "data": data or {}},
        vocab={"src": src_vocab.to_json(), "tgt": tgt_vocab.to_json()},
        describe=(f"rnnkit mt: {arch}; vocabularies {len(src_vocab):,} / {len(tgt_vocab):,}, "
                  f"{model.num_parameters():,} parameters; {len(src):,} training pairs"
                  f"{skipped}" + (f", {len(valid):,} validation pairs" if valid else "")),
    )  # fmt: skip
    summary = fit(task, cfg, out, ck, progress, max_steps, echo)

    def evaluate(best: Translator, data: ParallelText) -> dict[str, Any]:
        g, _ = bleu_of(best, data, "greedy")
        b, _ = bleu_of(best, data, "beam", beam_size=5, alpha=1.0)
        return {"loss": mean_nll(best, data), "bleu_greedy": g.score, "bleu_beam5": b.score,
                "signature": g.signature}  # fmt: skip

    def report(part: str, s: dict[str, Any]) -> None:
        echo(f"{part} (best epoch {summary['best_epoch']}): BLEU {s['bleu_greedy']:.2f} greedy, "
             f"{s['bleu_beam5']:.2f} beam 5 ({s['signature']})")  # fmt: skip

    score_best(summary, out, load_translator, evaluate, {"valid": valid}, report)
    return summary


def load_translator(path: str | Path) -> Translator:
    """Load a trained model from a run folder (``best/`` preferred) or a checkpoint folder."""
    model, cfg, (src_vocab, tgt_vocab), _ = load_run(
        path, KIND, Seq2SeqConfig, MTTrainConfig, Seq2Seq,
        lambda v: (Vocab.from_json(v["src"]), Vocab.from_json(v["tgt"])),
    )  # fmt: skip
    return Translator(model, src_vocab, tgt_vocab, cfg)


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
