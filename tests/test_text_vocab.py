"""The one Vocab (rnnkit.text.vocab): a corpus's vocabulary (word embeddings) and a text's
(language models) from the same class, and the word-vocabulary helpers of the task models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.io import RnnkitError
from rnnkit.models.tag import build_char_vocab
from rnnkit.text.corpus import Corpus
from rnnkit.text.vocab import PAD, UNK, Vocab, build_word_vocab, pad_batch


def test_corpus_vocab_counts_order_and_encoding():
    corpus = Corpus(lines=["b a c", "a d b", "", "e a"], source="c.txt")
    v = Vocab.build(corpus, min_count=1)
    # a 3, b 2, then the words seen once, the one that first appeared last first (gensim 4)
    assert v.words == v.tokens == ["a", "b", "e", "d", "c"]
    assert v.counts.tolist() == [3, 2, 1, 1, 1]
    assert (v.level, v.unk, v.eos) == ("word", None, None)
    enc = v.encode(corpus)
    assert enc.ids.tolist() == [1, 0, 4, 0, 3, 1, 2, 0] and enc.sent_starts.tolist() == [0, 3, 6, 8]
    kept = Vocab.build(corpus, 2)  # min_count positionally, as word2vec calls it
    assert kept.tokens == ["a", "b"] and kept.encode(corpus).raw_words == 8
    # the JSON form is the checkpoints' (no counts)
    assert json.loads(json.dumps(v.to_json())) == {
        "level": "word", "unk": None, "eos": None, "tokens": v.tokens,
    }  # fmt: skip
    assert Vocab.from_json(v.to_json()).counts is None


def test_corpus_vocab_errors():
    with pytest.raises(RnnkitError, match="c.txt: corpus has no words"):
        Vocab.build(Corpus(lines=["", " "], source="c.txt"))
    with pytest.raises(RnnkitError, match="--min-count must be at least 1, got 0"):
        Vocab.build(Corpus(lines=["a"]), min_count=0)
    with pytest.raises(ValueError, match="level, unk and eos are for a text"):
        Vocab.build(Corpus(lines=["a"]), level="char")
    with pytest.raises(RnnkitError, match="c.txt: no word of the vocabulary occurs"):
        Vocab(["z"], "word").encode(Corpus(lines=["a b"], source="c.txt"))
    with pytest.raises(ValueError, match="counts: expected shape"):
        Vocab(["a", "b"], "word", counts=[1])


def test_word_vocab_helpers():
    v = build_word_vocab([["b", "a", "b", UNK], ["c", "a", "b"]], max_size=4)
    assert v.tokens == [PAD, UNK, "b", "a"] and v.unk == UNK and v.eos is None
    mt = build_word_vocab([["x", "y", "x"]], specials=(PAD, UNK, "<s>", "</s>"), eos="</s>")
    assert mt.tokens == [PAD, UNK, "<s>", "</s>", "x", "y"] and mt.eos == "</s>"
    chars = build_char_vocab([["aba", "cb"], ["b"]])
    assert chars.tokens == [PAD, UNK, "b", "a", "c"]
    ids, lengths = pad_batch([np.array([3, 4, 5]), [6]], pad=9)
    assert ids.tolist() == [[3, 4, 5], [6, 9, 9]] and lengths.tolist() == [3, 1]
    with pytest.raises(ValueError, match="at least one token"):
        pad_batch([[1], []])
