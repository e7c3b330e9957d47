"""``rnnkit classify``: train, apply and evaluate sentence classifiers (many-to-one)."""

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
    removed_test_option,
    run_options,
    run_train,
)
from rnnkit.recipes.task import (
    ClassifyData,
    ensemble_probabilities,
    evaluate_classifier,
    load_classifier,
    run_classifier,
)
from rnnkit.text.readers import read_labelled_tsv, read_sentences


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
@removed_test_option("classify eval RUN FILE")
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
@config_option
def train_cmd(
    train: str | None, out: str, resume: bool, max_steps: int | None, progress: bool,
    **options: Any,
) -> None:  # fmt: skip
    """Train a classifier on TRAIN, a TSV file of sentence and label columns.

    TRAIN has a header naming 'sentence' and 'label' columns (GLUE's layout) or no header and
    the columns sentence<TAB>label. Sentences are split at whitespace. Prints per-epoch
    validation accuracy; OUT/best holds the weights of the best epoch.
    """
    if not resume and not train:
        raise click.UsageError("missing the TRAIN file")
    run_train(run_classifier, {**options, "train": train}, ClassifyData, out, resume, max_steps,
              progress, ("pretrained",) if options.get("pretrained") else ())  # fmt: skip


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
    record_eval(checkpoint, data, res, ensemble)
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo(f"{data}: accuracy {100 * res['accuracy']:.2f}% ({res['sentences']} sentences), "
               f"loss {res['loss']:.4f}")  # fmt: skip


if __name__ == "__main__":  # pragma: no cover
    sys.exit(group())
