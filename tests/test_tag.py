"""The sequence tagger: finite differences (with and without character features), a PyTorch
twin of the character + word BiLSTM, and the CoNLL / CoNLL-U readers on real and bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.engine.gradcheck import gradcheck
from rnnkit.io import RnnkitError
from rnnkit.models.tag import SequenceTagger, TaggerConfig, build_char_vocab, make_tag_batch
from rnnkit.text.readers import read_tagged
from rnnkit.text.vocab import build_word_vocab, encode_words

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tagging"

SENTS = [["The", "cat", "sat", "."], ["Dogs"], ["a", "cat", "Barked"]]
TAGS = np.array([[0, 1, 2, 3], [1, 0, 0, 0], [0, 1, 2, 0]])


def _batch(use_chars):
    vocab = build_word_vocab([["the", "cat", "sat", "."]])
    chars = build_char_vocab([["The", "cat", "sat"]]) if use_chars else None  # 'D', 'g'... unk
    ids = [encode_words(vocab, [w.lower() for w in s]) for s in SENTS]
    return make_tag_batch(SENTS, ids, chars), vocab, chars


@pytest.mark.parametrize("use_chars,cell,dropout", [(True, "lstm", 0.25), (False, "gru", 0.0),
                                                    (True, "rnn", 0.0)])  # fmt: skip
def test_tagger_gradcheck(use_chars, cell, dropout):
    batch, vocab, chars = _batch(use_chars)
    cfg = TaggerConfig(vocab_size=len(vocab), num_tags=4,
                       char_vocab_size=len(chars) if chars else 0, cell=cell, embed=3,
                       char_embed=3, char_hidden=2, hidden=4, layers=2, dropout=dropout,
                       dtype="float64")  # fmt: skip
    model = SequenceTagger(cfg, seed=1)
    saved = model.rng.bit_generator.state

    def f():
        model.rng.bit_generator.state = saved  # the same dropout masks each time
        return model.forward(batch, TAGS)[0]

    model.rng.bit_generator.state = saved
    _, _, cache = model.forward(batch, TAGS)
    model.zero_grad()
    model.backward(cache)
    gradcheck(f, dict(model.params), dict(model.grads))


def test_tagger_matches_torch_twin():
    batch, vocab, chars = _batch(True)
    cfg = TaggerConfig(vocab_size=len(vocab), num_tags=4, char_vocab_size=len(chars),
                       embed=5, char_embed=4, char_hidden=3, hidden=6, layers=2,
                       dtype="float64")  # fmt: skip
    model = SequenceTagger(cfg, seed=3)
    loss, logits, cache = model.forward(batch, TAGS)
    model.zero_grad()
    model.backward(cache)

    f64 = torch.float64
    mods = torch.nn.ModuleDict({
        "embedding": torch.nn.Embedding(len(vocab), 5, dtype=f64),
        "char_embedding": torch.nn.Embedding(len(chars), 4, dtype=f64),
        "char_rnn": torch.nn.LSTM(4, 3, bidirectional=True, batch_first=True, dtype=f64),
        "rnn": torch.nn.LSTM(11, 6, 2, bidirectional=True, batch_first=True, dtype=f64),
        "fc": torch.nn.Linear(12, 4, dtype=f64),
    })  # fmt: skip
    mods.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.params.items()})
    pack = torch.nn.utils.rnn.pack_padded_sequence
    # characters: one pass over the distinct words, final states of both directions
    c_in = pack(
        mods["char_embedding"](torch.from_numpy(batch.chars)),
        torch.from_numpy(batch.char_lengths),
        batch_first=True,
        enforce_sorted=False,
    )
    _, (h, _) = mods["char_rnn"](c_in)
    feats = torch.cat([h[0], h[1]], dim=1)[torch.from_numpy(batch.word_index)]
    x = torch.cat([mods["embedding"](torch.from_numpy(batch.ids)), feats], dim=2)
    lengths = torch.from_numpy(batch.lengths)
    out, _ = mods["rnn"](pack(x, lengths, batch_first=True, enforce_sorted=False))
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    t_logits = mods["fc"](out)
    valid = torch.arange(4)[None, :] < lengths[:, None]
    t_loss = torch.nn.functional.cross_entropy(t_logits[valid], torch.from_numpy(TAGS)[valid])
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-10
    v = valid.numpy()
    np.testing.assert_allclose(logits[v], t_logits.detach().numpy()[v], atol=1e-10, rtol=0)
    for name, p in mods.named_parameters():
        np.testing.assert_allclose(model.grads[name], p.grad.numpy(), rtol=1e-8, atol=1e-12,
                                   err_msg=name)  # fmt: skip


def test_read_conll2003_and_ewt_slices(tmp_path):
    lines = (DATA / "conll2003" / "eng.testb").read_text().splitlines()[:200]
    c = read_tagged("eng.testb", lines=lines)
    assert c.fmt == "conll"
    assert "-DOCSTART-" not in {w for s in c.words for w in s}
    assert c.words[0][:3] == ["SOCCER", "-", "JAPAN"] and c.tags[0][:3] == ["O", "O", "I-LOC"]
    assert all(len(w) == len(t) for w, t in zip(c.words, c.tags, strict=True))
    with gzip.open(DATA / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz", "rt") as f:
        head = [next(f).rstrip("\n") for _ in range(400)]
    p = tmp_path / "dev.conllu"
    p.write_text("\n".join(head) + "\n")
    c = read_tagged(p)
    assert c.fmt == "conllu"
    # every word line (integer id) became a token; ranges like 3-4 and comments did not
    n_words = sum(1 for ln in head if ln and not ln.startswith("#")
                  and ln.split("\t")[0].isdigit())  # fmt: skip
    assert sum(map(len, c.words)) == n_words
    assert set(t for s in c.tags for t in s) <= {
        "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
    }  # fmt: skip
    xpos = read_tagged(p, tag_column="xpos")
    assert xpos.tags != c.tags


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("a.conll", "EU NNP I-ORG\nrejects VBZ\n", "a.conll:2: expected 3 columns"),
        ("a.conll", "EU\nrejects\n", "a.conll:1: expected a word and a tag column"),
        ("a.conllu", "# c\n1\tHi\thi\tINTJ\n", "a.conllu:2: expected 10 tab-separated"),
        ("a.conllu", "1\tHi\thi\t_\t_\t_\t0\troot\t_\t_\n", "a.conllu:1: no UPOS tag"),
        ("a.conll", "\n\n", "a.conll: file is empty"),
    ],
)
def test_reader_errors(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(RnnkitError, match=message):
        read_tagged(p)


def test_reader_words_only(tmp_path):
    p = tmp_path / "words.txt"
    p.write_text("EU\nrejects\n\nPeter\n")
    c = read_tagged(p, fmt="conll", need_tags=False)
    assert c.words == [["EU", "rejects"], ["Peter"]] and c.tags is None
