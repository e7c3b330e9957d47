"""What every rnnkit model shares: named parameters, their gradients, and their bookkeeping.

A model keeps two dicts with the same keys and shapes: ``params`` (name -> array, updated in
place by the optimizers) and ``grads`` (accumulated, ``+=``, by its backward pass). Sub-models
share their arrays with the model that contains them (``"rnn." + name`` -> the same array), so
everything here works in place and never rebinds an array.

>>> import numpy as np
>>> m = Module()
>>> m.params, m.grads = {"w": np.ones(3)}, {"w": np.full(3, 2.0)}
>>> m.zero_grad(); m.grads["w"], m.num_parameters()
(array([0., 0., 0.]), 3)
>>> m.load_state_dict({"w": np.zeros(4)})
Traceback (most recent call last):
ValueError: state_dict['w']: expected shape (3,), got (4,)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def to_numpy(v: Any) -> np.ndarray:
    """Accept NumPy arrays and torch tensors (without importing torch)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


class Module:
    """Base of layers and task models: ``params``/``grads`` and what follows from them."""

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def zero_grad(self) -> None:
        """Set every accumulated parameter gradient to zero (in place)."""
        for g in self.grads.values():
            g.fill(0.0)

    def num_parameters(self) -> int:
        """Total number of scalar parameters."""
        return int(sum(p.size for p in self.params.values()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters under their (PyTorch-style) names."""
        return {n: p.copy() for n, p in self.params.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy parameters in from NumPy arrays or torch tensors; names and shapes must match."""
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        if missing or unexpected:
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, p in self.params.items():
            v = to_numpy(state[name])
            if v.shape != p.shape:
                raise ValueError(f"state_dict[{name!r}]: expected shape {p.shape}, got {v.shape}")
            p[...] = v  # in place: sub-models share these arrays


class ModelConfig:
    """Base of the model configuration dataclasses: the JSON round trip and shared checks.

    A subclass is a ``@dataclass`` whose ``__post_init__`` calls the ``check_*`` helpers;
    ``to_dict``/``from_dict`` store it beside the weights (unknown fields are an error, so a
    checkpoint from another model kind is caught when it is read).

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Toy(ModelConfig):
    ...     hidden: int = 4
    ...     dropout: float = 0.0
    ...     def __post_init__(self) -> None:
    ...         self.check_positive("hidden")
    ...         self.check_probability("dropout")
    >>> Toy.from_dict(Toy(hidden=8).to_dict())
    Toy(hidden=8, dropout=0.0)
    >>> Toy(hidden=0)
    Traceback (most recent call last):
    ValueError: hidden: expected a positive integer, got 0
    >>> Toy.from_dict({"hiden": 3})
    Traceback (most recent call last):
    ValueError: model config: unknown fields ['hiden']
    """

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
        if unknown:
            raise ValueError(f"model config: unknown fields {unknown}")
        return cls(**d)

    def check_positive(self, *names: str, optional: bool = False) -> None:
        """Each named field is an int >= 1 (or None, with ``optional``)."""
        for name in names:
            v = getattr(self, name)
            if optional and v is None:
                continue
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                what = "a positive integer or None" if optional else "a positive integer"
                raise ValueError(f"{name}: expected {what}, got {v!r}")

    def check_probability(self, *names: str) -> None:
        """Each named field lies in [0, 1) (dropout rates)."""
        for name in names:
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1), got {v}")

    def check_choice(self, name: str, choices: Any) -> None:
        """The named field is one of ``choices``."""
        v = getattr(self, name)
        if v not in choices:
            raise ValueError(f"{name}: expected one of {sorted(choices)}, got {v!r}")

    def check_dtype(self) -> None:
        """``dtype`` is 'float32' or 'float64'."""
        if getattr(self, "dtype", None) not in ("float32", "float64"):
            raise ValueError(f"dtype: expected float32 or float64, got {self.dtype!r}")  # type: ignore[attr-defined]
