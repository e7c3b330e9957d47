"""Optimizers and schedules against torch.optim, step by step, in float64."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rnnkit.io import RnnkitError
from rnnkit.train import SGD, Adagrad, Adam, ReduceLROnPlateau, RMSProp, StepDecay

# Small unequal shapes so that any mix-up of parameters or axes shows.
SHAPES = {"weight_ih_l0": (6, 4), "bias_ih_l0": (6,), "encoder.weight": (5, 3)}
N_STEPS = 8

# (id, our class, torch's class, keyword arguments both take)
CASES = [
    ("sgd", SGD, torch.optim.SGD, {"lr": 0.1}),
    ("sgd-momentum", SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    ("sgd-dampening-wd", SGD, torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    ("sgd-nesterov", SGD, torch.optim.SGD,
     {"lr": 0.1, "momentum": 0.7, "nesterov": True, "weight_decay": 1e-3}),
    ("adagrad", Adagrad, torch.optim.Adagrad, {"lr": 0.1}),
    ("adagrad-all", Adagrad, torch.optim.Adagrad,
     {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.02, "initial_accumulator_value": 0.3,
      "eps": 1e-6}),
    ("rmsprop", RMSProp, torch.optim.RMSprop, {"lr": 0.01}),
    ("rmsprop-charrnn", RMSProp, torch.optim.RMSprop, {"lr": 2e-3, "alpha": 0.95}),
    ("rmsprop-centered", RMSProp, torch.optim.RMSprop, {"lr": 0.01, "centered": True}),
    ("rmsprop-centered-momentum", RMSProp, torch.optim.RMSprop,
     {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.01, "momentum": 0.5,
      "centered": True}),
    ("adam", Adam, torch.optim.Adam, {"lr": 1e-2}),
    ("adam-all", Adam, torch.optim.Adam,
     {"lr": 3e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
]  # fmt: skip
IDS = [c[0] for c in CASES]


def _random_params(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape) for name, shape in SHAPES.items()}


def _random_grads(rng: np.random.Generator) -> dict[str, np.ndarray]:
    # Scales differ per tensor so that per-element adaptivity is exercised.
    return {name: rng.normal(scale=1 + i, size=s) for i, (name, s) in enumerate(SHAPES.items())}


@pytest.mark.parametrize("ours, theirs, kw", [c[1:] for c in CASES], ids=IDS)
def test_matches_torch_optim(ours, theirs, kw):
    params = _random_params(0)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = ours(params, grads, **kw)
    topt = theirs(list(tparams.values()), **kw)
    rng = np.random.default_rng(1)
    for step in range(N_STEPS):
        if step == 5:  # a schedule changing the rate mid-run
            opt.lr *= 0.5
            topt.param_groups[0]["lr"] *= 0.5
        opt.zero_grad()
        topt.zero_grad()
        for name, g in _random_grads(rng).items():
            grads[name] += g
            tparams[name].grad = torch.tensor(g)
        opt.step()
        topt.step()
        for name, p in params.items():
            ref = tparams[name].detach().numpy()
            err = np.max(np.abs(p - ref))
            assert err < 1e-6, f"step {step} {name}: max |diff| {err:.3g}"
    # The buffers carry PyTorch's names and values too.
    for name, tp in tparams.items():
        for buf, value in topt.state[tp].items():
            if buf == "step":
                assert int(value) == opt.step_count
                continue
            err = np.max(np.abs(opt.state[name][buf] - value.numpy()))
            assert err < 1e-6, f"{buf}/{name}: max |diff| {err:.3g}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_compiled_update_is_the_numpy_update_bit_for_bit(dtype, weight_decay, compiled):
    """Adam's one-pass compiled update (contiguous float arrays) against its NumPy form (used
    for other layouts): equal bits after 12 steps, buffers too; a non-contiguous parameter
    takes the NumPy path and agrees as well."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 24)).astype(dtype)
    runs = []
    for fused in (True, False):
        p = {"w": base.copy(), "t": base.T.copy().T}  # "t" is Fortran-ordered: NumPy path
        g = {k: np.zeros_like(v) for k, v in p.items()}
        opt = Adam(p, g, lr=0.02, betas=(0.85, 0.99), weight_decay=weight_decay)
        if not fused:

            def numpy_only(w, gw, state, opt=opt):
                state.setdefault("exp_avg", np.zeros_like(w))
                state.setdefault("exp_avg_sq", np.zeros_like(w))
                opt._update_numpy(w, gw, state["exp_avg"], state["exp_avg_sq"])

            opt._update = numpy_only
        grng = np.random.default_rng(4)
        for step in range(12):
            step_grad = grng.normal(size=base.shape) * (step % 3)  # some all-zero steps
            for v in g.values():
                v[...] = step_grad
            opt.step()
        runs.append((p, opt.state))
    (p1, s1), (p2, s2) = runs
    for k in ("w", "t"):
        np.testing.assert_array_equal(p1[k], p2[k])
        for buf in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(s1[k][buf], s2[k][buf])
    np.testing.assert_array_equal(p1["w"], p1["t"])  # both paths, same numbers


