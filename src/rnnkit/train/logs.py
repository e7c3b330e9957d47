"""What a training run writes as it goes, in the formats other tools read: ``metrics.jsonl``
(one JSON object per logged step and per epoch), ``metrics.csv`` (the same records as
columns), TensorBoard event files (with the optional ``tensorboardX``) and ``loss.png``;
and the gradient norms the loops log, globally and per layer.

Every record has a ``type`` (``"train"`` for a logged step, ``"epoch"`` after an epoch) and a
``step`` (the optimizer steps so far). In TensorBoard each number of a record is the scalar
``TYPE/KEY`` at that step (``train/loss``, ``train/grad_norm/rnn.l0``, ``epoch/valid_loss``);
``step``, ``epoch`` and ``type`` themselves are the axes, not scalars. TensorBoard keeps
32-bit floats; the JSON and CSV files keep every digit.

>>> import tempfile
>>> from pathlib import Path
>>> out = Path(tempfile.mkdtemp())
>>> log = MetricsLog(out, None, tensorboard=False)
>>> log.log({"type": "train", "step": 1, "epoch": 1, "loss": 2.5})
>>> log.log({"type": "epoch", "step": 1, "epoch": 1, "train_loss": 2.5, "valid_loss": 2.25})
>>> log.close()
>>> print((out / "metrics.csv").read_text().strip())
type,step,epoch,loss,train_loss,valid_loss
train,1,1,2.5,,
epoch,1,1,,2.5,2.25
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import atomic_write
from rnnkit.train.clip import clip_grad_norm

__all__ = [
    "AXES",
    "MetricsLog",
    "QuietLog",
    "Throughput",
    "grad_norm",
    "group_grad_norms",
    "measure_and_clip",
    "param_group",
]

AXES = ("type", "step", "epoch")  # what places a record; every other number is a scalar
TENSORBOARD_NOTE = ("note: tensorboardX is not installed (pip install 'rnnkit[tensorboard]'): "
                    "no TensorBoard event files are written")  # fmt: skip

# a recurrent layer's tensors: weight_ih_l0, bias_hh_l1_reverse, weight_ci_l0 (peepholes), ...
_RECURRENT = re.compile(
    r"^(?P<prefix>.*?)(?:weight|bias)_[a-z]{2}_l(?P<layer>\d+)(?P<rev>_reverse)?$"
)


def param_group(name: str) -> str:
    """The group whose gradient norm is logged for parameter ``name``: one per recurrent
    layer and direction (``rnn.l0``, ``rnn.l0_reverse``), else the module holding it.

    >>> [param_group(n) for n in ("rnn.weight_hh_l1", "encoder.rnn.bias_ih_l0_reverse",
    ...                           "weight_ci_l2", "decoder.weight", "hops.0.weight", "bias")]
    ['rnn.l1', 'encoder.rnn.l0_reverse', 'l2', 'decoder', 'hops.0', 'bias']
    """
    m = _RECURRENT.match(name)
    if m:
        return f"{m['prefix']}l{m['layer']}{m['rev'] or ''}"
    return name.rpartition(".")[0] or name


def grad_norm(grads: Iterable[np.ndarray]) -> float:
    """The L2 norm of several arrays taken together."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads))


def group_grad_norms(grads: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The gradient's L2 norm per :func:`param_group` (in the order the groups first appear),
    keyed ``grad_norm/GROUP``: the per-layer figures that show gradients vanishing or
    exploding on their way down a stack.

    >>> g = {"rnn.weight_ih_l0": np.array([3.0]), "rnn.bias_ih_l0": np.array([4.0]),
    ...      "fc.weight": np.array([[1.0, 0.0]])}
    >>> group_grad_norms(g)
    {'grad_norm/rnn.l0': 5.0, 'grad_norm/fc': 1.0}
    """
    groups: dict[str, list[np.ndarray]] = {}
    for name, g in grads.items():
        groups.setdefault(param_group(name), []).append(g)
    return {f"grad_norm/{k}": grad_norm(v) for k, v in groups.items()}


def measure_and_clip(
    grads: Mapping[str, np.ndarray], clip_norm: float | None, by_group: bool
) -> tuple[float, dict[str, float]]:
    """The gradient's global L2 norm and, with ``by_group``, :func:`group_grad_norms` (both
    taken before clipping); then the gradient is clipped to global norm ``clip_norm`` in
    place (None: not clipped), as ``torch.nn.utils.clip_grad_norm_`` does."""
    groups = group_grad_norms(grads) if by_group else {}
    if clip_norm is None:
        return grad_norm(grads.values()), groups
    return clip_grad_norm(grads, clip_norm), groups


class Throughput:
    """Items per second of training steps since the last :meth:`rates` (evaluation and
    checkpoint time excluded): call :meth:`start` before a step and :meth:`stop` after it.

    >>> m = Throughput(); m.start(); m.stop(tokens=10.0, busy={"allreduce": 0.0})
    >>> sorted(m.rates())
    ['allreduce_share', 'tokens_per_s']
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.counts: dict[str, float] = {}
        self.busy: dict[str, float] = {}
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, busy: Mapping[str, float] | None = None, **counts: float) -> None:
        """End a step that handled ``counts`` items and spent ``busy`` seconds in named
        parts of it (e.g. the gradients' ``Allreduce``)."""
        self.seconds += time.perf_counter() - self._t0
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0.0) + v
        for k, v in (busy or {}).items():
            self.busy[k] = self.busy.get(k, 0.0) + v

    def rates(self) -> dict[str, float]:
        """``{NAME_per_s: rate}`` for every count given to :meth:`stop` and ``{NAME_share:
        fraction of the time}`` for every busy part; then starts afresh."""
        s = max(self.seconds, 1e-9)
        out = {f"{k}_per_s": v / s for k, v in self.counts.items()}
        out.update({f"{k}_share": v / s for k, v in self.busy.items()})
        self.seconds, self.counts, self.busy = 0.0, {}, {}
        return out


