"""The conditional generator and the decoders: finite differences (d params and d x), a
PyTorch twin, beam search against exhaustive enumeration, greedy = beam 1, sampling
frequencies against the model's probabilities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rnnkit.engine.gradcheck import gradcheck
from rnnkit.engine.ops import log_softmax
from rnnkit.models.beam import beam_search, select_state
from rnnkit.models.generate import (
    ConditionalGenerator,
    GeneratorConfig,
    greedy_decode,
    sample_decode,
)


def _data(V=7, F=3, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((3, F))
    lengths = np.array([4, 2, 3])
    inp = r.integers(3, V, (3, 4))
    inp[:, 0] = 1  # BOS
    tgt = np.roll(inp, -1, axis=1)
    tgt[np.arange(3), lengths - 1] = 2  # EOS
    inp[np.arange(4)[None, :] >= lengths[:, None]] = 0
    tgt[np.arange(4)[None, :] >= lengths[:, None]] = 0
    return x, inp, tgt, lengths


@pytest.mark.parametrize(
    "cell,feed,layers,dropout",
    [("lstm", True, 2, 0.2), ("gru", False, 1, 0.0), ("rnn", True, 1, 0.0)],
)
def test_generator_gradcheck(cell, feed, layers, dropout):
    cfg = GeneratorConfig(
        feature_size=3,
        vocab_size=7,
        cell=cell,
        embed=3,
        hidden=4,
        layers=layers,
        feed_input=feed,
        dropout=dropout,
        dtype="float64",
    )
    gen = ConditionalGenerator(cfg, seed=1)
    x, inp, tgt, lengths = _data()
    saved = gen.rng.bit_generator.state

    def f():
        gen.rng.bit_generator.state = saved  # the same dropout masks each time
        return gen.forward(x, inp, tgt, lengths)[0]

    gen.rng.bit_generator.state = saved
    _, _, cache = gen.forward(x, inp, tgt, lengths)
    gen.zero_grad()
    dx = gen.backward(cache)
    gradcheck(f, {**gen.params, "x": x}, {**gen.grads, "x": dx})


def test_generator_matches_torch_twin():
    F, V, E, H, L = 3, 7, 4, 5, 2
    cfg = GeneratorConfig(feature_size=F, vocab_size=V, embed=E, hidden=H, layers=L,
                          feed_input=True, dtype="float64")  # fmt: skip
    gen = ConditionalGenerator(cfg, seed=0)
    x, inp, tgt, lengths = _data(V, F)
    loss, logits, cache = gen.forward(x, inp, tgt, lengths)
    gen.zero_grad()
    gen.backward(cache)
    f64 = torch.float64
    m = torch.nn.ModuleDict({
        "init_h": torch.nn.Linear(F, L * H, dtype=f64),
        "init_c": torch.nn.Linear(F, L * H, dtype=f64),
        "embedding": torch.nn.Embedding(V, E, dtype=f64),
        "rnn": torch.nn.LSTM(E + F, H, L, batch_first=True, dtype=f64),
        "out": torch.nn.Linear(H, V, dtype=f64),
    })  # fmt: skip
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in gen.params.items()})
    xt = torch.from_numpy(x)
    h0 = torch.tanh(m["init_h"](xt)).reshape(3, L, H).transpose(0, 1).contiguous()
    c0 = torch.tanh(m["init_c"](xt)).reshape(3, L, H).transpose(0, 1).contiguous()
    e = m["embedding"](torch.from_numpy(inp))
    e = torch.cat([e, xt[:, None, :].expand(3, 4, F)], dim=2)
    out, _ = m["rnn"](e, (h0, c0))  # padding lies after each target: no packing needed
    t_logits = m["out"](out)
    valid = torch.from_numpy(np.arange(4)[None, :] < lengths[:, None])
    t_loss = torch.nn.functional.cross_entropy(t_logits[valid], torch.from_numpy(tgt)[valid])
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-10
    np.testing.assert_allclose(logits[valid.numpy()], t_logits.detach().numpy()[valid.numpy()],
                               atol=1e-10, rtol=0)  # fmt: skip
    for name, p in m.named_parameters():
        np.testing.assert_allclose(gen.grads[name], p.grad.numpy(), rtol=1e-8, atol=1e-12,
                                   err_msg=name)  # fmt: skip


def _markov(V=4, seed=0, order2=True):
    """A random step function whose state is the last two tokens (so scores depend on the
    history), with the state batch axis 1 as rnnkit's layers have it."""
    r = np.random.default_rng(seed)
    table = log_softmax(r.standard_normal((V, V, V)) * 1.5)

    def step(tokens, state):
        prev = state[0, :, 0]  # (K,)
        logp = table[prev, tokens] if order2 else table[0, tokens]
        new = np.stack([tokens, prev], axis=1)[None]  # (1, K, 2)
        return logp, new

    return step, table


