"""Vocabularies and truncated-BPTT streams, checked against published corpus figures."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from rnnkit.io import RnnkitError, read_text
from rnnkit.text.vocab import Vocab
from rnnkit.train import TBPTTStream, batchify

PTB = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptb"


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return read_text(files("rnnkit") / "data" / "tinyshakespeare.txt.gz")


@pytest.fixture(scope="module")
def ptb_vocab() -> Vocab:
    return Vocab.build(read_text(PTB / "ptb.train.txt"), level="word")


# --- published figures -------------------------------------------------------------------------


def test_tiny_shakespeare_char_vocab(shakespeare):
    # Karpathy's char-rnn / nanoGPT (data/shakespeare_char/prepare.py): 1,115,394 characters,
    # vocabulary of 65.
    v = Vocab.build(shakespeare, level="char")
    assert len(v) == 65 and "\n" in v and v.unk is None
    ids = v.encode(shakespeare)
    assert ids.shape == (1_115_394,) and ids.dtype == np.int64
    assert v.decode(ids) == shakespeare


def test_ptb_word_vocab_and_sizes(ptb_vocab):
    # Zaremba et al. 2014 / Mikolov: 10k words including <eos>; the TensorFlow PTB tutorial
    # (Zaremba's setup) reports 929k train, 73k valid and 82k test words.
    assert len(ptb_vocab) == 10_000
    assert ptb_vocab.unk == "<unk>" and ptb_vocab.eos == "<eos>"
    sizes = {}
    for split in ("train", "valid", "test"):
        text = read_text(PTB / f"ptb.{split}.txt")
        ids = ptb_vocab.encode(text, where=f"ptb.{split}.txt")
        sizes[split] = len(ids)
        # PTB's own <unk> is the unknown token, and nothing else maps to it.
        n_unk_text = sum(line.split().count("<unk>") for line in text.split("\n"))
        assert int((ids == ptb_vocab.unk_id).sum()) == n_unk_text
    assert sizes == {"train": 929_589, "valid": 73_760, "test": 82_430}
    # The same vocabulary without an unknown-word policy still encodes valid/test: PTB is closed.
    strict = Vocab(ptb_vocab.tokens, "word", unk=None, eos="<eos>")
    strict.encode(read_text(PTB / "ptb.test.txt"))


def test_ptb_char_files_as_symbols():
    # Characters separated by spaces, "_" between words: 49 symbols (data README) + <eos>,
    # the vocabulary size of 50 used for PTB characters by Zaremba's code.
    text = read_text(PTB / "ptb.char.valid.txt")
    v = Vocab.build(text, level="word", unk=None)
    assert len(v) == 50 and "_" in v and "<eos>" in v
    assert len(v.encode(text)) == 389_672 + 3_370


def test_zaremba_epoch_size(ptb_vocab):
    # TensorFlow PTB tutorial: epoch_size = ((len(data) // batch_size) - 1) // num_steps.
    ids = ptb_vocab.encode(read_text(PTB / "ptb.train.txt"))
    stream = TBPTTStream(ids, batch_size=20, bptt=20)
    assert len(stream) == ((929_589 // 20) - 1) // 20 == 2323
    assert stream.data.shape == (20, 46_479)


# --- vocabulary --------------------------------------------------------------------------------


def test_word_level_eos_per_line_and_unk():
    text = "a b\n\nb c\r\nc"  # an empty line, a CRLF line end, a last line without newline
    v = Vocab.build(text, level="word")
    assert v.tokenize(text) == ["a", "b", "<eos>", "<eos>", "b", "c", "<eos>", "c", "<eos>"]
    # Most frequent first (<eos> 4, b 2, c 2), ties alphabetical, then a, then <unk> (0).
    assert v.tokens == ["<eos>", "b", "c", "a", "<unk>"]
    assert v.encode("a zebra\n").tolist() == [3, 4, 0]
    assert v.decode([3, 4, 0, 1, 2]) == "a <unk>\nb c"


def test_word_level_size_limits():
    text = "x x x x y y y z z w\n"
    v = Vocab.build(text, level="word", max_size=4)  # <unk>, <eos> + the 2 most frequent
    assert sorted(v.tokens) == sorted(["<unk>", "<eos>", "x", "y"])
    assert v.decode(v.encode("w z y x\n")) == "<unk> <unk> y x\n"
    v = Vocab.build(text, level="word", min_count=2)
    assert set(v.tokens) == {"<unk>", "<eos>", "x", "y", "z"}
    with pytest.raises(RnnkitError, match="drop 1 symbols but there is no unknown token"):
        Vocab.build(text, level="word", min_count=2, unk=None)
    with pytest.raises(RnnkitError, match="max vocabulary size must be positive, got 0"):
        Vocab.build(text, level="word", max_size=0)


def test_strict_char_error_names_symbols_and_place():
    v = Vocab.build("hello world\n")
    with pytest.raises(RnnkitError) as e:
        v.encode("hello\nwé wo\u00df \U0001f600 €€ ñ x", where="--prime")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("--prime: 6 symbols not in the vocabulary: 'é', 'ß', '😀', '€', 'ñ', ...")
    assert "(first at line 2, character 2)" in msg


def test_strict_error_for_a_newline_missing_from_the_vocabulary():
    v = Vocab.build("abc")
    with pytest.raises(
        RnnkitError, match=r"1 symbol not in the vocabulary: '\\n' \(first at line 1"
    ):
        v.encode("ab\nc")


def test_strict_word_error():
    v = Vocab.build("the cat\n", level="word", unk=None)
    with pytest.raises(
        RnnkitError, match=r"in.txt: 2 symbols .*'dog', 'sat' \(first at line 2, word 2"
    ):
        v.encode("the cat\nthe dog sat\n", where="in.txt")


def test_char_level_with_an_unknown_token():
    v = Vocab.build("abc", level="char", unk="\ufffd")
    assert v.decode(v.encode("abxc")) == "ab\ufffdc"


def test_char_encoding_matches_a_plain_lookup():
    # The vectorized code-point lookup must agree with a dict lookup, astral planes included.
    rng = np.random.default_rng(0)
    alphabet = list("abc \n\t") + ["é", "\u2028", "\U0001f600", "\U00010348", "\x00"]
    text = "".join(rng.choice(alphabet, size=2000))
    v = Vocab.build(text)
    assert v.encode(text).tolist() == [v.stoi[c] for c in text]
    assert v.decode(v.encode(text)) == text
    assert v.encode("").shape == (0,)


def test_json_round_trip_and_validation():
    for v in (Vocab.build("some text\nhere\n"), Vocab.build("some text\n", level="word")):
        text = json.dumps(v.to_json())
        w = Vocab.from_json(text)
        assert (w.tokens, w.level, w.unk, w.eos) == (v.tokens, v.level, v.unk, v.eos)
        assert Vocab.from_json(json.loads(text)).tokens == v.tokens
    bad = [
        ("{", "invalid JSON"),
        ('{"level": "char", "tokens": ["a", "a"]}', "lists 'a' twice"),
        ('{"level": "byte", "tokens": ["a"]}', "level must be 'char' or 'word'"),
        ('{"level": "word", "tokens": ["a"], "unk": "<unk>"}', "lacks its unknown token"),
        ('{"level": "char", "tokens": ["ab"]}', "multi-character symbol 'ab'"),
        ('{"level": "char", "tokens": "abc"}', "must be a list of strings"),
        ('{"level": "char", "tokens": ["<unk>"], "unk": "<unk>"}', "holds no characters"),
    ]
    for text, message in bad:
        with pytest.raises(RnnkitError, match=message):
            Vocab.from_json(text)


def test_decode_rejects_bad_ids():
    with pytest.raises(RnnkitError, match="token id 7 outside the vocabulary"):
        Vocab.build("ab").decode([0, 7])


# --- batchify and TBPTT ------------------------------------------------------------------------


def test_batchify_layout():
    ids = np.arange(103)
    data = batchify(ids, 4)
    assert data.shape == (4, 25)
    b, j = np.meshgrid(np.arange(4), np.arange(25), indexing="ij")
    np.testing.assert_array_equal(data, ids[b * 25 + j])  # row b reads ids[b*N : (b+1)*N]
    with pytest.raises(RnnkitError, match="corpus has 3 tokens, fewer than the batch size 4"):
        batchify(np.arange(3), 4)


def test_windows_cover_the_streams_in_order():
    ids = np.random.default_rng(1).integers(0, 50, size=1000)
    s = TBPTTStream(ids, batch_size=7, bptt=9)
    n = 1000 // 7
    assert len(s) == (n - 1) // 9 and s.tokens_per_epoch == 7 * 9 * len(s)
    xs, ys, positions = [], [], []
    for x, y in s:
        assert x.shape == y.shape == (7, 9)
        positions.append(s.position)
        xs.append(x)
        ys.append(y)
    assert positions == list(range(1, len(s) + 1))
    x_all, y_all = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)
    np.testing.assert_array_equal(x_all, ids[: 7 * n].reshape(7, n)[:, : 9 * len(s)])
    np.testing.assert_array_equal(y_all, ids[: 7 * n].reshape(7, n)[:, 1 : 9 * len(s) + 1])
    assert (s.epoch, s.position) == (1, 0)
    assert len(list(s)) == len(s) and s.epoch == 2  # the next loop is the next epoch
    with pytest.raises(ValueError, match="read-only"):
        xs[0][0, 0] = 1


def test_resume_mid_epoch_is_exact():
    ids = np.arange(2000) % 97
    full = TBPTTStream(ids, batch_size=5, bptt=11)
    reference = [(full.epoch, x.copy(), y.copy()) for _ in range(3) for x, y in full]

    first = TBPTTStream(ids, batch_size=5, bptt=11)
    seen = []
    for _ in range(2):  # one full epoch, then break half-way into the second
        for i, (x, y) in enumerate(first):
            seen.append((first.epoch, x.copy(), y.copy()))
            if first.epoch == 1 and i == len(first) // 2:
                state = json.loads(json.dumps(first.state_dict()))  # saved after this step
                break
    resumed = TBPTTStream(ids, batch_size=5, bptt=11)
    resumed.load_state_dict(state)
    while resumed.epoch < 3:
        for x, y in resumed:
            seen.append((resumed.epoch, x.copy(), y.copy()))
    assert len(seen) == len(reference)
    for (e1, x1, y1), (e2, x2, y2) in zip(seen, reference, strict=True):
        assert e1 == e2
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_too_short_corpus_and_bad_sizes():
    with pytest.raises(RnnkitError) as e:
        TBPTTStream(np.arange(500), batch_size=20, bptt=35)
    assert str(e.value) == (
        "corpus has 500 tokens; batch 20 x bptt 35 needs at least 720 (20 streams of 35 + 1)"
    )
    s = TBPTTStream(np.arange(720), batch_size=20, bptt=35)  # exactly enough: one window
    assert len(s) == 1
    with pytest.raises(RnnkitError, match="batch size must be positive, got 0"):
        TBPTTStream(np.arange(100), batch_size=0, bptt=5)
    with pytest.raises(RnnkitError, match="bptt must be positive, got -1"):
        TBPTTStream(np.arange(100), batch_size=2, bptt=-1)


def test_load_state_dict_checks_the_window_layout():
    s = TBPTTStream(np.arange(1000), batch_size=4, bptt=10)
    state = s.state_dict()
    other = TBPTTStream(np.arange(1000), batch_size=5, bptt=10)
    with pytest.raises(RnnkitError, match="batch 4 x bptt 10 .* this run has batch 5 x bptt 10"):
        other.load_state_dict(state)
    with pytest.raises(RnnkitError, match="invalid data position: epoch 0, window 999"):
        s.load_state_dict(dict(state, position=999))
