"""Optimizers and learning-rate schedules, updating NumPy parameters in place.

A model hands an optimizer two dicts with the same keys and shapes: ``params`` (the arrays
the model computes with) and ``grads`` (where its backward pass accumulates, ``+=``). Each
:meth:`Optimizer.step` rewrites the parameter arrays in place, so the model sees the new
values without any copying back; :meth:`Optimizer.zero_grad` fills the gradients with zeros.

Every update rule follows the PyTorch 2.x form of the same optimizer, line for line where
the order of operations matters (weight decay added to the gradient first, lazily created
momentum buffers, bias corrections), and the tests check N steps against ``torch.optim``.

``state_dict()`` returns plain data for checkpoints (no pickle): NumPy arrays under keys
``"<buffer>/<param name>"`` and JSON-able scalars (``"type"``, ``"lr"``, ``"step"`` and the
hyperparameters) under all other keys; ``load_state_dict`` validates and restores it.

Example:

>>> import numpy as np
>>> params = {"w": np.array([1.0, -2.0])}
>>> grads = {"w": np.array([0.5, 0.5])}
>>> opt = SGD(params, grads, lr=0.1, momentum=0.9)
>>> opt.step(); params["w"]
array([ 0.95, -2.05])
>>> opt.step(); params["w"]          # momentum buffer 0.9 * 0.5 + 0.5 = 0.95
array([ 0.855, -2.145])
>>> opt.zero_grad(); grads["w"]
array([0., 0.])
>>> sorted(opt.state_dict())
['dampening', 'lr', 'momentum', 'momentum_buffer/w', 'nesterov', 'step', 'type', 'weight_decay']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnkit import fast
from rnnkit.engine import backend
from rnnkit.io import RnnkitError

Scalar = float | int | bool | str | None

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "Optimizer",
    "RMSProp",
    "ReduceLROnPlateau",
    "StepDecay",
]


class Optimizer:
    """Common base: holds ``params``/``grads``, the learning rate ``lr`` and per-parameter buffers.

    Subclasses list their scalar hyperparameters in ``_hyper`` and their per-parameter
    buffers in ``_buffers``, and implement :meth:`_update` for one parameter array.

    Args:
        params: name -> floating-point array, updated in place by :meth:`step`.
        grads: name -> array of the same shape, read by :meth:`step`, zeroed by
            :meth:`zero_grad`.
        lr: learning rate; schedules change it through the ``lr`` attribute.
    """

    _hyper: tuple[str, ...] = ()
    _buffers: tuple[str, ...] = ()

    def __init__(
        self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray], lr: float
    ) -> None:
        if set(params) != set(grads):
            missing = sorted(set(params) ^ set(grads))
            raise ValueError(f"params and grads must have the same names; differ in {missing}")
        for name, p in params.items():
            g = grads[name]
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise ValueError(f"parameter {name!r} must be a floating-point numpy array")
            if g.shape != p.shape:
                raise ValueError(f"grad {name!r} has shape {g.shape}, param has {p.shape}")
        _check_positive("lr", lr, allow_zero=True)
        self.params = params
        self.grads = grads
        self.lr = float(lr)
        self.step_count = 0  # number of step() calls so far (PyTorch's per-param "step")
        self.state: dict[str, dict[str, np.ndarray]] = {name: {} for name in params}

    def zero_grad(self) -> None:
        """Set every gradient array to zero in place (the model's backward adds into them)."""
        for g in self.grads.values():
            g.fill(0.0)

    def step(self) -> None:
        """Apply one update to every parameter, in place."""
        self.step_count += 1
        for name, p in self.params.items():
            self._update(p, self.grads[name], self.state[name])

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray | Scalar]:
        """Everything needed to resume: copied buffer arrays plus JSON-able scalars."""
        out: dict[str, np.ndarray | Scalar] = {
            "type": type(self).__name__,
            "lr": self.lr,
            "step": self.step_count,
        }
        for h in self._hyper:
            out[h] = getattr(self, h)
        for name, bufs in self.state.items():
            for buf, arr in bufs.items():
                out[f"{buf}/{name}"] = arr.copy()
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (learning rate and hyperparameters too).

        Raises :class:`RnnkitError` naming the key at fault when the state belongs to another
        optimizer or to parameters of other names or shapes.
        """
        kind = state.get("type")
        if kind != type(self).__name__:
            raise RnnkitError(
                f"optimizer state is for {kind!r}, this run uses {type(self).__name__}"
            )
        for key in ("lr", "step", *self._hyper):
            if key not in state:
                raise RnnkitError(f"optimizer state lacks {key!r}")
        new_state: dict[str, dict[str, np.ndarray]] = {name: {} for name in self.params}
        for key, value in state.items():
            if not isinstance(value, np.ndarray):
                continue
            buf, _, name = key.partition("/")
            if buf not in self._buffers or name not in self.params:
                raise RnnkitError(f"optimizer state has unexpected array {key!r}")
            p = self.params[name]
            if value.shape != p.shape:
                raise RnnkitError(
                    f"optimizer state {key!r} has shape {value.shape}, parameter has {p.shape}"
                )
            new_state[name][buf] = value.astype(p.dtype, copy=True)
        self.lr = float(state["lr"])
        self.step_count = int(state["step"])
        for h in self._hyper:
            setattr(self, h, state[h])
        self.state = new_state

    def __repr__(self) -> str:
        hyper = ", ".join(f"{h}={getattr(self, h)!r}" for h in self._hyper)
        return f"{type(self).__name__}(lr={self.lr!r}, {hyper})"


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        raise RnnkitError(f"{name} must be {bound}, got {value}")


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay.

    As ``torch.optim.SGD`` (Sutskever et al. 2013 momentum in PyTorch's form)::

        g = grad + weight_decay * p
        b = g                                  (first step)
        b = momentum * b + (1 - dampening) * g (later steps)
        g = g + momentum * b  if nesterov else b
        p = p - lr * g

    Example:

    >>> import numpy as np
    >>> p, g = {"w": np.array([1.0])}, {"w": np.array([2.0])}
    >>> opt = SGD(p, g, lr=0.5, weight_decay=0.1)
    >>> opt.step(); p["w"]            # 1 - 0.5 * (2 + 0.1 * 1)
    array([-0.05])
    """

    _hyper = ("momentum", "dampening", "nesterov", "weight_decay")
    _buffers = ("momentum_buffer",)

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, grads, lr)
        _check_positive("momentum", momentum, allow_zero=True)
        _check_positive("weight_decay", weight_decay, allow_zero=True)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise RnnkitError("Nesterov momentum needs momentum > 0 and dampening = 0")
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        self.weight_decay = float(weight_decay)

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        d_p = g + self.weight_decay * p if self.weight_decay else g  # never modify grads
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:  # PyTorch starts the buffer at the first gradient, not at zero
                buf = state["momentum_buffer"] = d_p.copy()
            else:
                buf *= self.momentum
                buf += (1.0 - self.dampening) * d_p
            d_p = d_p + self.momentum * buf if self.nesterov else buf
        p -= self.lr * d_p


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011) in the form of ``torch.optim.Adagrad``::

        g = grad + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g^2                    (s starts at initial_accumulator_value)
        p = p - clr * g / (sqrt(s) + eps)

    Example:

    >>> import numpy as np
    >>> p, g = {"w": np.array([1.0])}, {"w": np.array([3.0])}
    >>> opt = Adagrad(p, g, lr=0.1)
    >>> opt.step(); p["w"]            # 1 - 0.1 * 3 / 3
    array([0.9])
    """

    _hyper = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    _buffers = ("sum",)

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(params, grads, lr)
        _check_positive("lr_decay", lr_decay, allow_zero=True)
        _check_positive("weight_decay", weight_decay, allow_zero=True)
        _check_positive("initial_accumulator_value", initial_accumulator_value, allow_zero=True)
        self.lr_decay = float(lr_decay)
        self.weight_decay = float(weight_decay)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.eps = float(eps)

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if "sum" not in state:
            state["sum"] = np.full_like(p, self.initial_accumulator_value)
        s = state["sum"]
        clr = self.lr / (1.0 + (self.step_count - 1) * self.lr_decay)
        s += g * g
        p -= clr * g / (np.sqrt(s) + self.eps)


class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012) in the form of ``torch.optim.RMSprop``::

        g = grad + weight_decay * p
        v = alpha * v + (1 - alpha) * g^2
        m = alpha * m + (1 - alpha) * g                  (centered only)
        d = sqrt(v - m^2) + eps   if centered else   sqrt(v) + eps
        b = momentum * b + g / d;  p = p - lr * b        (momentum > 0)
        p = p - lr * g / d                               (momentum = 0)

    Note that eps is added *outside* the square root, as PyTorch does; Keras and
    char-rnn's ``optim.rmsprop`` add it differently, which matters only when v is tiny.

    Example:

    >>> import numpy as np
    >>> p, g = {"w": np.array([1.0])}, {"w": np.array([2.0])}
    >>> opt = RMSProp(p, g, lr=0.01, alpha=0.75, eps=0.0)
    >>> opt.step(); p["w"]            # v = 0.25 * 4 = 1; 1 - 0.01 * 2 / 1
    array([0.98])
    """

    _hyper = ("alpha", "eps", "weight_decay", "momentum", "centered")
    _buffers = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(params, grads, lr)
        if not 0.0 <= alpha < 1.0:
            raise RnnkitError(f"alpha must be in [0, 1), got {alpha}")
        _check_positive("eps", eps, allow_zero=True)
        _check_positive("weight_decay", weight_decay, allow_zero=True)
        _check_positive("momentum", momentum, allow_zero=True)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.centered = bool(centered)

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(p)
            if self.centered:
                state["grad_avg"] = np.zeros_like(p)
            if self.momentum:
                state["momentum_buffer"] = np.zeros_like(p)
        v = state["square_avg"]
        v *= self.alpha
        v += (1.0 - self.alpha) * g * g
        if self.centered:
            m = state["grad_avg"]
            m *= self.alpha
            m += (1.0 - self.alpha) * g
            denom = np.sqrt(v - m * m) + self.eps
        else:
            denom = np.sqrt(v) + self.eps
        if self.momentum:
            b = state["momentum_buffer"]
            b *= self.momentum
            b += g / denom
            p -= self.lr * b
        else:
            p -= self.lr * g / denom


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) in the form of ``torch.optim.Adam``::

        g = grad + weight_decay * p          (L2 penalty in the gradient, not AdamW)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Example:

    >>> import numpy as np
    >>> p, g = {"w": np.array([1.0, 1.0])}, {"w": np.array([5.0, -0.01])}
    >>> opt = Adam(p, g, lr=0.1)
    >>> opt.step(); np.round(p["w"], 5)   # the first step moves every weight by about lr
    array([0.9, 1.1])
    """

    _hyper = ("beta1", "beta2", "eps", "weight_decay")
    _buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, grads, lr)
        beta1, beta2 = betas
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= b < 1.0:
                raise RnnkitError(f"{name} must be in [0, 1), got {b}")
        _check_positive("eps", eps, allow_zero=True)
        _check_positive("weight_decay", weight_decay, allow_zero=True)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray]) -> None:
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        arrays = (p, g, m, v)
        # the compiled one-pass update (rnnkit.fast.optim, the same operations in the same
        # order: bit-identical) unless the process asks for no compiled code
        if (
            p.dtype in (np.float32, np.float64)
            and all(a.dtype == p.dtype and a.flags.c_contiguous for a in arrays)
            and backend.get_backend() != "numpy"
            and fast.supports_code()
        ):
            from rnnkit.fast.optim import adam_update

            t, f = self.step_count, p.dtype.type
            adam_update(
                *(a.reshape(-1) for a in arrays),
                f(self.beta1), f(1.0 - self.beta1), f(self.beta2), f(1.0 - self.beta2),
                f(self.lr / (1.0 - self.beta1**t)), f(math.sqrt(1.0 - self.beta2**t)),
                f(self.eps), f(self.weight_decay),
            )  # fmt: skip
        else:
            self._update_numpy(p, g, m, v)

    def _update_numpy(self, p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray) -> None:
        """The update in NumPy: the reference for the compiled one (any dtype or layout)."""
        if self.weight_decay:
            g = g + self.weight_decay * p
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * g * g
        t = self.step_count
        step_size = self.lr / (1.0 - self.beta1**t)
        denom = np.sqrt(v) / math.sqrt(1.0 - self.beta2**t) + self.eps
        p -= step_size * m / denom


# --- learning-rate schedules ----------------------------------------------------------------


class StepDecay:
    """Multiply the learning rate by ``factor`` at the end of every epoch from ``after_epoch`` on.

    Call :meth:`step` once at the end of each epoch. The learning rate of epoch e (1-based) is
    ``lr0 * factor ** max(0, e - after_epoch)``: constant for the first ``after_epoch`` epochs,
    then multiplied each epoch. Zaremba et al. 2014 (small model): "learning rate of 1;
    after 4 epochs we halve the learning rate after each epoch", i.e. ``factor=0.5,
    after_epoch=4`` (as in the TensorFlow PTB tutorial; their Lua code, which tests
    ``epoch > max_epoch`` after validating, halves first at the end of epoch 5:
    ``after_epoch=5``). Equals ``torch.optim.lr_scheduler.MultiStepLR`` with milestones
    ``after_epoch, after_epoch + 1, ...``.

    Example:

    >>> import numpy as np
    >>> opt = SGD({"w": np.zeros(1)}, {"w": np.zeros(1)}, lr=1.0)
    >>> sched = StepDecay(opt, factor=0.5, after_epoch=4)
    >>> lrs = []
    >>> for epoch in range(1, 8):
    ...     lrs.append(opt.lr)   # train epoch `epoch` with this rate
    ...     _ = sched.step()
    >>> lrs
    [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    """

    def __init__(self, optimizer: Optimizer, factor: float = 0.5, after_epoch: int = 4) -> None:
        if not 0.0 < factor <= 1.0:
            raise RnnkitError(f"decay factor must be in (0, 1], got {factor}")
        if after_epoch < 1:
            raise RnnkitError(f"after_epoch must be >= 1, got {after_epoch}")
        self.optimizer = optimizer
        self.factor = float(factor)
        self.after_epoch = int(after_epoch)
        self.epoch = 0  # epochs completed

    def step(self) -> float:
        """End of an epoch: decay if due; return the learning rate for the next epoch."""
        self.epoch += 1
        if self.epoch >= self.after_epoch:
            self.optimizer.lr *= self.factor
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Scalar]:
        """JSON-able state (the learning rate itself lives in the optimizer's state)."""
        keys = ("factor", "after_epoch", "epoch")
        return {"type": "StepDecay", **{k: getattr(self, k) for k in keys}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        _check_type(state, "StepDecay")
        self.factor = float(state["factor"])
        self.after_epoch = int(state["after_epoch"])
        self.epoch = int(state["epoch"])


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when a metric has stopped improving.

    Semantics of ``torch.optim.lr_scheduler.ReduceLROnPlateau``: call :meth:`step` with the
    validation metric after each epoch. A value is an improvement when (mode ``"min"``,
    threshold_mode ``"rel"``) ``value < best * (1 - threshold)``; ``"abs"`` compares with
    ``best - threshold``; mode ``"max"`` mirrors both. After more than ``patience`` epochs
    without improvement the rate becomes ``max(lr * factor, min_lr)`` (skipped when that
    changes it by no more than ``eps``), then ``cooldown`` epochs pass before counting again.

    Example:

    >>> import numpy as np
    >>> opt = SGD({"w": np.zeros(1)}, {"w": np.zeros(1)}, lr=1.0)
    >>> sched = ReduceLROnPlateau(opt, factor=0.5, patience=1)
    >>> [sched.step(v) for v in [5.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0]]
    [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    """

    # fmt: off
    _state_keys = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                   "min_lr", "eps", "num_bad_epochs", "cooldown_counter", "epoch")
    # fmt: on

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if mode not in ("min", "max"):
            raise RnnkitError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise RnnkitError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        if not 0.0 < factor < 1.0:
            raise RnnkitError(f"factor must be in (0, 1), got {factor}")
        if patience < 0 or cooldown < 0:
            raise RnnkitError("patience and cooldown must be >= 0")
        self.optimizer = optimizer
        self.mode = mode
        self.factor = float(factor)
        self.patience = int(patience)
        self.threshold = float(threshold)
        self.threshold_mode = threshold_mode
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.eps = float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.epoch = 0

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return value < self.best * (1.0 - self.threshold)
            return value < self.best - self.threshold
        if self.threshold_mode == "rel":
            return value > self.best * (1.0 + self.threshold)
        return value > self.best + self.threshold

    def step(self, metric: float) -> float:
        """Record one epoch's metric; return the learning rate for the next epoch."""
        value = float(metric)
        self.epoch += 1
        if self._is_better(value):  # NaN is never better
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown do not count
        if self.num_bad_epochs > self.patience:
            old_lr = self.optimizer.lr
            new_lr = max(old_lr * self.factor, self.min_lr)
            if old_lr - new_lr > self.eps:
                self.optimizer.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Scalar]:
        """JSON-able state; an infinite ``best`` (nothing seen yet) is stored as None."""
        out: dict[str, Scalar] = {"type": "ReduceLROnPlateau"}
        out.update({k: getattr(self, k) for k in self._state_keys})
        out["best"] = self.best if math.isfinite(self.best) else None
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        _check_type(state, "ReduceLROnPlateau")
        for k in self._state_keys:
            if k not in state:
                raise RnnkitError(f"ReduceLROnPlateau state lacks {k!r}")
            setattr(self, k, state[k])
        best = state.get("best")
        if best is None:
            best = math.inf if self.mode == "min" else -math.inf
        self.best = float(best)


def _check_type(state: Mapping[str, Any], expected: str) -> None:
    if state.get("type") != expected:
        raise RnnkitError(f"schedule state is for {state.get('type')!r}, expected {expected!r}")
