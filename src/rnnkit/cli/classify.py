"""``rnnkit classify``: train, apply and evaluate sentence classifiers (many-to-one).

Also defines the training-loop options shared with ``rnnkit tag`` (:func:`loop_options`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from rnnkit.io import RnnkitError, read_lines
from rnnkit.recipes.task import (
    KIND_CLASSIFIER,
    ClassifyTrainConfig,
    ensemble_probabilities,
    evaluate_classifier,
    load_classifier,
    train_classifier,
)
from rnnkit.text.readers import read_labelled_tsv, read_sentences
from rnnkit.train.checkpoint import load_checkpoint

POSITIVE = click.IntRange(min=1)
PROB = click.FloatRange(0, 1, max_open=True)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)

_LOOP_OPTIONS = [
    click.option("--epochs", type=POSITIVE),
    click.option("--batch-size", type=POSITIVE),
    click.option("--optimizer", type=click.Choice(["sgd", "adagrad", "rmsprop", "adam"])),
    click.option("--lr", type=POSITIVE_FLOAT, help="Learning rate."),
    click.option("--momentum", type=PROB),
    click.option("--clip-norm", type=POSITIVE_FLOAT, help="Global gradient L2 norm limit."),
    click.option("--l2", type=click.FloatRange(min=0), help="L2 penalty on weights."),
    click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True),
                 help="Multiply the learning rate by this after each epoch."),
    click.option("--decay-after", type=POSITIVE, help="Epoch at whose end decay starts."),
    click.option("--min-count", type=POSITIVE, help="Rarer training words become <unk>."),
    click.option("--max-vocab", type=POSITIVE, help="Vocabulary size cap."),
    click.option("--unk-replace", type=PROB,
                 help="Replace words seen once by <unk> with this probability (training)."),
    click.option("--lower/--no-lower", default=None, help="Lowercase words."),
    click.option("--seed", type=int),
    click.option("--log-every", type=POSITIVE),
    click.option("--checkpoint-every", type=click.IntRange(min=0), help="Steps; 0: per epoch."),
]  # fmt: skip


def loop_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The training-loop options (all default to None: 'not given')."""
    for option in reversed(_LOOP_OPTIONS):
        f = option(f)
    return f


def run_options(default_out: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--out, --resume, --progress and the hidden --max-steps."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--progress/--no-progress", default=True, show_default=True)(f)
        f = click.option("--max-steps", type=POSITIVE, hidden=True)(f)
        f = click.option("--resume", is_flag=True, help="Continue the run in --out exactly.")(f)
        f = click.option("--out", default=default_out, show_default=True, type=click.Path(),
                         help="Output folder.")(f)  # fmt: skip
        return f

    return wrap


