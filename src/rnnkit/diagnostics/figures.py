"""The workflows behind ``rnnkit gradflow``, ``rnnkit cliff`` and the figures of
``rnnkit pathological``: build the models, measure, draw.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> flows = gradflow_figure(["rnn", "gru"], length=5, hidden=3, out=os.path.join(d, "g.png"),
...                         batch=2, lambda1s=[0.5])
>>> [f.label for f in flows], os.path.getsize(os.path.join(d, "g.png")) > 0
(['RNN lambda_1=0.5', 'GRU'], True)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.diagnostics import plots
from rnnkit.diagnostics.cliff import cliff_edge, cliff_loss_grad, cliff_losses, descent_path
from rnnkit.diagnostics.gradflow import GradFlow, gradient_flow, largest_singular_value
from rnnkit.diagnostics.pathological import (
    METHODS,
    RESULTS,
    RunConfig,
    format_table,
    load_results,
    run_experiment,
    single_thread_blas,
    success_table,
)
from rnnkit.engine.layers import GRU, LSTM, RNN
from rnnkit.io import RnnkitError, atomic_write, read_text

__all__ = ["cliff_figure", "gradflow_figure", "pathological_experiment", "pathological_figures"]

CELL_NAMES = ("rnn", "lstm", "gru")


def gradflow_figure(
    cells: Sequence[str],
    length: int,
    hidden: int,
    out: str | os.PathLike[str],
    batch: int = 16,
    input_size: int | None = None,
    lambda1s: Sequence[float] = (),
    forget_biases: Sequence[float] = (),
    nonlinearity: str = "tanh",
    seed: int = 0,
) -> list[GradFlow]:
    """Measure the gradient flow of freshly initialised layers and draw one panel per cell.

    Each layer gets its PyTorch-style initialisation (seeded) and a batch of N(0, 1)
    inputs; each RNN in ``lambda1s`` has W_hh rescaled to that largest singular value
    (none: the initialisation as drawn); each LSTM forget-gate bias in ``forget_biases``
    adds an LSTM with that bias (Gers et al. 2000) beside the default one. The loss sits on
    the last step with ||dE/dh_T|| = 1, so the curves read as the fraction of gradient that
    survives.
    """
    bad = [c for c in cells if c not in CELL_NAMES]
    if bad or not cells:
        raise RnnkitError(f"--cell: expected rnn, lstm, gru or all, got {bad or 'nothing'}")
    if length < 1 or hidden < 1 or batch < 1:
        raise RnnkitError(
            f"--length, --hidden, --batch: must be positive, got {length}, {hidden}, {batch}"
        )
    if any(not lam > 0 for lam in lambda1s):
        raise RnnkitError(f"--lambda1: must be positive, got {list(lambda1s)}")
    D = input_size or hidden
    x = np.random.default_rng([seed, 1]).standard_normal((batch, length, D))
    panels: list[tuple[str, list[GradFlow]]] = []
    flows: list[GradFlow] = []
    with single_thread_blas():
        for cell in cells:
            if cell == "rnn":
                group = []
                for lam in lambda1s or [None]:
                    rnn = RNN(D, hidden, nonlinearity=nonlinearity, dtype=np.float64, seed=seed)
                    label = "RNN"
                    if lam is not None:
                        w = rnn.params["weight_hh_l0"]
                        w *= lam / largest_singular_value(w)
                        label = f"RNN lambda_1={lam:g}"
                    group.append(gradient_flow(rnn, x, seed=seed, label=label))
                panels.append((f"RNN ({nonlinearity})", group))
            elif cell == "lstm":
                group = []
                for fb in [None, *forget_biases]:
                    lstm = LSTM(D, hidden, dtype=np.float64, seed=seed, forget_bias=fb)
                    label = "LSTM" if fb is None else f"LSTM forget bias {fb:g}"
                    group.append(gradient_flow(lstm, x, seed=seed, label=label))
                panels.append(("LSTM", group))
            else:
                gru = GRU(D, hidden, dtype=np.float64, seed=seed)
                group = [gradient_flow(gru, x, seed=seed, label="GRU")]
                panels.append(("GRU", group))
            flows.extend(group)
    plots.plot_gradflow(panels, out)
    return flows


def cliff_figure(out: str | os.PathLike[str], resolution: int = 200) -> dict[str, Any]:
    """The one-unit RNN's loss surface with plain and clipped gradient descent, and the
    loss and gradient norm along the line w = 8 as b crosses the cliff; see ``cliff``.

    Returns the figures quoted in the docs: where the cliff lies on the line, the gradient
    norm near and far from it, and where each descent path ends.
    """
    if resolution < 10:
        raise RnnkitError(f"--resolution: must be at least 10, got {resolution}")
    ws = np.linspace(1.0, 9.0, resolution)
    bs = np.linspace(-6.0, 3.0, resolution)
    start, lr, n, clip = (4.5, -2.8), 1.0, 40, 0.1
    with single_thread_blas():
        surface = cliff_losses(ws, bs)
        plain = descent_path(*start, lr=lr, n_steps=n)
        clipped = descent_path(*start, lr=lr, n_steps=n, clip=clip)
        w_line = 8.0
        edge = cliff_edge(w_line, -6.0, -3.0)
        half = np.logspace(-13, 0, resolution // 2)
        offsets = np.concatenate([-half[::-1], half])
        values = [cliff_loss_grad(w_line, edge + o) for o in offsets]
    e = np.array([v[0] for v in values])
    g = np.array([np.hypot(v[1]["w"], v[1]["b"]) for v in values])
    plots.plot_cliff(
        ws, bs, surface,
        [(f"gradient descent, lr {lr:g}", plain),
         (f"the same, norm clipped at {clip:g}", clipped)],
        (f"b - b*  (w = {w_line:g}, cliff at b* = {edge:.6f})", offsets, e, g), out,
    )  # fmt: skip
    far = np.abs(offsets) >= 1e-2
    return {
        "edge": edge,
        "grad_norm_far": float(g[far].max()),
        "grad_norm_near": float(g.max()),
        "plain_end": tuple(float(v) for v in plain[-1, :3]),
        "plain_largest_step": float(np.abs(np.diff(plain[:, :2], axis=0)).max()),
        "clipped_end": tuple(float(v) for v in clipped[-1, :3]),
    }


def pathological_experiment(
    task: str,
    lengths: Sequence[int],
    methods: Sequence[str],
    seeds: int,
    out: str | os.PathLike[str] | None = None,
    echo: Any = None,
    progress: bool = False,
    **hyper: Any,
) -> str:
    """Run lengths x methods x seeds of one task (see ``pathological``) and return the
    markdown table. With ``out``, the runs are kept in (and resumed from) that folder, and
    the table, ``table.md`` and the plots of :func:`pathological_figures` cover every run
    the folder holds, so several commands can fill one table."""
    if seeds < 1:
        raise RnnkitError(f"--seeds: must be positive, got {seeds}")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise RnnkitError(f"--method: expected one of {', '.join(METHODS)}, got {bad[0]!r}")
    # seed by seed: an interrupted experiment still covers every length and method
    configs = [
        RunConfig(task, length=T, method=m, seed=s, **hyper)
        for s in range(seeds) for T in lengths for m in methods
    ]  # fmt: skip
    rows = run_experiment(configs, out, echo=echo, progress=progress)
    if out is None:
        return format_table(rows)
    table = format_table(load_results(Path(out) / RESULTS))  # every run in the folder
    with atomic_write(Path(out) / "table.md") as f:
        f.write(table + "\n")
    pathological_figures(out)
    return table


def pathological_figures(out: str | os.PathLike[str]) -> list[Path]:
    """From an experiment folder: ``success-<task>.png`` (success rate against length) and
    ``gradnorm-<task>.png`` (gradient norm per step of sgd and clip, seed 0, per length)."""
    out = Path(out)
    rows = load_results(out / RESULTS)
    if not rows:
        raise RnnkitError(f"{out / RESULTS}: no finished runs")
    table = success_table(rows)
    written = []
    for task in sorted({r["task"] for r in rows}):
        p = out / f"success-{task}.png"
        plots.plot_success(table, task, p)
        written.append(p)
        panels = []
        clip = None
        for T in sorted({int(r["length"]) for r in rows if r["task"] == task}):
            curves = []
            for m in ("sgd", "clip"):
                h = out / "history" / f"{RunConfig(task, T, m, seed=0).key()}.json"
                if h.exists():
                    rec = json.loads(read_text(h))
                    curves.append((m, rec["grad_norm"]))
                    clip = rec["config"]["clip"] if m == "clip" else clip
            if curves:
                panels.append((f"{task}, T = {T}", curves))
        if panels:
            p = out / f"gradnorm-{task}.png"
            plots.plot_gradnorm_history(panels, p, clip)
            written.append(p)
    return written
