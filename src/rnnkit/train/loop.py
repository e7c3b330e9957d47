"""The training loop shared by the task models (classifier, tagger, translation, QA), and
the pieces every loop uses (the language model's included): Ctrl-C handling, progress bars,
run folders (the logs are :mod:`rnnkit.train.logs`, the hooks :mod:`rnnkit.train.callbacks`).

A task hands :func:`fit` a :class:`Task`: its model (``params``/``grads``/``backward``), how
to make a batch from sentence indices, its loss, its validation figures and what to save.
One epoch is one pass over the training items in mini-batches of similar lengths (shuffled,
sorted by length within pools of 50 batches, cut, batches shuffled). Each batch: forward,
backward, optional L2 penalty, global-norm clipping, optimizer step. After each epoch:
validation, the learning-rate schedule, a record in the logs (``metrics.jsonl``,
``metrics.csv``, TensorBoard events; every ``log_every`` steps a training record too, with
the learning rate, the gradient norm, globally and per layer, and the throughput),
``loss.png``, the checkpoint, and a copy of the weights in ``OUT/best`` whenever the
selected validation figure improves. ``OUT/config.toml`` holds the run's resolved settings.
Ctrl-C finishes the current batch, saves a checkpoint and stops; a resumed run continues
exactly (weights, optimizer, schedule, both random generators, the batch order
of the epoch and the position in it). Under ``mpiexec -n N`` every process takes its rows of
each batch (:mod:`rnnkit.train.distributed`; :func:`fit` says how).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError, atomic_write
from rnnkit.train.callbacks import Callback, any_stop
from rnnkit.train.checkpoint import (
    DEFAULT_INTERVAL,
    Checkpoint,
    CheckpointSchedule,
    checkpoint_exists,
    load_checkpoint,
    parse_interval,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rnnkit.train.clip import l2_penalty
from rnnkit.train.distributed import (
    CollectiveError,
    GradientSync,
    failure,
    get_world,
    inject_fault,
    rank_stream,
)
from rnnkit.train.lock import lock_run, run_lock_released
from rnnkit.train.logs import MetricsLog, QuietLog, measure_and_clip
from rnnkit.train.optim import SGD, Adagrad, Adam, Optimizer, RMSProp, StepDecay
from rnnkit.train.runconfig import write_config

Array = np.ndarray
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")

__all__ = [
    "LoopConfig",
    "MetricsLog",
    "StopFlag",
    "Task",
    "epoch_batches",
    "fit",
    "make_optimizer",
    "progress_bar",
    "replace_singletons",
    "run_checkpoint",
    "sorted_batches",
    "start_run",
    "write_summary",
]


# --- run folders, logs, progress, Ctrl-C --------------------------------------------------------


class StopFlag:
    """Turns Ctrl-C (SIGINT) and SIGTERM (what batch schedulers send before they kill a job)
    into a flag that the loop checks between steps; ``signum`` says which came."""

    def __init__(self) -> None:
        self.stop = False
        self.signum: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.stop:  # a second signal: give up at once
                raise KeyboardInterrupt
            self.stop, self.signum = True, signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def summary(self) -> dict[str, Any]:
        """``{"signal": "SIGTERM"}`` (or SIGINT) once a signal stopped the run, else ``{}``."""
        return {"signal": signal.Signals(self.signum).name} if self.signum is not None else {}


def progress_bar(total: int, done: int, epoch: int, epochs: int, enabled: bool,
                 unit: str = "batch") -> Any:  # fmt: skip
    """A tqdm bar on stderr for one epoch (None when disabled)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=f"epoch {epoch}/{epochs}", unit=unit,
                dynamic_ncols=True, leave=False, file=sys.stderr)  # fmt: skip


def start_run(out: Path, resume: bool, kind: str) -> Any:
    """The checkpoint to resume (``resume``), else None; refuses to overwrite a run. First
    takes the run folder's lock (:mod:`rnnkit.train.lock`: a second run into ``out`` stops
    with one line naming the first one's PID); the loop gives it up at its end. Under MPI
    rank 0 locks and reads the run folder and every process gets its answer
    (:mod:`rnnkit.train.distributed`)."""
    world = get_world()
    world.on_root(lambda: lock_run(out))
    if resume:
        return world.load_checkpoint(out / "checkpoint", kind=kind)

    def fresh() -> None:
        if checkpoint_exists(out / "checkpoint"):
            raise RnnkitError(f"{out}: already holds a checkpoint; pass --resume to continue "
                              "it, or choose another --out")  # fmt: skip

    world.on_root(fresh)
    return None


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """``OUT/summary.json``, written atomically."""
    with atomic_write(out / "summary.json") as f:
        json.dump(summary, f, indent=1)


