"""Training and evaluating translation models: the work behind ``rnnkit mt train``.

Data: aligned sentence pairs (:func:`rnnkit.text.parallel.read_parallel`; training pairs with
an empty side, or longer than ``max_len`` tokens on either side, are skipped and counted, and
the run's first lines say how many). Vocabularies come from the training side of each
language, ``<pad> <unk> <s> </s>`` first; rarer words (``min_count``, ``max_vocab``) and words
never seen become ``<unk>``. Translating, the error analysis and the attention pictures of a
trained model are :mod:`rnnkit.models.translate`'s; :func:`load_translator` loads one.

The loop itself is the shared one of :mod:`rnnkit.train.loop` (length-bucketed
batches, Adam + global-norm clipping by default, ``metrics.jsonl``, ``loss.png``, exact
``--resume``, Ctrl-C -> checkpoint + exit 130, ``OUT/best`` = the epoch of the best
validation BLEU); validation BLEU is corpus BLEU (:mod:`rnnkit.text.bleu`) of the greedy
translations of the validation set against its raw references.

Output folder layout::

    OUT/checkpoint/    the latest checkpoint, for --resume
    OUT/best/          the weights of the best validation epoch (what translate loads)
    OUT/config.toml    the resolved settings (MTData + MTTrainConfig): --config re-runs it
    OUT/metrics.jsonl  one JSON object per logged step and per epoch (valid_bleu per epoch),
    OUT/metrics.csv    the same as columns, and TensorBoard event files (tensorboardX)
    OUT/loss.png       training and validation loss
    OUT/summary.json   final figures

:func:`run_mt` is the command as a function (flat settings, as ``--config`` files hold them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig, make_batch
from rnnkit.models.translate import EOS, SPECIALS, Translator, translate_tokens
from rnnkit.text.bleu import BLEUScore, corpus_bleu
from rnnkit.text.parallel import ParallelText, read_parallel
from rnnkit.text.vocab import UNK, Vocab, build_word_vocab
from rnnkit.train.callbacks import Callback
from rnnkit.train.loop import (
    LoopConfig,
    Task,
    fit,
    load_run,
    replace_singletons,
    score_best,
    start_run,
)
from rnnkit.train.runconfig import check_resume, check_settings, resume_inputs, split_settings

Array = np.ndarray
KIND = "mt"

__all__ = [
    "KIND",
    "MTData",
    "MTTrainConfig",
    "bleu_of",
    "load_translator",
    "mean_nll",
    "run_mt",
    "train_mt",
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
    dtype: str = "float32"  # float32 | float64 (the model's weights and arithmetic)

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
                reverse_source=self.reverse_source, dropout=self.dropout, dtype=self.dtype,
            )  # fmt: skip
        except ValueError as e:
            raise RnnkitError(str(e)) from None


@dataclass
class MTData:
    """The data settings of ``rnnkit mt train`` (and :func:`run_mt`): aligned files, one
    sentence per line."""

    src: str | None = None
    tgt: str | None = None
    valid_src: str | None = None  # validation: loss and greedy BLEU per epoch, selects best/
    valid_tgt: str | None = None
    encoding: str = "utf-8"


# --- evaluation ----------------------------------------------------------------------------


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
    callbacks: Sequence[Callback] = (),
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue) a translation model; see the module doc for the outputs.

    Args:
        cfg: hyperparameters (ignored on resume: the checkpoint's are used).
        train: training pairs (:func:`read_parallel`); valid: validation pairs (their BLEU,
            greedy, is computed after every epoch and selects ``OUT/best``).
        epochs: on resume, a new total number of epochs.
        max_steps: stop after this many steps in this call (tests), as Ctrl-C does.
        data: where the data came from (JSON-able), kept in the checkpoint.
        callbacks: hooks after every step and epoch (:mod:`rnnkit.train.callbacks`).
        inputs: the data settings (:class:`MTData`), written with ``cfg`` to
            ``OUT/config.toml``.
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
        src_vocab = build_word_vocab(train.src, cfg.min_count, cfg.max_vocab, SPECIALS, EOS)
        tgt_vocab = build_word_vocab(train.tgt, cfg.min_count, cfg.max_vocab, SPECIALS, EOS)
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
        counts=np.array([len(t) + 1 for t in tgt]),  # the loss: a mean over target tokens + EOS
        config={"model": c.to_dict(), "train": asdict(cfg), "data": data or {}},
        vocab={"src": src_vocab.to_json(), "tgt": tgt_vocab.to_json()},
        describe=(f"rnnkit mt: {arch}; vocabularies {len(src_vocab):,} / {len(tgt_vocab):,}, "
                  f"{model.num_parameters():,} parameters; {len(src):,} training pairs"
                  f"{skipped}" + (f", {len(valid):,} validation pairs" if valid else "")),
        command="mt train", settings=None if inputs is None else {**inputs, **asdict(cfg)},
    )  # fmt: skip
    summary = fit(task, cfg, out, ck, progress, max_steps, echo, callbacks)

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


def run_mt(
    settings: Mapping[str, Any], out: str | Path, *, resume: bool = False, progress: bool = True,
    max_steps: int | None = None, echo: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (), where: str = "settings",
) -> dict[str, Any]:  # fmt: skip
    """``rnnkit mt train`` as a function: settings and arguments as
    :func:`rnnkit.recipes.lm.run_lm`'s, the settings being the fields of :class:`MTData`
    and :class:`MTTrainConfig`."""
    s = check_settings(settings, [MTData, MTTrainConfig], where, command="rnnkit mt train")
    inputs, given = split_settings(s, MTData)
    if resume:
        check_resume(given)
        inputs, saved = resume_inputs(out, KIND, inputs, ("src", "tgt", "valid_src", "valid_tgt"))
        cfg, new_cfg = MTTrainConfig.from_dict(saved), None
    else:
        cfg = new_cfg = MTTrainConfig(**given)
    src, tgt, vsrc, vtgt, enc = (inputs[k] for k in ("src", "tgt", "valid_src", "valid_tgt",
                                                     "encoding"))  # fmt: skip
    if not src or not tgt:
        raise RnnkitError(f"{where}: src and tgt (the training files) are required")
    if bool(vsrc) != bool(vtgt):
        raise RnnkitError(f"{where}: valid_src and valid_tgt go together")
    train = read_parallel(src, tgt, cfg.tokenize, cfg.lower, cfg.max_len, enc)
    valid = None
    if vsrc and vtgt:
        valid = read_parallel(vsrc, vtgt, cfg.tokenize, cfg.lower, None, enc, skip_empty=False)
    return train_mt(new_cfg, train, out, valid=valid, resume=resume, epochs=given.get("epochs"),
                    progress=progress, max_steps=max_steps, echo=echo, data=inputs,
                    callbacks=callbacks, inputs=inputs)  # fmt: skip
