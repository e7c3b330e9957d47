"""``rnnkit caption``: prepare captioning data, train captioners, score them, describe images.

Registered by :mod:`rnnkit.cli` as the group ``group``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click
import numpy as np

from rnnkit.cli.options import POSITIVE, PROB, config_option, loop_options, run_options, run_train
from rnnkit.io import RnnkitError
from rnnkit.recipes.caption import (
    CaptionData,
    describe_image,
    evaluate_split,
    load_captioner,
    prepare_files,
    prepare_scenes,
    run_caption,
)
from rnnkit.recipes.music import record_evaluation, scoring_history
from rnnkit.text.captions import load_image, load_split
from rnnkit.train.scores import record_score


@click.group(name="caption")
def group() -> None:
    """Image captioning: a conv encoder, an LSTM decoder with or without soft attention."""


@group.command("prepare")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--train", "n_train", type=click.IntRange(min=1), default=8000, show_default=True,
              help="Scenes of training digits.")  # fmt: skip
@click.option("--valid", "n_valid", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--test", "n_test", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--canvas", type=click.IntRange(min=1), default=40, show_default=True,
              help="Scene side in pixels.")  # fmt: skip
@click.option("--captions", type=click.Path(dir_okay=False),
              help="Instead of scenes: a COCO captions JSON or a Flickr8k TSV ...")  # fmt: skip
@click.option("--images", type=click.Path(file_okay=False), help="... and its image folder.")
@click.option("--size", type=click.IntRange(min=8), default=64, show_default=True,
              help="With --captions: images resized to SIZE x SIZE.")  # fmt: skip
@click.option("--grey", is_flag=True, help="With --captions: one grey channel, not RGB.")
def prepare_cmd(
    out: str, n_train: int, n_valid: int, n_test: int, seed: int, canvas: int,
    captions: str | None, images: str | None, size: int, grey: bool,
) -> None:  # fmt: skip
    """Write a data folder: scenes of scikit-learn's handwritten digits with generated
    captions (digit images split 60/20/20 before the scenes are drawn), or, with --captions
    and --images, your own captioned pictures (split by a hash of the file name)."""
    if bool(captions) != bool(images):
        raise click.UsageError("--captions and --images go together")
    if captions:
        sizes = prepare_files(out, captions, images or "", size, 1 if grey else 3)
    else:
        sizes = prepare_scenes(out, n_train, n_valid, n_test, seed, canvas)
    click.echo(f"{out}: " + ", ".join(f"{n:,} {s} images" for s, n in sizes.items()))


@group.command("train")
@click.option("--data", type=click.Path(file_okay=False), help="A folder from caption prepare.")
@click.option("--attention", type=click.Choice(["none", "soft"]),
              help="none: show and tell; soft: show, attend and tell (default).")  # fmt: skip
@click.option("--channels", help="Conv blocks' widths, e.g. 16,32,64 (each halves the grid).")
@click.option("--batch-norm/--no-batch-norm", default=None,
              help="Batch normalisation after each convolution (off).")  # fmt: skip
@click.option("--embed", type=POSITIVE, help="Word embedding size.")
@click.option("--hidden", type=POSITIVE, help="LSTM units.")
@click.option("--attn-size", type=POSITIVE, help="Hidden size of the attention score.")
@click.option("--penalty", type=click.FloatRange(min=0),
              help="Doubly stochastic attention penalty lambda (1).")  # fmt: skip
@click.option("--dropout", type=PROB)
@click.option("--max-len", type=POSITIVE, help="Longest caption decoded (30).")
@click.option("--valid-max", type=POSITIVE, help="Validate on the first N images only.")
@loop_options
@run_options("runs/caption")
@config_option
def train_cmd(out: str, resume: bool, max_steps: int | None, progress: bool,
              **options: Any) -> None:  # fmt: skip
    """Train a captioner on --data's train split; after each epoch the validation loss and
    greedy BLEU-4 (OUT/best keeps the best epoch). The test split is not read: score it once
    with `caption eval --split test`."""
    if not resume and not options.get("data"):
        raise click.UsageError("--data is required")
    run_train(run_caption, options, CaptionData, out, resume, max_steps, progress)


@group.command("eval")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["valid", "test"]), default="valid",
              show_default=True)  # fmt: skip
@click.option("--data", type=click.Path(exists=True, file_okay=False),
              help="Data folder (default: the one the run was trained on).")  # fmt: skip
@click.option("--beam", "beam_size", type=POSITIVE, default=3, show_default=True)
@click.option("--alpha", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Length normalisation: rank by log P / T^alpha.")  # fmt: skip
@click.option("--rescore", is_flag=True, help="Score the test split again (counted).")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def eval_cmd(run: str, split: str, data: str | None, beam_size: int, alpha: float,
             rescore: bool, as_json: bool) -> None:  # fmt: skip
    """BLEU-1..4 and CIDEr-D (greedy and beam, all references) and, for attending models on scenes,
    the attention mass inside the named digit's box; kept with the commit and this command
    in RUN/eval-SPLIT.json and RUN/scores.jsonl. The test split is scored once (again only
    with --rescore, which is counted)."""
    cr = load_captioner(run)
    scoring_history(run, split, rescore)  # a second test scoring stops here
    folder = data or _trained_on(run)
    figs = evaluate_split(cr, load_split(folder, split), beam_size, alpha)
    words = ["rnnkit", "caption", "eval", run, "--split", split, "--beam", str(beam_size),
             "--alpha", str(alpha)] + (["--data", data] if data else []) + (
             ["--rescore"] if rescore else [])  # fmt: skip
    record = record_evaluation(run, split, figs, shlex.join(words), rescore=rescore)
    # and the record every eval command keeps (RESULTS.md's protocol): RUN/scores.jsonl
    record_score(run, [Path(folder) / f"{split}.npz", Path(folder) / f"{split}.jsonl"], figs,
                 command=words, what=split)  # fmt: skip
    if as_json:
        click.echo(json.dumps(record))
        return
    where = f"commit {str(record['commit'])[:12]}{' (modified)' if record['dirty'] else ''}"
    for method in ("greedy", "beam"):
        f = figs[method]
        name = method if method == "greedy" else f"beam {beam_size}"
        line = f"{split} {name}: " + " ".join(f"BLEU-{n} {f[f'bleu{n}']:.2f}" for n in range(1, 5))
        line += f" CIDEr-D {f['cider_d']:.3f}"
        if "grounding" in f:
            line += "; attention inside the named digit: " + ", ".join(
                f"{k} {v['share']:.3f} (chance {v['chance']:.3f}, {v['words']} words)"
                for k, v in f["grounding"].items())  # fmt: skip
        click.echo(line)
    click.echo(f"{figs['images']} images; scored {record['times_scored']} time(s), {where}")


def _trained_on(run: str) -> str:
    from rnnkit.train.checkpoint import load_checkpoint
    from rnnkit.train.loop import run_checkpoint

    folder = load_checkpoint(run_checkpoint(run), kind="caption").config.get("data", {})
    if not folder.get("data"):
        raise RnnkitError(f"{run}: does not say which data it was trained on; pass --data")
    return str(folder["data"])


@group.command("describe")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--png", type=click.Path(dir_okay=False),
              help="Draw, for each word, where the model looked.")  # fmt: skip
@click.option("--beam", "beam_size", type=POSITIVE, default=3, show_default=True)
@click.option("--alpha", type=click.FloatRange(min=0), default=1.0, show_default=True)
def describe_cmd(run: str, image: str, png: str | None, beam_size: int, alpha: float) -> None:
    """Caption IMAGE (a PNG/JPEG file) and print the caption; with --png, a picture of the
    attention of each word's step over the image."""
    cr = load_captioner(run)
    c = cr.model.config
    if png and cr.model.attention is None:
        raise RnnkitError(f"{run}: this captioner has no attention (trained with --attention "
                          "none), so there is nothing to draw")  # fmt: skip
    pixels = load_image(image, c.image_size, c.in_channels)
    text, _ = describe_image(cr, pixels, png, beam_size, alpha)
    click.echo(text)
    if png:
        click.echo(f"attention written to {png}", err=True)


@group.command("export-image")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.argument("index", type=click.IntRange(min=0))
@click.argument("png", type=click.Path(dir_okay=False))
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="valid",
              show_default=True)  # fmt: skip
def export_image_cmd(data: str, index: int, png: str, split: str) -> None:
    """Write image INDEX of a prepared split as a PNG file (and print its references)."""
    from PIL import Image

    from rnnkit.io import atomic_write

    s = load_split(data, split)
    if index >= len(s):
        raise RnnkitError(f"INDEX: {data} has {len(s)} {split} images")
    img = s.images[index]
    arr = img[0] if img.shape[0] == 1 else np.ascontiguousarray(img.transpose(1, 2, 0))
    with atomic_write(png, "wb") as f:
        Image.fromarray(arr).save(f, format="PNG")
    for ref in s.captions[index]:
        click.echo(ref)
