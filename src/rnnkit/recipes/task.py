"""Training, evaluating and applying sentence classifiers and sequence taggers: the loop
behind ``rnnkit classify`` and ``rnnkit tag``.

The epoch loop itself (batching by length, clipping, validation, checkpoints, exact resume,
Ctrl-C) is :func:`rnnkit.train.loop.fit`; this module says what a batch, a loss and a
validation figure are for each task. ``OUT/best`` keeps the weights of the epoch with the
best validation score (accuracy for the classifier; span F1 for chunk tag sets, else
accuracy, for the tagger); the final figures in ``summary.json`` are those of those weights.

Output folder layout::

    OUT/checkpoint/    the latest checkpoint (rnnkit.train.checkpoint), for --resume
    OUT/best/          the weights of the best validation epoch (what predict/eval load)
    OUT/config.toml    the resolved settings: --config re-runs it
    OUT/metrics.jsonl  one JSON object per logged step and per epoch (rnnkit.train.logs),
    OUT/metrics.csv    the same as columns, and TensorBoard event files (tensorboardX)
    OUT/loss.png       training and validation loss
    OUT/summary.json   final figures

:func:`run_classifier` and :func:`run_tagger` are the commands as functions (flat settings,
as ``--config`` files hold them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError
from rnnkit.models.classify import ClassifierConfig, SequenceClassifier
from rnnkit.models.tag import (
    SequenceTagger,
    TaggerConfig,
    build_char_vocab,
    make_tag_batch,
    normalize_word,
)
from rnnkit.text.metrics import iob1_to_iob2, is_chunk_tagset, span_f1, tag_accuracy
from rnnkit.text.readers import (
    LabelledText,
    TaggedCorpus,
    read_labelled_tsv,
    read_tagged,
    read_word2vec_text,
    read_word2vec_words,
    word2vec_dim,
)
from rnnkit.text.vocab import UNK, Vocab, build_word_vocab, encode_words, extend_vocab, pad_batch
from rnnkit.train.callbacks import Callback
from rnnkit.train.loop import (
    LoopConfig,
    Task,
    fit,
    load_run,
    replace_singletons,
    score_best,
    sorted_batches,
    start_run,
)
from rnnkit.train.runconfig import check_resume, check_settings, resume_inputs, split_settings

Array = np.ndarray
KIND_CLASSIFIER = "classifier"
KIND_TAGGER = "tagger"

__all__ = [
    "ClassifyData",
    "ClassifyTrainConfig",
    "TagData",
    "TagTrainConfig",
    "Tagging",
    "classify_sentences",
    "evaluate_classifier",
    "evaluate_tagger",
    "load_classifier",
    "load_tagger",
    "run_classifier",
    "run_tagger",
    "tag_sentences",
    "train_classifier",
    "train_tagger",
]


# --- configurations --------------------------------------------------------------------------


@dataclass
class ClassifyTrainConfig(LoopConfig):
    """Classifier hyperparameters (see :class:`rnnkit.models.classify.ClassifierConfig`) + the
    loop."""

    cell: str = "lstm"
    embed: int = 100
    hidden: int = 128
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    embed_dropout: float = 0.0
    dropout: float = 0.0
    valid_frac: float = 0.05  # held out of the training file when no validation file is given
    valid_dedup: bool = False  # hold out whole sentences and drop their parts from training
    valid_seed: int | None = None  # seed of the held-out split (None: --seed); fix it to
    # train several models (an ensemble) on the same split
    pretrained_extend: bool = False  # add the pretrained file's words that training lacks
    freeze_embed: bool = False  # keep the (pretrained) embedding fixed
    dtype: str = "float32"  # float32 | float64 (the model's weights and arithmetic)

    def model_config(self, vocab_size: int, num_classes: int) -> ClassifierConfig:
        try:
            return ClassifierConfig(
                vocab_size=vocab_size, num_classes=num_classes, cell=self.cell,
                embed=self.embed, hidden=self.hidden, layers=self.layers,
                bidirectional=self.bidirectional, pooling=self.pooling,
                embed_dropout=self.embed_dropout, dropout=self.dropout,
                freeze_embed=self.freeze_embed, dtype=self.dtype,
            )  # fmt: skip
        except ValueError as e:
            raise RnnkitError(str(e)) from None


@dataclass
class TagTrainConfig(LoopConfig):
    """Tagger hyperparameters (see :class:`rnnkit.models.tag.TaggerConfig`) + the loop."""

    cell: str = "lstm"
    embed: int = 100
    chars: bool = True  # character BiLSTM features
    char_embed: int = 25
    char_hidden: int = 25
    hidden: int = 100
    layers: int = 2
    dropout: float = 0.5
    zero_digits: bool = False  # map every digit to 0 for the word vocabulary
    iob2: bool = True  # chunk tag sets (B-/I-): rewrite IOB1 as IOB2 (spans unchanged)
    dtype: str = "float32"  # float32 | float64 (the model's weights and arithmetic)

    def model_config(self, vocab_size: int, num_tags: int, n_chars: int) -> TaggerConfig:
        try:
            return TaggerConfig(
                vocab_size=vocab_size, num_tags=num_tags,
                char_vocab_size=n_chars if self.chars else 0, cell=self.cell, embed=self.embed,
                char_embed=self.char_embed, char_hidden=self.char_hidden, hidden=self.hidden,
                layers=self.layers, dropout=self.dropout, dtype=self.dtype,
            )  # fmt: skip
        except ValueError as e:
            raise RnnkitError(str(e)) from None


@dataclass
class ClassifyData:
    """The data settings of ``rnnkit classify train`` (and :func:`run_classifier`)."""

    train: str | None = None  # TSV: sentence and label columns (GLUE's layout, or no header)
    valid: str | None = None  # none: hold out valid_frac of train
    pretrained: str | None = None  # word2vec text file initialising the embedding (sets embed)
    encoding: str = "utf-8"


@dataclass
class TagData:
    """The data settings of ``rnnkit tag train`` (and :func:`run_tagger`)."""

    train: str | None = None  # CoNLL columns (word first, tag last) or CoNLL-U
    valid: str | None = None
    format: str = "auto"  # auto | conll | conllu
    tag_column: str | None = None  # CoNLL: 0-based column (default: last); CoNLL-U: upos | xpos
    pretrained: str | None = None
    encoding: str = "utf-8"


def _load_pretrained(model: Any, path: str | None, vocab: Vocab, echo: Callable[[str], None]
                     ) -> None:  # fmt: skip
    if not path:
        return
    ids, vecs = read_word2vec_text(path, vocab)
    model.set_embeddings(ids, vecs.astype(model.dtype))
    echo(f"pretrained vectors: {len(ids):,} of {len(vocab):,} vocabulary words found in {path}")


def _singletons(vocab: Vocab, sentences: Sequence[Sequence[str]]) -> Array:
    counts = Counter(w for s in sentences for w in s)
    return np.array([counts.get(w, 0) == 1 for w in vocab.tokens], dtype=bool)


# --- classification --------------------------------------------------------------------------


@dataclass
class Classification:
    """A loaded classifier with its vocabulary, labels and training settings."""

    model: SequenceClassifier
    vocab: Vocab
    labels: list[str]
    cfg: ClassifyTrainConfig


def _maximal_items(sentences: Sequence[Sequence[str]]) -> tuple[Array, list[set[int]]]:
    """Indices of the items that are no contiguous part of another item, and for each of
    them the hashes of all its contiguous parts (longest items first; duplicates count as
    parts)."""
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    covered: set[int] = set()
    maximal, parts = [], []
    for i in order:
        s = sentences[i]
        if hash(" ".join(s)) in covered:
            continue
        mine = {hash(" ".join(s[a:b])) for a in range(len(s)) for b in range(a + 1, len(s) + 1)}
        covered |= mine
        maximal.append(i)
        parts.append(mine)
    return np.array(maximal, dtype=np.int64), parts


def split_valid(
    data: LabelledText, frac: float, seed: int, dedup: bool = False
) -> tuple[LabelledText, LabelledText]:
    """Hold out a random ``frac`` of a labelled file (seeded) as the validation set.

    With ``dedup`` (for data that lists phrases of the same sentences, like SST-2's training
    file): the held-out items are drawn among the *maximal* items (those that are no
    contiguous part of another item: the whole sentences), and every training item that is
    a contiguous part of a held-out one is dropped, so no validation sentence is seen, even
    in pieces, in training.

    >>> d = LabelledText([["a", "b", "c"], ["b", "c"], ["d", "e"], ["e"], ["f"]],
    ...                  ["1", "1", "0", "0", "1"], [2, 3, 4, 5, 6], "t.tsv")
    >>> train, valid = split_valid(d, 0.34, seed=1, dedup=True)   # 1 of 3 whole items
    >>> valid.sentences, train.sentences
    ([['a', 'b', 'c']], [['d', 'e'], ['e'], ['f']])
    """
    n = len(data)
    rng = np.random.default_rng([seed, 2])
    if dedup:
        maximal, parts = _maximal_items(data.sentences)
        k = int(round(len(maximal) * frac))
        if not 0 < k < len(maximal):
            raise RnnkitError(f"--valid-frac {frac}: leaves no validation or no training "
                              f"sentences of {len(maximal)} whole ones")  # fmt: skip
        pick = rng.permutation(len(maximal))[:k]
        held = np.sort(maximal[pick])
        leaked = set().union(*(parts[j] for j in pick))
        kept = np.array([i for i in range(n) if hash(" ".join(data.sentences[i])) not in leaked],
                        dtype=np.int64)  # fmt: skip
    else:
        k = int(round(n * frac))
        if not 0 < k < n:
            raise RnnkitError(f"--valid-frac {frac}: leaves no validation or no training "
                              f"sentences of {n}")  # fmt: skip
        perm = rng.permutation(n)
        held, kept = np.sort(perm[:k]), np.sort(perm[k:])

    def part(idx: Array, tag: str) -> LabelledText:
        return LabelledText([data.sentences[i] for i in idx], [data.labels[i] for i in idx],
                            [data.lines[i] for i in idx], f"{data.path} ({tag})")  # fmt: skip

    return part(kept, "training part"), part(held, "held-out part")


def _label_ids(data: LabelledText, labels: list[str]) -> Array:
    index = {lab: i for i, lab in enumerate(labels)}
    out = np.empty(len(data), dtype=np.int64)
    for k, (lab, line) in enumerate(zip(data.labels, data.lines, strict=True)):
        if lab not in index:
            shown = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
            raise RnnkitError(f"{data.path}:{line}: label {lab!r} was not seen in training "
                              f"(known: {shown})")  # fmt: skip
        out[k] = index[lab]
    return out


def classify_sentences(clf: Classification, sentences: Sequence[Sequence[str]],
                       batch_size: int = 256) -> Array:  # fmt: skip
    """Class probabilities (N, C) of token lists (each needs at least one token)."""
    seqs = [encode_words(clf.vocab, s) for s in sentences]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    probs = np.zeros((len(seqs), len(clf.labels)))
    for idx in sorted_batches(lengths, batch_size):
        ids, lens = pad_batch([seqs[i] for i in idx])
        probs[idx] = clf.model.predict_proba(ids, lens)
    return probs


def ensemble_probabilities(clfs: Sequence[Classification], sentences: Sequence[Sequence[str]],
                           batch_size: int = 256) -> Array:  # fmt: skip
    """Mean class probabilities (N, C) of several classifiers trained for the same labels.

    Each member encodes the sentences with its own vocabulary; the members must share the
    label set (in the same order) and the lowercasing setting.
    """
    if not clfs:
        raise ValueError("ensemble_probabilities: no classifiers")
    first = clfs[0]
    for k, c in enumerate(clfs[1:], start=2):
        if c.labels != first.labels:
            raise RnnkitError(f"ensemble member {k}: labels {c.labels} differ from the first "
                              f"model's {first.labels}")  # fmt: skip
        if c.cfg.lower != first.cfg.lower:
            raise RnnkitError(f"ensemble member {k}: lowercasing differs from the first model's")
    return sum(classify_sentences(c, sentences, batch_size) for c in clfs) / len(clfs)


def evaluate_classifier(clf: Classification | Sequence[Classification], data: LabelledText
                        ) -> dict[str, float]:  # fmt: skip
    """Accuracy and mean cross-entropy on a labelled file (unknown labels: an error).

    Given several classifiers, scores their ensemble (mean of the class probabilities).
    """
    clfs = [clf] if isinstance(clf, Classification) else list(clf)
    y = _label_ids(data, clfs[0].labels)
    probs = ensemble_probabilities(clfs, data.sentences)
    nll = -np.log(np.maximum(probs[np.arange(len(y)), y], 1e-300))
    return {"loss": float(nll.mean()), "accuracy": float((probs.argmax(1) == y).mean()),
            "sentences": len(y)}  # fmt: skip


def train_classifier(
    cfg: ClassifyTrainConfig | None,
    train: LabelledText,
    out: str | Path,
    valid: LabelledText | None = None,
    pretrained: str | None = None,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
    data: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue) a sentence classifier; see the module doc for the outputs.

    Args:
        cfg: hyperparameters (ignored on resume: the checkpoint's are used).
        train: the labelled training sentences; without ``valid``, a seeded random
            ``cfg.valid_frac`` of them is held out for validation.
        valid: optional labelled file. Training reports validation figures only: a test
            file is scored on purpose, once, by ``rnnkit classify eval`` (which records it).
        pretrained: a word2vec text file initialising the embedding (its dimension sets
            ``cfg.embed``).
        epochs: on resume, a new total number of epochs.
        max_steps: stop after this many steps in this call (for tests), as Ctrl-C does.
        data: where the data came from (JSON-able), kept in the checkpoint.
        callbacks: hooks after every step and epoch (:mod:`rnnkit.train.callbacks`).
        inputs: the data settings (:class:`ClassifyData`), written with ``cfg`` to
            ``OUT/config.toml``.
    """
    out = Path(out)
    ck = start_run(out, resume, KIND_CLASSIFIER)
    if ck is not None:
        cfg = ClassifyTrainConfig.from_dict(ck.config["train"])
    if cfg is None:
        raise ValueError("train_classifier: cfg is required for a new run")
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if valid is None:
        split_seed = cfg.seed if cfg.valid_seed is None else cfg.valid_seed
        train, valid = split_valid(train, cfg.valid_frac, split_seed, cfg.valid_dedup)
    if ck is not None:
        vocab = Vocab.from_json(ck.vocab["words"])
        labels = list(ck.vocab["labels"])
    else:
        vocab = build_word_vocab(train.sentences, cfg.min_count, cfg.max_vocab)
        labels = sorted(set(train.labels))
        if len(labels) < 2:
            raise RnnkitError(f"{train.path}: needs at least two distinct labels, got {labels}")
        if pretrained:
            cfg = replace(cfg, embed=word2vec_dim(pretrained))
            if cfg.pretrained_extend:
                n = len(vocab)
                vocab = extend_vocab(vocab, read_word2vec_words(pretrained))
                echo(f"vocabulary: {n:,} training words + {len(vocab) - n:,} words of {pretrained}")
        elif cfg.pretrained_extend or cfg.freeze_embed:
            flag = "--pretrained-extend" if cfg.pretrained_extend else "--freeze-embed"
            raise RnnkitError(f"{flag} needs --pretrained (a word2vec text file)")
    model = SequenceClassifier(cfg.model_config(len(vocab), len(labels)), seed=cfg.seed)
    if ck is None:
        _load_pretrained(model, pretrained, vocab, echo)
    clf = Classification(model, vocab, labels, cfg)
    seqs = [encode_words(vocab, s) for s in train.sentences]
    y = _label_ids(train, labels)
    _label_ids(valid, labels)  # unknown validation labels: an error, before training
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    singleton = _singletons(vocab, train.sentences)
    unk = vocab.stoi[UNK]

    def batch(idx: Array, training: bool) -> tuple[Any, Any]:
        ids, lens = pad_batch([seqs[i] for i in idx])
        if training and cfg.unk_replace > 0:
            ids = replace_singletons(ids, singleton, cfg.unk_replace, unk, model.rng)
        return (ids, lens), y[idx]

    def loss(inputs: Any, targets: Any, training: bool) -> tuple[float, Any]:
        value, _, cache = model.forward(inputs[0], inputs[1], targets, training)
        return value, cache

    def evaluate() -> dict[str, float]:
        figs = evaluate_classifier(clf, valid)
        return {"loss": figs["loss"], "accuracy": figs["accuracy"]}

    task = Task(
        kind=KIND_CLASSIFIER, model=model, lengths=lengths, batch=batch, loss=loss,
        evaluate=evaluate, select="accuracy", counts=np.ones(len(seqs)),  # a mean over sentences
        config={"model": model.config.to_dict(), "train": asdict(cfg), "data": data or {}},
        vocab={"words": vocab.to_json(), "labels": labels},
        describe=(f"rnnkit classify: {'bi' if cfg.bidirectional else ''}{cfg.cell.upper()} "
                  f"{cfg.layers}x{cfg.hidden}, {cfg.pooling} pooling, vocabulary {len(vocab):,}, "
                  f"{len(labels)} classes, {model.num_parameters():,} parameters; "
                  f"{len(seqs):,} training / {len(valid):,} validation sentences"),
        command="classify train", settings=None if inputs is None else {**inputs, **asdict(cfg)},
    )  # fmt: skip
    summary = fit(task, cfg, out, ck, progress, max_steps, echo, callbacks)

    def report(part: str, s: dict[str, Any]) -> None:
        echo(f"{part} (best epoch {summary['best_epoch']}): accuracy {100 * s['accuracy']:.2f}% "
             f"({s['sentences']} sentences), loss {s['loss']:.4f}")  # fmt: skip

    score_best(summary, out, load_classifier, evaluate_classifier, {"valid": valid}, report)
    return summary


