"""``rnnkit music``: prepare Bach's chorales, train, evaluate and sample music models."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click

from rnnkit.cli.options import (
    POSITIVE,
    POSITIVE_FLOAT,
    PROB,
    check_resume,
    exit_if_interrupted,
    run_options,
)
from rnnkit.io import atomic_write
from rnnkit.recipes.music import (
    MusicTrainConfig,
    evaluate_music,
    listen_free_checks,
    load_music,
    prepare_chorales,
    record_evaluation,
    sample_music,
    scoring_history,
    train_music,
)
from rnnkit.text.chorales import STEPS


@click.group(name="music")
def group() -> None:
    """Polyphonic music: Bach's chorales as a piano roll or as tokens."""


@group.command("prepare")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Data folder.")
@click.option("--step", type=click.Choice(list(STEPS)), default="eighth", show_default=True,
              help="The grid: one step per quarter, eighth or sixteenth note.")  # fmt: skip
@click.option("--names", help="Comma-separated chorales (e.g. bwv269,bwv347); default: all.")
def prepare_cmd(out: str, step: str, names: str | None) -> None:
    """Read music21's Bach chorales onto a grid and write them, split by name, to --out."""
    chosen = [n.strip() for n in names.split(",") if n.strip()] if names else None
    prepare_chorales(out, step, chosen, echo=click.echo)