class MetricsLog:
    """A run's logs in ``out``: ``metrics.jsonl``, ``metrics.csv``, TensorBoard event files
    and ``loss.png`` (see the module doc).

    Args:
        out: the run folder.
        resume_step: on resume, the checkpoint's step: the records after it are dropped (from
            every file), so the logs match an uninterrupted run's; None for a new run.
        tensorboard: write event files (needs ``tensorboardX``; without it, ``echo`` gets one
            line saying so).
        echo: where that line goes.
        log_every: the steps between training records (:meth:`due`, :meth:`log_step`).
    """

    def __init__(
        self,
        out: Path,
        resume_step: int | None,
        tensorboard: bool = True,
        echo: Callable[[str], None] | None = None,
        log_every: int = 1,
    ) -> None:
        self.out = Path(out)
        self.log_every = log_every
        self.meter = Throughput()  # the training steps' rates, for the training records
        self.path = self.out / "metrics.jsonl"
        self.csv_path = self.out / "metrics.csv"
        self.records: list[dict[str, Any]] = []
        if resume_step is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    r = json.loads(line)
                    if r.get("step", 0) <= resume_step:
                        self.records.append(r)
        with atomic_write(self.path) as f:
            for r in self.records:
                f.write(json.dumps(r) + "\n")
        self.columns: list[str] = []
        self._rewrite_csv()
        self.writer = self._tensorboard(echo) if tensorboard else None

    # --- TensorBoard ---------------------------------------------------------------------------

    def _tensorboard(self, echo: Callable[[str], None] | None) -> Any:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            if echo is not None:
                echo(TENSORBOARD_NOTE)
            return None
        # the kept records are written afresh, so the events always equal metrics.jsonl's
        for old in self.out.glob("events.out.tfevents.*"):
            old.unlink()
        writer = SummaryWriter(logdir=str(self.out), flush_secs=30)
        for r in self.records:
            self._add_scalars(writer, r)
        writer.flush()
        return writer

    @staticmethod
    def _add_scalars(writer: Any, record: dict[str, Any]) -> None:
        kind, step = record.get("type", "train"), int(record.get("step", 0))
        for k, v in record.items():
            if k not in AXES and isinstance(v, (int, float)) and not isinstance(v, bool):
                writer.add_scalar(f"{kind}/{k}", float(v), step)

    # --- CSV -------------------------------------------------------------------------------------

    def _rewrite_csv(self) -> None:
        for r in self.records:
            self.columns += [k for k in r if k not in self.columns]
        with atomic_write(self.csv_path) as f:
            w = csv.DictWriter(f, self.columns, lineterminator="\n")
            w.writeheader()
            w.writerows(self.records)

    # --- records ---------------------------------------------------------------------------------

    def log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to every log (a new column rewrites ``metrics.csv`` whole)."""
        self.records.append(record)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if all(k in self.columns for k in record):
            with self.csv_path.open("a", newline="") as f:
                csv.DictWriter(f, self.columns, lineterminator="\n").writerow(record)
        else:
            self._rewrite_csv()
        if self.writer is not None:
            self._add_scalars(self.writer, record)
            if record.get("type") == "epoch":
                self.writer.flush()

    def due(self, step: int) -> bool:
        """Whether step number ``step`` (counted from 1) gets a training record."""
        return step % self.log_every == 0

    def log_step(self, record: dict[str, Any], groups: Mapping[str, float]) -> None:
        """Log a training record, with the throughput since the previous one (from
        :attr:`meter`) and the per-group gradient norms added to it."""
        record.update(self.meter.rates())
        record.update(groups)
        self.log(record)

    def close(self) -> None:
        """Flush and close the event file (the other files are complete after every record)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def plot(self, out: Path) -> None:
        """``loss.png``: the logged training losses and the validation loss per epoch."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r for r in self.records if r.get("type") == "train"]
        epochs = [r for r in self.records if r.get("type") == "epoch" and "valid_loss" in r]
        fig, ax = plt.subplots(figsize=(7, 4))
        if steps:
            ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], lw=0.8, label="train")
        if epochs:
            ax.plot([r["step"] for r in epochs], [r["valid_loss"] for r in epochs], "o-",
                    label="validation")  # fmt: skip
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats per token)")
        if steps or epochs:
            ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_write(out / "loss.png", "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        plt.close(fig)


class QuietLog(MetricsLog):
    """The logs of a process that writes none (every rank but 0 of a data-parallel run):
    :class:`MetricsLog`'s methods, writing nothing; its :attr:`meter` still measures."""

    def __init__(self, log_every: int = 1) -> None:  # no files: MetricsLog's is not called
        self.log_every = log_every
        self.meter = Throughput()
        self.records = []
        self.writer = None

    def log(self, record: dict[str, Any]) -> None:
        return None

    def plot(self, out: Path) -> None:
        return None