def test_updates_in_place_and_zero_grad_keeps_arrays():
    params = _random_params(2)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    ids = {k: id(v) for k, v in params.items()}
    opt = Adam(params, grads, lr=0.1)
    opt.step()
    opt.zero_grad()
    assert {k: id(v) for k, v in params.items()} == ids
    assert all(not g.any() for g in grads.values())
    # Weight decay must not leak into the model's gradients.
    grads["bias_ih_l0"][:] = 1.0
    SGD(params, grads, lr=0.1, weight_decay=0.5).step()
    assert np.all(grads["bias_ih_l0"] == 1.0)


@pytest.mark.parametrize("ours, kw", [(c[1], c[3]) for c in CASES], ids=IDS)
def test_state_dict_resume_is_exact(ours, kw):
    """3 steps, save (through JSON for the scalars), load into a fresh optimizer, 3 more steps:
    the same parameters as 6 uninterrupted steps."""
    rng_grads = [_random_grads(np.random.default_rng(10 + i)) for i in range(6)]

    def run(params, opt, steps):
        for g in steps:
            opt.zero_grad()
            for k, v in g.items():
                opt.grads[k] += v
            opt.step()

    full = _random_params(3)
    opt_full = ours(full, {k: np.zeros_like(v) for k, v in full.items()}, **kw)
    run(full, opt_full, rng_grads)

    part = _random_params(3)
    opt_a = ours(part, {k: np.zeros_like(v) for k, v in part.items()}, **kw)
    run(part, opt_a, rng_grads[:3])
    state = opt_a.state_dict()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    scalars = json.loads(json.dumps({k: v for k, v in state.items() if k not in arrays}))
    resumed = {k: v.copy() for k, v in part.items()}
    opt_b = ours(resumed, {k: np.zeros_like(v) for k, v in resumed.items()}, lr=123.0)
    opt_b.load_state_dict({**scalars, **arrays})
    assert opt_b.lr == opt_a.lr
    run(resumed, opt_b, rng_grads[3:])
    for k in full:
        np.testing.assert_array_equal(resumed[k], full[k])


def test_load_state_dict_errors():
    params = _random_params(4)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    adam = Adam(params, grads, lr=0.1)
    adam.step()
    state = adam.state_dict()
    with pytest.raises(RnnkitError, match="optimizer state is for 'Adam', this run uses SGD"):
        SGD(params, grads, lr=0.1).load_state_dict(state)
    bad = dict(state, **{"exp_avg/encoder.weight": np.zeros((3, 5))})
    with pytest.raises(RnnkitError, match=r"'exp_avg/encoder.weight' has shape \(3, 5\)"):
        Adam(params, grads).load_state_dict(bad)
    bad = dict(state, **{"exp_avg/decoder.weight": np.zeros(3)})
    with pytest.raises(RnnkitError, match="unexpected array 'exp_avg/decoder.weight'"):
        Adam(params, grads).load_state_dict(bad)
    bad = {k: v for k, v in state.items() if k != "beta2"}
    with pytest.raises(RnnkitError, match="lacks 'beta2'"):
        Adam(params, grads).load_state_dict(bad)