def check_resume(given: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """On --resume only --epochs may change."""
    changed = sorted(set(given) - {"epochs"}) + list(extra)
    if changed:
        names = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise click.UsageError(
            f"--resume continues with the checkpoint's settings; only --epochs may change "
            f"(got {names})"
        )


def exit_if_interrupted(summary: dict[str, Any]) -> None:
    if summary.get("interrupted"):
        raise click.exceptions.Exit(130)  # the shell's code for Ctrl-C; checkpoint is saved


def read_inputs(inputs: tuple[str, ...], encoding: str) -> list[tuple[str, list[str]]]:
    """(name, lines) of each input file; '-' or no file: standard input."""
    if not inputs:
        inputs = ("-",)
    out = []
    for name in inputs:
        if name == "-":
            out.append(("<stdin>", _read_stdin(encoding).splitlines()))
        else:
            out.append((name, read_lines(name, encoding, allow_empty=True)))
    return out


def _read_stdin(encoding: str) -> str:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # already text (e.g. replaced in tests)
        return sys.stdin.read()
    data = buffer.read()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise RnnkitError(f"<stdin>: not valid {encoding} at byte offset {e.start} "
                          "(try --encoding latin-1)") from None  # fmt: skip
    except LookupError:
        raise RnnkitError(f"unknown encoding {encoding!r}") from None


@click.group(name="classify")
def group() -> None:
    """Sentence classification (many-to-one): embedding -> (bi)RNN/LSTM/GRU -> pooling."""


@group.command("train")
@click.argument("train", required=False, type=click.Path(dir_okay=False))
@click.option("--valid", type=click.Path(dir_okay=False),
              help="Validation TSV (default: hold out --valid-frac of TRAIN).")  # fmt: skip
@click.option("--valid-frac", type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option(
    "--valid-dedup/--no-valid-dedup",
    default=None,
    help="Hold out whole sentences only and drop their phrases from training (SST).",
)
@click.option("--valid-seed", type=int,
              help="Seed of the held-out split (default: --seed); fix it to train an "
                   "ensemble on one split.")  # fmt: skip
@click.option("--test", type=click.Path(dir_okay=False), help="Test TSV, scored at the end.")
@click.option("--pretrained", type=click.Path(dir_okay=False),
              help="word2vec text file initialising the embedding (sets --embed).")  # fmt: skip
@click.option("--pretrained-extend/--no-pretrained-extend", default=None,
              help="Add the --pretrained words that training lacks to the vocabulary: they "
                   "keep their vectors and are read instead of <unk>.")  # fmt: skip
@click.option(
    "--freeze-embed/--no-freeze-embed",
    default=None,
    help="Keep the --pretrained embedding fixed (no gradient, no update).",
)
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--cell", type=click.Choice(["rnn", "lstm", "gru"]))
@click.option("--embed", type=POSITIVE, help="Embedding size.")
@click.option("--hidden", type=POSITIVE, help="Hidden units per direction and layer.")
@click.option("--layers", type=POSITIVE)
@click.option("--bidirectional/--unidirectional", default=None)
@click.option("--pooling", type=click.Choice(["last", "mean", "max"]))
@click.option("--embed-dropout", type=PROB)
@click.option("--dropout", type=PROB, help="Between layers and on the pooled vector.")
@loop_options
@run_options("runs/classify")
def train_cmd(
    train: str | None, valid: str | None, test: str | None, pretrained: str | None,
    encoding: str, out: str, resume: bool, max_steps: int | None, progress: bool,
    **options: Any,
) -> None:  # fmt: skip
    """Train a classifier on TRAIN, a TSV file of sentence and label columns.

    TRAIN has a header naming 'sentence' and 'label' columns (GLUE's layout) or no header and
    the columns sentence<TAB>label. Sentences are split at whitespace. Prints per-epoch
    validation accuracy; OUT/best holds the weights of the best epoch.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if resume:
        check_resume(given, ("pretrained",) if pretrained else ())
        ck = load_checkpoint(Path(out) / "checkpoint", kind=KIND_CLASSIFIER)
        desc = ck.config.get("data") or {}
        train = train or desc.get("train")
        valid = valid or desc.get("valid")
        test = test or desc.get("test")
        encoding = desc.get("encoding", encoding)
        lower = bool(ck.config.get("train", {}).get("lower", False))
        cfg = None
    else:
        if not train:
            raise click.UsageError("missing the TRAIN file")
        cfg = ClassifyTrainConfig(**given)
        lower = cfg.lower
    if not train:
        raise RnnkitError(f"{out}: the checkpoint does not name its training file; give TRAIN")
    data = {"train": train, "valid": valid, "test": test, "pretrained": pretrained,
            "encoding": encoding}  # fmt: skip
    summary = train_classifier(
        cfg,
        read_labelled_tsv(train, lower, encoding),
        out,
        valid=read_labelled_tsv(valid, lower, encoding) if valid else None,
        test=read_labelled_tsv(test, lower, encoding) if test else None,
        pretrained=pretrained,
        resume=resume,
        epochs=given.get("epochs"),
        progress=progress,
        max_steps=max_steps,
        echo=click.echo,
        data=data,
    )
    exit_if_interrupted(summary)


ENSEMBLE_OPTION = click.option(
    "--ensemble", multiple=True, type=click.Path(), metavar="CKPT",
    help="Another trained classifier (repeatable): average the class probabilities of all "
         "the models (an ensemble).",
)  # fmt: skip


@group.command("predict")
@click.argument("checkpoint", type=click.Path())
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "text", "tsv"]),
    default="auto",
    show_default=True,
    help="text: a sentence per line; tsv: a header naming a 'sentence' column.",
)
@click.option("--proba", is_flag=True, help="Also print every class's probability.")
@ENSEMBLE_OPTION
@click.option("--encoding", default="utf-8", show_default=True)
def predict_cmd(checkpoint: str, inputs: tuple[str, ...], fmt: str, proba: bool,
                ensemble: tuple[str, ...], encoding: str) -> None:  # fmt: skip
    """Print the predicted label of each sentence of INPUTS (files; '-' or none: stdin).

    One output line per sentence; an empty input sentence gives an empty output line, so that
    outputs stay aligned with inputs. CHECKPOINT: a run's --out folder (its best weights).
    """
    clfs = [load_classifier(c) for c in (checkpoint, *ensemble)]
    clf = clfs[0]
    for name, lines in read_inputs(inputs, encoding):
        if not lines:
            continue
        sentences = read_sentences(lines, name, fmt, clf.cfg.lower)
        keep = [i for i, s in enumerate(sentences) if s]
        probs = np.zeros((len(sentences), len(clf.labels)))
        if keep:
            probs[keep] = ensemble_probabilities(clfs, [sentences[i] for i in keep])
        kept = set(keep)
        for i, p in enumerate(probs):
            if i not in kept:
                click.echo("")
                continue
            line = clf.labels[int(p.argmax())]
            if proba:
                line += "\t" + " ".join(
                    f"{lab}:{v:.4f}" for lab, v in zip(clf.labels, p, strict=True)
                )
            click.echo(line)


@group.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@ENSEMBLE_OPTION
def eval_cmd(checkpoint: str, data: str, encoding: str, as_json: bool,
             ensemble: tuple[str, ...]) -> None:  # fmt: skip
    """Accuracy of a trained classifier on DATA, a labelled TSV file (as for training).

    A label of DATA that the classifier never saw in training is an error naming its line.
    """
    clfs = [load_classifier(c) for c in (checkpoint, *ensemble)]
    res = evaluate_classifier(clfs, read_labelled_tsv(data, clfs[0].cfg.lower, encoding))
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo(f"{data}: accuracy {100 * res['accuracy']:.2f}% ({res['sentences']} sentences), "
               f"loss {res['loss']:.4f}")  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    sys.exit(group())
