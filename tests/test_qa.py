"""Question answering (rnnkit.text.babi, rnnkit.models.qa): the bAbI reader and its errors,
batches, finite-difference checks of both readers with both answer heads, a PyTorch twin of
the attentive reader, the attention weights, and the attention picture."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.engine.gradcheck import gradcheck
from rnnkit.io import RnnkitError
from rnnkit.models.qa import (
    Answers,
    QAConfig,
    answer_targets,
    build_model,
    draw_attention,
    make_batch,
)
from rnnkit.text.babi import BabiData, babi_files, read_babi, read_story, split_stories

BABI = Path(__file__).resolve().parents[2] / "shared" / "data" / "babi"

STORY = """\
1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary? \tbathroom\t1
4 Daniel went back to the hallway.
5 Where is Daniel?\thallway\t4
1 Sandra picked up the apple.
2 Sandra took the milk there.
3 What is Sandra carrying?\tapple,milk\t1 2
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- reading ---------------------------------------------------------------------------------


def test_read_babi(tmp_path):
    data = read_babi(_write(tmp_path / "qa8_lists_train.txt", STORY))
    a, b, c = data.examples
    assert a.story == [["mary", "moved", "to", "the", "bathroom"], ["john", "went", "to", "the",
                                                                    "hallway"]]  # fmt: skip
    assert a.question == ["where", "is", "mary"] and a.answer == ["bathroom"]
    assert a.supporting == [0] and a.line == 3 and a.task == 8 and a.story_no == 0
    # a later question of the same story sees the statements before it, not the questions
    assert len(b.story) == 3 and b.supporting == [2] and b.answer == ["hallway"]
    # ID 1 starts a new story; comma-separated answers become word lists
    assert c.story_no == 1 and len(c.story) == 2 and c.answer == ["apple", "milk"]
    assert c.supporting == [0, 1]
    # gzip is read as well (the 10k files are stored compressed)
    gz = tmp_path / "qa8_lists_test.txt.gz"
    gz.write_bytes(gzip.compress(STORY.encode()))
    assert [e.answer for e in read_babi(gz).examples] == [e.answer for e in data.examples]


