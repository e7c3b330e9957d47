"""The pathological tasks against their definitions (Pascanu et al. 2013 sec. 4.1; Hochreiter
& Schmidhuber 1997; Martens & Sutskever 2011), decoded back from the generated one-hot
inputs; the regularizer Omega and the task model's backward pass against central
differences (float64); the training loop's bookkeeping; and the seed-004 parameter count
against torch."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.diagnostics import pathological as patho
from rnnkit.diagnostics.pathological import (
    RunConfig,
    TaskModel,
    format_table,
    omega_backward,
    omega_forward,
    run_experiment,
    train_run,
)
from rnnkit.diagnostics.summary import format_summary, summarize
from rnnkit.diagnostics.tasks import TASKS, get_task
from rnnkit.engine.gradcheck import gradcheck
from rnnkit.engine.layers import RNN
from rnnkit.io import RnnkitError

N = 500  # sequences per generator check


def rng(seed=0):
    return np.random.default_rng(seed)


# --- the tasks -------------------------------------------------------------------------------


def check_one_hot(x):
    assert set(np.unique(x)) <= {0.0, 1.0}
    np.testing.assert_array_equal(x.sum(axis=2), 1.0)


@pytest.mark.parametrize("T", [10, 37, 200])
def test_temporal_order(T):
    x, y = TASKS["temporal_order"].generate(rng(T), N, T)
    check_one_hot(x)
    ids = x.argmax(axis=2)
    for b in range(N):
        pos = np.flatnonzero(ids[b] < 2)  # the relevant symbols A (0) and B (1)
        assert len(pos) == 2
        lo = int(0.1 * T)
        assert lo <= pos[0] < 2 * lo and int(0.5 * T) <= pos[1] < int(0.5 * T) + lo
        assert y[b] == ids[b, pos[0]] + 2 * ids[b, pos[1]]  # AA, BA, AB, BB
    assert set(np.unique(y)) == {0, 1, 2, 3}


def test_temporal_order_3bit():
    T = 60
    x, y = TASKS["temporal_order_3bit"].generate(rng(1), N, T)
    check_one_hot(x)
    ids = x.argmax(axis=2)
    windows = [(6, 12), (18, 24), (36, 42)]
    for b in range(N):
        pos = np.flatnonzero(ids[b] < 2)
        assert len(pos) == 3
        assert all(lo <= p < hi for p, (lo, hi) in zip(pos, windows, strict=True))
        assert y[b] == sum(ids[b, p] << i for i, p in enumerate(pos))
    assert set(np.unique(y)) == set(range(8))


@pytest.mark.parametrize(
    "name,op", [("adding", lambda a, b: (a + b) / 2), ("multiplication", np.multiply)]
)
def test_adding_and_multiplication(name, op):
    T = 50
    lengths = set()
    for seed in range(20):
        x, y = TASKS[name].generate(rng(seed), 64, T)
        n = x.shape[1]
        lengths.add(n)
        assert T <= n < T + T // 10
        assert np.all((x[:, :, 0] >= 0) & (x[:, :, 0] < 1))
        for b in range(64):
            pos = np.flatnonzero(x[b, :, 1])
            assert len(pos) == 2 and pos[0] < int(0.1 * n) and int(0.1 * n) <= pos[1] < int(0.5 * n)
            assert y[b, 0] == pytest.approx(op(x[b, pos[0], 0], x[b, pos[1], 0]), rel=1e-6)
    assert len(lengths) > 1


def test_permutation():
    x, y = TASKS["permutation"].generate(rng(2), N, 30)
    check_one_hot(x)
    ids = x.argmax(axis=2)
    assert x.shape == (N, 30, 100)
    np.testing.assert_array_equal(y, ids[:, 0])
    assert set(np.unique(y)) == {0, 1} and ids[:, 1:].min() >= 2


@pytest.mark.parametrize(
    "name,values,n_pos", [("memorization", 5, 10), ("memorization_5bit", 2, 5)]
)
def test_memorization(name, values, n_pos):
    T = 25
    x, y = TASKS[name].generate(rng(3), N, T)
    check_one_hot(x)
    ids = x.argmax(axis=2)
    blank, go = values, values + 1
    assert x.shape == (N, T + 2 * n_pos, values + 2) and y.shape == (N, T + 2 * n_pos)
    np.testing.assert_array_equal(y[:, -n_pos:], ids[:, :n_pos])  # reproduce the pattern
    assert np.all(y[:, :-n_pos] == blank)
    assert np.all(ids[:, :n_pos] < values) and np.all(ids[:, n_pos + T] == go)
    rest = np.delete(ids[:, n_pos:], T, axis=1)
    assert np.all(rest == blank)


def test_generators_are_seeded_and_reject_short_lengths():
    a = TASKS["adding"].generate(rng(5), 4, 20)
    b = TASKS["adding"].generate(rng(5), 4, 20)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(RnnkitError, match="at least 10"):
        get_task("temporal-order").generate(rng(), 2, 9)
    with pytest.raises(RnnkitError, match="unknown task 'nope'"):
        get_task("nope")


# --- Omega ---------------------------------------------------------------------------------


@pytest.mark.parametrize("nonlin", ["tanh", "sigmoid"])
def test_omega_gradient_matches_finite_differences(nonlin):
    r = rng(7)
    B, T, H = 3, 4, 5
    w = r.standard_normal((H, H)) * 0.7
    dh = r.standard_normal((B, T, H))
    dh[0, 1] = 0.0  # a step that receives no gradient is skipped
    h = np.tanh(r.standard_normal((B, T, H))) if nonlin == "tanh" else r.random((B, T, H))

    def f():
        return omega_forward(w, dh, h, nonlin)[0]

    _, cache = omega_forward(w, dh, h, nonlin)
    gradcheck(f, {"w_hh": w}, {"w_hh": omega_backward(cache)}, rtol=1e-6)


def test_omega_value_from_explicit_jacobians():
    # Omega of eq. 9 with J_i = dh_i/dh_{i-1} formed by rnn_step_jacobians from a real RNN
    from rnnkit.diagnostics import rnn_step_jacobians

    B, T, D, H = 2, 6, 3, 4
    rnn = RNN(D, H, dtype=np.float64, seed=0, init_range=1.0)
    x = rng(1).standard_normal((B, T, D))
    h, _ = rnn(x)
    dh = rng(2).standard_normal((B, T, H))
    J = rnn_step_jacobians(rnn, x)  # (T, B, H, H)
    terms = [
        (np.linalg.norm(dh[b, i] @ J[i, b]) / np.linalg.norm(dh[b, i]) - 1.0) ** 2
        for b in range(B) for i in range(T)
    ]  # fmt: skip
    value, _ = omega_forward(rnn.params["weight_hh_l0"], dh, h)
    assert value == pytest.approx(np.mean(terms), rel=1e-12)


# --- the task model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell,kind,bias",
    [("rnn", "class", True), ("lstm", "regress", True), ("gru", "class_all", False),
     ("rnn", "regress", False)],
)  # fmt: skip
def test_task_model_gradients(cell, kind, bias):
    B, T, D, H, O = 2, 4, 3, 5, 3
    m = TaskModel(cell, D, H, O, kind=kind, bias=bias, dtype=np.float64, seed=0)
    r = rng(1)
    x = r.standard_normal((B, T, D))
    y = {"class": r.integers(O, size=B), "regress": r.standard_normal((B, O)),
         "class_all": r.integers(O, size=(B, T))}[kind]  # fmt: skip

    def f():
        return m.forward(x, y)[0]

    m.zero_grad()
    _, cache = m.forward(x, y)
    m.backward(cache)
    names = ["out.weight", "rnn.weight_hh_l0", "rnn.weight_ih_l0"] + (["out.bias"] if bias else [])
    gradcheck(f, {n: m.params[n] for n in names}, {n: m.grads[n].copy() for n in names})


def test_smart_tanh_initialisation():
    m = TaskModel("rnn", 6, 50, 4, init="smart_tanh", seed=0)
    w = m.params["rnn.weight_hh_l0"].astype(np.float64)
    assert np.max(np.abs(np.linalg.eigvals(w))) == pytest.approx(0.95, rel=1e-5)
    np.testing.assert_array_equal((w != 0).sum(axis=1), 15)
    assert np.all(m.params["rnn.bias_ih_l0"] == 0)


# --- the seed-004 exercise ---------------------------------------------------------------------


def test_seed_004_parameter_count():
    # input n = 14, hidden n/2 = 7, output 2, no biases: 7*14 + 7*7 + 2*7 = 161
    s = summarize(TaskModel("rnn", 14, 7, 2, bias=False, seed=0))
    assert s.total == 161
    assert [(n, c) for n, _, c in s.rows] == [("rnn.weight_ih_l0", 98), ("rnn.weight_hh_l0", 49),
                                              ("out.weight", 14)]  # fmt: skip
    assert format_summary(s).splitlines()[-1].split() == ["total", "161"]
    import torch  # the reference: a test-only dependency, missing = failure

    ref = torch.nn.RNN(14, 7, bias=False), torch.nn.Linear(7, 2, bias=False)
    assert sum(p.numel() for mod in ref for p in mod.parameters()) == 161


def test_summary_of_models_with_tied_and_stacked_weights():
    import torch  # the reference: a test-only dependency, missing = failure

    from rnnkit.models.lm import LanguageModel, LMConfig

    lm = LanguageModel(LMConfig(vocab_size=50, cell="lstm", embed=16, hidden=16, layers=2,
                                tie_weights=True), seed=0)  # fmt: skip
    emb, rnn = torch.nn.Embedding(50, 16), torch.nn.LSTM(16, 16, num_layers=2)
    dec_bias = 50  # the tied decoder adds only its bias
    ref = sum(p.numel() for mod in (emb, rnn) for p in mod.parameters()) + dec_bias
    assert summarize(lm).total == ref
    with pytest.raises(RnnkitError, match="no 'params' dict"):
        summarize(object())


# --- training runs ------------------------------------------------------------------------------


def small(method, **kw):
    base = dict(seed=0, steps=30, hidden=8, eval_every=10, val_size=50, test_size=100)
    return RunConfig("temporal_order", 12, method, **{**base, **kw})


def test_runs_are_reproducible_and_methods_share_training_data():
    a, b = train_run(small("clip-reg")), train_run(small("clip-reg"))
    assert a.history["loss"] == b.history["loss"]
    assert a.steps_run == 30 and len(a.history["val_error"]) == 3
    assert all(o > 0 for o in a.history["omega"])
    c = train_run(small("clip"))
    assert c.history["loss"][0] == a.history["loss"][0]  # same init and first batch
    assert all(o == 0 for o in c.history["omega"])


def test_clipping_changes_the_updates_only_above_the_threshold():
    sgd = train_run(small("sgd", steps=5, eval_every=5))
    clip_hi = train_run(small("clip", steps=5, eval_every=5, clip=1e6))
    clip_lo = train_run(small("clip", steps=5, eval_every=5, clip=1e-4))
    assert sgd.history["loss"] == clip_hi.history["loss"]  # never clipped: identical
    assert sgd.history["grad_norm"][0] == clip_lo.history["grad_norm"][0] > 1e-4
    assert sgd.history["loss"][1] != clip_lo.history["loss"][1]


def test_success_is_confirmed_on_fresh_test_sequences(monkeypatch):
    calls = []

    def fake_evaluate(model, task, rng, n, length):
        calls.append(n)
        return (0.0 if n == 100 else 0.005), None  # val error 0.5%, test error 0%

    monkeypatch.setattr(patho, "evaluate", fake_evaluate)
    r = train_run(small("lstm"))
    assert r.solved and r.steps_run == 10 and r.test_error == 0.0 and calls == [50, 100]


def test_divergence_ends_a_run():
    r = train_run(small("sgd", lr=1e38, steps=20))
    assert r.diverged and not r.solved and r.steps_run < 20


def test_evaluate_regression_criterion():
    task = get_task("adding")
    m = TaskModel("rnn", 2, 4, 1, kind="regress", dtype=np.float64, seed=0)
    m.params["out.weight"][...] = 0.0
    m.params["out.bias"][...] = 1.0  # predicts 1 everywhere: error > .04 unless target > 0.8
    err, mse = patho.evaluate(m, task, rng(0), 2000, 20)
    x, y = task.generate(rng(0), 1000, 20)
    # the target (mean of two uniforms) exceeds 0.8 with probability 0.4^2 / 2 = 0.08
    assert 0.89 < err < 0.95 and mse == pytest.approx(np.mean((1 - y) ** 2), rel=0.15)


def test_experiment_folder_resumes(tmp_path):
    cfgs = [small("sgd", steps=3, eval_every=3), small("clip", steps=3, eval_every=3)]
    rows = run_experiment(cfgs, tmp_path)
    assert len(rows) == 2 and (tmp_path / "results.jsonl").read_text().count("\n") == 2
    assert (tmp_path / "history" / "temporal_order-T12-clip-s0.json").exists()
    seen = []
    again = run_experiment(cfgs, tmp_path, echo=seen.append)
    assert seen == [] and again == rows
    assert "| 12 | 0/1 | 0/1 |" in format_table(rows)


def test_rows_written_before_a_setting_existed_still_count(tmp_path):
    import json

    cfg = small("sgd", steps=2, eval_every=2)
    run_experiment([cfg], tmp_path)
    path = tmp_path / "results.jsonl"
    row = json.loads(path.read_text())
    del row["forget_bias"]  # as written before the field was added
    path.write_text(json.dumps(row) + "\n")
    seen = []
    run_experiment([cfg], tmp_path, echo=seen.append)
    assert seen == []


def test_bad_configs_are_one_line_errors():
    with pytest.raises(RnnkitError, match="--method"):
        RunConfig("adding", 20, "adam")
    with pytest.raises(RnnkitError, match="--length: permutation needs at least 2"):
        RunConfig("permutation", 1, "sgd")
    with pytest.raises(RnnkitError, match="--lr"):
        RunConfig("adding", 20, "sgd", lr=0.0)
