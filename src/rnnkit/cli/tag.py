"""``rnnkit tag``: train, apply and evaluate sequence taggers (many-to-many, aligned)."""

from __future__ import annotations

import json
from typing import Any

import click

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
    TagData,
    evaluate_tagger,
    load_tagger,
    run_tagger,
    tag_sentences,
)
from rnnkit.text.readers import CONLLU_TAGS, TaggedCorpus, read_tagged

FORMATS = ["auto", "conll", "conllu"]


def _read(path: str, fmt: str, tag_column: str | None, encoding: str) -> TaggedCorpus:
    return read_tagged(path, fmt, tag_column, need_tags=True, encoding=encoding)


@click.group(name="tag")
def group() -> None:
    """Sequence tagging (POS, NER, chunking): word + character BiLSTM features -> deep BiLSTM."""


@group.command("train")
@click.argument("train", required=False, type=click.Path(dir_okay=False))
@click.option("--valid", type=click.Path(dir_okay=False), help="Validation file (per epoch).")
@removed_test_option("tag eval RUN FILE")
@click.option(
    "--format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="conll: whitespace columns; conllu: CoNLL-U; auto: by name and content.",
)
@click.option(
    "--tag-column",
    default=None,
    help="CoNLL: 0-based column of the tag (default: last); CoNLL-U: upos or xpos.",
)
@click.option(
    "--pretrained",
    type=click.Path(dir_okay=False),
    help="word2vec text file initialising the word embedding (sets --embed).",
)
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--cell", type=click.Choice(["rnn", "lstm", "gru"]), help="Word-level stack.")
@click.option("--embed", type=POSITIVE, help="Word embedding size.")
@click.option("--hidden", type=POSITIVE, help="Hidden units per direction and layer.")
@click.option("--layers", type=POSITIVE)
@click.option("--chars/--no-chars", default=None, help="Character BiLSTM word features.")
@click.option("--char-embed", type=POSITIVE)
@click.option("--char-hidden", type=POSITIVE, help="Per direction of the character BiLSTM.")
@click.option("--dropout", type=PROB, help="On the stack's input, between layers, on its output.")
@click.option("--zero-digits/--no-zero-digits", default=None, help="Digits -> 0 for word lookup.")
@click.option(
    "--iob2/--no-iob2",
    default=None,
    help="Rewrite IOB1 chunk tags as IOB2 (default on; spans unchanged).",
)
@loop_options
@run_options("runs/tag")
@config_option
def train_cmd(
    train: str | None, out: str, resume: bool, max_steps: int | None, progress: bool,
    **options: Any,
) -> None:  # fmt: skip
    """Train a tagger on TRAIN: CoNLL columns (word first, tag last) or CoNLL-U (gzip ok).

    Chunk tags (O, B-X, I-X) are scored by span F1 with conlleval semantics, others by token
    accuracy; OUT/best holds the weights of the best validation epoch.
    """
    if not resume and not train:
        raise click.UsageError("missing the TRAIN file")
    run_train(run_tagger, {**options, "train": train}, TagData, out, resume, max_steps, progress,
              ("pretrained",) if options.get("pretrained") else ())  # fmt: skip


def _format_output(
    corpus: TaggedCorpus, pred: list[list[str]], lines: list[str], tag_column: str | None
) -> str:
    """The input with the predictions written in (see ``predict``'s help)."""
    flat = iter(t for s in pred for t in s)
    out: list[str] = []
    if corpus.fmt == "text":
        for words, tags in zip(corpus.words, pred, strict=True):
            out += [f"{w}\t{t}" for w, t in zip(words, tags, strict=True)] + [""]
    elif corpus.fmt == "conllu":
        col = CONLLU_TAGS[tag_column or "upos"]
        for line in lines:
            cols = line.split("\t")
            if line.strip() and not line.startswith("#") and cols[0].isdigit():
                cols[col] = next(flat)  # a word line: the tagger saw exactly these, in order
            out.append("\t".join(cols))
    else:
        for line in lines:
            if not line.strip():
                out.append("")
            elif line.split()[0] == "-DOCSTART-":
                out.append(f"{line.rstrip()} O")  # conlleval wants equal column counts
            else:
                out.append(f"{line.rstrip()} {next(flat)}")
    return "\n".join(out) + ("\n" if out else "")


@group.command("predict")
@click.argument("checkpoint", type=click.Path())
@click.argument("inputs", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*FORMATS, "text"]),
    default=None,
    help="Input format; default: auto for files, text for standard input.",
)
@click.option(
    "--tag-column",
    type=click.Choice(sorted(CONLLU_TAGS)),
    default=None,
    help="CoNLL-U output: the column the predictions fill (default upos).",
)
@click.option("--encoding", default="utf-8", show_default=True)
def predict_cmd(checkpoint: str, inputs: tuple[str, ...], fmt: str | None,
                tag_column: str | None, encoding: str) -> None:  # fmt: skip
    """Tag INPUTS (files; '-' or none: standard input) and print the result.

    text input (a sentence per line, tokens separated by spaces): 'word<TAB>tag' lines, a
    blank line after each sentence (an empty input line gives just the blank line). CoNLL
    input: every line kept, the predicted tag appended to each token line (conlleval's input
    layout when the file has gold tags; -DOCSTART- lines get 'O'). CoNLL-U input: the whole
    file (comments, multiword tokens) with the UPOS (or --tag-column) column of each word
    replaced by the prediction.
    """
    tg = load_tagger(checkpoint)
    for name, lines in read_inputs(inputs, encoding):
        if not lines:
            continue
        f = fmt or ("text" if name == "<stdin>" else "auto")
        corpus = read_tagged(name, f, need_tags=False, lines=lines)
        pred = tag_sentences(tg, corpus.words)
        click.echo(_format_output(corpus, pred, lines, tag_column), nl=False)


@group.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option("--tag-column", default=None, help="As for training.")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_cmd(checkpoint: str, data: str, fmt: str, tag_column: str | None, encoding: str,
             as_json: bool) -> None:  # fmt: skip
    """Token accuracy (and span precision / recall / F1 for chunk tags) on DATA.

    Gold tags the tagger never saw in training count as errors and are listed.
    """
    tg = load_tagger(checkpoint)
    res = evaluate_tagger(tg, _read(data, fmt, tag_column, encoding))
    record_eval(checkpoint, data, res)
    if as_json:
        click.echo(json.dumps(res))
        return
    line = f"{data}: accuracy {100 * res['accuracy']:.2f}% ({res['tokens']} tokens)"
    if "f1" in res:
        line += (f", span precision {100 * res['precision']:.2f}, recall "
                 f"{100 * res['recall']:.2f}, F1 {100 * res['f1']:.2f}")  # fmt: skip
    click.echo(line)
    if "per_type" in res:
        click.echo("  " + ", ".join(f"{t} {100 * v:.2f}" for t, v in res["per_type"].items()))
    if "unknown_tags" in res:
        shown = ", ".join(f"{t} ({n})" for t, n in sorted(res["unknown_tags"].items()))
        click.echo(f"warning: gold tags never seen in training, counted as errors: {shown}",
                   err=True)  # fmt: skip
