"""The piano-roll model: its Bernoulli loss and every gradient against finite differences
(float64) and against PyTorch (the same weights in torch.nn.RNN/GRU/LSTM + Linear +
BCEWithLogits); the parameter budget; sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_ref import max_rel, torch_twin

from rnnkit.engine.gradcheck import gradcheck
from rnnkit.models.music import (
    PianoRollConfig,
    PianoRollModel,
    bernoulli_nll_backward,
    bernoulli_nll_forward,
    count_parameters,
    hidden_for_budget,
)

B, T, P, H = 2, 3, 4, 5  # unequal sizes: swapped axes fail


def _frames(rng, b=B, t=T, p=P):
    return (rng.random((b, t, p)) < 0.4).astype(np.float64)


def test_bernoulli_nll_against_torch_and_finite_differences():
    rng = np.random.default_rng(0)
    o = rng.standard_normal((B, T, P)) * 3
    y = _frames(rng)
    mask = np.array([[1.0, 1, 1], [1, 1, 0]])
    loss, cache = bernoulli_nll_forward(o, y, mask)
    ot = torch.tensor(o, requires_grad=True)
    per = torch.nn.functional.binary_cross_entropy_with_logits(
        ot, torch.tensor(y), reduction="none"
    ).sum(-1)
    ref = (per * torch.tensor(mask)).sum() / mask.sum()
    ref.backward()
    assert abs(loss - ref.item()) < 1e-12
    g = bernoulli_nll_backward(1.0, cache)
    assert max_rel(g, ot.grad.numpy()) < 1e-12
    gradcheck(lambda: bernoulli_nll_forward(o, y, mask)[0], {"o": o}, {"o": g})
    big = np.array([[[800.0, -800.0]]])  # no overflow: softplus written stably
    assert np.isfinite(bernoulli_nll_forward(big, np.array([[[0.0, 1.0]]]))[0])


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_model_gradients_finite_differences(cell):
    rng = np.random.default_rng(1)
    m = PianoRollModel(PianoRollConfig(pitches=P, cell=cell, hidden=H, layers=2,
                                       dtype="float64"), seed=2)  # fmt: skip
    x = _frames(rng)
    lengths = np.array([3, 2])

    def f():
        return m.forward(x, lengths, training=False)[0]

    _, _, cache = m.forward(x, lengths, training=False)
    m.zero_grad()
    m.backward(cache, dloss=1.7)  # a scale other than one: dloss is honoured
    analytic = {k: g / 1.7 for k, g in m.grads.items()}
    gradcheck(f, m.params, analytic, rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_model_against_torch(cell):
    rng = np.random.default_rng(3)
    m = PianoRollModel(PianoRollConfig(pitches=P, cell=cell, hidden=H, dtype="float64"), seed=4)
    x = _frames(rng, 3, 6)
    lengths = np.array([6, 2, 4])
    loss, _, cache = m.forward(x, lengths, training=False)
    m.zero_grad()
    m.backward(cache)

    rnn = torch_twin(m.rnn)
    lin = torch.nn.Linear(H, P, dtype=torch.float64)
    lin.load_state_dict({"weight": torch.tensor(m.params["out.weight"]),
                         "bias": torch.tensor(m.params["out.bias"])})  # fmt: skip
    xt = torch.tensor(x)
    inp = torch.cat([torch.zeros(3, 1, P, dtype=torch.float64), xt[:, :-1]], dim=1)
    pack = torch.nn.utils.rnn.pack_padded_sequence
    packed = pack(inp, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, _ = rnn(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=6)
    logits = lin(out)
    mask = torch.tensor((np.arange(6)[None] < lengths[:, None]).astype(np.float64))
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, xt, reduction="none")
    ref = (per.sum(-1) * mask).sum() / mask.sum()
    ref.backward()
    assert abs(loss - ref.item()) < 1e-10, (loss, ref.item())
    grads = {"rnn." + k: p.grad.numpy() for k, p in rnn.named_parameters()}
    grads["out.weight"], grads["out.bias"] = lin.weight.grad.numpy(), lin.bias.grad.numpy()
    assert sorted(grads) == sorted(m.grads)
    for k, g in grads.items():
        assert max_rel(m.grads[k], g) < 1e-9, (k, max_rel(m.grads[k], g))


def test_parameter_budget():
    for cell in ("rnn", "gru", "lstm"):
        for layers in (1, 2):
            m = PianoRollModel(PianoRollConfig(pitches=7, cell=cell, hidden=6, layers=layers))
            n_torch = sum(p.numel() for p in torch_twin(m.rnn).parameters()) + 7 * 6 + 7
            assert count_parameters(cell, 7, 6, layers) == m.num_parameters() == n_torch
    sizes = {c: hidden_for_budget(c, 46, 20_000) for c in ("rnn", "gru", "lstm")}
    assert sizes["rnn"] > sizes["gru"] > sizes["lstm"]
    for c, h in sizes.items():  # nearest: one unit more or less is farther from the budget
        gap = abs(count_parameters(c, 46, h) - 20_000)
        assert gap <= abs(count_parameters(c, 46, h + 1) - 20_000)
        assert gap <= abs(count_parameters(c, 46, h - 1) - 20_000)


def test_sampling_follows_the_model():
    m = PianoRollModel(PianoRollConfig(pitches=P, cell="gru", hidden=H), seed=0)
    m.params["out.weight"][:] = 0.0
    m.params["out.bias"][:] = [30.0, -30.0, 30.0, -30.0]  # pitches 0 and 2 certain, 1 and 3 never
    prime = np.eye(P, dtype=np.float32)[:2]
    roll = m.sample(5, np.random.default_rng(0), prime)
    assert roll.shape == (7, P)
    np.testing.assert_array_equal(roll[:2], prime)
    np.testing.assert_array_equal(roll[2:], np.tile([1.0, 0.0, 1.0, 0.0], (5, 1)))
    m2 = PianoRollModel(PianoRollConfig(pitches=P, cell="lstm", hidden=H), seed=0)
    a = m2.sample(20, np.random.default_rng(5))
    b = m2.sample(20, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    # each drawn frame follows the probabilities the forward pass gives for it
    _, _, cache = m2.forward(a[None], training=False)
    p = 1 / (1 + np.exp(-cache["logits"][0].astype(np.float64)))
    assert abs(a.mean() - p.mean()) < 0.15