def run_checkpoint(path: str | Path) -> Path:
    """A run folder (its best/ weights, else its checkpoint/) or a checkpoint folder."""
    p = Path(path)
    for sub in ("best", "checkpoint"):
        # a complete checkpoint, or (after a kill between the renames of a save) one beside
        if (p / sub / "checkpoint.json").exists() or (
            not (p / sub).exists() and checkpoint_exists(p / sub)
        ):
            return p / sub
    return p


def load_run(
    path: str | Path,
    kind: str,
    model_config: type[Any],
    train_config: type[Any],
    build: Callable[..., Any],
    read_vocab: Callable[[dict[str, Any]], Any],
) -> tuple[Any, Any, Any, Checkpoint]:
    """Load a trained model from a run folder (``best/`` preferred) or a checkpoint folder.

    The checkpoint's ``config["model"]`` is read by ``model_config.from_dict``,
    ``config["train"]`` by ``train_config.from_dict`` and its vocabularies by ``read_vocab``;
    a missing or malformed entry is one :class:`RnnkitError` naming the file. The model is
    ``build(model_cfg, seed=train_cfg.seed)`` with the saved weights copied in.

    Returns ``(model, train_cfg, vocab, checkpoint)``; ``vocab`` is what ``read_vocab``
    returned.
    """
    ck = load_checkpoint(run_checkpoint(path), kind=kind)
    try:
        model_cfg = model_config.from_dict(ck.config["model"])
        cfg = train_config.from_dict(ck.config["train"])
        vocab = read_vocab(ck.vocab or {})
    except (KeyError, TypeError, ValueError) as e:
        where = ck.path / "checkpoint.json"
        raise RnnkitError(f"{where}: invalid model description ({e})") from None
    model = build(model_cfg, seed=cfg.seed)
    ck.copy_params_into(model.params)
    return model, cfg, vocab, ck


def score_best(
    summary: dict[str, Any],
    out: str | Path,
    load: Callable[[Path], Any],
    evaluate: Callable[[Any, Any], dict[str, Any]],
    parts: dict[str, Any],
    report: Callable[[str, dict[str, Any]], None],
) -> None:
    """After a complete :func:`fit`: score the best epoch's weights and keep the figures.

    ``load(out)`` loads the run's best weights; each of ``parts`` (``{"valid": data,
    "test": data}``, None entries skipped) is scored by ``evaluate(model, data)`` into
    ``summary[part]``; ``OUT/summary.json`` is rewritten and ``report(part, figures)`` tells
    each one. Does nothing for an interrupted run.
    """
    if not summary["complete"] or all(data is None for data in parts.values()):
        return
    out = Path(out)
    world = get_world()

    def score() -> dict[str, Any]:  # rank 0 alone under MPI; the figures go to every process
        best = load(out)
        figures = {name: evaluate(best, data) for name, data in parts.items() if data is not None}
        write_summary(out, {**summary, **figures})
        return figures

    figures = world.on_root(score)
    summary.update(figures)
    if world.root:
        for name, figs in figures.items():
            report(name, figs)


# --- configuration and batches -----------------------------------------------------------------


