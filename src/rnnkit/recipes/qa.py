"""Training, evaluating and asking question-answering models: the loop behind ``rnnkit qa``.

Training runs :func:`rnnkit.train.loop.fit` (batches of similar story lengths, Adam, clipping,
a checkpoint every epoch, exact resume, Ctrl-C, ``OUT/best`` = the weights of the best
validation epoch). Validation: the last ``valid_frac`` of the stories of each training file
(:func:`rnnkit.text.babi.split_stories`); the best epoch is the one with the highest validation
accuracy, ties broken by the lower validation loss (the selected figure is
``score = accuracy - 1e-6 * loss``). Training reports validation figures only: the test
files are scored on purpose, once, by ``rnnkit qa eval`` (which records the score).

Evaluation (:func:`evaluate_qa`) reports, per bAbI task and overall: accuracy (an answer is
right when every word matches, in order), the number of questions, and for the attentive
reader ``support_hit``, the fraction of questions whose highest-attended sentence (attention
averaged over the hops) is one of the question's supporting facts, with the same figure per
hop. A gold answer that the model cannot produce (a class, or for the sequence head a word,
never seen in training) counts as wrong and is counted under ``unknown_answers``; it is not
an error. Supporting facts older than the ``memory`` most recent statements cannot be
attended and count as misses.

Output folder: as :mod:`rnnkit.train.loop` describes (``checkpoint/``, ``best/``,
``config.toml``, ``metrics.jsonl``, ``metrics.csv``, TensorBoard events, ``loss.png``,
``summary.json``). :func:`run_qa` is the command as a function (flat settings, as
``--config`` files hold them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError
from rnnkit.models.qa import (
    Answers,
    QAConfig,
    QAModel,
    answer_targets,
    build_model,
    make_batch,
)
from rnnkit.text.babi import BabiData, QAExample, babi_files, read_babi, split_stories, tokenize
from rnnkit.text.vocab import UNK, Vocab, build_word_vocab, encode_words
from rnnkit.train.callbacks import Callback
from rnnkit.train.loop import (
    LoopConfig,
    Task,
    fit,
    load_run,
    score_best,
    sorted_batches,
    start_run,
)
from rnnkit.train.runconfig import check_resume, check_settings, resume_inputs, split_settings

Array = np.ndarray
KIND_QA = "qa"

__all__ = [
    "KIND_QA",
    "QAData",
    "QAReader",
    "QATrainConfig",
    "answer_question",
    "answer_questions",
    "evaluate_qa",
    "format_evaluation",
    "load_qa",
    "read_babi_files",
    "run_qa",
    "train_qa",
]


@dataclass
class QATrainConfig(LoopConfig):
    """QA hyperparameters (see :class:`rnnkit.models.qa.QAConfig`) + the loop; saved in the
    checkpoint."""

    epochs: int = 100
    lr: float = 5e-3
    lr_decay: float = 0.97  # per epoch, from decay_after on
    decay_after: int = 10
    model: str = "attentive"  # attentive | lstm
    answer: str = "auto"  # auto | class | sequence (auto: sequence if an answer has 2+ words)
    embed: int = 32
    hidden: int = 16
    encoder: str = "gru"
    hops: int = 3
    attention: str = "general"
    memory: int = 50
    temporal: bool = True
    hop_temporal: bool = False
    previous: bool = False
    fusion: bool = False
    combine: int = 64
    decoder_hidden: int = 32
    dropout: float = 0.1
    valid_frac: float = 0.1  # the last stories of each training file, held out
    dtype: str = "float32"  # float32 | float64 (the model's weights and arithmetic)

    def model_config(self, vocab_size: int, answers: Answers) -> QAConfig:
        try:
            return QAConfig(
                vocab_size=vocab_size, num_answers=len(answers.tokens), model=self.model,
                answer=answers.mode, embed=self.embed, hidden=self.hidden, encoder=self.encoder,
                hops=self.hops, attention=self.attention, memory=self.memory,
                temporal=self.temporal, hop_temporal=self.hop_temporal,
                previous=self.previous, fusion=self.fusion,
                combine=self.combine, decoder_hidden=self.decoder_hidden,
                max_answer_len=answers.max_len, dropout=self.dropout, dtype=self.dtype,
            )  # fmt: skip
        except ValueError as e:
            raise RnnkitError(str(e)) from None


@dataclass
class QAData:
    """The data settings of ``rnnkit qa train`` (and :func:`run_qa`)."""

    inputs: list[str] = field(default_factory=list)  # bAbI training files or directories
    task: str | int | None = None  # 1-20 or "all": picks a directory's files


@dataclass
class QAReader:
    """A loaded QA model with its vocabulary, answer space and training settings."""

    model: QAModel
    vocab: Vocab
    answers: Answers
    cfg: QATrainConfig

    def encode(self, story: Sequence[Sequence[str]], question: Sequence[str]
               ) -> tuple[list[list[int]], list[int]]:  # fmt: skip
        """Word ids of the story's last ``memory`` sentences and of the question (unknown
        words: ``<unk>``)."""
        kept = story[-self.cfg.memory :]
        return ([encode_words(self.vocab, s).tolist() for s in kept],
                encode_words(self.vocab, question).tolist())  # fmt: skip


def _batches(reader: QAReader, examples: Sequence[QAExample], batch_size: int
             ) -> list[tuple[Array, Any]]:  # fmt: skip
    enc = [reader.encode(e.story, e.question) for e in examples]
    lengths = np.array([sum(map(len, s)) + len(q) for s, q in enc], dtype=np.int64)
    out = []
    for idx in sorted_batches(lengths, batch_size):
        stories, questions = zip(*(enc[i] for i in idx), strict=True)
        out.append((idx, make_batch(stories, questions, reader.cfg.memory)))
    return out


def answer_questions(reader: QAReader, examples: Sequence[QAExample], batch_size: int = 128
                     ) -> tuple[list[list[str]], list[Array | None], float | None]:  # fmt: skip
    """Predicted answers (word lists), attention (K, n) over each question's n kept story
    sentences (None for the LSTM reader), and the mean loss over the questions whose gold
    answer the model can produce (None if there are none)."""
    preds: list[list[str]] = [[] for _ in examples]
    atts: list[Array | None] = [None for _ in examples]
    loss_sum, loss_n = 0.0, 0
    for idx, batch in _batches(reader, examples, batch_size):
        pred, probs, att = reader.model.predict(batch)
        for r, i in enumerate(idx):
            preds[i] = reader.answers.decode(pred[r])
            if att is not None:
                atts[i] = att[r, :, : batch.n_sent[r]]
        gold = [reader.answers.encode(examples[i].answer) for i in idx]
        known = [r for r, g in enumerate(gold) if g is not None]
        if not known:
            continue
        if probs is not None:  # class head: -log p(gold) from the predictions' pass
            p_gold = probs[known, [gold[r] for r in known]]
            loss_sum += float(-np.log(np.maximum(p_gold, 1e-300)).sum())
        else:  # sequence head: the teacher-forced loss of the gold answer
            sub = batch if len(known) == len(idx) else _select(batch, known)
            targets = answer_targets(reader.answers, [gold[r] for r in known])
            loss, _, _ = reader.model.forward(sub, targets, training=False)
            loss_sum += float(loss) * len(known)
        loss_n += len(known)
    return preds, atts, (loss_sum / loss_n if loss_n else None)


def _select(batch: Any, rows: Sequence[int]) -> Any:
    """The sub-batch of the given rows (questions)."""
    keep = np.isin(batch.owner, rows)
    remap = np.full(len(batch.n_sent), -1)
    remap[list(rows)] = np.arange(len(rows))
    sl = int(batch.sent_len[keep].max())
    r = list(rows)
    return type(batch)(
        batch.sent_ids[keep][:, :sl], batch.sent_len[keep], remap[batch.owner[keep]],
        batch.slot[keep], batch.n_sent[r], batch.q_ids[r][:, : int(batch.q_len[r].max())],
        batch.q_len[r], batch.seq_ids[r][:, : int(batch.seq_len[r].max())], batch.seq_len[r],
    )  # fmt: skip


def evaluate_qa(reader: QAReader, data: BabiData, batch_size: int = 128) -> dict[str, Any]:
    """Accuracy per task and overall, and how often the highest-attended sentence is a
    supporting fact (see the module doc).

    Returns ``{"tasks": {task: figures}, "overall": figures, "loss": mean loss or None}``;
    figures: ``questions``, ``accuracy``, ``unknown_answers``, and for the attentive reader
    ``support_hit`` and ``support_hit_hops`` (one per hop; None when no question lists
    supporting facts).
    """
    preds, atts, loss = answer_questions(reader, data.examples, batch_size)
    rows: dict[int, list[tuple[bool, bool, Any]]] = {}
    for e, p, a in zip(data.examples, preds, atts, strict=True):
        unknown = reader.answers.encode(e.answer) is None
        hits = None
        if a is not None and e.supporting:
            first = len(e.story) - a.shape[1]  # story index of memory slot 0
            support = set(e.supporting)
            hits = [first + int(a.mean(axis=0).argmax()) in support]
            hits += [first + int(h.argmax()) in support for h in a]
        rows.setdefault(e.task, []).append((p == e.answer, unknown, hits))

    def figures(items: list[tuple[bool, bool, Any]]) -> dict[str, Any]:
        fig: dict[str, Any] = {
            "questions": len(items),
            "accuracy": float(np.mean([ok for ok, _, _ in items])),
            "unknown_answers": int(sum(u for _, u, _ in items)),
        }
        if reader.model.config.model == "attentive":
            h = np.array([x for _, _, x in items if x is not None], dtype=float)
            fig["support_hit"] = float(h[:, 0].mean()) if h.size else None
            fig["support_hit_hops"] = h[:, 1:].mean(axis=0).tolist() if h.size else None
        return fig

    tasks = {str(t): figures(rows[t]) for t in sorted(rows)}
    overall = figures([x for t in sorted(rows) for x in rows[t]])
    overall["mean_task_accuracy"] = float(np.mean([f["accuracy"] for f in tasks.values()]))
    return {"tasks": tasks, "overall": overall, "loss": loss}


def format_evaluation(res: dict[str, Any], name: str = "") -> list[str]:
    """Lines of a per-task table of :func:`evaluate_qa`'s figures."""
    support = "support_hit" in res["overall"]
    head = f"{'task':>5} {'questions':>9} {'accuracy':>9}" + (
        f" {'support hit':>11}" if support else "")  # fmt: skip
    lines = ([name] if name else []) + [head]

    def row(label: str, f: dict[str, Any]) -> str:
        s = f"{label:>5} {f['questions']:>9} {100 * f['accuracy']:>8.1f}%"
        if support:
            h = f.get("support_hit")
            s += f" {'-' if h is None else f'{100 * h:.1f}%':>11}"
        if f["unknown_answers"]:
            s += f"  ({f['unknown_answers']} answers unseen in training)"
        return s

    for t, f in res["tasks"].items():
        lines.append(row(t, f))
    if len(res["tasks"]) > 1:
        lines.append(row("all", res["overall"]))
        lines.append(f"mean accuracy over tasks {100 * res['overall']['mean_task_accuracy']:.1f}%")
    return lines