def test_constructor_errors():
    p = {"w": np.zeros(3)}
    with pytest.raises(ValueError, match="same names"):
        SGD(p, {"v": np.zeros(3)}, lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        SGD(p, {"w": np.zeros(4)}, lr=0.1)
    with pytest.raises(ValueError, match="floating-point"):
        SGD({"w": np.zeros(3, dtype=int)}, {"w": np.zeros(3)}, lr=0.1)
    with pytest.raises(RnnkitError, match="lr must be >= 0, got -1"):
        Adam(p, {"w": np.zeros(3)}, lr=-1)
    with pytest.raises(RnnkitError, match="Nesterov"):
        SGD(p, {"w": np.zeros(3)}, lr=0.1, nesterov=True)
    with pytest.raises(RnnkitError, match="beta2 must be in"):
        Adam(p, {"w": np.zeros(3)}, betas=(0.9, 1.0))


def _dummy_pair(lr):
    ours = SGD({"w": np.zeros(1)}, {"w": np.zeros(1)}, lr=lr)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    return ours, theirs


@pytest.mark.parametrize("after_epoch, factor", [(4, 0.5), (5, 0.5), (1, 0.8), (12, 0.9)])
def test_step_decay_matches_torch_multistep(after_epoch, factor):
    epochs = 13
    ours, theirs = _dummy_pair(1.0)
    sched = StepDecay(ours, factor=factor, after_epoch=after_epoch)
    milestones = list(range(after_epoch, epochs + 1))
    tsched = torch.optim.lr_scheduler.MultiStepLR(theirs, milestones=milestones, gamma=factor)
    for _ in range(epochs):
        assert math.isclose(ours.lr, theirs.param_groups[0]["lr"], rel_tol=1e-12)
        theirs.step()  # (no gradients: a no-op, called in the order torch expects)
        sched.step()
        tsched.step()
    assert math.isclose(ours.lr, theirs.param_groups[0]["lr"], rel_tol=1e-12)


def test_step_decay_zaremba_schedule():
    """Zaremba et al. 2014 small model: lr 1 for 4 epochs, then halved after each epoch."""
    opt, _ = _dummy_pair(1.0)
    sched = StepDecay(opt, factor=0.5, after_epoch=4)
    rates = []
    for _ in range(13):
        rates.append(opt.lr)
        sched.step()
    assert rates == [1.0] * 4 + [0.5**e for e in range(1, 10)]
    state = json.loads(json.dumps(sched.state_dict()))
    fresh = StepDecay(opt, factor=0.9, after_epoch=1)
    fresh.load_state_dict(state)
    assert (fresh.factor, fresh.after_epoch, fresh.epoch) == (0.5, 4, 13)
    with pytest.raises(RnnkitError, match="after_epoch must be >= 1, got 0"):
        StepDecay(opt, after_epoch=0)
    with pytest.raises(RnnkitError, match="decay factor must be in"):
        StepDecay(opt, factor=1.5)


PLATEAU_CASES = [
    {},
    {"factor": 0.5, "patience": 2},
    {"factor": 0.5, "patience": 1, "cooldown": 2},
    {"factor": 0.3, "patience": 0, "min_lr": 0.05},
    {"factor": 0.5, "patience": 1, "threshold": 0.05},
    {"factor": 0.5, "patience": 1, "threshold": 0.2, "threshold_mode": "abs"},
    {"factor": 0.5, "patience": 1, "mode": "max", "cooldown": 1},
    {"factor": 0.5, "patience": 2, "mode": "max", "threshold_mode": "abs", "threshold": 0.1},
]


def _metric_sequence() -> list[float]:
    rng = np.random.default_rng(5)
    # Improving, then noisy plateaus, a NaN, small relative improvements, a jump.
    seq = list(10 - np.arange(6.0))
    seq += list(4.5 + 0.05 * rng.normal(size=10))
    seq += [float("nan"), 4.4, 4.39, 4.38, 4.1, 4.1, 4.1]
    seq += list(3 + 0.3 * rng.normal(size=20))
    seq += [7.0, 8.0, 2.0, 2.0, 2.0, 2.0, 1.99, 1.5]
    return seq


@pytest.mark.parametrize("kw", PLATEAU_CASES, ids=[str(i) for i in range(len(PLATEAU_CASES))])
def test_reduce_on_plateau_matches_torch(kw):
    ours, theirs = _dummy_pair(1.0)
    sched = ReduceLROnPlateau(ours, **kw)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kw)
    seq = _metric_sequence()
    changes = 0
    for i, value in enumerate(seq):
        before = ours.lr
        sched.step(value)
        tsched.step(value)
        changes += ours.lr != before
        assert math.isclose(ours.lr, theirs.param_groups[0]["lr"], rel_tol=1e-12), (
            f"epoch {i} (metric {value}): ours {ours.lr}, torch {theirs.param_groups[0]['lr']}"
        )
        if i == len(seq) // 2:  # resume half-way from a JSON round trip
            state = json.loads(json.dumps(sched.state_dict()))
            lr = ours.lr
            ours = SGD({"w": np.zeros(1)}, {"w": np.zeros(1)}, lr=lr)
            sched = ReduceLROnPlateau(ours)
            sched.load_state_dict(state)
    assert changes > 0  # the sequence does exercise a reduction


def test_reduce_on_plateau_state_before_any_metric_is_json():
    opt, _ = _dummy_pair(1.0)
    sched = ReduceLROnPlateau(opt, mode="max")
    text = json.dumps(sched.state_dict(), allow_nan=False)  # best = -inf is stored as null
    other = ReduceLROnPlateau(opt)
    other.load_state_dict(json.loads(text))
    assert other.mode == "max" and other.best == -math.inf