@dataclass
class LoopConfig:
    """The settings of :func:`fit`, shared by the task configs (classify, tag, mt, qa), which
    subclass it; saved in the checkpoint."""

    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"  # sgd | adagrad | rmsprop | adam
    lr: float = 1e-3
    momentum: float = 0.0  # sgd, rmsprop
    clip_norm: float | None = 5.0  # global L2 norm (torch clip_grad_norm_)
    l2: float = 0.0  # L2 penalty 0.5 * l2 * ||w||^2 on weights (not biases)
    lr_decay: float = 1.0  # multiply lr by this at the end of each epoch from decay_after on
    decay_after: int = 1
    min_count: int = 1  # words seen fewer times in training become <unk>
    max_vocab: int | None = None  # keep the most frequent words
    unk_replace: float = 0.0  # training: a word seen once becomes <unk> with this probability
    lower: bool = False  # lowercase words (before the vocabulary lookup)
    seed: int = 0
    log_every: int = 50  # steps between lines in metrics.jsonl
    # mid-epoch checkpoints: every N steps (an integer) or every so long ("30s", "10m", "1h");
    # 0: at the end of epochs only
    checkpoint_every: int | str = DEFAULT_INTERVAL

    def __post_init__(self) -> None:
        parse_interval(self.checkpoint_every)
        for name in ("epochs", "batch_size", "log_every", "min_count", "decay_after"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise RnnkitError(f"--{name.replace('_', '-')}: must be a positive integer, "
                                  f"got {v!r}")  # fmt: skip
        if not self.lr > 0:
            raise RnnkitError(f"--lr: must be positive, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise RnnkitError(f"--optimizer: expected one of {list(OPTIMIZERS)}, "
                              f"got {self.optimizer!r}")  # fmt: skip
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise RnnkitError(f"--clip-norm: must be positive, got {self.clip_norm}")
        if not 0.0 <= self.unk_replace < 1.0:
            raise RnnkitError(f"--unk-replace: must lie in [0, 1), got {self.unk_replace}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise RnnkitError(f"--lr-decay: must lie in (0, 1], got {self.lr_decay}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def make_optimizer(name: str, params: dict[str, Array], grads: dict[str, Array], lr: float,
                   momentum: float = 0.0, rmsprop_alpha: float = 0.99) -> Optimizer:  # fmt: skip
    """The optimizer called ``name`` (one of :data:`OPTIMIZERS`) over ``params``/``grads``;
    ``momentum`` applies to SGD and RMSProp, ``rmsprop_alpha`` to RMSProp."""
    if name == "sgd":
        return SGD(params, grads, lr=lr, momentum=momentum)
    if name == "adagrad":
        return Adagrad(params, grads, lr=lr)
    if name == "rmsprop":
        return RMSProp(params, grads, lr=lr, alpha=rmsprop_alpha, momentum=momentum)
    if name == "adam":
        return Adam(params, grads, lr=lr)
    raise RnnkitError(f"--optimizer: expected one of {list(OPTIMIZERS)}, got {name!r}")


def epoch_batches(lengths: Array, batch_size: int, rng: np.random.Generator) -> list[Array]:
    """Index batches of one epoch: shuffle, sort by length within pools of 50 batches, cut,
    shuffle the batches. Every index appears exactly once.

    >>> b = epoch_batches(np.array([5, 1, 3, 2, 4]), 2, np.random.default_rng(0))
    >>> sorted(np.concatenate(b).tolist()), [len(x) for x in b] in ([2, 2, 1], [2, 1, 2], [1, 2, 2])
    ([0, 1, 2, 3, 4], True)
    """
    perm = rng.permutation(len(lengths))
    pool = 50 * batch_size
    batches = []
    for i in range(0, len(perm), pool):
        chunk = perm[i : i + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def sorted_batches(lengths: Array, batch_size: int) -> list[Array]:
    """Index batches in order of length (for evaluation: the least padding)."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def replace_singletons(ids: Array, singleton: Array, p: float, unk: int,
                       rng: np.random.Generator) -> Array:  # fmt: skip
    """Lample et al. 2016: a word seen once in training becomes <unk> with probability p,
    so that the <unk> embedding is trained."""
    hit = singleton[ids] & (rng.random(ids.shape) < p)
    return np.where(hit, unk, ids)


# --- the shared loop -------------------------------------------------------------------------


@dataclass
class Task:
    """What the loop needs from a task: the model, batching, evaluation and what to save."""

    kind: str
    model: Any
    lengths: Array  # (N,) training sentence lengths
    batch: Callable[[Array, bool], tuple[Any, Any]]  # indices, training -> (inputs, targets)
    loss: Callable[[Any, Any, bool], tuple[float, Any]]  # inputs, targets -> (loss, cache)
    evaluate: Callable[[], dict[str, float]] | None  # validation figures
    select: str  # the validation figure to maximise
    config: dict[str, Any]  # saved as the checkpoint's config
    vocab: dict[str, Any]  # saved as the checkpoint's vocabulary
    describe: str
    command: str = ""  # e.g. "classify train": names the command in OUT/config.toml
    settings: dict[str, Any] | None = None  # the resolved settings, written to OUT/config.toml
    # per training item, the number of terms its share of the loss averages over (1: a mean
    # over sentences; its tokens: a mean over tokens); lets several processes split a batch
    # (rnnkit.train.distributed). None: the task trains on one process only.
    counts: Array | None = None


def fit(
    task: Task,
    cfg: LoopConfig,
    out: Path,
    ck: Any,
    progress: bool,
    max_steps: int | None,
    echo: Callable[[str], None],
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train ``task.model`` for ``cfg.epochs`` epochs (see the module doc); returns a summary.

    Args:
        ck: the checkpoint to continue (from :func:`start_run`), or None for a new run.
        progress: show a progress bar per epoch.
        max_steps: stop after this many steps in this call (tests), as Ctrl-C does.
        echo: where the per-epoch lines go.
        callbacks: hooks after every step and epoch (:mod:`rnnkit.train.callbacks`).

    Under ``mpiexec -n N`` (:mod:`rnnkit.train.distributed`) each process takes its rows of
    every batch of ``cfg.batch_size`` (the global batch), the gradients are summed over the
    processes weighted by ``task.counts`` before the penalty and clipping, rank 0 alone
    validates, writes and prints, and every process runs the callbacks with the same records
    (rank 0's throughput aside).

    Returns:
        ``steps``, ``epochs_completed``, ``complete`` (False when stopped before the end:
        Ctrl-C, ``max_steps``, a step callback), ``best_epoch``, ``interrupted`` (Ctrl-C),
        and ``stopped_early`` (the epoch after which an epoch callback ended the run; None).
    """
    world = get_world()
    echo = world.echo(echo)
    if world.size > 1 and task.counts is None:
        raise CollectiveError(f"rnnkit {task.command or task.kind} trains on one process; it "
                              f"was started on {world.size} (mpiexec -n {world.size})",
                              report=world.root)  # fmt: skip
    if cfg.batch_size < world.size:
        raise CollectiveError(f"--batch-size {cfg.batch_size} is the global batch, split over "
                              f"{world.size} processes: give at least {world.size}",
                              report=world.root)  # fmt: skip
    model = task.model
    # a parameter without a gradient buffer is frozen: no update, penalty or clipping
    trainable = {n: p for n, p in model.params.items() if n in model.grads}
    opt = make_optimizer(cfg.optimizer, trainable, model.grads, cfg.lr, cfg.momentum)
    sched = StepDecay(opt, factor=cfg.lr_decay, after_epoch=cfg.decay_after)
    data_rng = np.random.default_rng([cfg.seed, 1])  # batch order; the model's rng: dropout
    epoch_start = rng_state(data_rng)
    epoch = position = step = 0
    best, best_epoch = -math.inf, 0
    loss_sum, loss_n = 0.0, 0
    streams = _rank_streams(model.rng, cfg.seed, world.size)  # each process's dropout stream
    if ck is not None:
        ck.copy_params_into(model.params)
        ck.load_optimizer_into(opt)
        t = ck.trainer
        sched.load_state_dict(t["schedule"])
        streams = _resumed_streams(t, streams, cfg.seed, ck.path, world.root)
        epoch_start = t["epoch_rng"]
        epoch, position, step = int(t["epoch"]), int(t["position"]), int(t["step"])
        best = -math.inf if t["best"] is None else float(t["best"])
        best_epoch = int(t["best_epoch"])
        loss_sum, loss_n = float(t["loss_sum"]), int(t["loss_n"])
    else:
        world.bcast_arrays(model.params)  # rank 0's initial weights on every process
    set_rng_state(model.rng, streams[world.rank])
    if world.root:
        out.mkdir(parents=True, exist_ok=True)
        if task.settings is not None:
            write_config(out, task.command, task.settings)
        logger: MetricsLog = MetricsLog(out, step if ck is not None else None, echo=echo,
                                        log_every=cfg.log_every)  # fmt: skip
    else:
        logger = QuietLog(cfg.log_every)
    sync = GradientSync(world, model.grads, scalars=3) if world.size > 1 else None

    def save(path: Path, with_state: bool = True) -> None:  # every process calls it
        trainer = {
            "epoch": epoch, "position": position, "step": step, "epoch_rng": epoch_start,
            "rng": rng_state(model.rng), "schedule": sched.state_dict(),
            "best": best if math.isfinite(best) else None,
            "best_epoch": best_epoch, "loss_sum": loss_sum, "loss_n": loss_n,
        }  # fmt: skip
        if world.size > 1:  # every process's dropout stream, for an exact resume
            trainer.update(world_size=world.size, rank_rngs=world.gather_json(trainer["rng"]))
        if world.root:
            save_checkpoint(path, kind=task.kind, params=model.params, config=task.config,
                            vocab=task.vocab, trainer=trainer,
                            optimizer=opt.state_dict() if with_state else None)  # fmt: skip

    echo(task.describe)
    stopper = StopFlag()
    stopped = halt = interrupted = False
    stopped_early = None
    steps_this_call = 0
    schedule = CheckpointSchedule(cfg.checkpoint_every)
    share = world.bcast_json if world.size > 1 else None  # rank 0's clock decides
    with stopper.installed(), contextlib.closing(logger), run_lock_released(out):
        while epoch < cfg.epochs and not stopped:
            set_rng_state(data_rng, epoch_start)
            batches = epoch_batches(task.lengths, cfg.batch_size, data_rng)
            bar = progress_bar(len(batches), position, epoch + 1, cfg.epochs,
                               progress and world.root)  # fmt: skip
            t0 = time.perf_counter()
            for k in range(position, len(batches)):
                logger.meter.start()
                if sync is None:
                    inject_fault(world, step + 1)
                    loss = _local_step(task, batches[k], step + 1)
                    interrupted = stopper.stop
                else:  # this process's rows; the gradient of the global batch's mean loss
                    mine = batches[k][world.share(len(batches[k]))]
                    assert task.counts is not None
                    weight = float(task.counts[mine].sum()) / float(task.counts[batches[k]].sum())
                    loss, error = 0.0, None
                    try:
                        inject_fault(world, step + 1)
                        model.zero_grad()
                        if len(mine):
                            loss = _local_step(task, mine, None)
                    except Exception as e:  # every process learns of it in the Allreduce
                        error = failure(e)
                    loss, stops, failed = sync(weight, [weight * loss, float(stopper.stop),
                                                        float(error is not None)])  # fmt: skip
                    world.check_step(failed, error, step + 1)
                    interrupted = stops > 0
                    if not math.isfinite(loss):  # the same on every process: all stop here
                        raise CollectiveError(_diverged(step + 1, loss), report=world.root)
                if cfg.l2 > 0:
                    l2_penalty(trainable, model.grads, cfg.l2)
                logged = logger.due(step + 1)
                gnorm, groups = measure_and_clip(model.grads, cfg.clip_norm, logged)
                opt.step()
                busy = sync.take_seconds() if sync is not None else None
                logger.meter.stop(busy, examples=len(batches[k]),
                                  tokens=float(task.lengths[batches[k]].sum()))  # fmt: skip
                step += 1
                steps_this_call += 1
                position = k + 1
                loss_sum += loss
                loss_n += 1
                rec = {"type": "train", "step": step, "epoch": epoch + 1, "loss": loss,
                       "grad_norm": gnorm, "lr": opt.lr}  # fmt: skip
                if logged:
                    logger.log_step(rec, groups)
                if any_stop(callbacks, "on_step", rec):
                    halt = True
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_sum / loss_n:.4f}")
                    bar.update(1)
                if schedule.due(step, share):
                    save(out / "checkpoint")
                    schedule.saved()
                if interrupted or (max_steps is not None and steps_this_call >= max_steps):
                    halt = True
                if halt:
                    break
            if bar is not None:
                bar.close()
            if position < len(batches):  # interrupted mid-epoch
                stopped = True
                break
            epoch += 1

            record: dict[str, Any] = {
                "type": "epoch", "step": step, "epoch": epoch, "lr": opt.lr,
                "train_loss": loss_sum / max(loss_n, 1), "seconds": time.perf_counter() - t0,
            }  # fmt: skip
            # rank 0 validates; its record goes to every process
            record = world.on_root(functools.partial(_validated, record, task.evaluate))
            msg = f"epoch {epoch}/{cfg.epochs}: train loss {record['train_loss']:.4f}"
            if task.evaluate is not None:
                figs = {k[len("valid_") :]: v for k, v in record.items() if k.startswith("valid_")}
                msg += ", valid " + ", ".join(f"{k} {v:.4f}" for k, v in figs.items())
                if figs[task.select] > best:
                    best, best_epoch = figs[task.select], epoch
                    msg += " (best)"
            else:  # no validation data: the latest epoch counts as the best
                best_epoch = epoch
            sched.step()
            position, loss_sum, loss_n = 0, 0.0, 0
            epoch_start = rng_state(data_rng)
            logger.log(record)
            logger.plot(out)
            if best_epoch == epoch:
                save(out / "best", with_state=False)
            save(out / "checkpoint")
            schedule.saved()
            echo(msg)
            early = any_stop(callbacks, "on_epoch", record)
            if halt:
                stopped = epoch < cfg.epochs
                break
            if early and epoch < cfg.epochs:
                stopped_early = epoch
                echo(f"stopped early after epoch {epoch} (a callback asked)")
                break
        if stopped:
            save(out / "checkpoint")
            echo(f"stopped at step {step}: checkpoint saved in {out / 'checkpoint'}; "
                 "continue with --resume")  # fmt: skip
    return {"steps": step, "epochs_completed": epoch, "complete": not stopped,
            "best_epoch": best_epoch,
            "interrupted": interrupted if world.size > 1 else stopper.stop,
            "stopped_early": stopped_early, **stopper.summary()}  # fmt: skip


def _validated(record: dict[str, Any], evaluate: Callable[[], dict[str, float]] | None
               ) -> dict[str, Any]:  # fmt: skip
    """An epoch's record with the validation figures (``valid_*``) added."""
    if evaluate is not None:
        record.update({f"valid_{k}": v for k, v in evaluate().items()})
    return record


def _diverged(step: int, loss: float) -> str:
    return f"training diverged at step {step} (loss {loss}); lower --lr"


def _local_step(task: Task, idx: Array, step: int | None) -> float:
    """Forward and backward on the items ``idx``: the model's gradients become those of
    their mean loss; returns the loss. With ``step``, a non-finite loss stops training
    before backward (a data-parallel step checks the global loss instead: None)."""
    inputs, targets = task.batch(idx, True)
    loss, cache = task.loss(inputs, targets, True)
    if step is not None and not math.isfinite(loss):
        raise RnnkitError(_diverged(step, loss))
    task.model.zero_grad()
    task.model.backward(cache)
    return loss


def _rank_streams(rng: np.random.Generator, seed: int, world_size: int) -> list[dict[str, Any]]:
    """The state each process's dropout stream starts from: the model's own for rank 0 (the
    one a one-process run uses), :func:`~rnnkit.train.distributed.rank_stream` for the
    others."""
    return [rng_state(rng)] + [rng_state(rank_stream(seed, r)) for r in range(1, world_size)]


def _resumed_streams(trainer: dict[str, Any], fresh: list[dict[str, Any]], seed: int,
                     where: Path, report: bool) -> list[dict[str, Any]]:  # fmt: skip
    """Each process's dropout stream from a checkpoint's trainer state (``fresh``: the new
    run's untouched streams, one per process). On as many processes as saved it, every
    process continues its own; on another number only if no process has drawn from its
    stream yet (no dropout, no --unk-replace): streams cannot be split or merged, so that is
    one error naming both numbers."""
    saved = list(trainer.get("rank_rngs") or [trainer["rng"]])
    n = int(trainer.get("world_size", 1))
    if n == len(fresh):
        return saved
    untouched = [fresh[0]] + [rng_state(rank_stream(seed, r)) for r in range(1, n)]
    if json.loads(json.dumps(saved)) != json.loads(json.dumps(untouched)):
        how = "without mpiexec" if n == 1 else f"with mpiexec -n {n}"
        raise CollectiveError(f"{where}: this run was trained on {n} process(es), each "
                              f"drawing its own dropout masks, so it cannot continue exactly "
                              f"on {len(fresh)}: resume it {how}", report=report)  # fmt: skip
    return fresh
