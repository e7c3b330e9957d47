"""rnnkit from Python: the ``train`` commands as functions, and trained models to use.

Each ``rnnkit TASK train`` command is a function (:func:`train_lm`, :func:`train_classifier`,
:func:`train_tagger`, :func:`train_translator`, :func:`train_qa`; :func:`train_task` takes the
task's name) taking the same settings, by the option names with underscores
(``batch_size`` for ``--batch-size``, the data files included: ``text`` for ``lm``,
``train`` for ``classify`` and ``tag``, ``src``/``tgt`` for ``mt``, ``inputs`` for ``qa``),
writing the same run folder, and returning the run's summary (what ``OUT/summary.json``
holds). The settings come as a dict, a TOML file (a run's ``config.toml`` included) or the
task's config dataclass, with keyword settings on top, as options override ``--config``.
Unlike the commands, the functions print nothing unless given ``echo`` (e.g.
``echo=print``).

:func:`load` reads a run folder back as a model object: :class:`TrainedLM` (``sample``),
:class:`TrainedClassifier` and :class:`TrainedTagger` (``predict``),
:class:`TrainedTranslator` (``translate``), :class:`TrainedQA` (``predict``); each has
``evaluate`` where its command group has ``eval``.

>>> import tempfile, pathlib, rnnkit
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> _ = (tmp / "text.txt").write_text("the cat sat on the mat. " * 40)
>>> tiny = {"hidden": 16, "embed": 8, "layers": 1, "bptt": 10, "batch_size": 4, "log_every": 5}
>>> summary = rnnkit.train_lm(tiny, text=[str(tmp / "text.txt")], epochs=2, out=tmp / "lm")
>>> summary["complete"], summary["epochs_completed"]
(True, 2)
>>> lm = rnnkit.load(tmp / "lm")
>>> sample = lm.sample("the ", length=20, seed=1)
>>> sample.startswith("the "), len(sample)
(True, 24)

The run folder's ``config.toml`` trains the same run again (what ``rnnkit lm train --config
OUT/config.toml`` does), and callbacks see every step and epoch:

>>> losses = []
>>> again = rnnkit.train_lm(tmp / "lm" / "config.toml", out=tmp / "again",
...                         callbacks=[rnnkit.Callback(on_step=lambda r: losses.append(r["loss"]))])
>>> import json
>>> logged = [json.loads(line) for line in open(tmp / "lm" / "metrics.jsonl")]
>>> [r["loss"] for r in logged if r["type"] == "train"] == losses[4::5]
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError
from rnnkit.recipes.lm import LMTrainConfig, evaluate_file, load_lm, run_lm, sample_text
from rnnkit.recipes.mt import MTTrainConfig, load_translator, run_mt
from rnnkit.recipes.qa import (
    QAReader,
    QATrainConfig,
    answer_question,
    evaluate_qa,
    load_qa,
    read_babi_files,
    run_qa,
)
from rnnkit.recipes.task import (
    Classification,
    ClassifyTrainConfig,
    Tagging,
    TagTrainConfig,
    classify_sentences,
    evaluate_classifier,
    evaluate_tagger,
    load_classifier,
    load_tagger,
    run_classifier,
    run_tagger,
    tag_sentences,
)
from rnnkit.text.babi import babi_files, tokenize
from rnnkit.text.readers import read_labelled_tsv, read_sentences, read_tagged
from rnnkit.train.callbacks import Callback, EarlyStopping
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.loop import run_checkpoint
from rnnkit.train.runconfig import read_config

__all__ = [
    "Callback",
    "EarlyStopping",
    "TrainedClassifier",
    "TrainedLM",
    "TrainedModel",
    "TrainedQA",
    "TrainedTagger",
    "TrainedTranslator",
    "load",
    "train_classifier",
    "train_lm",
    "train_qa",
    "train_tagger",
    "train_task",
    "train_translator",
]

Config = Mapping[str, Any] | str | Path | None
_RUNS: dict[str, Callable[..., dict[str, Any]]] = {
    "lm": run_lm, "classify": run_classifier, "tag": run_tagger, "mt": run_mt, "qa": run_qa,
}  # fmt: skip


# --- training --------------------------------------------------------------------------------


def train_task(
    task: str,
    config: Config | Any = None,
    *,
    out: str | Path,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
    max_steps: int | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """``rnnkit TASK train`` as a function (see the module doc).

    Args:
        task: ``"lm"``, ``"classify"``, ``"tag"``, ``"mt"`` or ``"qa"``.
        config: the settings: a dict, a TOML file, or the task's config dataclass
            (:class:`~rnnkit.recipes.lm.LMTrainConfig`...); None: defaults.
        out: the run folder (a new one, or the run to continue with ``resume``).
        resume: continue the run in ``out`` exactly (only ``epochs`` may be given).
        callbacks: :class:`Callback` objects (e.g. :class:`EarlyStopping`).
        progress: show progress bars.
        echo: where the command's lines go (None: nowhere).
        max_steps: stop after this many steps, as Ctrl-C does (resumable).
        **settings: more settings, overriding ``config``'s.

    Returns:
        The run's summary: ``steps``, ``epochs_completed``, ``complete``, ``stopped_early``,
        the final ``valid``/``test`` figures...
    """
    if task not in _RUNS:
        raise RnnkitError(f"task: expected one of {sorted(_RUNS)}, got {task!r}")
    where = "settings"
    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, (str, Path)):
        base, where = read_config(config), str(config)
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        base = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        base = dict(config)
    else:
        raise RnnkitError(f"config: expected a dict, a TOML file or a config dataclass, got "
                          f"{type(config).__name__}")  # fmt: skip
    return _RUNS[task](
        {**base, **settings}, out, resume=resume, progress=progress, max_steps=max_steps,
        echo=echo if echo is not None else _quiet, callbacks=list(callbacks), where=where,
    )  # fmt: skip


def _quiet(line: str) -> None:
    pass


def train_lm(config: Config | LMTrainConfig = None, **kwargs: Any) -> dict[str, Any]:
    """``rnnkit lm train``: :func:`train_task` of task ``"lm"``."""
    return train_task("lm", config, **kwargs)


def train_classifier(config: Config | ClassifyTrainConfig = None, **kwargs: Any
                     ) -> dict[str, Any]:  # fmt: skip
    """``rnnkit classify train``: :func:`train_task` of task ``"classify"``."""
    return train_task("classify", config, **kwargs)


def train_tagger(config: Config | TagTrainConfig = None, **kwargs: Any) -> dict[str, Any]:
    """``rnnkit tag train``: :func:`train_task` of task ``"tag"``."""
    return train_task("tag", config, **kwargs)


def train_translator(config: Config | MTTrainConfig = None, **kwargs: Any) -> dict[str, Any]:
    """``rnnkit mt train``: :func:`train_task` of task ``"mt"``."""
    return train_task("mt", config, **kwargs)


def train_qa(config: Config | QATrainConfig = None, **kwargs: Any) -> dict[str, Any]:
    """``rnnkit qa train``: :func:`train_task` of task ``"qa"``."""
    return train_task("qa", config, **kwargs)


# --- trained models --------------------------------------------------------------------------


class TrainedModel:
    """What :func:`load` returns: a trained model of one task, with its vocabularies and
    training settings (the subclasses add the task's methods)."""

    kind = ""  # the checkpoint kind the class loads

    def __init__(self, path: Path, config: Any, model: Any) -> None:
        self.path = path  # the run (or checkpoint) folder it was loaded from
        self.config = config  # the run's training settings (the task's config dataclass)
        self.model = model  # the network: params, forward, backward

    def __repr__(self) -> str:
        return f"<{type(self).__name__} from {self.path}>"


def _sentences(sentences: Sequence[str | Sequence[str]], lower: bool) -> list[list[str]]:
    """Token lists: strings are split at whitespace, as the commands read a text line."""
    out = []
    for s in sentences:
        if isinstance(s, str):
            out += read_sentences([s], "<sentences>", "text", lower)
        else:
            out.append([w.lower() if lower else w for w in s])
    return out


class TrainedLM(TrainedModel):
    """A language model (``rnnkit lm``): :meth:`sample` and :meth:`evaluate`."""

    kind = "lm"

    def __init__(self, path: Path) -> None:
        model, self.vocab, cfg, _ = load_lm(path)
        super().__init__(path, cfg, model)

    def sample(self, prime: str | None = None, length: int = 200, temperature: float = 1.0,
               top_k: int | None = None, greedy: bool = False, seed: int | None = None
               ) -> str:  # fmt: skip
        """``prime`` followed by ``length`` generated tokens (``rnnkit lm sample``)."""
        return sample_text(self.model, self.vocab, prime, length, temperature, top_k, greedy,
                           seed)  # fmt: skip

    def evaluate(self, path: str | Path, batch_size: int = 1, encoding: str = "utf-8"
                 ) -> dict[str, float]:  # fmt: skip
        """Loss, perplexity (and bits per character) on a text file (``rnnkit lm eval``)."""
        return evaluate_file(self.model, self.vocab, path, self.config.bptt, batch_size, encoding)


class TrainedClassifier(TrainedModel):
    """A sentence classifier (``rnnkit classify``): :meth:`predict`, :meth:`predict_proba`,
    :meth:`evaluate`."""

    kind = "classifier"

    def __init__(self, path: Path) -> None:
        self.classification: Classification = load_classifier(path)
        super().__init__(path, self.classification.cfg, self.classification.model)

    @property
    def labels(self) -> list[str]:
        """The classes, in the order of :meth:`predict_proba`'s columns."""
        return self.classification.labels

    def predict_proba(self, sentences: Sequence[str | Sequence[str]]) -> np.ndarray:
        """Class probabilities (N, C); a sentence is a string (split at whitespace) or a token
        list; an empty one gets zeros."""
        toks = _sentences(sentences, self.config.lower)
        probs = np.zeros((len(toks), len(self.labels)))
        keep = [i for i, t in enumerate(toks) if t]
        if keep:
            probs[keep] = classify_sentences(self.classification, [toks[i] for i in keep])
        return probs

    def predict(self, sentences: Sequence[str | Sequence[str]]) -> list[str]:
        """The likeliest label of each sentence ("" for an empty one, as the command does)."""
        probs = self.predict_proba(sentences)
        return [self.labels[int(p.argmax())] if p.any() else "" for p in probs]

    def evaluate(self, path: str | Path, encoding: str = "utf-8") -> dict[str, float]:
        """Accuracy and loss on a labelled TSV file (``rnnkit classify eval``)."""
        data = read_labelled_tsv(str(path), self.config.lower, encoding)
        return evaluate_classifier(self.classification, data)


class TrainedTagger(TrainedModel):
    """A sequence tagger (``rnnkit tag``): :meth:`predict` and :meth:`evaluate`."""

    kind = "tagger"

    def __init__(self, path: Path) -> None:
        self.tagging: Tagging = load_tagger(path)
        super().__init__(path, self.tagging.cfg, self.tagging.model)

    def predict(self, sentences: Sequence[str | Sequence[str]]) -> list[list[str]]:
        """One tag per token of each sentence (a string split at whitespace, or tokens)."""
        return tag_sentences(self.tagging, _sentences(sentences, lower=False))

    def evaluate(self, path: str | Path, format: str = "auto", tag_column: str | None = None,
                 encoding: str = "utf-8") -> dict[str, Any]:  # fmt: skip
        """Accuracy (and span F1 for chunk tags) on a tagged file (``rnnkit tag eval``)."""
        data = read_tagged(str(path), format, tag_column, need_tags=True, encoding=encoding)
        return evaluate_tagger(self.tagging, data)


class TrainedTranslator(TrainedModel):
    """A translation model (``rnnkit mt``): :meth:`translate`."""

    kind = "mt"

    def __init__(self, path: Path) -> None:
        self.translator = load_translator(path)
        super().__init__(path, self.translator.cfg, self.translator.model)

    def translate(self, sentences: Sequence[str], beam: int = 5, alpha: float = 1.0,
                  greedy: bool = False, replace_unk: bool = False, max_len_a: float = 2.0,
                  max_len_b: int = 10) -> list[str]:  # fmt: skip
        """The best translation of each sentence (raw text; "" for an empty line), by beam
        search of width ``beam`` ranked by log P / T^alpha, or greedily
        (``rnnkit mt translate``)."""
        from rnnkit.models.translate import translate_lines

        res = translate_lines(self.translator, list(sentences), where="<sentences>",
                              method="greedy" if greedy else "beam", beam_size=beam,
                              alpha=alpha, replace_unk=replace_unk, max_len_a=max_len_a,
                              max_len_b=max_len_b)  # fmt: skip
        return [hyps[0].text for hyps in res]


class TrainedQA(TrainedModel):
    """A bAbI question-answering model (``rnnkit qa``): :meth:`predict`, :meth:`evaluate`."""

    kind = "qa"

    def __init__(self, path: Path) -> None:
        self.reader: QAReader = load_qa(path)
        super().__init__(path, self.reader.cfg, self.reader.model)

    def predict(self, story: Sequence[str], question: str) -> str:
        """The answer (words joined by commas, as bAbI writes them) to ``question`` about a
        story of statements, oldest first (``rnnkit qa ask``)."""
        sentences = [tokenize(s) for s in story]
        res = answer_question(self.reader, [s for s in sentences if s], question)
        return ",".join(res["answer"])

    def evaluate(self, inputs: Sequence[str | Path], task: str | int = "all",
                 split: str = "test") -> dict[str, Any]:  # fmt: skip
        """Accuracy per task on bAbI files or directories (``rnnkit qa eval``)."""
        return evaluate_qa(self.reader, read_babi_files(babi_files(list(inputs), task, split)))


_KINDS: dict[str, type[TrainedModel]] = {c.kind: c for c in (TrainedLM, TrainedClassifier,
                                     TrainedTagger, TrainedTranslator, TrainedQA)}  # fmt: skip


def load(path: str | Path) -> TrainedModel:
    """The trained model of a run folder (its ``best/`` weights where the run keeps them, else
    its latest checkpoint) or of a checkpoint folder, as the object of its task."""
    kind = load_checkpoint(run_checkpoint(path)).kind
    if kind not in _KINDS:
        raise RnnkitError(f"{path}: a {kind!r} checkpoint has no Python model object")
    return _KINDS[kind](Path(path))
