"""Training, scoring and explaining image captioners: the work behind ``rnnkit caption``.

- :func:`prepare_scenes` / :func:`prepare_files`: a prepared data folder (train, valid,
  test; :mod:`rnnkit.text.captions`) from the digit scenes of :mod:`rnnkit.text.scenes` or
  from a COCO/Flickr8k caption file and its image folder.
- :func:`train_caption` (:func:`run_caption` with flat settings): the shared loop of
  :mod:`rnnkit.train.loop` over the training images, each epoch pairing every image with one
  of its reference captions drawn at random; after each epoch the validation loss and the
  greedy BLEU-4 of the validation images (all their references), which selects ``OUT/best``.
  Training never reads the test split.
- :func:`evaluate_split`: BLEU-1..4 and CIDEr-D (:mod:`rnnkit.text.cider`) of greedy and beam
  captions against all references, and
  for attending models the grounding figure: the share of the attention mass that falls
  inside the box of the digit being named, per word type. ``rnnkit caption eval --split
  test`` records it once, with the commit (``RUN/eval-test.json``).
- :func:`describe_image`: a caption and, per word, where the model looked (a PNG).

Output folder layout: that of every task (``OUT/checkpoint``, ``OUT/best``,
``OUT/config.toml``, ``OUT/metrics.jsonl``, ``OUT/metrics.csv``, ``OUT/loss.png``,
``OUT/summary.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError, atomic_write
from rnnkit.models.caption import CaptionConfig, Captioner
from rnnkit.models.generate import teacher_forcing
from rnnkit.text.bleu import corpus_bleu
from rnnkit.text.captions import CaptionSet, from_caption_file, load_split, save_split
from rnnkit.text.cider import cider_d
from rnnkit.text.scenes import digit_scenes
from rnnkit.text.vocab import PAD, UNK, Vocab, build_word_vocab
from rnnkit.train.callbacks import Callback
from rnnkit.train.loop import LoopConfig, Task, fit, load_run, score_best, start_run
from rnnkit.train.runconfig import check_resume, check_settings, resume_inputs, split_settings

Array = np.ndarray
KIND = "caption"
BOS, EOS = "<s>", "</s>"
SPECIALS = (PAD, UNK, BOS, EOS)
DIGITS = tuple(str(d) for d in range(10))
SIZE_WORDS = ("large", "small")

__all__ = [
    "KIND",
    "CaptionData",
    "CaptionRun",
    "CaptionTrainConfig",
    "bleu_n",
    "describe_image",
    "evaluate_split",
    "grounding",
    "load_captioner",
    "prepare_files",
    "prepare_scenes",
    "run_caption",
    "train_caption",
]


# --- data ----------------------------------------------------------------------------------------


def prepare_scenes(out: str | Path, train: int = 8000, valid: int = 500, test: int = 1000,
                   seed: int = 0, canvas: int = 40) -> dict[str, int]:  # fmt: skip
    """Write the digit scenes (:mod:`rnnkit.text.scenes`) as a prepared folder."""
    sizes = {"train": train, "valid": valid, "test": test}
    sets = digit_scenes(sizes, seed=seed, canvas=canvas)
    for split, data in sets.items():
        save_split(out, split, data)
    info = {"source": "digit scenes (sklearn.datasets.load_digits)", "seed": seed,
            "canvas": canvas, "sizes": sizes}  # fmt: skip
    with atomic_write(Path(out) / "info.json") as f:
        json.dump(info, f, indent=1)
    return sizes


def prepare_files(out: str | Path, captions: str | Path, images: str | Path, size: int = 64,
                  channels: int = 3, encoding: str = "utf-8") -> dict[str, int]:  # fmt: skip
    """Write a prepared folder from a COCO JSON / Flickr8k TSV and its image folder."""
    sets = from_caption_file(captions, images, size, channels, encoding=encoding)
    for split, data in sets.items():
        save_split(out, split, data)
    sizes = {split: len(data) for split, data in sets.items()}
    info = {"source": str(captions), "images": str(images), "size": size, "sizes": sizes}
    with atomic_write(Path(out) / "info.json") as f:
        json.dump(info, f, indent=1)
    return sizes


# --- configuration ------------------------------------------------------------------------------


@dataclass
class CaptionTrainConfig(LoopConfig):
    """Captioning hyperparameters (see :class:`rnnkit.models.caption.CaptionConfig`) + the loop."""

    attention: str = "soft"  # none (show and tell) | soft (show, attend and tell)
    channels: str = "16,32,64"  # conv blocks (conv 3x3 -> ReLU -> max-pool 2) and their widths
    batch_norm: bool = False  # batch normalisation after each convolution
    embed: int = 64
    hidden: int = 128
    attn_size: int = 64
    penalty: float = 1.0  # doubly stochastic attention penalty lambda (soft only)
    dropout: float = 0.0
    max_len: int = 30  # longest caption decoded
    valid_max: int | None = None  # validate on the first N validation images only (speed)
    batch_size: int = 50
    epochs: int = 10
    dtype: str = "float32"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.widths()

    def widths(self) -> list[int]:
        try:
            w = [int(c) for c in str(self.channels).split(",")]
        except ValueError:
            w = []
        if not w or min(w) < 1:
            raise RnnkitError(f"--channels: expected comma-separated positive integers, got "
                              f"{self.channels!r}")  # fmt: skip
        return w

    def model_config(self, vocab: int, images: Array) -> CaptionConfig:
        if images.shape[2] != images.shape[3]:
            raise RnnkitError(f"images: expected square images, got {images.shape[2:]}")
        try:
            return CaptionConfig(
                vocab=vocab, in_channels=int(images.shape[1]), image_size=int(images.shape[2]),
                channels=self.widths(), batch_norm=self.batch_norm, embed=self.embed,
                hidden=self.hidden,
                attention=self.attention, attn_size=self.attn_size, penalty=self.penalty,
                dropout=self.dropout, dtype=self.dtype,
            )  # fmt: skip
        except ValueError as e:
            raise RnnkitError(str(e)) from None


@dataclass
class CaptionData:
    """The data setting of ``rnnkit caption train``: a prepared folder."""

    data: str | None = None


@dataclass
class CaptionRun:
    """A trained captioner with its vocabulary and settings."""

    model: Captioner
    vocab: Vocab
    cfg: CaptionTrainConfig

    @property
    def bos(self) -> int:
        return self.vocab.stoi[BOS]

    @property
    def eos(self) -> int:
        return self.vocab.stoi[EOS]

    def ids(self, caption: str) -> list[int]:
        unk = self.vocab.stoi[UNK]
        return [self.vocab.stoi.get(w, unk) for w in caption.split()]

    def words(self, ids: Sequence[int]) -> list[str]:
        return [self.vocab.tokens[i] for i in ids]

    def caption(self, images: Array, method: str = "greedy", beam_size: int = 3,
                alpha: float = 1.0) -> list[list[int]]:  # fmt: skip
        return self.model.caption(images, self.bos, self.eos, method, beam_size, alpha,
                                  self.cfg.max_len)  # fmt: skip


# --- evaluation -----------------------------------------------------------------------------------


def bleu_n(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> dict[str, float]:
    """BLEU-1..4 of a corpus against every image's references (cumulative, as captioning
    papers report them: BLEU-n = BP exp((1/n) sum_{k<=n} log p_k), no smoothing), 0..100.

    ``refs[i]`` lists the references of hypothesis i; images with fewer references than
    others are padded with their first one (which changes neither the clipped counts nor,
    since the closest length is taken, the brevity penalty)."""
    k = max(len(r) for r in refs)
    streams = [[r[j] if j < len(r) else r[0] for r in refs] for j in range(k)]
    s = corpus_bleu(list(hyps), streams, smooth="none", tokenize="none")
    out = {}
    for n in range(1, 5):
        p = s.precisions[:n]
        out[f"bleu{n}"] = 0.0 if min(p) <= 0 else s.bp * math.exp(
            sum(math.log(v / 100) for v in p) / n) * 100  # fmt: skip
    return out


def grounding(run: CaptionRun, data: CaptionSet, captions: Sequence[Sequence[int]]
              ) -> dict[str, dict[str, float]]:  # fmt: skip
    """Where an attending captioner looks when it names a digit.

    For every generated word that names an object of the scene (a digit word whose digit is
    in the scene; a size word, "large"/"small", naming the digit word that follows it), the
    attention weights of the step that emitted it are laid over the grid of cells (each
    cell's weight spread evenly over its pixels), and the share of the mass that falls inside
    the object's box is kept. Returns, per word type (``digit``, ``size``), the mean share,
    the mean share a uniform attention would give (the box's area fraction, the chance level)
    and the number of words. Needs scenes (``data.objects``)."""
    m = run.model
    if m.attention is None:
        raise RnnkitError("grounding: this captioner has no attention")
    g = m.grid[0]
    side = m.config.image_size
    cell = side / g
    shares: dict[str, list[tuple[float, float]]] = {"digit": [], "size": []}
    alphas = []
    for i in range(0, len(captions), 100):
        alphas += m.attention_of(data.images[i : i + 100], captions[i : i + 100], run.bos,
                                 run.eos)  # fmt: skip
    for objs, cap, alpha in zip(data.objects, captions, alphas, strict=True):
        if not objs:
            raise RnnkitError("grounding: needs scenes with object boxes (caption prepare)")
        by_label = {o["label"]: o for o in objs}
        words = run.words(cap)
        for t, w in enumerate(words):
            if w in DIGITS:
                kind, target = "digit", w
            elif w in SIZE_WORDS and t + 1 < len(words) and words[t + 1] in DIGITS:
                kind, target = "size", words[t + 1]
            else:
                continue
            if target not in by_label:
                continue  # a digit that is not in the picture names nothing
            x0, y0, x1, y1 = by_label[target]["box"]
            # the fraction of each cell (row-major, cell x cell pixels) inside the box
            edges = np.arange(g + 1) * cell
            fx = np.clip(np.minimum(edges[1:], x1) - np.maximum(edges[:-1], x0), 0, None) / cell
            fy = np.clip(np.minimum(edges[1:], y1) - np.maximum(edges[:-1], y0), 0, None) / cell
            inside = float(alpha[t] @ np.outer(fy, fx).ravel())
            chance = (x1 - x0) * (y1 - y0) / side**2
            shares[kind].append((inside, chance))
    return {k: {"share": float(np.mean([s for s, _ in v])) if v else float("nan"),
                "chance": float(np.mean([c for _, c in v])) if v else float("nan"),
                "words": len(v)} for k, v in shares.items()}  # fmt: skip


def evaluate_split(run: CaptionRun, data: CaptionSet, beam_size: int = 3, alpha: float = 1.0,
                   limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    """BLEU-1..4 and CIDEr-D, greedy and beam, the loss and (attention, scenes) grounding."""
    n = len(data) if limit is None else min(limit, len(data))
    images, refs = data.images[:n], data.captions[:n]
    figs: dict[str, Any] = {"images": n, "loss": mean_nll(run, data, n)}
    for method in ("greedy", "beam"):
        caps = run.caption(images, method, beam_size, alpha)
        hyps = [" ".join(run.words(c)) for c in caps]
        figs[method] = bleu_n(hyps, refs)
        figs[method]["cider_d"] = cider_d(hyps, refs)[0]
        figs[method]["examples"] = hyps[:5]
        if run.model.attention is not None and data.objects and data.objects[0]:
            sub = CaptionSet(images, refs, data.names[:n], data.objects[:n])
            figs[method]["grounding"] = grounding(run, sub, caps)
    figs["beam_size"], figs["alpha"] = beam_size, alpha
    return figs


def mean_nll(run: CaptionRun, data: CaptionSet, limit: int | None = None) -> float:
    """Teacher-forced NLL per token (EOS included) of every reference caption."""
    n = len(data) if limit is None else min(limit, len(data))
    total = count = 0.0
    for i in range(n):
        caps = [run.ids(c) for c in data.captions[i]]
        t_in, t_out, lengths = teacher_forcing(caps, run.bos, run.eos)
        imgs = np.repeat(data.images[i : i + 1], len(caps), axis=0)
        _, cache = run.model.forward(imgs, t_in, t_out, lengths, training=False)
        k = float(lengths.sum())
        total += cache["nll"] * k
        count += k
    return total / count


# --- training -------------------------------------------------------------------------------------


def train_caption(
    cfg: CaptionTrainConfig | None,
    data_dir: str | Path,
    out: str | Path,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (),
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue) a captioner on a prepared folder's train split, validating on its
    valid split (the test split is not read); see the module doc."""
    out = Path(out)
    train = load_split(data_dir, "train")
    valid = load_split(data_dir, "valid")
    if len(train) == 0:
        raise RnnkitError(f"{data_dir}: the train split is empty")
    ck = start_run(out, resume, KIND)
    if ck is not None:
        cfg = CaptionTrainConfig.from_dict(ck.config["train"])
        vocab = Vocab.from_json(ck.vocab["words"])
    else:
        if cfg is None:
            raise ValueError("train_caption: cfg is required for a new run")
        vocab = build_word_vocab((c.split() for caps in train.captions for c in caps),
                                 cfg.min_count, cfg.max_vocab, SPECIALS, EOS)  # fmt: skip
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    model = Captioner(cfg.model_config(len(vocab), train.images), seed=cfg.seed)
    run = CaptionRun(model, vocab, cfg)
    refs = [[run.ids(c) for c in caps] for caps in train.captions]

    def batch(idx: Array, training: bool) -> tuple[Any, Any]:
        # one reference per image, drawn with the model's generator (saved in checkpoints)
        caps = [refs[i][int(model.rng.integers(len(refs[i])))] for i in idx]
        t_in, t_out, lengths = teacher_forcing(caps, run.bos, run.eos)
        return (train.images[idx], t_in, lengths), t_out

    def loss(inputs: Any, targets: Any, training: bool) -> tuple[float, Any]:
        images, t_in, lengths = inputs
        value, cache = model.forward(images, t_in, targets, lengths, training)
        return float(value), cache

    def evaluate() -> dict[str, float]:
        n = len(valid) if cfg.valid_max is None else min(cfg.valid_max, len(valid))
        caps = run.caption(valid.images[:n], "greedy")
        b = bleu_n([" ".join(run.words(c)) for c in caps], valid.captions[:n])
        return {"loss": mean_nll(run, valid, n), "bleu": b["bleu4"]}

    c = model.config
    arch = (f"conv {'-'.join(map(str, c.channels))} (grid {model.grid[0]}x{model.grid[1]}) -> "
            f"LSTM {c.hidden}, " + ("soft attention (show, attend and tell), penalty "
                                    f"{c.penalty}" if c.attention == "soft"
                                    else "no attention (show and tell)"))  # fmt: skip
    task = Task(
        kind=KIND, model=model, lengths=np.ones(len(train), dtype=np.int64), batch=batch,
        loss=loss, evaluate=evaluate if len(valid) else None, select="bleu",
        config={"model": c.to_dict(), "train": asdict(cfg), "data": {"data": str(data_dir)}},
        vocab={"words": vocab.to_json()},
        describe=(f"rnnkit caption: {arch}; vocabulary {len(vocab)}, "
                  f"{model.num_parameters():,} parameters; {len(train):,} training images, "
                  f"{len(valid):,} validation images"),
        command="caption train", settings=None if inputs is None else {**inputs, **asdict(cfg)},
    )  # fmt: skip
    summary = fit(task, cfg, out, ck, progress, max_steps, echo, callbacks)

    def report(part: str, s: dict[str, Any]) -> None:
        echo(f"{part} (best epoch {summary['best_epoch']}): BLEU-4 {s['greedy']['bleu4']:.2f} "
             f"greedy, {s['beam']['bleu4']:.2f} beam {s['beam_size']}")  # fmt: skip

    score_best(summary, out, load_captioner, lambda r, d: evaluate_split(r, d),
               {"valid": valid if len(valid) else None}, report)  # fmt: skip
    return summary


def load_captioner(path: str | Path) -> CaptionRun:
    """Load a trained captioner from a run folder (``best/`` preferred) or a checkpoint."""
    model, cfg, vocab, _ = load_run(path, KIND, CaptionConfig, CaptionTrainConfig, Captioner,
                                    lambda v: Vocab.from_json(v["words"]))  # fmt: skip
    return CaptionRun(model, vocab, cfg)


def run_caption(
    settings: Mapping[str, Any], out: str | Path, *, resume: bool = False, progress: bool = True,
    max_steps: int | None = None, echo: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (), where: str = "settings",
) -> dict[str, Any]:  # fmt: skip
    """``rnnkit caption train`` as a function (settings: the fields of :class:`CaptionData`
    and :class:`CaptionTrainConfig`)."""
    s = check_settings(settings, [CaptionData, CaptionTrainConfig], where,
                       command="rnnkit caption train")  # fmt: skip
    inputs, given = split_settings(s, CaptionData)
    if resume:
        check_resume(given)
        inputs, saved = resume_inputs(out, KIND, inputs, ("data",))
        cfg = None
    else:
        cfg = CaptionTrainConfig(**given)
    if not inputs.get("data"):
        raise RnnkitError(f"{where}: data (a folder made by `rnnkit caption prepare`) is "
                          "required")  # fmt: skip
    return train_caption(cfg, inputs["data"], out, resume=resume, epochs=given.get("epochs"),
                         progress=progress, max_steps=max_steps, echo=echo,
                         callbacks=callbacks, inputs=inputs)  # fmt: skip


# --- pictures ----------------------------------------------------------------------------------


def describe_image(run: CaptionRun, image: Array, png: str | Path | None = None,
                   beam_size: int = 3, alpha: float = 1.0) -> tuple[str, Array | None]:  # fmt: skip
    """Caption one image (C, H, W) by beam search; with ``png`` and attention, draw the image
    once per word with the attention of that word's step laid over it. Returns the caption
    and the weights (len + 1, S) (None without attention)."""
    m = run.model
    ids = run.caption(image[None], "beam", beam_size, alpha)[0]
    text = " ".join(run.words(ids))
    if m.attention is None:
        return text, None
    att = m.attention_of(image[None], [ids], run.bos, run.eos)[0]  # (len + 1, S)
    if png is not None:
        _plot_attention(image, att, [*run.words(ids), EOS], m.grid, png, text)
    return text, att


def _plot_attention(image: Array, att: Array, words: Sequence[str], grid: tuple[int, int],
                    png: str | Path, title: str) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    C, H, W = image.shape
    shown = image[0] if C == 1 else image.transpose(1, 2, 0)
    n = len(words)
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.9 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        a = att[k].reshape(grid)
        up = np.kron(a, np.ones((H // grid[0], W // grid[1])))  # each cell over its pixels
        ax.imshow(shown, cmap="gray" if C == 1 else None)
        ax.imshow(up, cmap="magma", alpha=0.55, vmin=0, vmax=max(float(a.max()), 1e-9),
                  extent=(-0.5, W - 0.5, H - 0.5, -0.5))  # fmt: skip
        ax.set_title(words[k], fontsize=10)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(png, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
