"""`rnnkit embed`: train word vectors (word2vec, GloVe) and query, evaluate and draw them.

Vector files are word2vec's text or binary format (detected when read), the format gensim's
``KeyedVectors.load_word2vec_format`` reads.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import click

from rnnkit.cli.options import INTERVAL, Terminated, exit_if_interrupted, sigterm_raises
from rnnkit.io import RnnkitError
from rnnkit.train.checkpoint import DEFAULT_INTERVAL

if TYPE_CHECKING:
    from rnnkit.embeddings.vectors import KeyedVectors


@click.group(name="embed")
def group() -> None:
    """Word embeddings: word2vec (skip-gram, CBOW), GloVe, similarity, analogies, t-SNE."""


@group.command()
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option("--method", type=click.Choice(["skipgram", "cbow", "glove"]), default="skipgram",
              show_default=True)  # fmt: skip
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="vector file")
@click.option("--binary", is_flag=True, help="write word2vec's binary format (default: text)")
@click.option("--dim", type=int, default=100, show_default=True, help="vector size")
@click.option("--window", type=int, default=None, help="context size [5; glove 10]")
@click.option("--negative", type=int, default=None, help="noise words per example [5]")
@click.option("--hs", is_flag=True, default=None, help="hierarchical softmax (word2vec)")
@click.option("--min-count", type=int, default=5, show_default=True)
@click.option("--epochs", type=int, default=None, help="passes [5; glove 25]")
@click.option("--sample", type=float, default=None, help="subsampling threshold [1e-3]")
@click.option("--alpha", type=float, default=None, help="learning rate [0.025; glove 0.05]")
@click.option("--x-max", type=float, default=None, help="GloVe weighting cut-off [100]")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--lowercase", is_flag=True, help="lower-case the corpus")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--checkpoint-every", type=INTERVAL, default=DEFAULT_INTERVAL, show_default=True,
              help="save the run in OUT.train/ every N blocks of chunks (word2vec) or epochs "
                   "(GloVe), or every so long (30s, 10m, 1h); 0: never")  # fmt: skip
@click.option(
    "--resume",
    is_flag=True,
    help="continue the run of --out from OUT.train/ (its settings; CORPUS again)",
)
@click.option("--max-steps", type=click.IntRange(min=1), hidden=True)
def train(corpus: str, method: str, out: str, binary: bool, quiet: bool, lowercase: bool,
          checkpoint_every: int | str, resume: bool, max_steps: int | None,
          **settings: object) -> None:  # fmt: skip
    """Train vectors on CORPUS (one sentence per line, gzip accepted) and write them to --out.

    While training, OUT.train/ holds a checkpoint (see --checkpoint-every): after a kill,
    --resume continues exactly; Ctrl-C or SIGTERM saves it and stops. It is removed once the
    vectors are written.
    """
    from rnnkit.recipes.embed import train_embeddings

    try:
        with sigterm_raises():  # the training's own handler saves first
            kv, stats, summary = train_embeddings(
                corpus, method, out, binary=binary, lowercase=lowercase, resume=resume,
                checkpoint_every=checkpoint_every, progress=not quiet, max_steps=max_steps,
                echo=click.echo, **settings,
            )  # fmt: skip
    except Terminated:
        click.echo("rnnkit: stopped by SIGTERM", err=True)
        raise click.exceptions.Exit(128 + signal.SIGTERM) from None
    exit_if_interrupted(summary)
    if kv is None:
        return
    method = summary["method"]  # on resume: the checkpoint's
    unit = "co-occurrence entries" if method == "glove" else "words"
    click.echo(
        f"{method}: {len(kv)} words x {kv.dim} dims; {stats.words:,} {unit} in "
        f"{stats.seconds:.1f} s ({stats.words_per_s:,.0f} {unit}/s); wrote {out}"
    )


def _load(path: str) -> KeyedVectors:
    from rnnkit.embeddings.vectors import KeyedVectors

    return KeyedVectors.load_word2vec_format(path)


@group.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("word")
@click.option("-n", "topn", type=int, default=10, show_default=True)
@click.option("--restrict-vocab", type=int, default=None, help="search the N most frequent only")
def similar(file: str, word: str, topn: int, restrict_vocab: int | None) -> None:
    """The nearest neighbours of WORD by cosine similarity."""
    kv = _load(file)
    for w, s in kv.most_similar(word, topn=topn, restrict_vocab=restrict_vocab):
        click.echo(f"{w}\t{s:.4f}")


@group.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("a")
@click.argument("b")
@click.argument("c")
@click.option("-n", "topn", type=int, default=5, show_default=True)
@click.option("--method", type=click.Choice(["add", "mul"]), default="add", show_default=True,
              help="3CosAdd or 3CosMul")  # fmt: skip
def analogy(file: str, a: str, b: str, c: str, topn: int, method: str) -> None:
    """A is to B as C is to ? (answers ranked, A, B and C excluded)."""
    kv = _load(file)
    click.echo(f"{a} : {b} :: {c} : ?")
    for w, s in kv.analogy(a, b, c, topn=topn, method=method):
        click.echo(f"{w}\t{s:.4f}")


@group.command(name="eval")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--eval-dir", type=click.Path(file_okay=False), default=None,
              help="folder with wordsim353.tsv, simlex999.txt, questions-words.txt")  # fmt: skip
@click.option("--wordsim", type=click.Path(dir_okay=False), default=None)
@click.option("--simlex", type=click.Path(dir_okay=False), default=None)
@click.option("--analogies", type=click.Path(dir_okay=False), default=None)
@click.option("--restrict-vocab", type=int, default=300000, show_default=True,
              help="only the N most frequent words count (gensim's convention)")  # fmt: skip
@click.option("--method", type=click.Choice(["add", "mul"]), default="add", show_default=True)
def eval_cmd(file: str, eval_dir: str | None, wordsim: str | None, simlex: str | None,
             analogies: str | None, restrict_vocab: int, method: str) -> None:  # fmt: skip
    """Spearman on WordSim-353 / SimLex-999 and accuracy on the Google analogies.

    Files: --wordsim/--simlex/--analogies if given, else those in --eval-dir, else in
    $RNNKIT_WORD_EVAL, else the copies bundled with gensim when it is installed.
    """
    from rnnkit.embeddings.pipeline import evaluate_vectors, find_eval_files

    files = find_eval_files(eval_dir, wordsim=wordsim, simlex=simlex, analogies=analogies)
    report = evaluate_vectors(_load(file), files, restrict_vocab, method)
    click.echo(report.format())


@group.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file")
@click.option("--words", multiple=True, help="words to draw (repeat or separate by commas)")
@click.option("--top", type=int, default=200, show_default=True, help="else the N most frequent")
@click.option("--seed", type=int, default=0, show_default=True)
def tsne(file: str, out: str, words: tuple[str, ...], top: int, seed: int) -> None:
    """Draw a t-SNE map of word vectors to a PNG (needs scikit-learn)."""
    from rnnkit.embeddings.tsne import plot_tsne

    chosen = [w for item in words for w in item.replace(",", " ").split()]
    if words and not chosen:
        raise RnnkitError("--words: no word given")
    drawn, _ = plot_tsne(_load(file), out, words=chosen or None, top=top, seed=seed)
    click.echo(f"wrote {out} ({len(drawn)} words)")
