"""``rnnkit lm``: train, sample from and evaluate recurrent language models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from rnnkit.cli.options import POSITIVE
from rnnkit.io import RnnkitError, read_text
from rnnkit.recipes.lm import (
    KIND,
    PRESETS,
    Corpus,
    LMTrainConfig,
    bundled_corpus,
    evaluate,
    figures,
    load_lm,
    train_lm,
)
from rnnkit.train.checkpoint import load_checkpoint


@click.group(name="lm")
def group() -> None:
    """Recurrent language models (character or word level)."""


def _read_corpus(
    texts: tuple[str, ...], valid: str | None, test: str | None, encoding: str
) -> tuple[Corpus, dict[str, Any]]:
    desc = {"train": list(texts) or "bundled", "valid": valid, "test": test, "encoding": encoding}
    if texts:
        train = "".join(read_text(t, encoding) for t in texts)
    else:
        train = bundled_corpus()
    v = read_text(valid, encoding) if valid else None
    t = read_text(test, encoding) if test else None
    if v is None:
        # hold out the end of the training text: 5% validation (and 5% test, if none given)
        split = Corpus.split(train, 0.05, 0.05 if t is None else 0.0)
        return Corpus(split.train, split.valid, t if t is not None else split.test), desc
    return Corpus(train, v, t), desc


def _corpus_from_desc(desc: dict[str, Any]) -> tuple[Corpus, dict[str, Any]]:
    train = desc.get("train")
    texts = () if train == "bundled" else tuple(train or ())
    return _read_corpus(texts, desc.get("valid"), desc.get("test"), desc.get("encoding", "utf-8"))


@group.command("train")
@click.argument("text", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--valid", type=click.Path(dir_okay=False), help="Validation text.")
@click.option("--test", type=click.Path(dir_okay=False), help="Test text (evaluated at the end).")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of the texts.")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="A published setup.")
@click.option("--level", type=click.Choice(["char", "word"]))
@click.option("--cell", type=click.Choice(["rnn", "lstm", "gru"]))
@click.option("--hidden", type=POSITIVE, help="Hidden units per layer.")
@click.option("--layers", type=POSITIVE)
@click.option("--embed", type=POSITIVE, help="Embedding size.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True))
@click.option("--tie/--no-tie", "tie_weights", default=None, help="Tie input/output embeddings.")
@click.option("--init-range", type=click.FloatRange(min=0, min_open=True))
@click.option("--bptt", type=POSITIVE, help="Truncated-BPTT window (steps).")
@click.option("--batch-size", type=POSITIVE)
@click.option("--epochs", type=POSITIVE)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True))
@click.option("--optimizer", type=click.Choice(["sgd", "adagrad", "rmsprop", "adam"]))
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True))
@click.option("--clip-norm", type=click.FloatRange(min=0, min_open=True), help="Global L2 norm.")
@click.option("--clip-value", type=click.FloatRange(min=0, min_open=True), help="Element-wise.")
@click.option("--l2", type=click.FloatRange(min=0), help="L2 penalty on weights.")
@click.option(
    "--loss", type=click.Choice(["mean", "sum-time"]),
    help="Gradient of the mean over tokens, or of the sum over steps (Zaremba et al.).",
)  # fmt: skip
@click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True))
@click.option("--decay-after", type=POSITIVE, help="Epoch at whose end decay starts.")
@click.option("--max-vocab", type=POSITIVE, help="Word level: vocabulary size cap.")
@click.option("--seed", type=int)
@click.option("--log-every", type=POSITIVE)
@click.option("--checkpoint-every", type=click.IntRange(min=0), help="Steps; 0: per epoch.")
@click.option("--out", "out", default="runs/lm", show_default=True, type=click.Path())
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly.")
@click.option("--max-steps", type=POSITIVE, hidden=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def train_cmd(
    text: tuple[str, ...], valid: str | None, test: str | None, encoding: str,
    preset: str | None, out: str, resume: bool, max_steps: int | None, progress: bool,
    **options: Any,
) -> None:  # fmt: skip
    """Train a language model on TEXT (default: the bundled Tiny Shakespeare).

    Without --valid, the last 5% of the text is held out for validation (and 5% more for
    testing, without --test). Options override the preset; the preset overrides defaults.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if given.get("clip_norm") is not None and given.get("clip_value") is not None:
        raise click.UsageError("--clip-norm and --clip-value exclude each other")
    if resume:
        ck = load_checkpoint(Path(out) / "checkpoint", kind=KIND)
        desc = ck.config.get("data") or {}
        corpus, desc = (
            _read_corpus(text, valid, test, encoding) if text else _corpus_from_desc(desc)
        )
        extra = set(given) - {"epochs"}
        if extra or preset:
            names = ", ".join("--" + k.replace("_", "-") for k in sorted(extra)) or "--preset"
            raise click.UsageError(
                f"--resume continues with the checkpoint's settings; only --epochs may change "
                f"(got {names})"
            )
        summary = train_lm(
            None,
            corpus,
            out,
            resume=True,
            epochs=given.get("epochs"),
            progress=progress,
            max_steps=max_steps,
            echo=click.echo,
            data=desc,
        )
        _exit_if_interrupted(summary)
        return
    settings: dict[str, Any] = dict(PRESETS[preset]) if preset else {}
    if "clip_norm" in given:
        settings["clip_value"] = None
    if "clip_value" in given:
        settings["clip_norm"] = None
    settings.update(given)
    cfg = LMTrainConfig(**settings)
    corpus, desc = _read_corpus(text, valid, test, encoding)
    summary = train_lm(
        cfg, corpus, out, progress=progress, max_steps=max_steps, echo=click.echo, data=desc
    )
    _exit_if_interrupted(summary)


