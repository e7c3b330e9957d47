"""Finite-difference gradient checks: the proof behind every backward pass in rnnkit.

Central differences in float64, (f(x + eps) - f(x - eps)) / (2 eps), one entry at a time,
compared with the analytic gradient by the error relative to the largest magnitude of the
two, so small gradients near zero do not inflate the error.

>>> import numpy as np
>>> x = np.array([0.5, -1.0, 2.0])
>>> errs = gradcheck(lambda: float(np.sum(np.tanh(x) * [1.0, 2.0, 3.0])),
...                  {"x": x}, {"x": (1 - np.tanh(x) ** 2) * [1.0, 2.0, 3.0]})
>>> errs["x"] < 1e-8
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_grad(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences; ``x`` is perturbed in place and restored."""
    if x.dtype != np.float64:
        raise ValueError(f"numerical_grad: needs float64, got {x.dtype}")
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat, x):
        raise ValueError("numerical_grad: x must be contiguous so it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(max |a|, max |b|), and 0 when both are exactly zero."""
    scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
    if scale == 0.0:
        return 0.0
    return float(np.abs(a - b).max()) / scale


def gradcheck(
    f: Callable[[], float],
    inputs: dict[str, np.ndarray],
    analytic: dict[str, np.ndarray],
    eps: float = 1e-6,
    rtol: float = 1e-6,
) -> dict[str, float]:
    """Compare analytic gradients with central differences of the scalar function ``f``.

    Args:
        f: computes the scalar loss from the current values of the arrays in ``inputs``.
        inputs: name -> float64 array that ``f`` reads (perturbed in place during the check).
        analytic: name -> the gradient of ``f`` w.r.t. that array, from the backward pass.
        eps: the finite-difference step. rtol: the largest relative error accepted.

    Returns:
        name -> relative error. Raises ``AssertionError`` naming every array over ``rtol``
        with its error and largest absolute difference.
    """
    errors, failures = {}, []
    for name, x in inputs.items():
        if name not in analytic:
            raise KeyError(f"gradcheck: no analytic gradient for {name!r}")
        num = numerical_grad(f, x, eps)
        ana = np.asarray(analytic[name])
        if ana.shape != num.shape:
            raise ValueError(f"gradcheck: {name}: analytic shape {ana.shape} != {num.shape}")
        errors[name] = err = relative_error(num, ana)
        if not err <= rtol:
            failures.append(
                f"{name}: relative error {err:.3e} > {rtol:.1e} "
                f"(max abs diff {np.abs(num - ana).max():.3e})"
            )
    if failures:
        raise AssertionError("gradcheck failed: " + "; ".join(failures))
    return errors
