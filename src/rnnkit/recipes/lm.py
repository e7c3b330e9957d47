"""Training and evaluating recurrent language models: the loop behind ``rnnkit lm``.

Truncated BPTT (TBPTT(k, k)): the corpus is B parallel streams cut into windows of k steps;
the hidden state is carried from window to window without gradient and reset at the start of
each epoch. Each window: forward, backward, clip, optimizer step. After each epoch: a
validation pass, the learning-rate schedule, a line in ``metrics.jsonl``, the loss curve
``loss.png`` and a checkpoint. Ctrl-C finishes the current step, saves a checkpoint and
stops; ``resume=True`` continues from it exactly (weights, optimizer, RNG, data position,
carried state), so the losses match those of an uninterrupted run.

Under ``mpiexec -n N`` (:mod:`rnnkit.train.distributed`) each process runs B/N of the B
streams (``--batch-size`` stays B) with the one-process run's dropout masks, the gradients are
summed over the processes before clipping, and rank 0 alone writes: the same run as on one
process, to rounding; a checkpoint resumes on any number of processes up to B.

Output folder layout::

    OUT/checkpoint/    the latest checkpoint (see rnnkit.train.checkpoint)
    OUT/config.toml    the resolved settings (LMData + LMTrainConfig): --config re-runs it
    OUT/metrics.jsonl  one JSON object per logged step and per epoch (rnnkit.train.logs),
    OUT/metrics.csv    the same as columns, and TensorBoard event files (tensorboardX)
    OUT/loss.png       training and validation loss
    OUT/summary.json   final figures (validation loss, perplexity, bits per character of
                       the best validation epoch, kept in OUT/best)

:func:`run_lm` is the command as a function (flat settings, as ``--config`` files hold them).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError, atomic_write, read_text
from rnnkit.models.lm import LanguageModel, LMConfig, bits_per_char, perplexity
from rnnkit.text.vocab import Vocab
from rnnkit.train.callbacks import Callback, any_stop
from rnnkit.train.checkpoint import (
    DEFAULT_INTERVAL,
    CheckpointSchedule,
    load_checkpoint,
    parse_interval,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rnnkit.train.clip import clip_grad_value, l2_penalty
from rnnkit.train.data import TBPTTStream
from rnnkit.train.distributed import (
    CollectiveError,
    GradientSync,
    ShardedRandom,
    failure,
    get_world,
    inject_fault,
)
from rnnkit.train.lock import run_lock_released
from rnnkit.train.logs import MetricsLog, QuietLog, measure_and_clip
from rnnkit.train.loop import (
    OPTIMIZERS,
    StopFlag,
    load_run,
    make_optimizer,
    progress_bar,
    start_run,
)
from rnnkit.train.optim import StepDecay
from rnnkit.train.runconfig import check_resume, check_settings, split_settings, write_config

KIND = "lm"


@dataclass
class LMTrainConfig:
    """Hyperparameters of a language-model run; saved in the checkpoint."""

    level: str = "char"  # char | word
    cell: str = "lstm"  # rnn | lstm | gru
    embed: int = 128  # embedding size
    hidden: int = 128  # hidden size per layer
    layers: int = 2
    dropout: float = 0.0  # Zaremba et al.: non-recurrent connections only
    tie_weights: bool = False
    init_range: float | None = 0.08  # U(-a, a) for every weight; None: PyTorch's defaults
    bptt: int = 50  # k, the window length of truncated BPTT
    batch_size: int = 50  # B parallel streams
    epochs: int = 3
    optimizer: str = "rmsprop"  # sgd | adagrad | rmsprop | adam
    lr: float = 2e-3
    momentum: float = 0.0  # sgd, rmsprop
    rmsprop_alpha: float = 0.95  # char-rnn's decay rate
    clip_norm: float | None = None  # global L2 norm (torch clip_grad_norm_)
    clip_value: float | None = 5.0  # element-wise (char-rnn)
    l2: float = 0.0  # L2 penalty 0.5 * l2 * ||w||^2 on weights (not biases)
    # the loss whose gradient is taken: "mean" over all B*bptt tokens, or "sum-time" (summed
    # over the window's steps, averaged over the batch: Zaremba et al.'s Lua code and the
    # TensorFlow PTB tutorial; gradients bptt times larger). Logged losses are always means.
    loss: str = "mean"
    lr_decay: float = 1.0  # multiply lr by this at the end of each epoch after decay_after
    decay_after: int = 1  # the first decay happens at the end of this epoch
    max_vocab: int | None = None  # word level: keep the most frequent words
    min_count: int = 1
    seed: int = 0
    log_every: int = 50  # steps between lines in metrics.jsonl
    # mid-epoch checkpoints: every N steps (an integer) or every so long ("30s", "10m", "1h");
    # 0: at the end of epochs only
    checkpoint_every: int | str = DEFAULT_INTERVAL
    # stop once the validation loss has not improved for this many epochs (0: never); the
    # best epoch's weights are kept in OUT/best either way
    patience: int = 0
    dtype: str = "float32"  # float32 | float64 (the model's weights and arithmetic)

    def __post_init__(self) -> None:
        parse_interval(self.checkpoint_every)
        positive = ("embed", "hidden", "layers", "bptt", "batch_size", "epochs", "log_every")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise RnnkitError(
                    f"--{name.replace('_', '-')}: must be a positive integer, got {v}"
                )
        if self.lr <= 0:
            raise RnnkitError(f"--lr: must be positive, got {self.lr}")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise RnnkitError(f"--patience: must be a non-negative integer, got {self.patience}")
        if self.level not in ("char", "word"):
            raise RnnkitError(f"--level: expected char or word, got {self.level!r}")
        if self.loss not in ("mean", "sum-time"):
            raise RnnkitError(f"--loss: expected mean or sum-time, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise RnnkitError(f"--optimizer: expected one of {sorted(OPTIMIZERS)}")
        for name in ("clip_norm", "clip_value"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise RnnkitError(f"--{name.replace('_', '-')}: must be positive, got {v}")

    def model_config(self, vocab_size: int) -> LMConfig:
        try:
            return LMConfig(
                vocab_size=vocab_size, cell=self.cell, embed=self.embed, hidden=self.hidden,
                layers=self.layers, dropout=self.dropout, tie_weights=self.tie_weights,
                init_range=self.init_range, dtype=self.dtype,
            )  # fmt: skip
        except ValueError as e:
            raise RnnkitError(str(e)) from None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMTrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


PRESETS: dict[str, dict[str, Any]] = {
    # Zaremba, Sutskever & Vinyals 2014, the non-regularized "small" LSTM, as in their Lua
    # code (main.lua, which produced the paper's 114.5): 2x200, BPTT 20, batch 20, SGD lr 1,
    # halved at the end of every epoch once `epoch > max_epoch = 4` (first halving after
    # epoch 5), global-norm clip 5, init U(-0.1, 0.1), 13 epochs; the loss is summed over
    # the 20 steps and averaged over the batch (equivalently: the mean loss with lr 20 and
    # clip 0.25, as PyTorch's word_language_model example has it).
    "zaremba-small": dict(
        level="word", cell="lstm", embed=200, hidden=200, layers=2, dropout=0.0,
        init_range=0.1, bptt=20, batch_size=20, epochs=13, optimizer="sgd", lr=1.0,
        clip_norm=5.0, clip_value=None, lr_decay=0.5, decay_after=5, loss="sum-time",
    ),
    # Karpathy's char-rnn defaults: 2x128 LSTM, RMSProp lr 2e-3 (decay rate 0.95),
    # seq 50, batch 50, element-wise clip 5, init U(-0.08, 0.08), lr x0.97 per epoch after 10.
    "char-rnn": dict(
        level="char", cell="lstm", embed=128, hidden=128, layers=2, dropout=0.0,
        init_range=0.08, bptt=50, batch_size=50, epochs=50, optimizer="rmsprop", lr=2e-3,
        rmsprop_alpha=0.95, clip_norm=None, clip_value=5.0, lr_decay=0.97, decay_after=10,
    ),
}  # fmt: skip


# --- data --------------------------------------------------------------------------------------


@dataclass
class Corpus:
    """Training text and its held-out parts, as raw text."""

    train: str
    valid: str | None = None
    test: str | None = None

    @classmethod
    def split(cls, text: str, valid_frac: float = 0.05, test_frac: float = 0.05) -> Corpus:
        """Hold out the last ``valid_frac`` and ``test_frac`` of one text (contiguous)."""
        n = len(text)
        a = int(n * (1 - valid_frac - test_frac))
        b = int(n * (1 - test_frac))
        return cls(text[:a], text[a:b], text[b:])


@dataclass
class LMData:
    """Where a run's texts come from: the data settings of ``rnnkit lm train`` (and of
    :func:`run_lm`), written to ``OUT/config.toml`` beside :class:`LMTrainConfig`'s."""

    text: list[str] = field(default_factory=list)  # training texts; none: Tiny Shakespeare
    valid: str | None = None  # none: hold out 5% for validation and 5% for `lm eval RUN`
    encoding: str = "utf-8"