@pytest.mark.parametrize(
    "text,message",
    [
        ("1 Mary went home.\nWhere is Mary?\thome\t1\n", ":2: expected 'ID text'"),
        ("1 Mary went home.\n3 Where is Mary?\thome\t1\n", ":2: ID 3 does not follow 1"),
        ("2 Mary went home.\n", ":1: the first line must have ID 1"),
        ("1 Where is Mary?\thome\t\n", ":1: question before any statement of its story"),
        ("1 Mary went home.\n2 Where is Mary?\thome\t2\n", ":2: supporting fact '2' is not"),
        ("1 Mary went home.\n2 Where is Mary?\thome\t5\n", ":2: supporting fact '5' is not"),
        ("1 Mary went home.\n2 Where is Mary?\thome\t1\tx\n", ":2: a question line holds"),
        ("1 Mary went home.\n2 Where is Mary?\t\t1\n", ":2: expected an answer of words"),
        ("1 Mary went home.\n2 Where is Mary?\thome,\t1\n", ":2: expected an answer of words"),
        ("1 Mary went home.\n2 ?\thome\t1\n", ":2: empty question"),
        ("1 Mary went home.\n2 ...\n", ":2: empty statement"),
        ("1 Mary went home.\n", "holds no questions"),
        ("", "file is empty"),
    ],
)
def test_read_babi_errors(tmp_path, text, message):
    path = _write(tmp_path / "qa1_x_train.txt", text)
    with pytest.raises(RnnkitError, match=message) as e:
        read_babi(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_read_story_and_files(tmp_path):
    p = _write(tmp_path / "s.txt", "1 Mary went home.\n2 Where is Mary?\thome\t1\n\nJohn ran.\n")
    assert read_story(p) == [["mary", "went", "home"], ["john", "ran"]]
    with pytest.raises(RnnkitError, match="holds no statements"):
        read_story(_write(tmp_path / "q.txt", "1 Where is Mary?\thome\t1\n"))
    for name in ("qa1_a_train.txt", "qa1_a_test.txt", "qa12_b_train.txt.gz", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert [f.name for f in babi_files([tmp_path], 12, "train")] == ["qa12_b_train.txt.gz"]
    assert [f.name for f in babi_files([tmp_path], "all", "train")] == [
        "qa1_a_train.txt", "qa12_b_train.txt.gz"]  # fmt: skip
    with pytest.raises(RnnkitError, match="no train file of task 3"):
        babi_files([tmp_path], 3, "train")
    with pytest.raises(RnnkitError, match="--task: expected a number in 1..20"):
        babi_files([tmp_path], 21, "train")
    with pytest.raises(RnnkitError, match="no such file"):
        babi_files([tmp_path / "nope"], 1, "train")


def test_split_stories_holds_out_whole_stories_per_file(tmp_path):
    text = "".join(f"1 Mary went to the p{i}.\n2 Where is Mary?\tp{i}\t1\n" for i in range(10))
    a = read_babi(_write(tmp_path / "qa1_a_train.txt", text))
    b = read_babi(_write(tmp_path / "qa2_b_train.txt", text))
    train, valid = split_stories(a + b, 0.2)
    assert len(train) == 16 and len(valid) == 4
    assert sorted((e.task, e.story_no) for e in valid.examples) == [(1, 8), (1, 9), (2, 8),
                                                                   (2, 9)]  # fmt: skip
    with pytest.raises(RnnkitError, match="leaves no training stories"):
        split_stories(BabiData(a.examples[:1]), 0.5)


def test_answers_and_batches():
    seq = Answers.build([["n", "w"], ["s"]])  # auto: a two-word answer -> sequence head
    assert seq.mode == "sequence" and seq.max_len == 2 and seq.encode(["w", "n"]) == [5, 3]
    assert seq.encode(["e"]) is None and seq.decode([3, 5, 2]) == ["n", "w"]
    cls = Answers.build([["yes"], ["no"], ["no"]])
    assert cls.mode == "class" and cls.tokens == ["no", "yes"] and cls.encode(["maybe"]) is None
    inp, tgt, lengths = answer_targets(seq, [[3, 5], [4]])
    assert inp.tolist() == [[1, 3, 5], [1, 4, 0]] and tgt.tolist() == [[3, 5, 2], [4, 2, 0]]
    b = make_batch([[[4], [5, 6], [7, 8, 9]], [[3]]], [[2], [2, 3]], memory=2)
    assert b.sent_ids.tolist() == [[5, 6, 0], [7, 8, 9], [3, 0, 0]]  # the last 2 statements
    assert b.owner.tolist() == [0, 0, 1] and b.slot.tolist() == [0, 1, 0]
    assert b.n_sent.tolist() == [2, 1] and b.q_len.tolist() == [1, 2]
    assert b.seq_ids.tolist() == [[5, 6, 7, 8, 9, 2], [3, 2, 3, 0, 0, 0]]
    with pytest.raises(RnnkitError, match="at least one statement"):
        make_batch([[]], [[2]], memory=2)


# --- gradients -------------------------------------------------------------------------------


def _toy_batch():
    r = np.random.default_rng(0)
    stories = [[list(r.integers(2, 11, r.integers(1, 5))) for _ in range(n)] for n in (3, 1, 4)]
    questions = [list(r.integers(2, 11, n)) for n in (2, 3, 1)]
    return make_batch(stories, questions, memory=3)  # unequal sizes; one story truncated


CASES = [
    ("attentive", "class", "gru", "general", True),
    ("attentive", "class", "gru", "general", "fusion"),
    ("attentive", "class", "gru", "dot", "hop"),
    ("attentive", "sequence", "gru", "general", "previous"),
    ("attentive", "class", "lstm", "additive", False),
    ("attentive", "sequence", "gru", "dot", True),
    ("attentive", "sequence", "lstm", "general", True),
    ("lstm", "class", "gru", "general", True),
    ("lstm", "sequence", "gru", "general", True),
]


@pytest.mark.parametrize("model_kind,head,encoder,attention,temporal", CASES)
def test_gradcheck_whole_model(model_kind, head, encoder, attention, temporal):
    cfg = QAConfig(vocab_size=11, num_answers=6, model=model_kind, answer=head, embed=4,
                   hidden=3, encoder=encoder, hops=2, attention=attention, memory=3,
                   temporal=bool(temporal), fusion=temporal == "fusion",
                   hop_temporal=temporal == "hop", previous=temporal == "previous", combine=5,
                   decoder_hidden=4, max_answer_len=2, dropout=0.2, dtype="float64")  # fmt: skip
    model = build_model(cfg, seed=1)
    # larger weights than the initialisation: sharper attention, so that the first hop's
    # gradients stand well above the finite-difference noise (about 1e-10 here)
    for p in model.params.values():
        p *= 3.0
    batch = _toy_batch()
    if head == "class":
        targets = np.array([1, 0, 5])
    else:
        targets = answer_targets(Answers("sequence", list("pbeabc"), 2), [[3], [4, 5], [5]])
    saved = model.rng.bit_generator.state

    def f():
        model.rng.bit_generator.state = saved  # the same dropout masks each time
        return model.forward(batch, targets)[0]

    f()
    model.rng.bit_generator.state = saved
    _, out, cache = model.forward(batch, targets)
    model.zero_grad()
    model.backward(cache)
    assert set(model.grads) == set(model.params)
    gradcheck(f, dict(model.params), dict(model.grads), eps=1e-5, rtol=1e-6)
    if model_kind == "attentive":
        att = out["attention"]  # (B, K, N): a distribution over each story's kept sentences
        assert att.shape == (3, 2, 3)
        np.testing.assert_allclose(att.sum(axis=2), 1.0, rtol=1e-12)
        assert att[1, :, 1:].max() == 0.0  # the one-sentence story: padding gets nothing


class TorchAttentiveReader(torch.nn.Module):
    """The attentive reader (GRU encoder, general attention, class head) in PyTorch."""

    def __init__(self, cfg):
        super().__init__()
        H, M = cfg.hidden, 2 * cfg.hidden
        f64 = torch.float64
        self.embedding = torch.nn.Embedding(cfg.vocab_size, cfg.embed, dtype=f64)
        self.encoder = torch.nn.GRU(cfg.embed, H, batch_first=True, bidirectional=True,
                                    dtype=f64)  # fmt: skip
        self.temporal = torch.nn.Embedding(cfg.memory, M, dtype=f64)
        self.hops = torch.nn.ModuleList(torch.nn.Linear(M, M, bias=False, dtype=f64)
                                        for _ in range(cfg.hops))  # fmt: skip
        self.combine = torch.nn.Linear(4 * M, cfg.combine, dtype=f64)
        self.answer = torch.nn.Linear(cfg.combine, cfg.num_answers, dtype=f64)

    def encode(self, ids, lengths):
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            self.embedding(ids), lengths, batch_first=True, enforce_sorted=False
        )
        _, h = self.encoder(packed)
        return torch.cat([h[0], h[1]], dim=1)

    def forward(self, b):
        t = torch.from_numpy
        B, N = len(b.n_sent), int(b.n_sent.max())
        sent = self.encode(t(b.sent_ids), t(b.sent_len))
        u0 = self.encode(t(b.q_ids), t(b.q_len))
        recency = t(b.n_sent[b.owner] - 1 - b.slot)
        mem = torch.zeros(B, N, sent.shape[1], dtype=torch.float64)
        mem = mem.index_put((t(b.owner), t(b.slot)), sent + self.temporal(recency))
        mask = torch.arange(N)[None, :] < t(b.n_sent)[:, None]
        u = u0
        for hop in self.hops:
            e = (hop(mem) * u[:, None, :]).sum(-1).masked_fill(~mask, float("-inf"))
            c = (e.softmax(dim=1)[:, :, None] * mem).sum(1)
            u = u + c
        z = torch.tanh(self.combine(torch.cat([u0, c, u0 * c, (u0 - c).abs()], dim=1)))
        return self.answer(z)


def test_attentive_reader_matches_torch_twin():
    cfg = QAConfig(vocab_size=11, num_answers=4, embed=5, hidden=3, hops=3, memory=3,
                   combine=6, dropout=0.0, dtype="float64")  # fmt: skip
    model = build_model(cfg, seed=4)
    twin = TorchAttentiveReader(cfg)
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.params.items()})
    batch = _toy_batch()
    y = np.array([3, 0, 2])
    loss, out, cache = model.forward(batch, y, training=False)
    model.zero_grad()
    model.backward(cache)
    logits = twin(batch)
    t_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-12, (loss, t_loss.item())
    np.testing.assert_allclose(out["logits"], logits.detach().numpy(), rtol=0, atol=1e-12)
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(model.grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-13,
                                   err_msg=name)  # fmt: skip


