"""Training word vectors as a run that survives a kill: the loop behind ``rnnkit embed train``.

The vectors go to the file ``OUT``; while training, the folder ``OUT.train/`` beside it holds
the run's lock (:mod:`rnnkit.train.lock`) and its checkpoint (``OUT.train/checkpoint``:
the vectors and output vectors, the AdaGrad sums for GloVe, the position, the settings and
a digest of the vocabulary). word2vec saves after a block of chunks, GloVe after an epoch,
as often as ``checkpoint_every`` says (blocks/epochs, or a time such as ``10m``). Ctrl-C or
SIGTERM saves and stops; ``resume=True`` continues from the checkpoint exactly (at one
thread the vectors are the same bits as an uninterrupted run's). Once the vectors are
written the run folder is removed.

What is not checkpointed: counting the corpus (and GloVe's co-occurrence counts), which a
resumed run repeats.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rnnkit.embeddings.glove import GloVe
from rnnkit.embeddings.vectors import KeyedVectors
from rnnkit.embeddings.word2vec import TrainStats, Word2Vec
from rnnkit.io import RnnkitError
from rnnkit.text.corpus import Corpus
from rnnkit.train.checkpoint import (
    DEFAULT_INTERVAL,
    CheckpointSchedule,
    checkpoint_exists,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rnnkit.train.lock import lock_run, release_run_lock
from rnnkit.train.loop import StopFlag

KIND = "embeddings"
METHODS = ("skipgram", "cbow", "glove")

__all__ = ["KIND", "run_folder", "train_embeddings"]


def run_folder(out: str | os.PathLike[str]) -> Path:
    """``OUT.train``: the lock and checkpoint of a run writing the vector file ``OUT``."""
    return Path(f"{out}.train")


def _vocab_digest(words: list[str]) -> str:
    return hashlib.sha256("\n".join(words).encode()).hexdigest()


def train_embeddings(
    corpus_path: str | os.PathLike[str],
    method: str,
    out: str | os.PathLike[str],
    *,
    binary: bool = False,
    lowercase: bool = False,
    resume: bool = False,
    checkpoint_every: int | str = DEFAULT_INTERVAL,
    progress: bool = False,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
    **settings: Any,
) -> tuple[KeyedVectors | None, TrainStats, dict[str, Any]]:
    """Train vectors on ``corpus_path`` and write them to ``out`` (see the module doc).

    Args:
        method: skipgram, cbow or glove; ``settings``: fields of ``Word2VecConfig`` or
            ``GloVeConfig`` (None: the method's default). On resume the checkpoint's method
            and settings are used and ``corpus_path`` must hold the same corpus.
        max_steps: stop after this many blocks (word2vec) or epochs (GloVe) in this call, as
            Ctrl-C does (tests).

    Returns:
        ``(vectors or None when stopped, stats, summary)``; ``summary["interrupted"]`` and
        ``summary.get("signal")`` as for the other train commands.
    """
    folder = run_folder(out)
    lock_run(folder)
    try:
        return _train(corpus_path, method, Path(out), folder, binary, lowercase, resume,
                      checkpoint_every, progress, max_steps, echo, settings)  # fmt: skip
    finally:
        release_run_lock(folder)


def _train(corpus_path: Any, method: str, out: Path, folder: Path, binary: bool,
           lowercase: bool, resume: bool, checkpoint_every: int | str, progress: bool,
           max_steps: int | None, echo: Callable[[str], None], settings: dict[str, Any]
           ) -> tuple[KeyedVectors | None, TrainStats, dict[str, Any]]:  # fmt: skip
    path = folder / "checkpoint"
    ck = None
    if resume:
        ck = load_checkpoint(path, kind=KIND)
        try:
            method, lowercase, binary = (ck.config["method"], bool(ck.config["lowercase"]),
                                         bool(ck.config["binary"]))  # fmt: skip
            settings = dict(ck.config["settings"])
            checkpoint_every = ck.config.get("checkpoint_every", checkpoint_every)
        except (KeyError, TypeError) as e:
            raise RnnkitError(
                f"{path / 'checkpoint.json'}: invalid run description ({e})"
            ) from None
    elif checkpoint_exists(path):
        raise RnnkitError(f"{folder}: holds the checkpoint of an unfinished run of {out}; pass "
                          "--resume to continue it, or delete the folder")  # fmt: skip
    if method not in METHODS:
        raise RnnkitError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    settings = {k: v for k, v in settings.items() if v is not None}
    schedule = CheckpointSchedule(checkpoint_every)
    config = {"method": method, "lowercase": lowercase, "binary": binary,
              "settings": settings, "checkpoint_every": checkpoint_every}  # fmt: skip
    corpus = Corpus.from_file(corpus_path, lowercase=lowercase)
    stopper = StopFlag()
    steps = 0
    stopped = False

    def check_vocab(words: list[str]) -> None:
        if ck is not None and ck.trainer.get("vocab_sha256") != _vocab_digest(words):
            raise RnnkitError(f"{corpus_path}: not the corpus this run was trained on (its "
                              f"vocabulary differs from the one in {path})")  # fmt: skip

    def after(save: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], bool]:
        def hook(position: dict[str, Any]) -> bool:
            nonlocal steps, stopped
            steps += 1
            stop = stopper.stop or (max_steps is not None and steps >= max_steps)
            if stop or schedule.due(steps):
                save(position)
                schedule.saved()
            stopped = stop
            return stop

        return hook

    with stopper.installed():
        if method == "glove":
            for k in ("negative", "hs", "sample"):
                settings.pop(k, None)
            if "alpha" in settings:
                settings["lr"] = settings.pop("alpha")
            config["settings"] = settings
            glove = GloVe(**settings)
            rng = glove.prepare(corpus)
            assert glove.vocab is not None
            check_vocab(glove.vocab.words)
            names = ("W", "Wt", "b", "bt", "GW", "GWt", "Gb", "Gbt")
            start = None
            if ck is not None:
                ck.copy_params_into({n: getattr(glove, n) for n in names})
                set_rng_state(rng, ck.trainer["rng"])
                start = ck.trainer["position"]

            def save_glove(position: dict[str, Any]) -> None:
                trainer = {"position": position, "rng": rng_state(rng),
                           "vocab_sha256": _vocab_digest(glove.vocab.words)}  # fmt: skip
                save_checkpoint(path, kind=KIND, config=config, trainer=trainer,
                                params={n: getattr(glove, n) for n in names})  # fmt: skip

            stats = glove.train(rng, progress, start=start, on_epoch=after(save_glove))
            kv = glove.wv
        else:
            settings.pop("x_max", None)
            model = Word2Vec(method=method, **settings)
            vocab = model.build_vocab(corpus)
            check_vocab(vocab.words)
            names = ("syn0", "syn1neg", "syn1")
            start = None
            if ck is not None:
                ck.copy_params_into({n: getattr(model, n) for n in names})
                start = ck.trainer["position"]

            def save_w2v(position: dict[str, Any]) -> None:
                trainer = {"position": position, "vocab_sha256": _vocab_digest(vocab.words)}
                save_checkpoint(path, kind=KIND, config=config, trainer=trainer,
                                params={n: getattr(model, n) for n in names})  # fmt: skip

            stats = model.train(vocab.encode(corpus), progress, start=start,
                                on_block=after(save_w2v))  # fmt: skip
            kv = model.wv
    summary: dict[str, Any] = {"interrupted": stopper.stop, "complete": not stopped,
                               "steps": steps, "method": method,
                               **stopper.summary()}  # fmt: skip
    if stopped:
        echo(f"stopped: checkpoint saved in {path}; continue with --resume")
        return None, stats, summary
    kv.save_word2vec_format(out, binary=binary)
    # the vectors are written: the run is over (renamed first, so that a kill while deleting
    # leaves no half-deleted checkpoint behind)
    done = folder.with_name(f"{folder.name}.done-{os.getpid()}")
    with contextlib.suppress(OSError):
        os.rename(folder, done)
        shutil.rmtree(done)
    return kv, stats, summary