def _exhaustive(table, V, bos, eos, max_len, alpha):
    best = []
    for n in range(0, max_len + 1):
        for seq in itertools.product([v for v in range(V) if v != eos], repeat=n):
            prev, tok, s = 0, bos, 0.0
            for v in seq:
                s += table[prev, tok, v]
                prev, tok = tok, v
            if n < max_len:
                best.append((list(seq), (s + table[prev, tok, eos]) / (n + 1) ** alpha))
            else:  # unterminated at max_len
                best.append((list(seq), s / n**alpha))
    return sorted(best, key=lambda h: -h[1])


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.6])
def test_beam_search_exhaustive(alpha):
    V, bos, eos, max_len = 4, 0, 3, 4
    step, table = _markov(V, seed=1)
    init = np.zeros((1, 1, 2), dtype=np.int64)
    hyps = beam_search(step, init, bos, eos, beam_size=10_000, max_len=max_len, alpha=alpha)
    ref = _exhaustive(table, V, bos, eos, max_len, alpha)
    assert len(hyps) == len(ref)
    assert hyps[0][0] == ref[0][0], (hyps[:3], ref[:3])
    np.testing.assert_allclose([h[1] for h in hyps], [h[1] for h in ref], rtol=1e-12)


def _score(table, seq, bos, eos, max_len, alpha):
    """The normalised log-probability of one hypothesis, computed directly."""
    prev, tok, s = 0, bos, 0.0
    for v in seq:
        s += table[prev, tok, v]
        prev, tok = tok, v
    if len(seq) < max_len:
        return (s + table[prev, tok, eos]) / (len(seq) + 1) ** alpha
    return s / len(seq) ** alpha


@pytest.mark.parametrize("seed", range(5))
def test_beam_one_is_greedy_and_scores_are_exact(seed):
    V, bos, eos, max_len = 5, 0, 4, 6
    step, table = _markov(V, seed=seed)
    init = np.zeros((1, 1, 2), dtype=np.int64)
    greedy = greedy_decode(step, init, bos, eos, max_len, batch_size=1)[0]
    beam1 = beam_search(step, init, bos, eos, beam_size=1, max_len=max_len, alpha=0.0)
    assert beam1[0][0] == greedy
    for k, alpha, early in [(2, 0.0, True), (3, 1.0, True), (4, 0.0, False), (3, 0.7, False)]:
        hyps = beam_search(step, init, bos, eos, k, max_len, alpha=alpha, early_stop=early)
        assert [h[1] for h in hyps] == sorted((h[1] for h in hyps), reverse=True)
        for seq, score in hyps:
            assert abs(score - _score(table, seq, bos, eos, max_len, alpha)) < 1e-12


def test_beam_without_early_stop_finds_what_early_stop_misses():
    # seed 3: four short hypotheses finish first, but the best one is unterminated at max_len
    step, table = _markov(5, seed=3)
    init = np.zeros((1, 1, 2), dtype=np.int64)
    ref = _exhaustive(table, 5, 0, 4, 6, 0.0)[0]
    early = beam_search(step, init, 0, 4, 4, 6, alpha=0.0, early_stop=True)[0]
    full = beam_search(step, init, 0, 4, 4, 6, alpha=0.0)[0]
    assert early[1] < ref[1] - 1.0
    assert full[0] == ref[0] and abs(full[1] - ref[1]) < 1e-12


def test_sampling_follows_the_distribution():
    V, eos = 4, 3
    step, table = _markov(V, seed=2, order2=False)
    init = np.zeros((1, 20000, 2), dtype=np.int64)
    seqs = sample_decode(step, init, bos=0, eos=eos, max_len=1, batch_size=20000,
                         rng=np.random.default_rng(0), temperature=1.0)  # fmt: skip
    first = np.array([s[0] if s else eos for s in seqs])
    freq = np.bincount(first, minlength=V) / len(first)
    p = np.exp(table[0, 0])
    # 20000 draws: the standard error of each frequency is below 0.0036
    assert np.abs(freq - p).max() < 0.015, (freq, p)


def test_select_state_and_errors():
    h = np.arange(12.0).reshape(1, 4, 3)
    picked = select_state({"h": h, "c": [h]}, np.array([3, 0]))
    assert picked["h"][0, :, 0].tolist() == [9.0, 0.0] and picked["c"][0].shape == (1, 2, 3)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(lambda t, s: (np.zeros((1, 2)), s), None, 0, 1, 0, 3)
    gen = ConditionalGenerator(GeneratorConfig(feature_size=2, vocab_size=5), seed=0)
    with pytest.raises(ValueError, match="x: expected shape"):
        gen.decode(np.zeros((1, 3)), 1, 2, 5)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 2.0])
def test_beam_width_one_is_greedy_for_any_alpha(alpha):
    """K = 1 must reproduce greedy decoding whatever the length normalisation."""
    rng = np.random.default_rng(7)
    for _ in range(30):
        table = np.log(rng.dirichlet(np.ones(5) * 0.5, size=5))  # a random Markov chain

        def step(tokens, state, table=table):
            return table[tokens], state

        greedy = greedy_decode(step, None, bos=0, eos=4, max_len=8, batch_size=1)[0]
        best = beam_search(step, None, bos=0, eos=4, beam_size=1, max_len=8, alpha=alpha)[0][0]
        assert best == greedy