def read_corpus(
    texts: Sequence[str], valid: str | None, encoding: str = "utf-8"
) -> tuple[Corpus, dict[str, Any]]:
    """The texts of :class:`LMData`'s settings, and a description of them for the checkpoint.

    Without ``valid``, the end of the training text is held out: 5% for validation, then
    the last 5% for testing, which training never reads (``rnnkit lm eval RUN`` scores it).
    """
    desc = {"train": list(texts) or "bundled", "valid": valid, "encoding": encoding}
    if texts:
        train = "".join(read_text(t, encoding) for t in texts)
    else:
        train = bundled_corpus()
    if valid is None:
        return Corpus.split(train, 0.05, 0.05), desc
    return Corpus(train, read_text(valid, encoding)), desc


def _inputs_of(desc: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`LMData` settings of a checkpoint's data description."""
    train = desc.get("train")
    return {"text": [] if train == "bundled" else list(train or ()), "valid": desc.get("valid"),
            "encoding": desc.get("encoding", "utf-8")}  # fmt: skip


def bundled_corpus() -> str:
    """Tiny Shakespeare (Karpathy's char-rnn data, public domain), shipped with rnnkit."""
    import gzip
    from importlib import resources

    data = resources.files("rnnkit").joinpath("data/tinyshakespeare.txt.gz").read_bytes()
    return gzip.decompress(data).decode("utf-8")


def _encode(vocab: Vocab, text: str, where: str) -> np.ndarray:
    return vocab.encode(text, where=where)


# --- evaluation --------------------------------------------------------------------------------


def evaluate(model: LanguageModel, ids: np.ndarray, bptt: int, batch_size: int = 1) -> float:
    """Mean negative log-likelihood per token (nats) of a token sequence, state carried.

    With ``batch_size=1`` every token but the first is predicted once (the figure papers
    report); larger batches drop the last ``len % B`` tokens and run faster.
    """
    ids = np.asarray(ids)
    n = len(ids) // batch_size
    if n < 2:
        raise RnnkitError(f"text has {len(ids)} tokens, too few to evaluate")
    data = ids[: n * batch_size].reshape(batch_size, n)  # (B, N)
    state, total, count = None, 0.0, 0
    for i in range(0, n - 1, bptt):
        x = data[:, i : min(i + bptt, n - 1)]
        y = data[:, i + 1 : i + 1 + x.shape[1]]
        loss, state, _ = model.forward(x, y, state, training=False)
        total += loss * y.size
        count += y.size
    return total / count


def figures(nll: float, level: str) -> dict[str, float]:
    out = {"loss": nll, "perplexity": perplexity(nll)}
    if level == "char":
        out["bits_per_char"] = bits_per_char(nll)
    return out


# --- the training loop ---------------------------------------------------------------------------


def load_lm(path: str | Path) -> tuple[LanguageModel, Vocab, LMTrainConfig, dict[str, Any]]:
    """Load a trained language model, its vocabulary and training config from a run folder
    (its checkpoint/) or a checkpoint folder."""
    model, train_cfg, vocab, ck = load_run(
        path, KIND, LMConfig, LMTrainConfig, LanguageModel, Vocab.from_json
    )
    return model, vocab, train_cfg, {"checkpoint": ck}


def train_lm(
    cfg: LMTrainConfig | None,
    corpus: Corpus | None,
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
    """Train (or, with ``resume``, continue training) a language model; see the module doc.

    Args:
        cfg: hyperparameters (ignored on resume: the checkpoint's are used).
        corpus: the texts. On resume, the same training text must be given again.
        out: output folder.
        epochs: on resume, a new total number of epochs (to train longer).
        max_steps: stop after this many optimizer steps in this call (for tests/smoke runs),
            saving a checkpoint as Ctrl-C does.
        data: a JSON-able description of where the texts came from, kept in the checkpoint
            so that a resume can read them again.
        callbacks: hooks after every step and epoch (:mod:`rnnkit.train.callbacks`).
        inputs: the data settings of :class:`LMData` (file names); with the training
            config they are written to ``OUT/config.toml``.

    Returns:
        The summary (also written to ``OUT/summary.json``).
    """
    out = Path(out)
    world = get_world()
    echo = world.echo(echo)
    ck = start_run(out, resume, KIND)
    if ck is not None:
        cfg = LMTrainConfig.from_dict(ck.config["train"])
        vocab = Vocab.from_json(ck.vocab or {})
    else:
        if cfg is None or corpus is None:
            raise ValueError("train_lm: cfg and corpus are required for a new run")
        if cfg.level == "word":  # words: from the training text; unseen ones become <unk>
            vocab = Vocab.build(corpus.train, level="word", max_size=cfg.max_vocab,
                                min_count=cfg.min_count)  # fmt: skip
        else:  # characters: the inventory of every text given, as char-rnn does
            everything = corpus.train + (corpus.valid or "") + (corpus.test or "")
            vocab = Vocab.build(everything, level="char", unk=None)
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if corpus is None:
        raise RnnkitError("the training text is needed to resume (give the same TEXT again)")
    if cfg.batch_size < world.size:
        raise CollectiveError(f"--batch-size {cfg.batch_size} is the global batch of parallel "
                              f"streams, split over {world.size} processes: give at least "
                              f"{world.size}", report=world.root)  # fmt: skip
    train_ids = _encode(vocab, corpus.train, "training text")
    valid_ids = _encode(vocab, corpus.valid, "validation text") if corpus.valid else None
    stream = TBPTTStream(train_ids, cfg.batch_size, cfg.bptt)
    # this process's streams (all of them on one process): rows of every window
    rows = world.share(cfg.batch_size)

    model = LanguageModel(cfg.model_config(len(vocab)), seed=cfg.seed)
    rng = model.rng  # dropout's stream: saved in checkpoints
    sync = None
    if world.size > 1:
        # every process draws the whole batch's masks and keeps its rows: the masks of the
        # one-process run, and one stream state on every process (distributed.ShardedRandom)
        model.rng = ShardedRandom(rng, 0, rows, cfg.batch_size)  # type: ignore[assignment]
        model.rnn.rng = ShardedRandom(rng, 1, rows, cfg.batch_size)  # type: ignore[assignment]
        sync = GradientSync(world, model.grads, scalars=3)
    opt = make_optimizer(cfg.optimizer, model.params, model.grads, cfg.lr, cfg.momentum,
                         cfg.rmsprop_alpha)  # fmt: skip
    sched = StepDecay(opt, factor=cfg.lr_decay, after_epoch=cfg.decay_after)
    step, state = 0, None
    best_loss: float | None = None  # the best validation loss so far and its epoch
    best_epoch = 0
    if ck is not None:
        ck.copy_params_into(model.params)
        ck.load_optimizer_into(opt)
        t = ck.trainer
        best_loss, best_epoch = t.get("best_valid_loss"), int(t.get("best_epoch", 0))
        sched.load_state_dict(t["schedule"])
        stream.load_state_dict(t["stream"])
        set_rng_state(rng, t["rng"])
        step = int(t["step"])
        if "h" in ck.arrays:  # (L, B, H) each: this process's streams' rows
            parts = [ck.arrays[k][:, rows].copy() for k in ("h", "c") if k in ck.arrays]
            state = tuple(parts) if len(parts) == 2 else parts[0]
    else:
        world.bcast_arrays(model.params)  # rank 0's initial weights on every process
    if world.root:
        out.mkdir(parents=True, exist_ok=True)
        if inputs is not None:
            write_config(out, "lm train", {**inputs, **asdict(cfg)})
        logger: MetricsLog = MetricsLog(out, step if resume else None, echo=echo,
                                        log_every=cfg.log_every)  # fmt: skip
    else:
        logger = QuietLog(cfg.log_every)

    def write(folder: str, trainer: dict[str, Any], **state: Any) -> None:  # rank 0
        save_checkpoint(
            out / folder,
            kind=KIND,
            params=model.params,
            config={"model": model.config.to_dict(), "train": asdict(cfg), "data": data or {}},
            vocab=vocab.to_json(),
            trainer=trainer,
            **state,
        )

    def save_best() -> None:  # rank 0: the weights of the best validation epoch, no state
        write("best", {"epoch": best_epoch, "step": step, "valid_loss": best_loss})

    def save() -> None:  # every process calls it: the carried state is gathered to rank 0
        arrays = {}
        if state is not None:
            parts = state if isinstance(state, tuple) else (state,)
            whole = [world.gather_rows(p, cfg.batch_size, axis=1) for p in parts]
            arrays = dict(zip(("h", "c"), whole, strict=False))
        if not world.root:
            return
        trainer = {
            "step": step,
            "stream": stream.state_dict(),
            "schedule": sched.state_dict(),
            "rng": rng_state(rng),
            "best_valid_loss": best_loss,
            "best_epoch": best_epoch,
            **({"world_size": world.size} if world.size > 1 else {}),
        }
        write("checkpoint", trainer, optimizer=opt.state_dict(), arrays=arrays)

    procs = f" on {world.size} processes" if world.size > 1 else ""
    echo(
        f"rnnkit lm: {model.config.cell.upper()} {cfg.layers}x{cfg.hidden}, vocabulary "
        f"{len(vocab)} ({cfg.level}), {model.num_parameters():,} parameters, "
        f"{stream.tokens_per_epoch:,} tokens per epoch, {len(stream)} windows of "
        f"{cfg.batch_size}x{cfg.bptt}{procs}"
    )
    stopper = StopFlag()
    stopped = interrupted = False
    stopped_early = None
    steps_this_call = 0
    weight = (rows.stop - rows.start) / cfg.batch_size  # this process's share of the tokens
    schedule = CheckpointSchedule(cfg.checkpoint_every)
    share = world.bcast_json if world.size > 1 else None  # rank 0's clock decides
    with stopper.installed(), contextlib.closing(logger), run_lock_released(out):
        while stream.epoch < cfg.epochs and not stopped:
            epoch = stream.epoch + 1
            bar = progress_bar(len(stream), stream.position, epoch, cfg.epochs,
                               progress and world.root, unit="win")  # fmt: skip
            t0, tokens, run_loss = time.perf_counter(), 0, []
            for x, y in stream:
                logger.meter.start()
                if stream.position == 1:  # the first window of an epoch: fresh state
                    state = None
                x, y = x[rows], y[rows]  # (B/N, k): this process's streams
                error = None
                try:
                    inject_fault(world, step + 1)
                    loss, state, cache = model.forward(x, y, state, training=True)
                    model.zero_grad()
                    model.backward(cache, dloss=float(x.shape[1]) if cfg.loss == "sum-time"
                                   else 1.0)  # fmt: skip
                except Exception as e:
                    if sync is None:
                        raise
                    loss, error = 0.0, failure(e)  # every process learns of it in the Allreduce
                interrupted = stopper.stop
                if sync is not None:  # the gradient of the mean over the whole batch
                    loss, stops, failed = sync(weight, [weight * loss, float(stopper.stop),
                                                        float(error is not None)])  # fmt: skip
                    world.check_step(failed, error, step + 1)
                    interrupted = stops > 0
                if cfg.l2 > 0:
                    l2_penalty(model.params, model.grads, cfg.l2)
                logged = logger.due(step + 1)
                gnorm, groups = measure_and_clip(model.grads, cfg.clip_norm, logged)
                if cfg.clip_value is not None:
                    clip_grad_value(model.grads, cfg.clip_value)
                opt.step()
                busy = sync.take_seconds() if sync is not None else None
                batch_tokens = cfg.batch_size * y.shape[1]  # the global batch's
                logger.meter.stop(busy, tokens=batch_tokens)
                step += 1
                steps_this_call += 1
                tokens += batch_tokens
                run_loss.append(loss)
                if not math.isfinite(loss):  # the same on every process: all stop here
                    raise CollectiveError(f"training diverged at step {step} (loss {loss}); "
                                          "lower --lr", report=world.root)  # fmt: skip
                rec = {"type": "train", "step": step, "epoch": epoch, "loss": loss,
                       "grad_norm": gnorm, "lr": opt.lr}  # fmt: skip
                if logged:
                    logger.log_step(rec, groups)
                if any_stop(callbacks, "on_step", rec):
                    stopped = True
                if bar is not None:
                    rate = tokens / max(time.perf_counter() - t0, 1e-9)
                    recent = float(np.mean(run_loss[-20:]))
                    bar.set_postfix(loss=f"{recent:.3f}", ppl=f"{math.exp(min(recent, 50)):.1f}",
                                    tok_s=f"{rate:,.0f}")  # fmt: skip
                    bar.update(1)
                if schedule.due(step, share):
                    save()
                    schedule.saved()
                if interrupted or (max_steps is not None and steps_this_call >= max_steps):
                    stopped = True
                if stopped:
                    break
            if bar is not None:
                bar.close()
            if stopped:
                break
            # the epoch is complete (the stream advanced its counter); rank 0 validates and
            # its record goes to every process
            record: dict[str, Any] = {
                "type": "epoch", "step": step, "epoch": epoch, "lr": opt.lr,
                "train_loss": float(np.mean(run_loss)) if run_loss else None,
                "seconds": time.perf_counter() - t0,
                "tokens_per_s": tokens / max(time.perf_counter() - t0, 1e-9),
            }  # fmt: skip
            record = world.on_root(functools.partial(
                _validated, record, model, valid_ids, cfg.bptt, cfg.level))  # fmt: skip
            sched.step()
            improved = False
            if "valid_loss" in record and (best_loss is None or record["valid_loss"] < best_loss):
                best_loss, best_epoch, improved = float(record["valid_loss"]), epoch, True
                if world.root:
                    save_best()
            logger.log(record)
            logger.plot(out)
            save()
            schedule.saved()
            train_loss = record["train_loss"]  # None: resumed with no window of it left
            msg = f"epoch {epoch}/{cfg.epochs}: " + (
                f"train loss {train_loss:.4f}" if train_loss is not None
                else "no windows left (resumed at its end)"
            )  # fmt: skip
            if valid_ids is not None:
                v_loss, v_ppl = record["valid_loss"], record["valid_perplexity"]
                msg += f", valid loss {v_loss:.4f} (perplexity {v_ppl:.2f})"
                msg += " (best)" if improved else ""
            echo(msg)
            patient = cfg.patience and valid_ids is not None and epoch - best_epoch >= cfg.patience
            if (any_stop(callbacks, "on_epoch", record) or patient) and stream.epoch < cfg.epochs:
                stopped_early = stream.epoch
                why = (f"validation loss not improved for {cfg.patience} epochs" if patient
                       else "a callback asked")  # fmt: skip
                echo(f"stopped early after epoch {stream.epoch} ({why})")
                break
        if stopped:
            save()
            echo(f"stopped at step {step}: checkpoint saved in {out / 'checkpoint'}; "
                 "continue with --resume")  # fmt: skip

    summary: dict[str, Any] = {"steps": step, "epochs_completed": stream.epoch,
                               "complete": not stopped, "stopped_early": stopped_early}  # fmt: skip
    if not stopped:

        def final() -> dict[str, Any]:  # rank 0 scores and writes; the figures go to all
            # validation only: the test text is scored by `rnnkit lm eval`, once, on purpose
            figs: dict[str, Any] = {"best_epoch": best_epoch or None}
            if valid_ids is not None:
                if best_epoch and best_epoch != stream.epoch:  # score the best epoch's weights
                    load_checkpoint(out / "best", kind=KIND).copy_params_into(model.params)
                figs["valid"] = figures(evaluate(model, valid_ids, cfg.bptt), cfg.level)
            with atomic_write(out / "summary.json") as f:
                json.dump({**summary, **figs}, f, indent=1)
            return figs

        summary.update(world.on_root(final))
        if "valid" in summary:
            s = summary["valid"]
            extra = f", {s['bits_per_char']:.4f} bits/char" if "bits_per_char" in s else ""
            echo(f"valid (epoch {summary['best_epoch']}): loss {s['loss']:.4f}, "
                 f"perplexity {s['perplexity']:.2f}{extra}")  # fmt: skip
    summary["interrupted"] = interrupted if world.size > 1 else stopper.stop
    summary.update(stopper.summary())
    return summary


def _validated(record: dict[str, Any], model: LanguageModel, ids: np.ndarray | None,
               bptt: int, level: str) -> dict[str, Any]:  # fmt: skip
    """An epoch's record with the validation figures (``valid_*``) added (none without
    validation ``ids``)."""
    if ids is not None:
        figs = figures(evaluate(model, ids, bptt), level)
        record.update({f"valid_{k}": v for k, v in figs.items()})
    return record


def run_lm(
    settings: Mapping[str, Any],
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
    echo: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (),
    where: str = "settings",
) -> dict[str, Any]:
    """``rnnkit lm train`` as a function: train a language model from flat ``settings``.

    Args:
        settings: the command's settings by option name with underscores: the fields of
            :class:`LMData` and :class:`LMTrainConfig`, and ``preset`` (a key of
            :data:`PRESETS`, under the other settings); missing ones take their defaults.
            On resume only ``epochs`` (a new total) and the data may be given.
        out: the run folder.
        where: names the settings in error messages (e.g. the config file).

    The other arguments are :func:`train_lm`'s. Returns the run's summary.
    """
    s = check_settings(settings, [LMData, LMTrainConfig], where, {"preset": "str | None"},
                       "rnnkit lm train")  # fmt: skip
    inputs, given = split_settings(s, LMData)
    preset = given.pop("preset", None)
    common = dict(progress=progress, max_steps=max_steps, echo=echo, callbacks=callbacks)
    if resume:
        check_resume(given, ("preset",) if preset else ())
        if inputs["text"]:
            corpus, desc = read_corpus(inputs["text"], inputs["valid"], inputs["encoding"])
        else:
            desc = get_world().on_root(
                lambda: _inputs_of(
                    load_checkpoint(Path(out) / "checkpoint", kind=KIND).config.get("data") or {}
                )
            )
            corpus, desc = read_corpus(desc["text"], desc["valid"], desc["encoding"])
        return train_lm(None, corpus, out, resume=True, epochs=given.get("epochs"), data=desc,
                        inputs=_inputs_of(desc), **common)  # fmt: skip
    if preset is not None and preset not in PRESETS:
        raise RnnkitError(f"{where}: preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    if given.get("clip_norm") is not None and given.get("clip_value") is not None:
        raise RnnkitError("--clip-norm and --clip-value exclude each other")
    resolved: dict[str, Any] = dict(PRESETS[preset]) if preset else {}
    if given.get("clip_norm") is not None:  # a norm limit replaces the preset's value clip
        resolved["clip_value"] = None
    if given.get("clip_value") is not None:
        resolved["clip_norm"] = None
    resolved.update(given)
    cfg = LMTrainConfig(**resolved)
    corpus, desc = read_corpus(inputs["text"], inputs["valid"], inputs["encoding"])
    return train_lm(cfg, corpus, out, data=desc, inputs=inputs, **common)


def sample_text(
    model: LanguageModel,
    vocab: Vocab,
    prime: str | None = None,
    length: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    seed: int | None = None,
) -> str:
    """``prime`` and ``length`` tokens generated after it (``rnnkit lm sample``).

    Character models start from ``prime`` (default: a line break); word models from a
    sentence boundary followed by the words of ``prime``.
    """
    if vocab.level == "word":
        # start from a sentence boundary, then the priming words (their <eos> dropped)
        prime = (prime or "").strip()
        words = vocab.encode(prime, where="--prime")[:-1] if prime else np.zeros(0, np.int64)
        ids = np.concatenate([[vocab.stoi[vocab.eos]], words])
    else:
        prime = "\n" if prime is None else prime
        if not prime:
            raise RnnkitError("--prime: must not be empty")
        ids = vocab.encode(prime, where="--prime")
    gen = model.generate(ids, length, temperature=temperature, top_k=top_k, greedy=greedy,
                         rng=np.random.default_rng(seed))  # fmt: skip
    sep = " " if vocab.level == "word" and prime else ""
    return prime + sep + vocab.decode(gen)


def held_out_test(data: Mapping[str, Any]) -> tuple[str, str]:
    """The test part a run held out of its training text (``data``: the checkpoint's data
    description), read again, and where it came from; one error line when the run was given
    its own validation text and so held nothing out."""
    if data.get("valid") is not None or "train" not in data:
        raise RnnkitError("this run held no test part out of its training text (it was given "
                          "--valid): name the test TEXT to score")  # fmt: skip
    inputs = _inputs_of(data)
    corpus, _ = read_corpus(inputs["text"], None, inputs["encoding"])
    names = " + ".join(inputs["text"]) or "the bundled corpus"
    return corpus.test or "", f"the last 5% of {names}"


def evaluate_file(
    model: LanguageModel, vocab: Vocab, path: str | Path, bptt: int, batch_size: int = 1,
    encoding: str = "utf-8",
) -> dict[str, float]:  # fmt: skip
    """``rnnkit lm eval``: the figures of :func:`figures` on a text file, and its token count."""
    return evaluate_text(model, vocab, read_text(path, encoding), bptt, batch_size, str(path))


def evaluate_text(
    model: LanguageModel, vocab: Vocab, text: str, bptt: int, batch_size: int = 1,
    where: str = "text",
) -> dict[str, float]:  # fmt: skip
    """The figures of :func:`figures` on a text, and its token count."""
    ids = vocab.encode(text, where=where)
    res: dict[str, float] = figures(evaluate(model, ids, bptt, batch_size), vocab.level)
    res["tokens"] = int(len(ids))
    return res
