"""The encoder-decoder: finite differences for every backward (cells, attention scores,
input feeding, bridges, stacking, reversed source, dropout), padding guarantees, decoding
consistent with teacher forcing, and beam width 1 = greedy."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.engine.gradcheck import gradcheck
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig, make_batch

BOS, EOS, PAD = 1, 2, 0
SRC = [[3, 4, 5, 6], [6, 3], [4, 4, 5]]  # unsorted lengths, one short
TGT = [[3, 5], [4, 3, 3, 5], [5]]

CONFIGS = {
    "gru-bi-general-feed": dict(cell="gru", bidirectional=True, attention="general",
                                input_feed=True),
    "lstm-bi-2layers-additive-reversed": dict(cell="lstm", bidirectional=True, layers=2,
                                              attention="additive", reverse_source=True),
    "rnn-sutskever-reversed": dict(cell="rnn", bidirectional=False, attention="none",
                                   dec_hidden=3, reverse_source=True),
    "lstm-dot-feed-nobridge": dict(cell="lstm", bidirectional=False, attention="dot",
                                   dec_hidden=3, input_feed=True),
    "gru-none-bridge": dict(cell="gru", bidirectional=False, attention="none"),
    "gru-bi-2layers-dropout-feed": dict(cell="gru", bidirectional=True, layers=2,
                                        attention="general", input_feed=True, dropout=0.3),
}  # fmt: skip


def _model(seed=0, **kw):
    kw = {"embed": 2, "hidden": 3, "dec_hidden": 4, **kw}
    cfg = Seq2SeqConfig(src_vocab=7, tgt_vocab=6, dtype="float64", **kw)
    m = Seq2Seq(cfg, seed=seed)
    r = np.random.default_rng(seed + 100)
    for p in m.params.values():  # away from the near-uniform init: sharper decisions
        p[...] = r.normal(0.0, 0.8, p.shape)
    return m


@pytest.mark.parametrize("name", list(CONFIGS))
def test_seq2seq_gradcheck(name):
    m = _model(**CONFIGS[name])
    batch = make_batch(SRC, TGT, BOS, EOS, PAD)
    r = np.random.default_rng(1)
    rng_start = m.rng.bit_generator.state  # same dropout masks in every evaluation

    def run():
        m.rng.bit_generator.state = rng_start
        return m.forward(*batch, training=True)

    loss, cache = run()
    if m.config.layers == 1:  # (the big configurations: the second check only, for time)
        # 1. the mean cross-entropy over the real target tokens
        m.zero_grad()
        m.backward(cache)
        analytic = {k: g.copy() for k, g in m.grads.items()}
        gradcheck(lambda: run()[0], m.params, analytic, rtol=1e-5)
    # 2. a random upstream gradient on the logits (all-ones would hide gate-order bugs)
    w = r.standard_normal(cache["logits"].shape)
    m.zero_grad()
    m.backward(run()[1], dlogits=w)
    analytic = {k: g.copy() for k, g in m.grads.items()}
    gradcheck(lambda: float((run()[1]["logits"] * w).sum()), m.params, analytic, rtol=1e-5)


def test_padding_never_counts():
    m = _model(**CONFIGS["gru-bi-general-feed"])
    s, sl, ti, to, tl = make_batch(SRC, TGT, BOS, EOS, PAD)
    loss, cache = m.forward(s, sl, ti, to, tl, training=False)
    # change every padded id: same loss, same logits at real positions
    pad_src = np.arange(s.shape[1])[None, :] >= sl[:, None]
    pad_tgt = np.arange(ti.shape[1])[None, :] >= tl[:, None]
    s2, ti2, to2 = s.copy(), ti.copy(), to.copy()
    s2[pad_src], ti2[pad_tgt], to2[pad_tgt] = 5, 4, 3
    loss2, cache2 = m.forward(s2, sl, ti2, to2, tl, training=False)
    assert abs(loss - loss2) < 1e-12
    assert np.abs((cache["logits"] - cache2["logits"])[~pad_tgt]).max() < 1e-12
    # attention never reads padding
    alpha = cache["alpha"]
    assert np.abs(alpha[pad_src[:, None, :].repeat(alpha.shape[1], 1)]).max() == 0.0
    # a sentence scores the same alone and in a padded batch
    logp, _ = m.score(SRC, TGT, BOS, EOS)
    alone = [m.score([s_], [t_], BOS, EOS)[0][0] for s_, t_ in zip(SRC, TGT, strict=True)]
    assert np.allclose(logp, alone, atol=1e-12, rtol=0)
    # the loss is the mean NLL per real target token
    assert abs(loss - (-logp.sum() / tl.sum())) < 1e-12
    # padded target positions get no gradient into the decoder embedding
    m.zero_grad()
    m.backward(m.forward(s, sl, ti, to, tl, training=False)[1])
    g = m.grads["decoder.embedding.weight"]
    assert np.abs(g[PAD]).max() == 0.0  # PAD only ever appears as padding here


@pytest.mark.parametrize("name", ["gru-bi-general-feed", "lstm-bi-2layers-additive-reversed",
                                  "rnn-sutskever-reversed"])  # fmt: skip
def test_decoding_agrees_with_teacher_forcing(name):
    m = _model(seed=2, **CONFIGS[name])
    m.params["generator.bias"][EOS] += 2.0  # let some hypotheses end
    for hyps, src in zip(m.translate(SRC, BOS, EOS, beam_size=3, alpha=0.0, n_best=3), SRC,
                         strict=True):  # fmt: skip
        assert len(hyps) == 3 and hyps[0].score >= hyps[1].score >= hyps[2].score
        # with alpha = 0 the beam score is log P(y|x), which teacher forcing recomputes
        logp, alphas = m.score([src] * 3, [h.tokens for h in hyps], BOS, EOS)
        limit = 2 * len(src) + 10  # the default max length; such outputs end without EOS
        ended = [len(h.tokens) < limit for h in hyps]
        assert any(ended)
        for lp, h, e in zip(logp, hyps, ended, strict=True):
            assert abs(lp - h.score) < 1e-9 if e else lp < h.score
        for h, a in zip(hyps, alphas, strict=True):
            if a is not None:
                assert a.shape == (len(h.tokens) + 1, len(src))
                assert np.allclose(a.sum(axis=1), 1.0)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
@pytest.mark.parametrize("name", ["gru-bi-general-feed", "lstm-dot-feed-nobridge",
                                  "gru-none-bridge"])  # fmt: skip
def test_beam_width_one_is_greedy(name, alpha):
    srcs = [list(np.random.default_rng(i).integers(3, 7, 1 + i % 5)) for i in range(12)]
    m = _model(seed=3, **CONFIGS[name])
    for src in srcs:
        greedy = m.translate([src], BOS, EOS, method="greedy", max_len_b=6)[0][0]
        beam = m.translate([src], BOS, EOS, method="beam", beam_size=1, alpha=alpha,
                           max_len_b=6)[0][0]  # fmt: skip
        assert beam.tokens == greedy.tokens
    # batched greedy = one sentence at a time
    batched = m.translate(srcs, BOS, EOS, method="greedy", max_len_b=6, batch_size=5)
    single = [m.translate([s], BOS, EOS, method="greedy", max_len_b=6)[0] for s in srcs]
    assert [h[0].tokens for h in batched] == [h[0].tokens for h in single]


def _every_output(m, src, max_len):
    """Every output of at most max_len tokens with its log-probability, by walking the
    decoder's step function over the whole tree (no beam): (tokens, log P, terminated)."""
    mem, state = m.init_decoder(*make_batch([src], None, BOS, EOS, PAD))
    step, out = m.step_fn(mem), []

    def walk(prefix, logp, token, state):
        lp, state = step(np.array([token]), state)
        out.append((prefix, logp + lp[0, EOS], True))
        for v in range(lp.shape[1]):
            if v != EOS:
                if len(prefix) + 1 == max_len:  # cut there, unterminated
                    out.append((prefix + [v], logp + lp[0, v], False))
                else:
                    walk(prefix + [v], logp + lp[0, v], v, state)

    walk([], 0.0, BOS, state)
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.8, 2.0])
def test_gnmt_ranking_is_the_exhaustive_one(alpha):
    """Wu et al. 2016, eq. 14: rank by log P(y|x) / lp(y), lp(y) = ((5 + |y|) / 6)^alpha,
    |y| counting EOS. With a beam wide enough to keep every output of at most 3 tokens
    (1 + 5 + 25 ended by EOS, 125 cut at 3: the 5 other tokens of the 6 may follow any
    prefix), the n best must be the exhaustive search's n best."""
    m = _model(seed=4, **CONFIGS["gru-bi-general-feed"])
    m.params["generator.bias"][EOS] += 1.0  # some short outputs among the best
    same = []
    for src in SRC:
        every = _every_output(m, src, 3)
        assert len(every) == 1 + 5 + 25 + 125
        ended = [(y, lp) for y, lp, e in every if e]
        teacher, _ = m.score([src] * len(ended), [y for y, _ in ended], BOS, EOS)
        assert np.allclose(teacher, [lp for _, lp in ended], atol=1e-12)  # the walk is right
        gnmt = sorted(((lp / ((5 + len(y) + e) / 6) ** alpha, y) for y, lp, e in every),
                      key=lambda t: -t[0])  # fmt: skip
        (hyps,) = m.translate([src], BOS, EOS, beam_size=len(every), alpha=alpha,
                              penalty="gnmt", n_best=8, max_len_a=0, max_len_b=3)  # fmt: skip
        assert [h.tokens for h in hyps] == [y for _, y in gnmt[:8]]
        assert np.allclose([h.score for h in hyps], [v for v, _ in gnmt[:8]], atol=1e-9)
        raw = [y for y, _, _ in sorted(every, key=lambda t: -t[1])[:8]]
        same.append(raw == [h.tokens for h in hyps])
    assert all(same) if alpha == 0.0 else not all(same)  # the penalty matters here


