"""Hooks into the training loops: a function after every step or every epoch, and early
stopping on a validation figure.

Both loops (the language model's and :func:`rnnkit.train.loop.fit`) call, for every
callback, :meth:`Callback.on_step` after each optimizer step and :meth:`Callback.on_epoch`
after each epoch (once its record is logged and its checkpoint saved). A hook that returns
True stops training:

- from ``on_step``: at once, as Ctrl-C does (a checkpoint is saved; ``--resume`` continues
  the run; the summary says ``complete: False``);
- from ``on_epoch``: after that epoch; the run counts as complete (the best epoch's weights
  are scored) and the summary says at which epoch it stopped (``stopped_early``).

Callbacks live in the process that trains: a resumed run starts them afresh.

>>> seen = []
>>> cb = Callback(on_epoch=lambda r: seen.append(r["epoch"]))
>>> cb.on_epoch({"epoch": 1}), cb.on_step({"step": 1}), seen
(None, None, [1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rnnkit.io import RnnkitError

__all__ = ["Callback", "EarlyStopping", "any_stop"]

Record = dict[str, Any]


class Callback:
    """A pair of hooks; give functions, or subclass and override the methods.

    Args:
        on_step: called with ``{"step", "epoch", "loss", "grad_norm", "lr"}`` after every
            optimizer step (on the steps written to the logs, with everything logged:
            throughput and the per-layer gradient norms).
        on_epoch: called with the epoch's record as written to ``metrics.jsonl``
            (``train_loss``, ``lr``, ``valid_*`` figures when there is validation data).
    """

    def __init__(
        self,
        on_step: Callable[[Record], bool | None] | None = None,
        on_epoch: Callable[[Record], bool | None] | None = None,
    ) -> None:
        self._on_step = on_step
        self._on_epoch = on_epoch

    def on_step(self, record: Record) -> bool | None:
        """After an optimizer step; True stops training now."""
        return self._on_step(record) if self._on_step is not None else None

    def on_epoch(self, record: Record) -> bool | None:
        """After an epoch; True ends training after it."""
        return self._on_epoch(record) if self._on_epoch is not None else None


class EarlyStopping(Callback):
    """Stop once a validation figure has not improved for ``patience`` epochs.

    Args:
        monitor: a key of the epoch records: ``valid_loss``, ``valid_accuracy``,
            ``valid_f1``, ``valid_bleu``, ``valid_perplexity``...
        patience: epochs without improvement to allow.
        mode: ``"min"`` or ``"max"``; default: ``"min"`` for losses, perplexities and bits
            per character, else ``"max"``.
        min_delta: an improvement must exceed this.

    >>> stop = EarlyStopping("valid_accuracy", patience=2)
    >>> [stop.on_epoch({"epoch": e, "valid_accuracy": a})
    ...  for e, a in enumerate([0.5, 0.7, 0.6, 0.7], start=1)]
    [False, False, False, True]
    >>> stop.best, stop.best_epoch
    (0.7, 2)
    """

    def __init__(self, monitor: str = "valid_loss", patience: int = 3, mode: str | None = None,
                 min_delta: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        if mode is None:
            lower = ("loss", "perplexity", "bits_per_char")
            mode = "min" if any(monitor.endswith(s) for s in lower) else "max"
        if mode not in ("min", "max"):
            raise RnnkitError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or patience < 1:
            raise RnnkitError(f"EarlyStopping: patience must be a positive integer, got "
                              f"{patience!r}")  # fmt: skip
        self.monitor, self.patience, self.mode, self.min_delta = monitor, patience, mode, min_delta
        self.best: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0

    def on_epoch(self, record: Record) -> bool:
        if self.monitor not in record:
            have = ", ".join(k for k in record if k.startswith("valid_")) or "no validation figure"
            raise RnnkitError(f"EarlyStopping: the epoch records have no {self.monitor!r} "
                              f"({have})")  # fmt: skip
        value = float(record[self.monitor])
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, int(record["epoch"]), 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience


def any_stop(callbacks: Sequence[Callback], hook: str, record: Record) -> bool:
    """Call ``hook`` (``"on_step"`` or ``"on_epoch"``) of every callback (all of them, in
    order); True if any asked to stop."""
    stop = False
    for cb in callbacks:
        stop = bool(getattr(cb, hook)(record)) or stop
    return stop
