"""The experiment of Pascanu, Mikolov & Bengio (2013, sec. 4.1): can SGD train an RNN on
the pathological tasks, and do gradient clipping and the regularizer Omega help?

Methods (``--method``):

sgd        a tanh RNN trained by minibatch SGD (MSGD in the paper).
clip       the same with the gradient's global norm clipped (sec. 3.2;
           :func:`rnnkit.train.clip_grad_norm`).
clip-reg   clipping plus alpha * Omega (sec. 3.3, eq. 9-10), MSGD-CR in the paper.
lstm       an LSTM (forget-gate bias ``forget_bias``, default 1) trained as ``clip``: not in
           the paper's table, the constant error carousel as the other cure for vanishing
           gradients.

The RNN uses the paper's "smart tanh" initialisation (sec. 4.1.1; in the authors' code):
W_hh sparse with 15 nonzero N(0, 0.01) entries per row rescaled to spectral radius 0.95,
W_ih and W_out ~ N(0, 0.01), zero biases. A run draws fresh sequences every step, checks
the error on ``val_size`` fresh sequences every ``eval_every`` steps and, when that is under
1%, confirms on ``test_size`` (10,000) fresh ones: success is < 1% test error (sec. 4.1.1,
Fig. 7). Runs that are not solved within ``steps`` are tested once at the end.

The regularizer (sec. 3.3). Writing v_i = dE/dh_i (what BPTT delivers at step i) and
J_i = dh_i/dh_{i-1} = diag(act'(a_i)) W_hh,

    Omega = sum_i (||v_i J_i|| / ||v_i|| - 1)^2                                  (eq. 9)

averaged here over the steps i and sequences with ||v_i||^2 >= 1e-20 (as the authors'
code does, so alpha does not depend on T). Its gradient is taken as in eq. 10, holding
v_i and h_i constant ("immediate" partial derivative w.r.t. W_hh only): with
u_i = v_i * act'(a_i), n_i = u_i W_hh and r_i = ||n_i|| / ||v_i||,

    dOmega/dW_hh = sum_i u_i^T  2 (r_i - 1) n_i / (||n_i|| ||v_i||)  / N.

(The paper writes the state as x_k with x_k = W_rec sigma(x_{k-1}) + ...; here the state is
rnnkit's h, as in the authors' code. That code uses the squared norms in the ratio; we use
the norms of eq. 9.)

>>> cfg = RunConfig("temporal_order", length=12, method="clip-reg", seed=0, steps=3,
...                 hidden=8, eval_every=2, val_size=20, test_size=40)
>>> r = train_run(cfg)
>>> r.steps_run, len(r.history["grad_norm"]), r.solved
(3, 3, False)
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.diagnostics.gradflow import global_grad_norm
from rnnkit.diagnostics.tasks import Task, get_task
from rnnkit.engine import ops
from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.engine.module import Module
from rnnkit.io import RnnkitError, atomic_write, read_lines
from rnnkit.train.clip import clip_grad_norm
from rnnkit.train.optim import SGD

Array = np.ndarray

__all__ = [
    "METHODS",
    "RunConfig",
    "RunResult",
    "TaskModel",
    "evaluate",
    "format_table",
    "omega_backward",
    "omega_forward",
    "run_experiment",
    "success_table",
    "train_run",
]

METHODS = ("sgd", "clip", "clip-reg", "lstm")
CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
SUCCESS_ERROR = 0.01  # < 1% of test sequences wrong (sec. 4.1.1)
REGRESS_TOLERANCE = 0.04  # adding/multiplication: a sequence is wrong if its squared error > .04


# --- the model ---------------------------------------------------------------------------------


class TaskModel(Module):
    """A recurrent layer and a linear read-out: of the last step, or of every step.

    Args:
        cell: 'rnn', 'lstm' or 'gru'. n_in, hidden, n_out: D, H and the output size.
        kind: 'class' (softmax cross-entropy on the last step), 'regress' (squared error on
            the last step, summed over outputs, mean over the batch, as the paper's code) or
            'class_all' (cross-entropy at every step).
        bias: biases in the recurrent layer and the read-out.
        init: 'smart_tanh' (the paper's, see the module docstring; RNN only) or 'default'
            (the layer's PyTorch-style U(-1/sqrt(H), 1/sqrt(H)), read-out alike).
        forget_bias: for the LSTM, the forget gate's bias (default 1.0).
        nonlinearity: of the RNN. dtype: float32 or float64. seed: int or Generator.

    Parameters: ``rnn.<PyTorch name>`` and ``out.weight`` (O, H), ``out.bias`` (O,).

    >>> m = TaskModel("rnn", 6, 5, 4, init="smart_tanh", seed=0)
    >>> x, y = np.zeros((2, 7, 6), np.float32), np.array([1, 3])
    >>> loss, cache = m.forward(x, y)
    >>> dh = m.backward(cache)
    >>> round(loss, 4), dh.shape         # log 4: the read-out starts at zero
    (1.3863, (2, 7, 5))
    """

    def __init__(
        self,
        cell: str,
        n_in: int,
        hidden: int,
        n_out: int,
        kind: str = "class",
        bias: bool = True,
        init: str = "default",
        forget_bias: float = 1.0,
        nonlinearity: str = "tanh",
        dtype: Any = np.float32,
        seed: int | np.random.Generator | None = None,
    ) -> None:
        if cell not in CELLS:
            raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
        if kind not in ("class", "regress", "class_all"):
            raise ValueError(f"kind: expected class, regress or class_all, got {kind!r}")
        if init not in ("smart_tanh", "default"):
            raise ValueError(f"init: expected 'smart_tanh' or 'default', got {init!r}")
        if init == "smart_tanh" and cell != "rnn":
            raise ValueError("init: 'smart_tanh' is defined for the RNN only")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.cell, self.kind = cell, kind
        kw: dict[str, Any] = dict(bias=bias, dtype=dtype, seed=rng)
        if cell == "rnn":
            kw["nonlinearity"] = nonlinearity
        if cell == "lstm" and bias:
            kw["forget_bias"] = forget_bias
        self.rnn: Recurrent = CELLS[cell](n_in, hidden, **kw)
        dt = self.rnn.dtype
        if init == "smart_tanh":
            p = self.rnn.params
            p["weight_ih_l0"][...] = rng.normal(0.0, 0.01, (hidden, n_in))
            w = rng.normal(0.0, 0.01, (hidden, hidden))
            for row in w:  # sparse: 15 nonzero weights per unit (Sutskever et al. 2013)
                row[rng.permutation(hidden)[15:]] = 0.0
            w *= 0.95 / np.max(np.abs(np.linalg.eigvals(w)))  # spectral radius 0.95
            p["weight_hh_l0"][...] = w
            for name in ("bias_ih_l0", "bias_hh_l0"):
                if name in p:
                    p[name][...] = 0.0
            w_out = rng.normal(0.0, 0.01, (n_out, hidden))
            b_out = np.zeros(n_out)
        else:
            k = 1.0 / math.sqrt(hidden)
            w_out = rng.uniform(-k, k, (n_out, hidden))
            b_out = rng.uniform(-k, k, n_out)
        self.params: dict[str, Array] = {"rnn." + k: v for k, v in self.rnn.params.items()}
        self.grads: dict[str, Array] = {"rnn." + k: v for k, v in self.rnn.grads.items()}
        self.params["out.weight"] = w_out.astype(dt)
        self.grads["out.weight"] = np.zeros_like(self.params["out.weight"])
        if bias:
            self.params["out.bias"] = b_out.astype(dt)
            self.grads["out.bias"] = np.zeros_like(self.params["out.bias"])

    def _readout(self, out: Array) -> tuple[Array, Any]:
        feat = out if self.kind == "class_all" else out[:, -1]  # (B, T, H) or (B, H)
        return ops.linear_forward(feat, self.params["out.weight"], self.params.get("out.bias"))

    def forward(self, x: Array, y: Array, training: bool = True) -> tuple[float, dict[str, Any]]:
        """x (B, T, D), targets as the task gives them -> (mean loss, cache)."""
        out, _, rnn_cache = self.rnn.forward(x, training=training)  # (B, T, H)
        logits, lin_cache = self._readout(out)
        cache: dict[str, Any] = dict(rnn=rnn_cache, lin=lin_cache, out=out, T=x.shape[1])
        if self.kind == "regress":
            diff = logits - y  # (B, O)
            loss = float((diff * diff).sum() / diff.shape[0])
            cache["diff"] = diff
        else:
            loss, cache["ce"] = ops.cross_entropy_forward(logits, y)
        return loss, cache

    def backward(self, cache: dict[str, Any]) -> Array:
        """Add the loss gradient into ``grads``; return dE/dh_t (B, T, H) for every step."""
        if self.kind == "regress":
            diff = cache["diff"]
            dlogits = 2.0 * diff / diff.shape[0]  # d/dy of sum (y - t)^2 / B
        else:
            dlogits = ops.cross_entropy_backward(1.0, cache["ce"])
        dfeat, dW, db = ops.linear_backward(dlogits, cache["lin"])
        self.grads["out.weight"] += dW
        if db is not None:
            self.grads["out.bias"] += db
        out = cache["out"]
        if self.kind == "class_all":
            dout = dfeat
        else:
            dout = np.zeros_like(out)
            dout[:, -1] = dfeat
        _, _, hidden = self.rnn.backward(dout, cache["rnn"], return_hidden_grads=True)
        return hidden[0]

    def predict(self, x: Array, chunk: int = 1000) -> Array:
        """Outputs (logits or values) for x (N, T, D), in chunks to bound memory."""
        outs = []
        for i in range(0, x.shape[0], chunk):
            out, _ = self.rnn(x[i : i + chunk])
            outs.append(self._readout(out)[0])
        return np.concatenate(outs)


# --- the regularizer Omega (sec. 3.3) ----------------------------------------------------------


def _act_deriv(h: Array, nonlinearity: str) -> Array:
    """act'(a) written with h = act(a)."""
    if nonlinearity == "tanh":
        return 1.0 - h * h
    if nonlinearity == "sigmoid":
        return h * (1.0 - h)
    return (h > 0).astype(h.dtype)


def omega_forward(
    w_hh: Array, dh: Array, h: Array, nonlinearity: str = "tanh", bound: float = 1e-20
) -> tuple[float, Any]:
    """Omega of eq. 9 (mean over valid terms) for an RNN; see the module docstring.

    Args:
        w_hh: (H, H) recurrent weights. dh: (B, T, H) v_i = dE/dh_i from BPTT.
        h: (B, T, H) the states h_i (give act'(a_i)). bound: terms with ||v_i||^2 below it
            are skipped (the ratio is undefined where no gradient arrives).

    Returns:
        Omega and a cache for :func:`omega_backward`.

    >>> w = np.eye(2) * 0.5
    >>> v, h = np.ones((1, 1, 2)), np.zeros((1, 1, 2))    # act'(0) = 1: v J = v / 2
    >>> omega_forward(w, v, h)[0]                          # (1/2 - 1)^2
    0.25
    """
    s = _act_deriv(h, nonlinearity)
    u = dh * s  # (B, T, H)
    n = u @ w_hh  # v_i J_i = (v_i * act'(a_i)) W_hh, (B, T, H)
    v_norm = np.sqrt((dh * dh).sum(-1))  # (B, T)
    n_norm = np.sqrt((n * n).sum(-1))
    valid = v_norm * v_norm >= bound
    count = max(int(valid.sum()), 1)
    r = np.where(valid, n_norm / np.where(valid, v_norm, 1.0), 1.0)
    value = float(((r - 1.0) ** 2).sum() / count)
    return value, (u, n, v_norm, n_norm, r, valid, count)


def omega_backward(cache: Any) -> Array:
    """dOmega/dW_hh (H, H), holding v_i and h_i fixed (eq. 10)."""
    u, n, v_norm, n_norm, r, valid, count = cache
    ok = valid & (n_norm > 0)  # ||n|| is not differentiable at 0: no gradient there
    coef = np.where(ok, 2.0 * (r - 1.0) / np.where(ok, n_norm * v_norm, 1.0), 0.0) / count
    g = coef[..., None] * n  # dOmega/dn, (B, T, H)
    H = u.shape[-1]
    # n = u W_hh  =>  dW_hh = u^T dn, summed over every sequence and step: one matmul
    return u.reshape(-1, H).T @ g.reshape(-1, H)


# --- one run -----------------------------------------------------------------------------------


@dataclass
class RunConfig:
    """One training run. Defaults are the paper's where it gives them (sec. 4.1, code)."""

    task: str
    length: int  # T
    method: str  # sgd | clip | clip-reg | lstm
    seed: int = 0
    hidden: int = 50  # H, as the paper
    batch: int = 20  # minibatch size, as the authors' code
    lr: float = 0.01  # SGD learning rate of the RNN methods, as the authors' code
    lstm_lr: float = 0.1  # SGD learning rate of the LSTM (not in the paper)
    clip: float = 1.0  # clipping threshold on the global norm (authors' code: cutoff 1)
    alpha: float = 2.0  # weight of Omega (authors' code)
    forget_bias: float = 1.0  # the LSTM's forget-gate bias (Gers et al. 2000)
    steps: int = 5000  # at most this many updates (the paper: up to millions)
    eval_every: int = 100
    val_size: int = 1000  # fresh sequences for the periodic check
    test_size: int = 10000  # fresh sequences for the success criterion

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise RnnkitError(
                f"--method: expected one of {', '.join(METHODS)}, got {self.method!r}"
            )
        for name in ("length", "hidden", "batch", "steps", "eval_every", "val_size", "test_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise RnnkitError(
                    f"--{name.replace('_', '-')}: expected a positive integer, got {v!r}"
                )
        for name in ("lr", "lstm_lr", "clip"):
            if not getattr(self, name) > 0:
                raise RnnkitError(f"--{name}: must be positive, got {getattr(self, name)}")
        if not self.alpha >= 0:
            raise RnnkitError(f"--alpha: must be >= 0, got {self.alpha}")
        t = get_task(self.task)
        self.task = t.name
        if self.length < t.min_length:
            raise RnnkitError(
                f"--length: {t.name} needs at least {t.min_length} steps, got {self.length}"
            )

    def key(self) -> str:
        """A name for the run, unique within an experiment folder."""
        return f"{self.task}-T{self.length}-{self.method}-s{self.seed}"


@dataclass
class RunResult:
    """What one run did. ``history`` holds per-step lists (loss, grad_norm, omega) and the
    periodic checks (eval_step, val_error); grad_norm is the global norm before clipping."""

    config: RunConfig
    solved: bool
    steps_run: int
    test_error: float
    test_mse: float | None
    diverged: bool
    wall_s: float
    history: dict[str, list[float]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("config", "history")}
        return {**asdict(self.config), **d}


def build_model(cfg: RunConfig, task: Task, rng: np.random.Generator) -> TaskModel:
    """The model of a method: the paper's tanh RNN, or an LSTM for 'lstm'."""
    if cfg.method == "lstm":
        return TaskModel(
            "lstm", task.n_in, cfg.hidden, task.n_out, task.kind,
            forget_bias=cfg.forget_bias, seed=rng,
        )  # fmt: skip
    return TaskModel(
        "rnn", task.n_in, cfg.hidden, task.n_out, task.kind, init="smart_tanh", seed=rng
    )


def evaluate(
    model: TaskModel, task: Task, rng: np.random.Generator, n: int, length: int
) -> tuple[float, float | None]:
    """Error rate on ``n`` fresh sequences (and the mean squared error for regression).

    A sequence is wrong if its class is wrong, its squared error exceeds 0.04
    (adding/multiplication), or, for memorization, if any step's class is wrong.

    >>> task = get_task("temporal_order")
    >>> m = TaskModel("rnn", 6, 4, 4, init="smart_tanh", seed=0)   # untrained: chance level
    >>> err, _ = evaluate(m, task, np.random.default_rng(0), 400, 20)
    >>> 0.6 < err < 0.9
    True
    """
    wrong, sq, done = 0, 0.0, 0
    while done < n:
        b = min(1000, n - done)
        x, y = task.generate(rng, b, length)
        out = model.predict(x.astype(model.rnn.dtype, copy=False)).astype(np.float64)
        if task.kind == "regress":
            err = ((out - y) ** 2).sum(axis=1)
            wrong += int((err > REGRESS_TOLERANCE).sum())
            sq += float(err.sum())
        elif task.kind == "class_all":
            wrong += int((out.argmax(-1) != y).any(axis=1).sum())
        else:
            wrong += int((out.argmax(-1) != y).sum())
        done += b
    return wrong / n, (sq / n if task.kind == "regress" else None)


def train_run(cfg: RunConfig, on_step: Callable[[int, float], None] | None = None) -> RunResult:
    """Train one model on one task and length with one method; see the module docstring.

    Three independent generators come from ``cfg.seed``: initialisation, training data,
    and evaluation data (so the test sequences are never trained on, and every method sees
    the same training sequences for the same seed).
    """
    task = get_task(cfg.task)
    init_rng, data_rng, eval_rng = (np.random.default_rng([cfg.seed, i]) for i in range(3))
    model = build_model(cfg, task, init_rng)
    opt = SGD(model.params, model.grads, lr=cfg.lstm_lr if cfg.method == "lstm" else cfg.lr)
    clip = cfg.method != "sgd"
    reg = cfg.method == "clip-reg" and cfg.alpha > 0
    hist: dict[str, list[float]] = {
        "loss": [], "grad_norm": [], "omega": [], "eval_step": [], "val_error": []
    }  # fmt: skip
    dtype = model.rnn.dtype
    solved, diverged, steps = False, False, 0
    test_error, test_mse = 1.0, None
    t0 = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected, not warned
        for step in range(1, cfg.steps + 1):
            x, y = task.generate(data_rng, cfg.batch, cfg.length)
            model.zero_grad()
            loss, cache = model.forward(x.astype(dtype, copy=False), y)
            dh = model.backward(cache)
            omega = 0.0
            if reg:
                w = model.params["rnn.weight_hh_l0"]
                omega, ocache = omega_forward(w, dh, cache["out"], model.rnn.nonlinearity)
                model.grads["rnn.weight_hh_l0"] += cfg.alpha * omega_backward(ocache)
            norm = clip_grad_norm(model.grads, cfg.clip) if clip else global_grad_norm(model.grads)
            hist["loss"].append(loss)
            hist["grad_norm"].append(norm)
            hist["omega"].append(omega)
            steps = step
            if not (math.isfinite(loss) and math.isfinite(norm)):
                diverged = True  # the weights are no longer usable; the run has failed
                break
            opt.step()
            if on_step is not None:
                on_step(step, loss)
            if step % cfg.eval_every == 0 or step == cfg.steps:
                val_error, _ = evaluate(model, task, eval_rng, cfg.val_size, cfg.length)
                hist["eval_step"].append(step)
                hist["val_error"].append(val_error)
                if val_error < SUCCESS_ERROR or step == cfg.steps:
                    test_error, test_mse = evaluate(
                        model, task, eval_rng, cfg.test_size, cfg.length
                    )
                    if test_error < SUCCESS_ERROR:
                        solved = True
                        break
    if diverged:
        test_error, test_mse = 1.0, None
    return RunResult(
        cfg, solved, steps, test_error, test_mse, diverged, time.perf_counter() - t0, hist
    )


# --- the experiment ----------------------------------------------------------------------------

RESULTS = "results.jsonl"


def load_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for i, line in enumerate(read_lines(path, allow_empty=True), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise RnnkitError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return rows


def _write_json_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with atomic_write(path) as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Limit BLAS to one thread while the block runs.

    The matrices here are small (H = 50): a multi-threaded BLAS gains nothing on them and,
    on a busy machine, loses an order of magnitude to thread contention.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def run_experiment(
    configs: list[RunConfig],
    out: str | Path | None = None,
    echo: Callable[[str], None] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Run every configuration (one process, one run at a time) and collect summaries.

    With ``out``, each finished run is saved at once to ``out/results.jsonl`` (rewritten
    atomically) and its history to ``out/history/<key>.json``; a run whose key and settings
    are already in ``results.jsonl`` is not run again, so an interrupted experiment resumes.
    """
    out_dir = Path(out) if out is not None else None
    done: list[dict[str, Any]] = []
    if out_dir is not None:
        done = load_results(out_dir / RESULTS)
    known = {json.dumps(_settings(r), sort_keys=True): r for r in done}
    results = []
    for cfg in configs:
        settings = json.dumps(_settings(asdict(cfg)), sort_keys=True)
        if settings in known:
            results.append(known[settings])
            continue
        bar = _ProgressBar(cfg) if progress else None
        with single_thread_blas():
            r = train_run(cfg, on_step=bar.step if bar is not None else None)
        if bar is not None:
            bar.close()
        row = r.summary()
        results.append(row)
        if echo is not None:
            status = "solved" if r.solved else ("diverged" if r.diverged else "not solved")
            echo(f"{cfg.key()}: {status} after {r.steps_run} steps, test error "
                 f"{100 * r.test_error:.2f}%, {r.wall_s:.1f} s")  # fmt: skip
        if out_dir is not None:
            done.append(row)
            known[settings] = row
            _write_json_lines(out_dir / RESULTS, done)
            with atomic_write(out_dir / "history" / f"{cfg.key()}.json") as f:
                json.dump({"config": asdict(cfg), **r.history}, f)
    return results


class _ProgressBar:
    """A tqdm bar on stderr counting one run's updates."""

    def __init__(self, cfg: RunConfig) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=cfg.steps, desc=cfg.key(), unit="step", leave=False)

    def step(self, step: int, loss: float) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _settings(row: dict[str, Any]) -> dict[str, Any]:
    """A run's settings; fields added since a row was written take their defaults."""
    return {f.name: row.get(f.name, f.default) for f in fields(RunConfig)}


def success_table(rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], tuple[int, int]]:
    """(task, length, method) -> (runs solved, runs).

    >>> success_table([dict(task="adding", length=50, method="sgd", solved=s) for s in (1, 0)])
    {('adding', 50, 'sgd'): (1, 2)}
    """
    table: dict[tuple[str, int, str], tuple[int, int]] = {}
    for r in rows:
        k = (r["task"], int(r["length"]), r["method"])
        s, n = table.get(k, (0, 0))
        table[k] = (s + int(bool(r["solved"])), n + 1)
    return table


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one table per task, lengths down, methods across, 'solved/runs' and the
    median number of updates of the solved runs.

    >>> rows = [dict(task="adding", length=20, method="clip", solved=True, steps_run=300),
    ...         dict(task="adding", length=20, method="clip", solved=False, steps_run=500)]
    >>> print(format_table(rows))
    **adding**
    <BLANKLINE>
    | T | clip |
    |---:|:---:|
    | 20 | 1/2 (300) |
    """
    table = success_table(rows)
    blocks = []
    for task in sorted({k[0] for k in table}):
        methods = [m for m in METHODS if any(k[0] == task and k[2] == m for k in table)]
        lengths = sorted({k[1] for k in table if k[0] == task})
        lines = [f"**{task}**", "", "| T | " + " | ".join(methods) + " |",
                 "|---:|" + ":---:|" * len(methods)]  # fmt: skip
        for T in lengths:
            cells = []
            for m in methods:
                if (task, T, m) not in table:
                    cells.append("")
                    continue
                s, n = table[(task, T, m)]
                steps = [
                    int(r["steps_run"]) for r in rows
                    if (r["task"], int(r["length"]), r["method"]) == (task, T, m) and r["solved"]
                ]  # fmt: skip
                med = f" ({int(np.median(steps))})" if steps else ""
                cells.append(f"{s}/{n}{med}")
            lines.append(f"| {T} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
