"""Truncated-BPTT streams for language models (their vocabulary: :mod:`rnnkit.text.vocab`).

- :func:`batchify`: a token sequence as B parallel contiguous streams, an array (B, N).
- :class:`TBPTTStream`: those streams cut into consecutive windows of k steps, yielding
  ``(x, y)`` pairs of shape (B, k) with ``y`` one step ahead of ``x``; the position is
  saved in checkpoints so that training resumes exactly mid-epoch.

The layout is Zaremba et al. 2014's (the TensorFlow PTB tutorial's ``ptb_producer``): row b of
the (B, N) array holds tokens ``b*N ... b*N + N - 1``, so each row reads as running text and
the hidden state left by one window is the right initial state for the next window of the
same row (TBPTT(k, k): carried forward, no gradient across windows).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError

__all__ = ["TBPTTStream", "batchify"]


def batchify(ids: np.ndarray | Sequence[int], batch_size: int) -> np.ndarray:
    """The corpus as ``batch_size`` parallel contiguous streams: array (B, N), N = len // B.

    Row b holds ``ids[b*N : (b+1)*N]``; the last ``len % B`` tokens are dropped (as Zaremba
    et al. and the TensorFlow PTB tutorial do).

    Example:

    >>> batchify(np.arange(11), 3)
    array([[0, 1, 2],
           [3, 4, 5],
           [6, 7, 8]])
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of token ids, got shape {ids.shape}")
    if batch_size < 1:
        raise RnnkitError(f"batch size must be positive, got {batch_size}")
    n = len(ids) // batch_size
    if n == 0:
        raise RnnkitError(f"corpus has {len(ids)} tokens, fewer than the batch size {batch_size}")
    return ids[: batch_size * n].reshape(batch_size, n)  # (B, N)


class TBPTTStream:
    """Consecutive windows of ``bptt`` steps over B parallel streams, resumable mid-epoch.

    Iterating yields the remaining windows of the current epoch, in order::

        x = data[:, i*k : (i+1)*k]        (B, k) inputs
        y = data[:, i*k+1 : (i+1)*k+1]    (B, k) targets, one step ahead

    for i = position, ..., num_windows - 1, where ``data = batchify(ids, B)`` is (B, N) and
    ``num_windows = (N - 1) // k`` (only full windows; the last few columns are dropped).
    After the last window the epoch counter advances and the position returns to 0, so the
    next ``for`` loop runs the next epoch.

    ``position`` counts the windows already handed out in this epoch: it is incremented as a
    window is yielded, so a checkpoint written after the optimizer step on that window
    (inside the loop body) resumes at the next one. Window ``position == 1`` is the first of
    an epoch, where a trainer resets its carried hidden state (Zaremba et al. do). The
    carried hidden state itself belongs in the checkpoint too for an exact resume.

    Raises :class:`RnnkitError` when the corpus cannot fill one batch of windows.

    Example:

    >>> s = TBPTTStream(np.arange(14), batch_size=2, bptt=3)
    >>> s.data
    array([[ 0,  1,  2,  3,  4,  5,  6],
           [ 7,  8,  9, 10, 11, 12, 13]])
    >>> for x, y in s:
    ...     print(x.tolist(), y.tolist())
    [[0, 1, 2], [7, 8, 9]] [[1, 2, 3], [8, 9, 10]]
    [[3, 4, 5], [10, 11, 12]] [[4, 5, 6], [11, 12, 13]]
    >>> s.state_dict()["epoch"], s.state_dict()["position"]
    (1, 0)
    >>> TBPTTStream(np.arange(30), batch_size=20, bptt=35)
    Traceback (most recent call last):
    rnnkit.io.RnnkitError: corpus has 30 tokens; batch 20 x bptt 35 needs at least 720 \
(20 streams of 35 + 1)
    """

    def __init__(self, ids: np.ndarray | Sequence[int], batch_size: int, bptt: int) -> None:
        ids = np.asarray(ids)
        if batch_size < 1:
            raise RnnkitError(f"batch size must be positive, got {batch_size}")
        if bptt < 1:
            raise RnnkitError(f"bptt must be positive, got {bptt}")
        need = batch_size * (bptt + 1)
        if len(ids) < need:
            raise RnnkitError(
                f"corpus has {len(ids)} tokens; batch {batch_size} x bptt {bptt} needs at "
                f"least {need} ({batch_size} streams of {bptt} + 1)"
            )
        self.data = batchify(ids, batch_size)  # (B, N)
        self.data.flags.writeable = False  # windows are views: keep the corpus safe
        self.batch_size = batch_size
        self.bptt = bptt
        self.num_windows = (self.data.shape[1] - 1) // bptt
        self.epoch = 0  # epochs completed
        self.position = 0  # windows of the current epoch already handed out

    def __len__(self) -> int:
        """Windows per epoch."""
        return self.num_windows

    @property
    def tokens_per_epoch(self) -> int:
        """Target tokens in one epoch: B * k * num_windows."""
        return self.batch_size * self.bptt * self.num_windows

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        k = self.bptt
        while self.position < self.num_windows:
            i = self.position * k
            self.position += 1
            yield self.data[:, i : i + k], self.data[:, i + 1 : i + k + 1]  # (B, k), (B, k)
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        """JSON-able position: epoch, window, and the sizes it is valid for."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "bptt": self.bptt,
            "num_windows": self.num_windows,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume at a saved position; the stream must have the same shape of windows."""
        saved = (state.get("batch_size"), state.get("bptt"), state.get("num_windows"))
        if saved != (self.batch_size, self.bptt, self.num_windows):
            raise RnnkitError(
                f"the checkpoint's data position is for batch {saved[0]} x bptt {saved[1]} "
                f"({saved[2]} windows per epoch); this run has batch {self.batch_size} x bptt "
                f"{self.bptt} ({self.num_windows} windows): resume with the same data and sizes"
            )
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= self.num_windows:
            raise RnnkitError(f"invalid data position: epoch {epoch}, window {position}")
        self.epoch, self.position = epoch, position
