"""``rnnkit mt``: train, apply and analyse translation models; ``rnnkit bleu``: corpus BLEU.

Both are registered by :mod:`rnnkit.cli`: the group ``group`` (``rnnkit mt ...``) and the
command ``bleu_command`` (``rnnkit bleu HYP REF...``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import numpy as np

from rnnkit.cli.options import (
    POSITIVE,
    PROB,
    config_option,
    loop_options,
    read_inputs,
    record_eval,
    run_options,
    run_train,
)
from rnnkit.io import RnnkitError, read_lines
from rnnkit.models.translate import (
    analyze,
    format_analysis,
    plot_attention,
    translate_lines,
    translate_tokens,
)
from rnnkit.recipes.mt import MTData, load_translator, run_mt
from rnnkit.text.bleu import SMOOTHING, corpus_bleu
from rnnkit.text.parallel import read_parallel, tokenize

_DECODE_OPTIONS = [
    click.option("--beam", "beam_size", type=click.IntRange(min=1), default=5, show_default=True,
                 help="Beam width K (1: the greedy output)."),
    click.option("--alpha", type=click.FloatRange(min=0), default=1.0, show_default=True,
                 help="Length normalisation: rank by log P / T^alpha."),
    click.option("--penalty", type=click.Choice(["length", "gnmt"]), default="length",
                 show_default=True, help="gnmt: log P / ((5 + T) / 6)^alpha (Wu et al. 2016)."),
    click.option("--max-len-a", type=click.FloatRange(min=0), default=2.0, show_default=True,
                 help="At most a * (source length) + b output tokens."),
    click.option("--max-len-b", type=click.IntRange(min=0), default=10, show_default=True),
]  # fmt: skip


def decode_options(f: Any) -> Any:
    for option in reversed(_DECODE_OPTIONS):
        f = option(f)
    return f


@click.group(name="mt")
def group() -> None:
    """Machine translation: encoder-decoder RNNs with attention, beam search, BLEU."""


@group.command("train")
@click.option("--src", type=click.Path(dir_okay=False), help="Training source text.")
@click.option("--tgt", type=click.Path(dir_okay=False), help="Training target text.")
@click.option("--valid-src", type=click.Path(dir_okay=False), help="Validation source text.")
@click.option("--valid-tgt", type=click.Path(dir_okay=False), help="Validation references.")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option(
    "--tokenize",
    type=click.Choice(["13a", "space"]),
    help="13a: punctuation apart (default); space: split at whitespace only.",
)
@click.option("--max-len", type=POSITIVE, help="Skip training pairs longer than this (50).")
@click.option("--valid-max", type=POSITIVE, help="Validate on the first N pairs only.")
@click.option("--cell", type=click.Choice(["rnn", "lstm", "gru"]))
@click.option("--embed", type=POSITIVE, help="Embedding size (both languages).")
@click.option("--hidden", type=POSITIVE, help="Encoder units per direction and layer.")
@click.option("--dec-hidden", type=POSITIVE, help="Decoder units (default: encoder output).")
@click.option("--layers", type=POSITIVE)
@click.option("--bidirectional/--unidirectional", default=None, help="The encoder.")
@click.option("--attention", type=click.Choice(["none", "dot", "general", "additive"]))
@click.option("--attn-size", type=POSITIVE, help="Hidden size of the additive score.")
@click.option(
    "--input-feed/--no-input-feed",
    default=None,
    help="Feed the attentional state to the next step (Luong et al.).",
)
@click.option(
    "--reverse-source/--no-reverse-source",
    default=None,
    help="Read source sentences backwards (Sutskever et al.).",
)
@click.option("--dropout", type=PROB)
@loop_options
@run_options("runs/mt")
@config_option
def train_cmd(out: str, resume: bool, max_steps: int | None, progress: bool,
              **options: Any) -> None:  # fmt: skip
    """Train a translation model on aligned --src/--tgt files (one sentence per line).

    Prints validation loss and BLEU (greedy) after each epoch; OUT/best keeps the weights of
    the best-BLEU epoch. Pairs with an empty side or longer than --max-len are skipped and
    counted. Defaults: bidirectional GRU 256 -> GRU 512 with general attention and input
    feeding, 13a tokens, words seen once -> <unk>, Adam 1e-3, batch 64, 10 epochs.
    """
    if not resume:
        if not options.get("src") or not options.get("tgt"):
            raise click.UsageError("--src and --tgt are required")
        if bool(options.get("valid_src")) != bool(options.get("valid_tgt")):
            raise click.UsageError("--valid-src and --valid-tgt go together")
    run_train(run_mt, options, MTData, out, resume, max_steps, progress)


@group.command("translate")
@click.argument("checkpoint", type=click.Path())
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@decode_options
@click.option("--greedy", is_flag=True, help="Greedy decoding (batched; ignores --beam).")
@click.option("--sample", is_flag=True, help="Sample each token (batched; ignores --beam).")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Sampling temperature.")  # fmt: skip
@click.option("--seed", type=int, default=None, help="Seed for reproducible samples.")
@click.option(
    "--n-best",
    type=POSITIVE,
    default=1,
    show_default=True,
    help="Print the N best: 'i ||| translation ||| score' lines (Moses style).",
)
@click.option(
    "--replace-unk",
    is_flag=True,
    help="Replace each <unk> output by the source word it attends to most.",
)
@click.option(
    "--max-src-len",
    type=POSITIVE,
    default=250,
    show_default=True,
    help="Longer input lines are an error.",
)
@click.option("--encoding", default="utf-8", show_default=True)
def translate_cmd(
    checkpoint: str, inputs: tuple[str, ...], beam_size: int, alpha: float, penalty: str,
    max_len_a: float, max_len_b: int, greedy: bool, sample: bool, temperature: float,
    seed: int | None, n_best: int, replace_unk: bool, max_src_len: int, encoding: str,
) -> None:  # fmt: skip
    """Translate INPUTS (files, one sentence per line; '-' or none: stdin) to stdout.

    One output line per input line (an empty line gives an empty line); words the model
    never saw become <unk>. CHECKPOINT: a run's --out folder (its best weights).
    """
    if greedy and sample:
        raise click.UsageError("--greedy and --sample exclude each other")
    method = "greedy" if greedy else "sample" if sample else "beam"
    if method != "beam" and n_best > 1:
        raise click.UsageError(f"--n-best needs beam search (not --{method})")
    if n_best > beam_size:
        raise click.UsageError(f"--n-best {n_best} exceeds --beam {beam_size}")
    tr = load_translator(checkpoint)
    rng = np.random.default_rng(seed)
    for name, lines in read_inputs(inputs, encoding):
        res = translate_lines(tr, lines, where=name, max_src_len=max_src_len, method=method,
                              beam_size=beam_size, alpha=alpha, penalty=penalty, n_best=n_best,
                              replace_unk=replace_unk, max_len_a=max_len_a,
                              max_len_b=max_len_b, temperature=temperature,
                              rng=rng)  # fmt: skip
        for i, hyps in enumerate(res):
            if n_best == 1:
                click.echo(hyps[0].text)
            else:
                for h in hyps:
                    click.echo(f"{i} ||| {h.text} ||| {h.score:.4f}")


@group.command("analyze")
@click.argument("checkpoint", type=click.Path())
@click.option("--src", required=True, type=click.Path(dir_okay=False), help="Source text.")
@click.option("--ref", required=True, type=click.Path(dir_okay=False), help="References.")
@decode_options
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Example sentences per kind of error.",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    help="Also write every pair's verdict and scores to this JSON file.",
)
@click.option("--encoding", default="utf-8", show_default=True)
def analyze_cmd(
    checkpoint: str, src: str, ref: str, beam_size: int, alpha: float, penalty: str,
    max_len_a: float, max_len_b: int, examples: int, json_out: str | None, encoding: str,
) -> None:  # fmt: skip
    """Beam search or model? Seed 002's error analysis over --src/--ref pairs.

    For each pair whose beam output y^ differs from the reference y*, compare the model's
    scores log P(y|x) / T^alpha: y* higher -> a search error, else a model error. The
    BLEU and counts are appended to RUN/scores.jsonl (commit, command, data SHA-256).
    """
    if penalty != "length":
        raise click.UsageError("analyze compares log P / T^alpha; use --penalty length")
    tr = load_translator(checkpoint)
    data = read_parallel(src, ref, tr.cfg.tokenize, tr.cfg.lower, None, encoding,
                         skip_empty=False)  # fmt: skip
    result = analyze(tr, data, beam_size=beam_size, alpha=alpha, max_len_a=max_len_a,
                     max_len_b=max_len_b)  # fmt: skip
    record_eval(checkpoint, [src, ref], {"bleu": result["bleu"].score, "counts": result["counts"],
                                         "beam_size": beam_size, "alpha": alpha})  # fmt: skip
    click.echo(format_analysis(result, examples))
    if json_out:
        from dataclasses import asdict

        from rnnkit.io import atomic_write

        payload = {"counts": result["counts"], "fractions": result["fractions"],
                   "beam_size": beam_size, "alpha": alpha, "bleu": result["bleu"].score,
                   "rows": [asdict(r) for r in result["rows"]]}  # fmt: skip
        with atomic_write(json_out) as f:
            json.dump(payload, f, indent=1, ensure_ascii=False)


@group.command("attention")
@click.argument("checkpoint", type=click.Path())
@click.argument("sentence")
@click.option(
    "--out", "png", required=True, type=click.Path(dir_okay=False), help="The PNG file to write."
)
@decode_options
@click.option("--greedy", is_flag=True, help="Greedy decoding instead of beam search.")
def attention_cmd(
    checkpoint: str, sentence: str, png: str, beam_size: int, alpha: float, penalty: str,
    max_len_a: float, max_len_b: int, greedy: bool,
) -> None:  # fmt: skip
    """Translate SENTENCE and draw its attention weights as a heatmap PNG."""
    tr = load_translator(checkpoint)
    if tr.model.attention is None:
        raise RnnkitError(f"{checkpoint}: this model has no attention (trained with "
                          "--attention none)")  # fmt: skip
    tokens = tokenize(sentence, tr.cfg.tokenize, tr.cfg.lower)
    if not tokens:
        raise RnnkitError("SENTENCE: is empty")
    hyp = translate_tokens(tr, [tokens], method="greedy" if greedy else "beam",
                           beam_size=beam_size, alpha=alpha, penalty=penalty,
                           with_attention=True, max_len_a=max_len_a,
                           max_len_b=max_len_b)[0][0]  # fmt: skip
    assert hyp.attention is not None
    src_shown = [t if t in tr.src_vocab.stoi else f"{t} (unk)" for t in tokens]
    plot_attention(hyp.attention, src_shown, hyp.tokens, png, title=hyp.text)
    click.echo(hyp.text)
    click.echo(f"attention heatmap written to {png}", err=True)


@click.command("bleu")
@click.argument("hyp", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("refs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--smooth", type=click.Choice(list(SMOOTHING)), default="exp", show_default=True)
@click.option(
    "--smooth-value",
    type=click.FloatRange(min=0),
    default=None,
    help="floor's epsilon (0.1) or add-k's k (1).",
)
@click.option("--tokenize", type=click.Choice(["13a", "none"]), default="13a", show_default=True)
@click.option("-lc", "--lowercase", is_flag=True, help="Case-insensitive.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--encoding", default="utf-8", show_default=True)
def bleu_command(
    hyp: str, refs: tuple[str, ...], smooth: str, smooth_value: float | None, tokenize: str,
    lowercase: bool, as_json: bool, encoding: str,
) -> None:  # fmt: skip
    """Corpus BLEU of HYP ('-': stdin) against one or more reference files, as sacrebleu.

    Files are detokenized text, one sentence per line, aligned (gzip accepted); empty lines
    are empty sentences. Prints the score line and the signature.
    """
    ((hyp_name, hyp_lines),) = read_inputs((hyp,), encoding)
    streams = [read_lines(r, encoding, allow_empty=True) for r in refs]
    for r, lines in zip(refs, streams, strict=True):
        if len(lines) != len(hyp_lines):
            raise RnnkitError(f"{hyp_name} has {len(hyp_lines)} lines but {r} has "
                              f"{len(lines)}")  # fmt: skip
    s = corpus_bleu(hyp_lines, streams, smooth=smooth, smooth_value=smooth_value,
                    tokenize=tokenize, lowercase=lowercase)  # fmt: skip
    if as_json:
        click.echo(json.dumps({"score": s.score, "precisions": s.precisions, "bp": s.bp,
                               "ratio": s.ratio, "hyp_len": s.sys_len, "ref_len": s.ref_len,
                               "signature": s.signature}))  # fmt: skip
        return
    click.echo(str(s))
    click.echo(s.signature)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(group())