def load_classifier(path: str | Path) -> Classification:
    """Load a trained classifier from a run folder (``best/`` preferred) or a checkpoint."""
    model, cfg, (vocab, labels), _ = load_run(
        path, KIND_CLASSIFIER, ClassifierConfig, ClassifyTrainConfig, SequenceClassifier,
        lambda v: (Vocab.from_json(v["words"]), [str(x) for x in v["labels"]]),
    )  # fmt: skip
    return Classification(model, vocab, labels, cfg)


# --- tagging ---------------------------------------------------------------------------------


@dataclass
class Tagging:
    """A loaded tagger with its vocabularies, tag set and training settings."""

    model: SequenceTagger
    vocab: Vocab
    chars: Vocab | None
    tags: list[str]
    cfg: TagTrainConfig

    @property
    def chunked(self) -> bool:
        """True when the tag set is chunk tags (O, B-X, I-X ...): span F1 applies."""
        return is_chunk_tagset(self.tags)

    def word_ids(self, words: Sequence[str]) -> Array:
        return encode_words(self.vocab, [normalize_word(w, self.cfg.lower, self.cfg.zero_digits)
                                         for w in words])  # fmt: skip


def _normalize_tags(corpus: TaggedCorpus, to_iob2: bool) -> list[list[str]]:
    assert corpus.tags is not None
    if to_iob2 and is_chunk_tagset([t for s in corpus.tags for t in s]):
        return [iob1_to_iob2(s) for s in corpus.tags]
    return corpus.tags


