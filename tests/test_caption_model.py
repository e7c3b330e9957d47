"""Captioners: finite differences through the whole model (conv encoder, start state, LSTM,
soft attention, the doubly stochastic penalty), decoding against teacher forcing, and
BLEU-1..4 against sacrebleu."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu

from rnnkit.engine.gradcheck import gradcheck
from rnnkit.models.caption import CaptionConfig, Captioner
from rnnkit.models.generate import teacher_forcing
from rnnkit.recipes.caption import bleu_n


def _model(attention, penalty=0.7, dropout=0.0, seed=0, batch_norm=False):
    cfg = CaptionConfig(vocab=7, image_size=8, channels=[2, 3], embed=4, hidden=5,
                        attention=attention, attn_size=3, penalty=penalty, dropout=dropout,
                        batch_norm=batch_norm, dtype="float64")  # fmt: skip
    m = Captioner(cfg, seed=seed)
    r = np.random.default_rng(seed + 1)
    for n in m.grads:  # larger than the init: sharper attention, livelier gates
        m.params[n][...] = 0.5 * r.standard_normal(m.params[n].shape)
    return m


@pytest.mark.parametrize("attention,batch_norm", [("none", False), ("soft", False),
                                                  ("soft", True)])  # fmt: skip
def test_captioner_gradcheck(attention, batch_norm):
    m = _model(attention, batch_norm=batch_norm)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    t_in, t_out, lengths = teacher_forcing([[4, 5, 6], [6]], bos=2, eos=3)  # ragged: padding
    loss, cache = m.forward(x, t_in, t_out, lengths)
    m.zero_grad()
    m.backward(cache)
    analytic = {n: g.copy() for n, g in m.grads.items()}
    buffers = {"encoder.1.running_mean", "encoder.1.running_var", "encoder.5.running_mean",
               "encoder.5.running_var"} if batch_norm else set()  # fmt: skip
    assert set(analytic) == set(m.params) - buffers
    trainable = {n: m.params[n] for n in analytic}
    errs = gradcheck(lambda: m.forward(x, t_in, t_out, lengths)[0], trainable, analytic)
    assert max(errs.values()) < 1e-6


@pytest.mark.parametrize("batch_norm", [False, True])
def test_encoder_is_torch_sequential(batch_norm):
    """The encoder's weights load into torch.nn.Sequential under the same names, and give the
    same annotations (training pass and evaluation pass, running statistics included)."""
    import torch

    m = _model("soft", batch_norm=batch_norm, seed=7)
    layers = []
    for c_in, c_out in ((1, 2), (2, 3)):
        layers.append(torch.nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm))
        layers += [torch.nn.BatchNorm2d(c_out)] if batch_norm else []
        layers += [torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    ref = torch.nn.Sequential(*layers).double()
    state = {n[len("encoder.") :]: torch.tensor(v) for n, v in m.params.items()
             if n.startswith("encoder.")}  # fmt: skip
    if batch_norm:
        for k in (1, 5):
            state[f"{k}.num_batches_tracked"] = torch.tensor(0)
    ref.load_state_dict(state)
    x = np.random.default_rng(8).standard_normal((3, 1, 8, 8))
    for training in (True, False):
        ref.train(training)
        ann, _ = m.encode(x, training)
        want = ref(torch.tensor(x)).detach().numpy()  # (B, D, g, g)
        assert np.abs(ann - want.reshape(3, 3, -1).transpose(0, 2, 1)).max() < 1e-12
    if batch_norm:
        assert np.abs(m.params["encoder.5.running_var"] - ref[5].running_var.numpy()).max() < 1e-12


def test_penalty_is_xu_et_al_eq_14():
    """loss - NLL = lambda sum_b sum_i (1 - sum_{valid t} alpha)^2 / tokens, recomputed here
    from the weights the model reports; padding steps excluded."""
    m = _model("soft", penalty=0.7)
    x = np.random.default_rng(2).standard_normal((2, 1, 8, 8))
    t_in, t_out, lengths = teacher_forcing([[4, 5, 6], [6]], bos=2, eos=3)
    loss, cache = m.forward(x, t_in, t_out, lengths)
    a = cache["alpha"].copy()
    a[1, 2:] = 0.0  # caption 1 has 2 tokens (6, EOS)
    expected = 0.7 * ((1.0 - a.sum(axis=1)) ** 2).sum() / 6
    assert abs((loss - cache["nll"]) - expected) < 1e-12
    assert np.allclose(cache["alpha"].sum(axis=2), 1.0)


@pytest.mark.parametrize("attention", ["none", "soft"])
def test_decoding_agrees_with_teacher_forcing(attention):
    """Greedy output = beam 1; each greedy token is the arg max of the teacher-forced logits
    of its own prefix (decoder step and training pass compute the same function)."""
    m = _model(attention, seed=3)
    x = np.random.default_rng(4).standard_normal((3, 1, 8, 8))
    greedy = m.caption(x, bos=2, eos=3, method="greedy", max_len=6)
    beam1 = m.caption(x, bos=2, eos=3, method="beam", beam_size=1, max_len=6)
    assert greedy == beam1
    for b, seq in enumerate(greedy):
        t_in, _, lengths = teacher_forcing([seq], bos=2, eos=3)
        _, cache = m.forward(x[b : b + 1], t_in, None, lengths, training=False)
        picks = cache["logits"][0].argmax(axis=1).tolist()
        assert picks[: len(seq)] == seq
        if len(seq) < 6:
            assert picks[len(seq)] == 3  # it stopped because EOS won


def test_beam_finds_a_caption_at_least_as_likely():
    m = _model("soft", seed=5)
    x = np.random.default_rng(6).standard_normal((4, 1, 8, 8))

    def logp(seqs):
        t_in, t_out, lengths = teacher_forcing(seqs, bos=2, eos=3)
        out = []
        for b in range(len(seqs)):
            _, cache = m.forward(x[b : b + 1], t_in[b : b + 1], t_out[b : b + 1],
                                 lengths[b : b + 1], training=False)  # fmt: skip
            out.append(-cache["nll"] * lengths[b])
        return np.array(out)

    g = m.caption(x, 2, 3, method="greedy", max_len=5)
    b = m.caption(x, 2, 3, method="beam", beam_size=4, alpha=0.0, max_len=5)
    finished = [len(s) < 5 for s in g]
    assert all((logp(b) >= logp(g) - 1e-9)[finished])


def test_bleu_n_matches_sacrebleu():
    hyps = ["a large 3 to the left of a small 7", "two digits : a small 1 and a large 2",
            "a small 9 at the top"]  # fmt: skip
    refs = [["a large 3 to the left of a small 7", "a small 7 to the right of a large 3"],
            ["two digits : a small 1 and a small 2", "a small 1 above a small 2",
             "a small 2 below a small 1"],
            ["a small 9 at the top left", "one small 9 at the top left"]]  # fmt: skip
    ours = bleu_n(hyps, refs)
    streams = [[r[j] if j < len(r) else r[0] for r in refs] for j in range(3)]
    for n in range(1, 5):
        ref = sacrebleu.metrics.BLEU(max_ngram_order=n, smooth_method="none", tokenize="none")
        assert abs(ours[f"bleu{n}"] - ref.corpus_score(hyps, streams).score) < 1e-9, n


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="attention"):
        CaptionConfig(vocab=5, attention="hard")
    with pytest.raises(ValueError, match="too small"):
        CaptionConfig(vocab=5, image_size=4, channels=[2, 2, 2])
    m = _model("none")
    t_in, t_out, lengths = teacher_forcing([[4]], bos=2, eos=3)
    with pytest.raises(ValueError, match=r"images: expected shape \(B, 1, 8, 8\)"):
        m.forward(np.zeros((1, 3, 8, 8)), t_in, t_out, lengths)


def test_cider_d_matches_pycocoevalcap():
    """CIDEr-D (the COCO evaluation's 'CIDEr'): every image's score and the mean, on captions
    that share n-grams unevenly, repeat words, differ in length, and an empty hypothesis."""
    from pycocoevalcap.cider.cider import Cider

    from rnnkit.text.cider import cider_d

    refs = [["a large 3 to the left of a small 7", "a small 7 to the right of a large 3"],
            ["two digits : a small 1 and a small 2", "a small 1 above a small 2",
             "a small 2 below a small 1"],
            ["a small 9 at the top left", "one small 9 at the top left",
             "there is a small 9 at the top left"],
            ["three digits : a large 0 , a small 4 and a small 8"]]  # fmt: skip
    hyps = ["a large 3 to the left of a small 7", "a small 1 a small 1 a small 1 above",
            "a small 9", ""]  # fmt: skip
    mean, per = cider_d(hyps, refs)
    ref_mean, ref_per = Cider().compute_score(dict(enumerate(refs)),
                                              {i: [h] for i, h in enumerate(hyps)})  # fmt: skip
    assert max(abs(a - b) for a, b in zip(per, ref_per, strict=True)) < 1e-12
    assert abs(mean - ref_mean) < 1e-12


def test_grounding_measures_the_mass_inside_the_named_box(monkeypatch):
    """On a 2x2 grid of 4-pixel cells, hand-set weights: a box that is one cell keeps that
    cell's weight; a box over half of two cells keeps half of each; a size word is scored on
    the digit it names; a digit absent from the scene is not scored."""
    from rnnkit.recipes.caption import SPECIALS, CaptionRun, CaptionTrainConfig, grounding
    from rnnkit.text.captions import CaptionSet
    from rnnkit.text.vocab import build_word_vocab

    m = _model("soft")  # image_size 8, two halvings: a 2x2 grid
    words = "a large 3 and a small 7 and a 5".split()
    vocab = build_word_vocab([words], specials=SPECIALS, eos="</s>")
    run = CaptionRun(m, vocab, CaptionTrainConfig())
    rows = {2: [0.6, 0.2, 0.1, 0.1], 1: [0.5, 0.3, 0.1, 0.1], 6: [0.1, 0.1, 0.4, 0.4],
            5: [0.0, 0.0, 1.0, 0.0], 9: [0.25, 0.25, 0.25, 0.25]}  # fmt: skip
    alpha = np.full((len(words) + 1, 4), 0.25)
    for t, row in rows.items():
        alpha[t] = row
    monkeypatch.setattr(m, "attention_of", lambda images, caps, bos, eos: [alpha])
    objects = [[{"label": "3", "size": "large", "box": [0, 0, 4, 4]},
                {"label": "7", "size": "small", "box": [2, 4, 6, 8]}]]  # fmt: skip
    data = CaptionSet(np.zeros((1, 1, 8, 8), np.uint8), [["x"]], ["s"], objects)
    g = grounding(run, data, [run.ids(" ".join(words))])
    assert g["digit"]["words"] == 2 and g["size"]["words"] == 2  # "5" is not in the scene
    assert abs(g["digit"]["share"] - (0.6 + 0.4) / 2) < 1e-12  # 7: 0.5*0.4 + 0.5*0.4
    assert abs(g["size"]["share"] - (0.5 + 0.5) / 2) < 1e-12  # small 7: 0.5*1.0
    assert abs(g["digit"]["chance"] - 16 / 64) < 1e-12
