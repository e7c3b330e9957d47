"""The sequence classifier: finite differences for every pooling and cell, a PyTorch twin,
and the word2vec / TSV readers' handling of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.engine.gradcheck import gradcheck
from rnnkit.io import RnnkitError
from rnnkit.models.classify import ClassifierConfig, SequenceClassifier, pool_backward, pool_forward
from rnnkit.text.readers import read_labelled_tsv, read_sentences, read_word2vec_text
from rnnkit.text.vocab import build_word_vocab, pad_batch


def _batch(V=9, seed=0):
    r = np.random.default_rng(seed)
    lengths = np.array([4, 1, 3])  # unsorted, one of length 1
    ids = r.integers(1, V, (3, 4))
    ids[np.arange(4)[None, :] >= lengths[:, None]] = 0
    return ids, lengths, np.array([1, 0, 2])


@pytest.mark.parametrize("mode", ["last", "mean", "max"])
@pytest.mark.parametrize("dirs", [1, 2])
def test_pooling_gradcheck(mode, dirs):
    r = np.random.default_rng(1)
    h = r.standard_normal((3, 4, 6))
    lengths = np.array([2, 4, 1])
    w = r.standard_normal((3, 6))  # random upstream gradient
    out, cache = pool_forward(h, lengths, mode, dirs)
    analytic = pool_backward(w, cache)

    def f():
        return float((pool_forward(h, lengths, mode, dirs)[0] * w).sum())

    gradcheck(f, {"h": h}, {"h": analytic})
    # padded steps never matter
    assert np.abs(analytic[np.arange(4)[None, :] >= lengths[:, None]]).max() == 0.0


@pytest.mark.parametrize(
    "cell,bidir,layers,pooling,dropout",
    [
        ("lstm", True, 2, "max", 0.3),
        ("gru", True, 1, "last", 0.0),
        ("rnn", False, 2, "mean", 0.2),
        ("lstm", False, 1, "last", 0.0),
        ("gru", False, 1, "max", 0.0),
    ],
)
def test_classifier_gradcheck(cell, bidir, layers, pooling, dropout):
    cfg = ClassifierConfig(vocab_size=9, num_classes=3, cell=cell, embed=4, hidden=5,
                           layers=layers, bidirectional=bidir, pooling=pooling,
                           embed_dropout=dropout, dropout=dropout, dtype="float64")  # fmt: skip
    model = SequenceClassifier(cfg, seed=2)
    ids, lengths, labels = _batch()
    saved = model.rng.bit_generator.state

    def f():
        model.rng.bit_generator.state = saved  # the same dropout masks each time
        return model.forward(ids, lengths, labels)[0]

    model.rng.bit_generator.state = saved
    _, _, cache = model.forward(ids, lengths, labels)
    model.zero_grad()
    model.backward(cache)
    gradcheck(f, dict(model.params), dict(model.grads))


def test_frozen_embedding_has_no_gradient_and_the_rest_is_unchanged():
    """freeze_embed drops the embedding from grads; every other gradient is the unfrozen
    model's (same weights, same dropout masks)."""
    grads = []
    for freeze in (False, True):
        cfg = ClassifierConfig(vocab_size=9, num_classes=3, embed=4, hidden=5, embed_dropout=0.3,
                               dropout=0.2, dtype="float64", freeze_embed=freeze)  # fmt: skip
        model = SequenceClassifier(cfg, seed=2)
        _, _, cache = model.forward(*_batch())
        model.zero_grad()
        model.backward(cache)
        grads.append(model.grads)
    full, frozen = grads
    assert set(full) - set(frozen) == {"embedding.weight"}
    for name, g in frozen.items():
        np.testing.assert_array_equal(g, full[name], err_msg=name)