# --- predictions and pictures ----------------------------------------------------------------


def test_predict_and_attention_picture(tmp_path):
    cfg = QAConfig(vocab_size=11, num_answers=5, answer="sequence", embed=4, hidden=3,
                   max_answer_len=2)  # fmt: skip
    model = build_model(cfg, seed=0)
    seqs, probs, att = model.predict(_toy_batch())
    assert probs is None and len(seqs) == 3 and all(len(s) <= 3 for s in seqs)
    assert att.shape == (3, 3, 3)
    png = tmp_path / "att.png"
    sentences = [["mary", "went", "home"], ["john", "ran"]]
    draw_attention(png, sentences, np.array([[0.9, 0.1], [0.3, 0.7]]), ["where", "is", "mary"],
                   ["home"], supporting=[0], title="task 1")  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    with pytest.raises(ValueError, match="expected shape"):
        draw_attention(png, sentences, np.ones((2, 3)), ["q"], ["a"])


def test_reads_every_babi_file():
    """Every file of the shared copy: the question counts its README gives (1,000 per 1k
    file, 10,000 per 10k training file)."""
    for path in sorted((BABI / "en").glob("qa*_*.txt")):
        data = read_babi(path)
        assert len(data) == 1000, path
        assert all(1 <= len(e.answer) <= 3 for e in data.examples)
    big = read_babi(next((BABI / "en-10k").glob("qa19_*_train.txt.gz")))
    assert len(big) == 10000 and {len(e.answer) for e in big.examples} == {2}
