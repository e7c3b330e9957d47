"""``rnnkit qa``: train, evaluate and ask question-answering models on bAbI-format stories."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from rnnkit.cli.options import (
    POSITIVE,
    PROB,
    config_option,
    loop_options,
    record_eval,
    removed_test_option,
    run_options,
    run_train,
)
from rnnkit.models.qa import draw_attention
from rnnkit.recipes.qa import (
    KIND_QA,
    QAData,
    answer_question,
    evaluate_qa,
    format_evaluation,
    load_qa,
    read_babi_files,
    run_qa,
)
from rnnkit.text.babi import babi_files, read_story, task_number
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.loop import run_checkpoint

TASK_HELP = "bAbI task number 1-20 or 'all' (picks the files of a directory argument)."


def _check_task(inputs: tuple[str, ...], task: str | None) -> None:
    if any(Path(p).is_dir() for p in inputs) and task is None:
        raise click.UsageError("--task: give a task number (1-20) or 'all' to pick the files "
                               "of a directory")  # fmt: skip


def _inputs(inputs: tuple[str, ...], task: str | None, split: str) -> list[Path]:
    _check_task(inputs, task)
    return babi_files(inputs, task or "all", split)


@click.group(name="qa")
def group() -> None:
    """Question answering on bAbI stories: an LSTM reader and an attentive reader."""


@group.command("train")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--task", help=TASK_HELP)
@removed_test_option("qa eval RUN FILES", multiple=True)
@click.option("--no-test", is_flag=True, hidden=True, expose_value=False,
              help="Kept for old command lines: training never scores test files now.")  # fmt: skip
@click.option("--model", type=click.Choice(["attentive", "lstm"]))
@click.option("--answer", type=click.Choice(["auto", "class", "sequence"]),
              help="Answer head; auto: sequence when some answer has several words.")  # fmt: skip
@click.option("--embed", type=POSITIVE, help="Word embedding size.")
@click.option("--hidden", type=POSITIVE,
              help="LSTM reader: its size; attentive: encoder size per direction.")  # fmt: skip
@click.option("--encoder", type=click.Choice(["gru", "lstm"]), help="Attentive: word encoder.")
@click.option("--hops", type=POSITIVE, help="Attentive: attention hops.")
@click.option("--attention", type=click.Choice(["dot", "general", "additive"]))
@click.option("--memory", type=POSITIVE, help="Most recent statements read per story.")
@click.option("--temporal/--no-temporal", default=None, help="Attentive: recency encoding.")
@click.option(
    "--fusion/--no-fusion",
    default=None,
    help="Attentive: a biGRU over the sentence vectors (each sees its neighbours).",
)
@click.option("--previous/--no-previous", default=None,
              help="Attentive: add a linear map of the sentence before to each sentence "
                   "vector (what 'then they ...' refers to).")  # fmt: skip
@click.option(
    "--hop-temporal/--no-hop-temporal",
    default=None,
    help="Attentive: a separate recency encoding for each hop.",
)
@click.option("--combine", type=POSITIVE, help="Attentive: output layer size.")
@click.option("--decoder-hidden", type=POSITIVE, help="Sequence answers: decoder size.")
@click.option("--dropout", type=PROB)
@click.option("--valid-frac", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Last fraction of each training file's stories, for validation.")  # fmt: skip
@loop_options
@run_options("runs/qa")
@config_option
def train_cmd(
    inputs: tuple[str, ...], out: str, resume: bool, max_steps: int | None, progress: bool,
    **options: Any,
) -> None:  # fmt: skip
    """Train on INPUTS: bAbI training files, or directories (with --task) holding
    qaN_*_train.txt files (e.g. ../shared/data/babi/en)."""
    if not resume:
        if not inputs:
            raise click.UsageError("missing INPUTS (bAbI training files or a directory)")
        _check_task(inputs, options.get("task"))
    run_train(run_qa, {**options, "inputs": list(inputs)}, QAData, out, resume, max_steps,
              progress, ("INPUTS",) if inputs else ())  # fmt: skip


@group.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--task", help=TASK_HELP + " Default for a directory: the tasks trained on.")
@click.option("--split", default="test", show_default=True, help="Directory files to read.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_cmd(checkpoint: str, inputs: tuple[str, ...], task: str | None, split: str,
             as_json: bool) -> None:  # fmt: skip
    """Accuracy per task of CHECKPOINT (a run folder) on INPUTS (bAbI files or directories),
    and how often the highest-attended sentence is a supporting fact (attentive reader)."""
    reader = load_qa(checkpoint)
    if task is None and any(Path(p).is_dir() for p in inputs):
        ck = load_checkpoint(run_checkpoint(checkpoint), kind=KIND_QA)
        trained = {task_number(p) for p in (ck.config.get("data") or {}).get("train") or []}
        task = str(trained.pop()) if len(trained) == 1 and 0 not in trained else "all"
    files = _inputs(inputs, task, split)
    res = evaluate_qa(reader, read_babi_files(files))
    record_eval(checkpoint, files, res)
    if as_json:
        click.echo(json.dumps(res))
        return
    for line in format_evaluation(res):
        click.echo(line)


@group.command("ask")
@click.argument("checkpoint", type=click.Path())
@click.option("--story", required=True, type=click.Path(dir_okay=False),
              help="A statement per line (bAbI numbering allowed; questions skipped).")  # fmt: skip
@click.option("--question", required=True, help='e.g. "Where is Mary?"')
@click.option("--png", type=click.Path(dir_okay=False), help="Draw the attention as a PNG.")
def ask_cmd(checkpoint: str, story: str, question: str, png: str | None) -> None:
    """Answer QUESTION about the story in --story; print the answer and the attention over
    the story's sentences (one column per hop)."""
    reader = load_qa(checkpoint)
    res = answer_question(reader, read_story(story), question)
    if res["unknown_words"]:
        click.echo(f"rnnkit: note: words unseen in training, read as <unk>: "
                   f"{' '.join(res['unknown_words'])}", err=True)  # fmt: skip
    p = res["probability"]
    click.echo(f"answer: {','.join(res['answer'])}" + (f" (p = {p:.3f})" if p is not None else ""))
    att = res["attention"]
    if att is None:
        return
    click.echo("attention (" + ", ".join(f"hop {k + 1}" for k in range(len(att))) + "):")
    for i, s in enumerate(res["sentences"]):
        click.echo("  " + " ".join(f"{a:.2f}" for a in att[:, i]) + "  " + " ".join(s))
    if png:
        draw_attention(png, res["sentences"], att, res["question"], res["answer"])
        click.echo(f"attention picture written to {png}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(group())