def answer_question(reader: QAReader, story: Sequence[Sequence[str]], question: str | Sequence[str]
                    ) -> dict[str, Any]:  # fmt: skip
    """Answer one question about a story (token lists, oldest first).

    Returns ``answer`` (words), ``probability`` (class head; else None), ``attention``
    (K, n) over the ``sentences`` it read (the story's last ``memory``; None for the LSTM
    reader), and ``unknown_words`` of the question and story (read as ``<unk>``).
    """
    q = tokenize(question) if isinstance(question, str) else list(question)
    if not q:
        raise RnnkitError("--question: holds no words")
    if not story:
        raise RnnkitError("the story holds no statements")
    sents, qids = reader.encode(story, q)
    pred, probs, att = reader.model.predict(make_batch([sents], [qids], reader.cfg.memory))
    kept = [list(s) for s in story[-reader.cfg.memory :]]
    unknown = sorted({w for s in [*kept, q] for w in s if w not in reader.vocab.stoi})
    return {
        "answer": reader.answers.decode(pred[0]),
        "probability": None if probs is None else float(probs[0].max()),
        "attention": None if att is None else att[0, :, : len(kept)],
        "sentences": kept,
        "question": q,
        "unknown_words": unknown,
    }


def train_qa(
    cfg: QATrainConfig | None,
    train: BabiData,
    out: str | Path,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
    data: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue) a QA model; see the module doc for validation and outputs.

    Args:
        cfg: hyperparameters (ignored on resume: the checkpoint's are used).
        train: the training questions (one or more bAbI files; the last ``valid_frac`` of
            each file's stories are held out for validation).
        epochs: on resume, a new total number of epochs.
        max_steps: stop after this many steps in this call (tests), as Ctrl-C does.
        data: where the data came from (JSON-able), kept in the checkpoint.
        callbacks: hooks after every step and epoch (:mod:`rnnkit.train.callbacks`).
        inputs: the data settings (:class:`QAData`), written with ``cfg`` to
            ``OUT/config.toml``.
    """
    out = Path(out)
    ck = start_run(out, resume, KIND_QA)
    if ck is not None:
        cfg = QATrainConfig.from_dict(ck.config["train"])
    if cfg is None:
        raise ValueError("train_qa: cfg is required for a new run")
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if not 0.0 < cfg.valid_frac < 1.0:
        raise RnnkitError(f"--valid-frac: must lie in (0, 1), got {cfg.valid_frac}")
    train, valid = split_stories(train, cfg.valid_frac)
    if ck is not None:
        vocab = Vocab.from_json(ck.vocab["words"])
        answers = Answers.from_json(ck.vocab["answers"])
    else:
        vocab = build_word_vocab([s for e in train.examples for s in [*e.story, e.question]],
                                 cfg.min_count, cfg.max_vocab)  # fmt: skip
        answers = Answers.build([e.answer for e in train.examples], cfg.answer)
        if answers.mode == "class" and len(answers.tokens) < 2:
            raise RnnkitError(f"{train.paths[0]}: needs at least two distinct answers")
    model = build_model(cfg.model_config(len(vocab), answers), seed=cfg.seed)
    reader = QAReader(model, vocab, answers, cfg)
    enc = [reader.encode(e.story, e.question) for e in train.examples]
    gold = [answers.encode(e.answer) for e in train.examples]
    bad = next((e for e, g in zip(train.examples, gold, strict=True) if g is None), None)
    if bad is not None:  # only on resume with other training files
        raise RnnkitError(f"{bad.path}:{bad.line}: answer {','.join(bad.answer)!r} is not in "
                          "the checkpoint's answers (is this the run's training set?)")  # fmt: skip
    lengths = np.array([sum(map(len, s)) + len(q) for s, q in enc], dtype=np.int64)

    def batch(idx: Array, training: bool) -> tuple[Any, Any]:
        stories, questions = zip(*(enc[i] for i in idx), strict=True)
        return (make_batch(stories, questions, cfg.memory),
                answer_targets(answers, [gold[i] for i in idx]))  # fmt: skip

    def loss(inputs: Any, targets: Any, training: bool) -> tuple[float, Any]:
        value, _, cache = model.forward(inputs, targets, training)
        return value, cache

    def evaluate() -> dict[str, float]:
        res = evaluate_qa(reader, valid)
        acc = res["overall"]["accuracy"]
        figs = {"loss": res["loss"] if res["loss"] is not None else float("nan"),
                "accuracy": acc}  # fmt: skip
        if "support_hit" in res["overall"] and res["overall"]["support_hit"] is not None:
            figs["support_hit"] = res["overall"]["support_hit"]
        figs["score"] = acc - 1e-6 * (figs["loss"] if np.isfinite(figs["loss"]) else 0.0)
        return figs

    what = (f"attentive reader (bi{cfg.encoder.upper()} x{cfg.hidden}, {cfg.hops} hops of "
            f"{cfg.attention} attention)" if cfg.model == "attentive" else
            f"LSTM reader (x{cfg.hidden})")  # fmt: skip
    task = Task(
        kind=KIND_QA, model=model, lengths=lengths, batch=batch, loss=loss, evaluate=evaluate,
        select="score",
        # the loss: a mean over questions (class answers) or answer tokens + EOS (sequences)
        counts=np.array([1 if answers.mode == "class" else len(g) + 1 for g in gold]),
        config={"model": model.config.to_dict(), "train": asdict(cfg), "data": data or {}},
        vocab={"words": vocab.to_json(), "answers": answers.to_json()},
        describe=(f"rnnkit qa: {what}, {answers.mode} answers ({len(answers.tokens)} "
                  f"{'classes' if answers.mode == 'class' else 'symbols'}), vocabulary "
                  f"{len(vocab):,}, {model.num_parameters():,} parameters; tasks "
                  f"{', '.join(map(str, train.tasks))}: {len(train):,} training / "
                  f"{len(valid):,} validation questions"),
        command="qa train", settings=None if inputs is None else {**inputs, **asdict(cfg)},
    )  # fmt: skip
    summary = fit(task, cfg, out, ck, progress, max_steps, echo, callbacks)

    def report(part: str, figures: dict[str, Any]) -> None:
        for line in format_evaluation(figures, f"{part} (best epoch {summary['best_epoch']}):"):
            echo(line)

    score_best(summary, out, load_qa, evaluate_qa, {"valid": valid}, report)
    return summary


def load_qa(path: str | Path) -> QAReader:
    """Load a trained QA model from a run folder (``best/`` preferred) or a checkpoint."""
    model, cfg, (vocab, answers), ck = load_run(
        path, KIND_QA, QAConfig, QATrainConfig, build_model,
        lambda v: (Vocab.from_json(v["words"]), Answers.from_json(v["answers"])),
    )  # fmt: skip
    if UNK not in vocab.stoi:
        raise RnnkitError(f"{ck.path / 'checkpoint.json'}: the vocabulary lacks {UNK!r}")
    return QAReader(model, vocab, answers, cfg)


def read_babi_files(files: Sequence[str | Path]) -> BabiData:
    """The questions of several bAbI files, in order."""
    data = read_babi(files[0])
    for f in files[1:]:
        data = data + read_babi(f)
    return data


def run_qa(
    settings: Mapping[str, Any], out: str | Path, *, resume: bool = False, progress: bool = True,
    max_steps: int | None = None, echo: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (), where: str = "settings",
) -> dict[str, Any]:  # fmt: skip
    """``rnnkit qa train`` as a function: settings and arguments as
    :func:`rnnkit.recipes.lm.run_lm`'s, the settings being the fields of :class:`QAData`
    and :class:`QATrainConfig`."""
    s = check_settings(settings, [QAData, QATrainConfig], where, command="rnnkit qa train")
    inputs, given = split_settings(s, QAData)
    cfg = None
    if resume:
        check_resume(given, ("INPUTS",) if inputs["inputs"] else ())
        desc, _ = resume_inputs(out, KIND_QA, {"train": []}, ())
        train_files = [str(p) for p in desc["train"]]
        if not train_files:
            raise RnnkitError(f"{out}: the checkpoint does not name its training files")
        inputs = {"inputs": train_files, "task": None}
    else:
        if not inputs["inputs"]:
            raise RnnkitError(f"{where}: inputs: missing the bAbI training files or directory")
        dirs = [p for p in inputs["inputs"] if Path(p).is_dir()]
        if dirs and inputs["task"] is None:
            raise RnnkitError(f"{where}: task: give a task number (1-20) or 'all' to pick the "
                              "files of a directory")  # fmt: skip
        task = inputs["task"] if inputs["task"] is not None else "all"
        train_files = [str(p) for p in babi_files(inputs["inputs"], task, "train")]
        cfg = QATrainConfig(**given)
    return train_qa(
        cfg, read_babi_files(train_files), out, resume=resume,
        epochs=given.get("epochs"), progress=progress, max_steps=max_steps, echo=echo,
        data={"train": train_files}, callbacks=callbacks, inputs=inputs,
    )  # fmt: skip