class TorchClassifier(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embedding = torch.nn.Embedding(cfg.vocab_size, cfg.embed, dtype=torch.float64)
        self.rnn = torch.nn.LSTM(cfg.embed, cfg.hidden, cfg.layers, batch_first=True,
                                 bidirectional=cfg.bidirectional, dtype=torch.float64)  # fmt: skip
        d = cfg.hidden * (2 if cfg.bidirectional else 1)
        self.fc = torch.nn.Linear(d, cfg.num_classes, dtype=torch.float64)
        self.pooling = cfg.pooling

    def forward(self, ids, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            self.embedding(ids), lengths, batch_first=True, enforce_sorted=False
        )
        out, (h, _) = self.rnn(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        valid = (torch.arange(out.shape[1])[None, :] < lengths[:, None])[:, :, None]
        if self.pooling == "max":
            pooled = out.masked_fill(~valid, float("-inf")).max(dim=1).values
        elif self.pooling == "mean":
            pooled = out.sum(dim=1) / lengths[:, None]
        else:  # the final states of the top layer, both directions
            pooled = torch.cat([h[-2], h[-1]], dim=1)
        return self.fc(pooled)


@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
def test_classifier_matches_torch_twin(pooling):
    cfg = ClassifierConfig(vocab_size=11, num_classes=4, embed=6, hidden=5, layers=2,
                           bidirectional=True, pooling=pooling, dtype="float64")  # fmt: skip
    model = SequenceClassifier(cfg, seed=0)
    twin = TorchClassifier(cfg)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.params.items()})
    r = np.random.default_rng(5)
    lengths = np.array([3, 7, 1, 5])
    ids = r.integers(1, 11, (4, 7))
    labels = np.array([0, 3, 1, 2])
    loss, logits, cache = model.forward(ids, lengths, labels)
    model.zero_grad()
    model.backward(cache)
    t_logits = twin(torch.from_numpy(ids), torch.from_numpy(lengths))
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(labels))
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-10, (loss, t_loss.item())
    np.testing.assert_allclose(logits, t_logits.detach().numpy(), rtol=0, atol=1e-10)
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(model.grads[name], p.grad.numpy(), rtol=1e-8, atol=1e-12,
                                   err_msg=name)  # fmt: skip


def test_word2vec_reader(tmp_path):
    vocab = build_word_vocab([["good", "bad", "film"]])
    p = tmp_path / "vec.txt"
    p.write_text("3 2\ngood 0.5 1\nFilm -1 2e-1\nother 3 3\n")
    ids, vecs = read_word2vec_text(p, vocab)
    assert sorted(vocab.tokens[i] for i in ids) == ["film", "good"]
    assert vecs.shape == (2, 2)
    # the same file read by gensim, the reference for the format
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(p), binary=False)
    for i, v in zip(ids, vecs, strict=True):
        w = vocab.tokens[i]
        np.testing.assert_allclose(v, kv[w if w in kv else w.capitalize()], rtol=1e-6)
    model = SequenceClassifier(ClassifierConfig(len(vocab), 2, embed=2), seed=0)
    model.set_embeddings(ids, vecs)
    np.testing.assert_allclose(model.params["embedding.weight"][vocab.stoi["good"]], [0.5, 1.0])


@pytest.mark.parametrize(
    "text,message",
    [
        ("2 2\ngood 1 2\nbad 1\n", ":3: expected a word and 2 values, got 1"),
        ("2 2\ngood 1 x\n", ":2: a vector value is not a number"),
        ("good 1 2\n", ":1: expected a header 'N D'"),
    ],
)
def test_word2vec_reader_errors(tmp_path, text, message):
    p = tmp_path / "vec.txt"
    p.write_text(text)
    with pytest.raises(RnnkitError, match=message):
        read_word2vec_text(p, build_word_vocab([["good", "bad"]]))


def test_tsv_reader(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text("label\tsentence\n1\tA fine film \n0\tdull\n")
    data = read_labelled_tsv(p, lower=True)
    assert data.sentences == [["a", "fine", "film"], ["dull"]]
    assert data.labels == ["1", "0"] and data.lines == [2, 3]
    for text, msg in [
        ("sentence\tlabel\ngood\t1\nbad\n", ":3: expected 2 tab-separated columns, got 1"),
        ("sentence\tlabel\n \t1\n", ":2: empty sentence"),
        ("sentence\tlabel\ngood\t \n", ":2: empty label"),
    ]:
        p.write_text(text)
        with pytest.raises(RnnkitError, match=msg):
            read_labelled_tsv(p)
    lines = ["index\tsentence", "0\tgood", "1\t"]
    assert read_sentences(lines, "t.tsv") == [["good"], []]
    assert read_sentences(["a b", ""], "-") == [["a", "b"], []]


def test_pad_batch_needs_tokens():
    with pytest.raises(ValueError, match="at least one token"):
        pad_batch([np.array([1]), np.array([], dtype=np.int64)])