def tag_sentences(tg: Tagging, words: Sequence[Sequence[str]], batch_size: int = 128
                  ) -> list[list[str]]:  # fmt: skip
    """Predicted tags of token lists; an empty sentence gets an empty tag list."""
    seqs = [tg.word_ids(s) for s in words]
    out: list[list[str]] = [[] for _ in words]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    nonempty = np.flatnonzero(lengths > 0)
    for idx in sorted_batches(lengths[nonempty], batch_size):
        rows = nonempty[idx]
        batch = make_tag_batch([words[i] for i in rows], [seqs[i] for i in rows], tg.chars)
        pred = tg.model.predict(batch)
        for b, i in enumerate(rows):
            out[i] = [tg.tags[k] for k in pred[b, : lengths[i]]]
    return out


def evaluate_tagger(tg: Tagging, corpus: TaggedCorpus) -> dict[str, Any]:
    """Token accuracy (and, for chunk tag sets, span precision/recall/F1 with conlleval
    semantics) of the predictions against the corpus's tags.

    Gold tags outside the model's tag set cannot be predicted: they count as errors and are
    reported under ``unknown_tags`` (tag -> count).
    """
    gold = _normalize_tags(corpus, tg.cfg.iob2 and tg.chunked)
    pred = tag_sentences(tg, corpus.words)
    known = set(tg.tags)
    unknown = Counter(t for s in gold for t in s if t not in known)
    figs: dict[str, Any] = {"accuracy": tag_accuracy(gold, pred), "sentences": len(gold),
                            "tokens": sum(map(len, gold))}  # fmt: skip
    if tg.chunked:
        s = span_f1(gold, pred)
        figs.update(precision=s["precision"], recall=s["recall"], f1=s["f1"],
                    per_type={t: round(v["f1"], 6) for t, v in s["per_type"].items()})  # fmt: skip
    if unknown:
        figs["unknown_tags"] = dict(unknown)
    return figs


