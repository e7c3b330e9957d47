"""Parameter counts per tensor and in total, for any rnnkit model or checkpoint.

Anything with a ``params`` dict (name -> array) is a model here: the recurrent layers, the
:class:`~rnnkit.models.lm.LanguageModel` (whose tied decoder shares ``encoder.weight`` and so is
counted once), the pathological-task model, or a plain dict of arrays.

The exercise of seed 004: an RNN with n inputs, n/2 hidden units, 2 outputs and no biases
has (n/2) n + (n/2)^2 + 2 (n/2) weights, 161 for n = 14:

>>> from rnnkit.diagnostics.pathological import TaskModel
>>> s = summarize(TaskModel("rnn", 14, 7, 2, bias=False, seed=0))
>>> s.total
161
>>> print(format_summary(s))
tensor               shape    parameters
rnn.weight_ih_l0     (7, 14)          98
rnn.weight_hh_l0     (7, 7)           49
out.weight           (2, 7)           14
total                                161
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError
from rnnkit.train.checkpoint import load_checkpoint

__all__ = ["ParamSummary", "format_summary", "summarize", "summarize_checkpoint"]


@dataclass
class ParamSummary:
    """rows: (name, shape, count) per tensor in the model's order; total: their sum."""

    rows: list[tuple[str, tuple[int, ...], int]]
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(n for _, _, n in self.rows)


def summarize(model: Any) -> ParamSummary:
    """Count the parameters of ``model``: an object with a ``params`` dict, or such a dict.

    >>> from rnnkit.engine.layers import LSTM
    >>> summarize(LSTM(10, 20)).total     # 4*20*(10 + 20) + 2*4*20, as torch.nn.LSTM(10, 20)
    2560
    """
    params = model if isinstance(model, Mapping) else getattr(model, "params", None)
    if not isinstance(params, Mapping):
        raise RnnkitError(f"model: {type(model).__name__} has no 'params' dict to count")
    rows = []
    for name, p in params.items():
        shape = tuple(int(s) for s in np.shape(p))
        rows.append((str(name), shape, int(np.prod(shape, dtype=np.int64))))
    return ParamSummary(rows)


def summarize_checkpoint(path: str | os.PathLike[str]) -> ParamSummary:
    """Summarize the weights of a checkpoint directory (or a run folder holding one).

    Any kind of checkpoint is accepted; the header carries its kind, model config and the
    training step or epoch when recorded.
    """
    p = Path(path)
    if (p / "checkpoint").is_dir():  # a run's output folder, e.g. of `rnnkit lm train`
        p = p / "checkpoint"
    ck = load_checkpoint(p)
    s = summarize({k: ck.params[k] for k in sorted(ck.params, key=_natural_key)})
    s.header["checkpoint"] = str(ck.path)
    s.header["kind"] = ck.kind
    model_cfg = ck.config.get("model") if isinstance(ck.config, dict) else None
    if isinstance(model_cfg, dict):
        s.header["model"] = ", ".join(f"{k}={v}" for k, v in model_cfg.items())
    for key in ("epoch", "step"):
        if key in ck.trainer:
            s.header[key] = ck.trainer[key]
    return s


_MODULE_RANK = {"encoder": 0, "embedding": 0, "rnn": 1, "decoder": 3, "out": 3}
_PARAM_RANK = {n: i for i, n in enumerate(
    ["weight", "bias", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_ci",
     "weight_cf", "weight_co"]
)}  # fmt: skip


def _natural_key(name: str) -> tuple[Any, ...]:
    """Model order for saved tensors (a file keeps no order): input side, recurrent layers
    by layer, direction and PyTorch's parameter order, then the output side.

    >>> sorted(["decoder.bias", "rnn.bias_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l0",
    ...         "encoder.weight"], key=_natural_key)  # doctest: +NORMALIZE_WHITESPACE
    ['encoder.weight', 'rnn.weight_hh_l0', 'rnn.bias_hh_l0', 'rnn.weight_ih_l1',
     'decoder.bias']
    """
    module, _, leaf = name.rpartition(".")
    m = re.fullmatch(r"(.*)_l(\d+)(_reverse)?", leaf)
    base, layer, rev = (m.group(1), int(m.group(2)), bool(m.group(3))) if m else (leaf, -1, False)
    top = module.split(".")[0] if module else ""
    return (_MODULE_RANK.get(top, 2), module, layer, rev, _PARAM_RANK.get(base, 99), leaf)


def format_summary(s: ParamSummary) -> str:
    """A plain-text table: one line per tensor, then the total."""
    shapes = [str(shape) for _, shape, _ in s.rows]
    w_name = max([len("tensor"), *(len(n) for n, _, _ in s.rows)])
    w_shape = max([len("shape"), *(len(x) for x in shapes)])
    w_num = max(len("parameters"), len(str(s.total)))
    lines = [f"{k}: {v}" for k, v in s.header.items()]
    lines.append(f"{'tensor':<{w_name}}  {'shape':<{w_shape}}  {'parameters':>{w_num}}")
    for (name, _, n), shape in zip(s.rows, shapes, strict=True):
        lines.append(f"{name:<{w_name}}  {shape:<{w_shape}}  {n:>{w_num}}")
    lines.append(f"{'total':<{w_name}}  {'':<{w_shape}}  {s.total:>{w_num}}")
    return "\n".join(lines)