def test_translate_errors():
    m = _model(seed=4, **CONFIGS["gru-bi-general-feed"])
    with pytest.raises(ValueError, match="beam size"):
        m.translate(SRC, BOS, EOS, beam_size=0)
    with pytest.raises(ValueError, match="n-best"):
        m.translate(SRC, BOS, EOS, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="empty"):
        m.translate([[]], BOS, EOS)
    with pytest.raises(ValueError, match="input_feed"):
        Seq2SeqConfig(src_vocab=5, tgt_vocab=5, attention="none", input_feed=True)
    with pytest.raises(ValueError, match="dot attention"):
        Seq2SeqConfig(src_vocab=5, tgt_vocab=5, attention="dot", dec_hidden=7)


def test_sampling_is_seeded():
    m = _model(seed=5, **CONFIGS["gru-none-bridge"])
    a = m.translate(SRC, BOS, EOS, method="sample", rng=np.random.default_rng(0))
    b = m.translate(SRC, BOS, EOS, method="sample", rng=np.random.default_rng(0))
    assert [h[0].tokens for h in a] == [h[0].tokens for h in b]


@pytest.mark.parametrize("beam,alpha", [(1, 0.7), (3, 0.0), (4, 1.0)])
@pytest.mark.parametrize("name", ["gru-bi-general-feed", "rnn-sutskever-reversed"])
def test_batched_beam_equals_per_sentence_beam(name, beam, alpha):
    srcs = [list(np.random.default_rng(i).integers(3, 7, 1 + i % 5)) for i in range(9)]
    m = _model(seed=6, **CONFIGS[name])
    m.params["generator.bias"][EOS] += 1.0  # a mix of ended and cut-off hypotheses
    kw = dict(beam_size=beam, alpha=alpha, n_best=beam, max_len_a=1.0, max_len_b=3)
    batched = m.translate(srcs, BOS, EOS, batch_size=4, **kw)
    single = m.translate(srcs, BOS, EOS, batch_beam=False, **kw)
    for a, b in zip(batched, single, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-12, rtol=0)