def train_tagger(
    cfg: TagTrainConfig | None,
    train: TaggedCorpus,
    out: str | Path,
    valid: TaggedCorpus | None = None,
    pretrained: str | None = None,
    resume: bool = False,
    epochs: int | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
    data: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue) a sequence tagger; arguments as :func:`train_classifier`
    (without ``valid`` there is no validation: ``best/`` is the last epoch; ``inputs``:
    :class:`TagData`'s settings)."""
    out = Path(out)
    ck = start_run(out, resume, KIND_TAGGER)
    if ck is not None:
        cfg = TagTrainConfig.from_dict(ck.config["train"])
    if cfg is None:
        raise ValueError("train_tagger: cfg is required for a new run")
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    gold = _normalize_tags(train, cfg.iob2)
    norm = [[normalize_word(w, cfg.lower, cfg.zero_digits) for w in s] for s in train.words]
    if ck is not None:
        vocab = Vocab.from_json(ck.vocab["words"])
        chars = Vocab.from_json(ck.vocab["chars"]) if ck.vocab.get("chars") else None
        tags = list(ck.vocab["tags"])
    else:
        vocab = build_word_vocab(norm, cfg.min_count, cfg.max_vocab)
        chars = build_char_vocab(train.words) if cfg.chars else None
        tags = sorted({t for s in gold for t in s})
        if pretrained:
            cfg = replace(cfg, embed=word2vec_dim(pretrained))
    model = SequenceTagger(cfg.model_config(len(vocab), len(tags), len(chars) if chars else 0),
                           seed=cfg.seed)  # fmt: skip
    if ck is None:
        _load_pretrained(model, pretrained, vocab, echo)
    tg = Tagging(model, vocab, chars, tags, cfg)
    tag_index = {t: i for i, t in enumerate(tags)}
    seqs = [encode_words(vocab, s) for s in norm]
    try:
        y = [np.array([tag_index[t] for t in s], dtype=np.int64) for s in gold]
    except KeyError as e:
        raise RnnkitError(
            f"{train.path}: tag {e.args[0]!r} is not in the checkpoint's tag set "
            "(is this the training file of the run?)"
        ) from None
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    singleton = _singletons(vocab, norm)
    unk = vocab.stoi[UNK]

    def batch(idx: Array, training: bool) -> tuple[Any, Any]:
        ids = [seqs[i] for i in idx]
        if training and cfg.unk_replace > 0:
            ids = [replace_singletons(s, singleton, cfg.unk_replace, unk, model.rng) for s in ids]
        b = make_tag_batch([train.words[i] for i in idx], ids, chars)
        targets = np.zeros(b.ids.shape, dtype=np.int64)
        for r, i in enumerate(idx):
            targets[r, : len(y[i])] = y[i]
        return b, targets

    def loss(inputs: Any, targets: Any, training: bool) -> tuple[float, Any]:
        value, _, cache = model.forward(inputs, targets, training)
        return value, cache

    def evaluate() -> dict[str, float]:
        assert valid is not None
        figs = evaluate_tagger(tg, valid)
        keys = ("accuracy", "precision", "recall", "f1") if tg.chunked else ("accuracy",)
        return {k: figs[k] for k in keys}

    task = Task(
        kind=KIND_TAGGER, model=model, lengths=lengths, batch=batch, loss=loss,
        evaluate=evaluate if valid is not None else None, counts=lengths,  # over tokens
        select="f1" if tg.chunked else "accuracy",
        config={"model": model.config.to_dict(), "train": asdict(cfg), "data": data or {}},
        vocab={"words": vocab.to_json(), "chars": chars.to_json() if chars else None,
               "tags": tags},
        describe=(f"rnnkit tag: {cfg.layers}-layer bi{cfg.cell.upper()} x{cfg.hidden}"
                  f"{f' + char BiLSTM x{cfg.char_hidden}' if chars else ''}, vocabulary "
                  f"{len(vocab):,} words{f', {len(chars)} characters' if chars else ''}, "
                  f"{len(tags)} tags, {model.num_parameters():,} parameters; {len(seqs):,} "
                  f"training sentences ({int(lengths.sum()):,} tokens)"),
        command="tag train", settings=None if inputs is None else {**inputs, **asdict(cfg)},
    )  # fmt: skip
    summary = fit(task, cfg, out, ck, progress, max_steps, echo, callbacks)

    def report(part: str, s: dict[str, Any]) -> None:
        line = f"{part}: accuracy {100 * s['accuracy']:.2f}% ({s['tokens']} tokens)"
        if "f1" in s:
            line += (f", span P/R/F1 {100 * s['precision']:.2f} / "
                     f"{100 * s['recall']:.2f} / {100 * s['f1']:.2f}")  # fmt: skip
        echo(line)

    score_best(summary, out, load_tagger, evaluate_tagger, {"valid": valid}, report)
    return summary


def load_tagger(path: str | Path) -> Tagging:
    """Load a trained tagger from a run folder (``best/`` preferred) or a checkpoint."""
    model, cfg, (vocab, chars, tags), _ = load_run(
        path, KIND_TAGGER, TaggerConfig, TagTrainConfig, SequenceTagger,
        lambda v: (Vocab.from_json(v["words"]),
                   Vocab.from_json(v["chars"]) if v.get("chars") else None,
                   [str(t) for t in v["tags"]]),
    )  # fmt: skip
    return Tagging(model, vocab, chars, tags, cfg)


def _file_run(settings: Mapping[str, Any], data: type, config: type, kind: str,
              out: str | Path, resume: bool, where: str, command: str,
              ) -> tuple[dict[str, Any], dict[str, Any], Any, dict[str, Any]]:  # fmt: skip
    """The settings of a one-training-file command: ``(data settings, the others as given,
    the new run's config or None, the checkpoint's training settings or {})``."""
    s = check_settings(settings, [data, config], where, command=command)
    inputs, given = split_settings(s, data)
    if resume:
        check_resume(given, ("pretrained",) if inputs["pretrained"] else ())
        inputs, saved = resume_inputs(out, kind, inputs, ("train", "valid"))
        if not inputs["train"]:
            raise RnnkitError(f"{out}: the checkpoint does not name its training file; give "
                              "TRAIN")  # fmt: skip
        return inputs, given, None, saved
    if not inputs["train"]:
        raise RnnkitError(f"{where}: train: missing the training file")
    return inputs, given, config(**given), {}


def run_classifier(
    settings: Mapping[str, Any], out: str | Path, *, resume: bool = False, progress: bool = True,
    max_steps: int | None = None, echo: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (), where: str = "settings",
) -> dict[str, Any]:  # fmt: skip
    """``rnnkit classify train`` as a function: settings and arguments as
    :func:`rnnkit.recipes.lm.run_lm`'s, the settings being the fields of
    :class:`ClassifyData` and :class:`ClassifyTrainConfig`."""
    inputs, given, cfg, saved = _file_run(settings, ClassifyData, ClassifyTrainConfig,
                                          KIND_CLASSIFIER, out, resume, where,
                                          "rnnkit classify train")  # fmt: skip
    lower = cfg.lower if cfg is not None else bool(saved.get("lower", False))
    enc, read = inputs["encoding"], read_labelled_tsv
    return train_classifier(
        cfg, read(inputs["train"], lower, enc), out,
        valid=read(inputs["valid"], lower, enc) if inputs["valid"] else None,
        pretrained=inputs["pretrained"], resume=resume, epochs=given.get("epochs"),
        progress=progress, max_steps=max_steps, echo=echo, data=inputs, callbacks=callbacks,
        inputs=inputs,
    )  # fmt: skip


def run_tagger(
    settings: Mapping[str, Any], out: str | Path, *, resume: bool = False, progress: bool = True,
    max_steps: int | None = None, echo: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (), where: str = "settings",
) -> dict[str, Any]:  # fmt: skip
    """``rnnkit tag train`` as a function: settings and arguments as
    :func:`rnnkit.recipes.lm.run_lm`'s, the settings being the fields of :class:`TagData`
    and :class:`TagTrainConfig`."""
    inputs, given, cfg, _ = _file_run(settings, TagData, TagTrainConfig, KIND_TAGGER, out,
                                      resume, where, "rnnkit tag train")  # fmt: skip

    def read(path: str | None) -> TaggedCorpus | None:
        if not path:
            return None
        return read_tagged(path, inputs["format"], inputs["tag_column"], need_tags=True,
                           encoding=inputs["encoding"])  # fmt: skip

    train = read(inputs["train"])
    assert train is not None
    return train_tagger(
        cfg, train, out, valid=read(inputs["valid"]),
        pretrained=inputs["pretrained"], resume=resume, epochs=given.get("epochs"),
        progress=progress, max_steps=max_steps, echo=echo, data=inputs, callbacks=callbacks,
        inputs=inputs,
    )  # fmt: skip