def _exit_if_interrupted(summary: dict[str, Any]) -> None:
    if summary.get("interrupted"):
        raise click.exceptions.Exit(130)  # the shell's code for Ctrl-C; checkpoint is saved


@group.command("sample")
@click.argument("checkpoint", type=click.Path())
@click.option("--prime", default=None, help="Text to start from (default: a line break).")
@click.option("--length", type=click.IntRange(min=0), default=500, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True)  # fmt: skip
@click.option("--top-k", type=POSITIVE, default=None, help="Sample among the k likeliest.")
@click.option("--greedy", is_flag=True, help="Take the likeliest token at every step.")
@click.option("--seed", type=int, default=None, help="Seed for reproducible samples.")
def sample_cmd(
    checkpoint: str, prime: str | None, length: int, temperature: float, top_k: int | None,
    greedy: bool, seed: int | None,
) -> None:  # fmt: skip
    """Generate text from a trained model (CHECKPOINT: a run's --out folder)."""
    model, vocab, cfg, _ = load_lm(checkpoint)
    if vocab.level == "word":
        # start from a sentence boundary, then the priming words (their <eos> dropped)
        prime = (prime or "").strip()
        words = vocab.encode(prime, where="--prime")[:-1] if prime else np.zeros(0, np.int64)
        ids = np.concatenate([[vocab.stoi[vocab.eos]], words])
    else:
        prime = "\n" if prime is None else prime
        if not prime:
            raise RnnkitError("--prime: must not be empty")
        ids = vocab.encode(prime, where="--prime")
    gen = model.generate(ids, length, temperature=temperature, top_k=top_k, greedy=greedy,
                         rng=np.random.default_rng(seed))  # fmt: skip
    sep = " " if vocab.level == "word" and prime else ""
    click.echo(prime + sep + vocab.decode(gen))


@group.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("text", type=click.Path(dir_okay=False))
@click.option("--encoding", default="utf-8", show_default=True)
@click.option(
    "--batch-size", type=POSITIVE, default=1, show_default=True,
    help="1 scores every token; larger runs faster and drops a few tokens at the end.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_cmd(checkpoint: str, text: str, encoding: str, batch_size: int, as_json: bool) -> None:
    """Perplexity (and bits per character) of a trained model on TEXT."""
    model, vocab, cfg, _ = load_lm(checkpoint)
    ids = vocab.encode(read_text(text, encoding), where=text)
    res = figures(evaluate(model, ids, cfg.bptt, batch_size), vocab.level)
    res["tokens"] = int(len(ids))
    if as_json:
        click.echo(json.dumps(res))
        return
    line = f"{text}: {res['tokens']} tokens, loss {res['loss']:.4f} nats, "
    line += f"perplexity {res['perplexity']:.2f}"
    if "bits_per_char" in res:
        line += f", {res['bits_per_char']:.4f} bits/char"
    click.echo(line)
