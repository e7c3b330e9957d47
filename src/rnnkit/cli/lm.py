"""``rnnkit lm``: train, sample from and evaluate recurrent language models."""

from __future__ import annotations

import json
from typing import Any

import click

from rnnkit.cli.options import (
    CHECKPOINT_EVERY_HELP,
    INTERVAL,
    POSITIVE,
    config_option,
    record_eval,
    removed_test_option,
    run_train,
)
from rnnkit.recipes.lm import (
    PRESETS,
    LMData,
    evaluate_file,
    evaluate_text,
    held_out_test,
    load_lm,
    run_lm,
    sample_text,
)


@click.group(name="lm")
def group() -> None:
    """Recurrent language models (character or word level)."""


@group.command("train")
@click.argument("text", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--valid", type=click.Path(dir_okay=False), help="Validation text.")
@removed_test_option("lm eval RUN TEXT")
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
@click.option("--rmsprop-alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="RMSProp's decay rate of the squared-gradient average.")  # fmt: skip
@click.option("--max-vocab", type=POSITIVE, help="Word level: vocabulary size cap.")
@click.option("--min-count", type=POSITIVE, help="Word level: rarer words become <unk>.")
@click.option("--seed", type=int)
@click.option("--log-every", type=POSITIVE)
@click.option("--checkpoint-every", type=INTERVAL, help=CHECKPOINT_EVERY_HELP)
@click.option("--patience", type=click.IntRange(min=0),
              help="Stop after this many epochs without a better validation loss (0: never); "
                   "OUT/best keeps the best epoch's weights.")  # fmt: skip
@click.option("--dtype", type=click.Choice(["float32", "float64"]),
              help="Weights and arithmetic [default: float32].")  # fmt: skip
@click.option("--out", "out", default="runs/lm", show_default=True, type=click.Path())
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly.")
@click.option("--max-steps", type=POSITIVE, hidden=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@config_option
def train_cmd(
    text: tuple[str, ...], out: str, resume: bool, max_steps: int | None, progress: bool,
    **options: Any,
) -> None:  # fmt: skip
    """Train a language model on TEXT (default: the bundled Tiny Shakespeare).

    Training reports validation figures only. Without --valid, the end of the text is held
    out: 5% for validation and the last 5% for testing, which `rnnkit lm eval RUN` scores
    (once, after training: the score is recorded). OUT/best keeps the weights of the best
    validation epoch. Options override the preset; the preset overrides defaults.
    OUT/config.toml gets the resolved settings: --config OUT/config.toml trains the run again.
    """
    if options.get("clip_norm") is not None and options.get("clip_value") is not None:
        raise click.UsageError("--clip-norm and --clip-value exclude each other")
    run_train(run_lm, {**options, "text": list(text)}, LMData, out, resume, max_steps, progress)


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
    click.echo(sample_text(model, vocab, prime, length, temperature, top_k, greedy, seed))


@group.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("text", required=False, type=click.Path(dir_okay=False))
@click.option("--encoding", default="utf-8", show_default=True)
@click.option(
    "--batch-size", type=POSITIVE, default=1, show_default=True,
    help="1 scores every token; larger runs faster and drops a few tokens at the end.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_cmd(checkpoint: str, text: str | None, encoding: str, batch_size: int,
             as_json: bool) -> None:  # fmt: skip
    """Perplexity (and bits per character) of a trained model on TEXT.

    CHECKPOINT is a run's --out folder (its best validation epoch) or a checkpoint folder.
    Without TEXT: the test part the run held out of its training text (the last 5%, when
    it was trained without --valid). The figures are appended to RUN/scores.jsonl with the
    commit and command, so that how often a test text was scored is on record.
    """
    model, vocab, cfg, info = load_lm(checkpoint)
    if text is None:
        content, where = held_out_test(info["checkpoint"].config.get("data") or {})
        res = evaluate_text(model, vocab, content, cfg.bptt, batch_size, where)
        data: str = where
        record = dict(content=content.encode("utf-8"), what="held-out test part")
    else:
        res = evaluate_file(model, vocab, text, cfg.bptt, batch_size, encoding)
        data, record = text, {}
    record_eval(checkpoint, data, res, **record)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps(res))
        return
    line = f"{data}: {res['tokens']} tokens, loss {res['loss']:.4f} nats, "
    line += f"perplexity {res['perplexity']:.2f}"
    if "bits_per_char" in res:
        line += f", {res['bits_per_char']:.4f} bits/char"
    click.echo(line)