@group.command("train")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--form",
    type=click.Choice(["roll", "tokens"]),
    help="Piano roll (a Bernoulli per pitch and step) or tokens (language model).",
)
@click.option("--cell", type=click.Choice(["rnn", "gru", "lstm"]), help="rnn is tanh.")
@click.option("--hidden", type=POSITIVE, help="Hidden units per layer.")
@click.option(
    "--params",
    type=POSITIVE,
    help="Roll: choose the hidden size whose model has about this many parameters.",
)
@click.option("--layers", type=POSITIVE)
@click.option("--dropout", type=PROB)
@click.option("--init-range", type=POSITIVE_FLOAT, help="Weights ~ U(-a, a).")
@click.option(
    "--transpose",
    type=click.IntRange(min=0),
    help="Training: shift chorales by up to this many semitones either way.",
)
@click.option("--embed", type=POSITIVE, help="Tokens: embedding size.")
@click.option("--bptt", type=POSITIVE, help="Tokens: truncated-BPTT window.")
@click.option("--epochs", type=POSITIVE)
@click.option("--batch-size", type=POSITIVE)
@click.option("--optimizer", type=click.Choice(["sgd", "adagrad", "rmsprop", "adam"]))
@click.option("--lr", type=POSITIVE_FLOAT, help="Learning rate.")
@click.option("--clip-norm", type=POSITIVE_FLOAT, help="Global gradient L2 norm limit.")
@click.option("--seed", type=int)
@click.option("--log-every", type=POSITIVE)
@run_options("runs/music")
def train_cmd(data: str, out: str, resume: bool, max_steps: int | None, progress: bool,
              **options: Any) -> None:  # fmt: skip
    """Train a music model on DATA (a folder from 'rnnkit music prepare').

    Roll runs keep the weights of the epoch with the best validation NLL per step in
    OUT/best; token runs train for --epochs. The test chorales are not read: score them
    once with 'rnnkit music eval RUN --split test'.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if resume:
        check_resume(given)
        summary = train_music(None, data, out, resume=True, epochs=given.get("epochs"),
                              progress=progress, max_steps=max_steps, echo=click.echo)  # fmt: skip
    else:
        cfg = MusicTrainConfig(**given)
        summary = train_music(cfg, data, out, progress=progress, max_steps=max_steps,
                              echo=click.echo)  # fmt: skip
    exit_if_interrupted(summary)


@group.command("eval")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["valid", "test"]), default="valid",
              show_default=True)  # fmt: skip
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False),
    help="Data folder (default: the one the run was trained on).",
)
@click.option("--rescore", is_flag=True, help="Score the test split again (counted in the record).")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def eval_cmd(run: str, split: str, data: str | None, rescore: bool, as_json: bool) -> None:
    """Score RUN on a split and keep the figures, the commit and this command in
    RUN/eval-SPLIT.json; the test split is scored once (again only with --rescore)."""
    model = load_music(run)
    scoring_history(run, split, rescore)  # a second test scoring stops here, before scoring
    figs = evaluate_music(model, split, data)
    words = ["rnnkit", "music", "eval", run, "--split", split]
    words += (["--data", data] if data else []) + (["--rescore"] if rescore else [])
    command = shlex.join(words)  # this command, rebuilt from its arguments
    record = record_evaluation(run, split, figs, command, rescore=rescore)
    if as_json:
        click.echo(json.dumps(record))
        return
    where = f"commit {str(record['commit'])[:12]}{' (modified)' if record['dirty'] else ''}"
    if model.form == "roll":
        click.echo(f"{split}: NLL {figs['nll']:.4f} nats per step ({figs['chorales']} "
                   f"chorales, {figs['steps']:,} steps; training frequencies alone: "
                   f"{figs['unigram_nll']:.4f}); scored {record['times_scored']} time(s), "
                   f"{where}")  # fmt: skip
    else:
        click.echo(f"{split}: {figs['nll_per_token']:.4f} nats per token, perplexity "
                   f"{figs['perplexity']:.3f}, {figs['nats_per_step']:.3f} nats per step "
                   f"({figs['chorales']} chorales, {figs['tokens']:,} tokens); scored "
                   f"{record['times_scored']} time(s), {where}")  # fmt: skip


@group.command("sample")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The MIDI file; .musicxml, .png (and .wav) are written beside it.",
)
@click.option("--seed", type=int, default=None, help="Seed for a reproducible sample.")
@click.option("--bars", type=POSITIVE, default=8, show_default=True, help="Bars to generate.")
@click.option("--prime", help="Start from the opening bars of this chorale (e.g. bwv102.7).")
@click.option("--prime-bars", type=POSITIVE, default=2, show_default=True)
@click.option("--temperature", type=POSITIVE_FLOAT, default=1.0, show_default=True)
@click.option("--wav", is_flag=True, help="Also write a WAV (a small additive synthesiser).")
@click.option("--bpm", type=POSITIVE_FLOAT, default=80.0, show_default=True)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False),
    help="Data folder of the prime (default: the run's).",
)
def sample_cmd(run: str, out: str, seed: int | None, bars: int, prime: str | None,
               prime_bars: int, temperature: float, wav: bool, bpm: float,
               data: str | None) -> None:  # fmt: skip
    """Generate music from RUN: MIDI, MusicXML (music21), a piano-roll PNG, optionally WAV."""
    sample_music(run, out, seed=seed, bars=bars, prime=prime, prime_bars=prime_bars,
                 temperature=temperature, wav=wav, bpm=bpm, data_path=data,
                 echo=click.echo)  # fmt: skip


@group.command("check")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--samples", type=POSITIVE, default=20, show_default=True)
@click.option("--bars", type=POSITIVE, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--temperature", type=POSITIVE_FLOAT, default=1.0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the figures as JSON.")
def check_cmd(run: str, samples: int, bars: int, seed: int, temperature: float,
              out: str | None) -> None:  # fmt: skip
    """Listen-free checks: samples against the training chorales (notes in key, voice
    ranges, parallel fifths and octaves per bar, four voices sounding)."""
    res = listen_free_checks(load_music(run), samples, bars, seed, temperature)
    if out:
        with atomic_write(out) as f:
            json.dump(res, f, indent=1)
    click.echo(f"{'':28}{'samples':>10}{'training':>10}")
    for k in (
        "in_key",
        "in_voice_range",
        "parallel_fifths_per_bar",
        "parallel_octaves_per_bar",
        "four_voices_sounding",
        "four_distinct_pitches",
    ):
        click.echo(f"{k:28}{res['samples'][k]:10.3f}{res['training'][k]:10.3f}")
