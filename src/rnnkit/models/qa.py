"""Question answering: read a story, answer a question (the bAbI tasks of Weston et al. 2015).

The stories and questions are read by :mod:`rnnkit.text.babi`.

Two readers turn (story, question) into a feature vector z (B, F); an answer head maps z to
the answer (:class:`QAModel`):

- :class:`LSTMReader`, the LSTM baseline of Weston et al. 2015: the story's words and then
  the question's words as one sequence into an LSTM; z = its final hidden state.
- :class:`AttentiveReader`: a bidirectional GRU (or LSTM) reads each sentence and the
  question (shared weights; a sentence vector is the concatenation of the two directions'
  final states, size M = 2H); a learned temporal encoding of each sentence's recency is
  added (Sukhbaatar et al. 2015's "temporal encoding"); the question attends over the story
  sentences in K hops with :class:`rnnkit.engine.attention.Attention` (query u_{k-1}, context c_k,
  u_k = u_{k-1} + c_k, as in end-to-end memory networks); the answer is read from
  z = tanh(W [u_0; c_K; u_0 * c_K; |u_0 - c_K|] + b), the question and the last hop's
  context and their element-wise agreement (what yes/no questions compare).

Answer heads: ``class`` (softmax over the distinct training answers, comma-joined lists
being one class each) or ``sequence`` (the answer as a word sequence, decoded by
:class:`rnnkit.models.generate.ConditionalGenerator` conditioned on z, greedy decoding): a
multi-word answer is produced word by word, then ``</s>``.

Shapes (legend of :mod:`rnnkit.engine.ops`): B questions, N memory slots (story sentences kept,
at most ``memory``), S story sentences in the whole batch, W words per sentence, M sentence
vector size, K hops, F feature size, C answer classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.attention import KINDS as ATTENTION_KINDS
from rnnkit.engine.attention import Attention
from rnnkit.engine.layers import GRU, LSTM, Recurrent
from rnnkit.engine.module import ModelConfig, Module
from rnnkit.io import RnnkitError, atomic_write
from rnnkit.models.generate import ConditionalGenerator, GeneratorConfig, teacher_forcing
from rnnkit.text.vocab import PAD, pad_batch

Array = np.ndarray

__all__ = [
    "BOS",
    "EOS",
    "Answers",
    "AttentiveReader",
    "LSTMReader",
    "QABatch",
    "QAConfig",
    "QAModel",
    "build_model",
    "draw_attention",
    "make_batch",
]

BOS, EOS = "<s>", "</s>"
MODELS = ("attentive", "lstm")
ANSWER_HEADS = ("class", "sequence")
ENCODERS = {"gru": GRU, "lstm": LSTM}


# --- answers ---------------------------------------------------------------------------------


@dataclass
class Answers:
    """The answer space: ``class`` (tokens = the distinct comma-joined answers) or
    ``sequence`` (tokens = <pad>, <s>, </s>, then the answer words).

    >>> a = Answers.build([["n", "w"], ["kitchen"]], "sequence")
    >>> a.tokens, a.encode(["n", "w"]), a.encode(["zoo"])
    (['<pad>', '<s>', '</s>', 'kitchen', 'n', 'w'], [4, 5], None)
    >>> Answers.build([["n", "w"], ["kitchen"]], "class").encode(["n", "w"])
    1
    """

    mode: str
    tokens: list[str]
    max_len: int = 1  # the longest answer in words

    def __post_init__(self) -> None:
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, answers: Sequence[Sequence[str]], mode: str = "auto") -> Answers:
        """``mode="auto"``: sequence when some answer has several words, else class."""
        longest = max(len(a) for a in answers)
        if mode == "auto":
            mode = "sequence" if longest > 1 else "class"
        if mode == "class":
            return cls("class", sorted({",".join(a) for a in answers}), longest)
        if mode == "sequence":
            return cls("sequence", [PAD, BOS, EOS, *sorted({w for a in answers for w in a})],
                       longest)  # fmt: skip
        raise RnnkitError(f"--answer: expected auto, class or sequence, got {mode!r}")

    def encode(self, answer: Sequence[str]) -> Any:
        """A class id or a list of word ids; None when the answer cannot be produced."""
        if self.mode == "class":
            return self.index.get(",".join(answer))
        ids = [self.index.get(w) for w in answer]
        return None if None in ids else ids

    def decode(self, pred: Any) -> list[str]:
        """A class id or word ids -> answer words."""
        if self.mode == "class":
            return self.tokens[int(pred)].split(",")
        return [self.tokens[i] for i in pred if i > 2]

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "tokens": self.tokens, "max_len": self.max_len}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Answers:
        return cls(str(d["mode"]), [str(t) for t in d["tokens"]], int(d["max_len"]))


# --- batches ---------------------------------------------------------------------------------


@dataclass
class QABatch:
    """B questions with their stories (the last ``memory`` statements of each), as ids."""

    sent_ids: Array  # (S, W) every kept story sentence of the batch, padded with 0
    sent_len: Array  # (S,)
    owner: Array  # (S,) the question (row b) whose story holds the sentence
    slot: Array  # (S,) its memory slot, 0 = the oldest kept sentence
    n_sent: Array  # (B,) sentences kept per story, >= 1
    q_ids: Array  # (B, Wq)
    q_len: Array  # (B,)
    seq_ids: Array  # (B, T) story words then question words (the LSTM reader's input)
    seq_len: Array  # (B,)


def make_batch(stories: Sequence[Sequence[Sequence[int]]], questions: Sequence[Sequence[int]],
               memory: int) -> QABatch:  # fmt: skip
    """Ids of stories (each a list of sentences) and questions -> a :class:`QABatch`.

    >>> b = make_batch([[[4, 5], [6]], [[7, 8, 9]]], [[2, 3], [2]], memory=1)
    >>> b.sent_ids.tolist(), b.owner.tolist(), b.n_sent.tolist(), b.seq_ids.tolist()
    ([[6, 0, 0], [7, 8, 9]], [0, 1], [1, 1], [[6, 2, 3, 0], [7, 8, 9, 2]])
    """
    if len(stories) != len(questions) or not stories:
        raise ValueError("make_batch: needs as many stories as questions, at least one")
    sents, owner, slot, n_sent, seqs = [], [], [], [], []
    for b, (story, q) in enumerate(zip(stories, questions, strict=True)):
        kept = list(story[-memory:])
        if not kept or not len(q) or any(len(s) == 0 for s in kept):
            raise RnnkitError("a story needs at least one statement, every statement and the "
                              "question at least one word")  # fmt: skip
        sents += kept
        owner += [b] * len(kept)
        slot += range(len(kept))
        n_sent.append(len(kept))
        seqs.append([w for s in kept for w in s] + list(q))
    sent_ids, sent_len = pad_batch(sents)
    q_ids, q_len = pad_batch(questions)
    seq_ids, seq_len = pad_batch(seqs)
    return QABatch(sent_ids, sent_len, np.array(owner), np.array(slot), np.array(n_sent),
                   q_ids, q_len, seq_ids, seq_len)  # fmt: skip


# --- the models ------------------------------------------------------------------------------


@dataclass
class QAConfig(ModelConfig):
    """Everything needed to rebuild a QA model; saved as JSON beside its weights."""

    vocab_size: int  # V, words of stories and questions, <pad> = 0 and <unk> = 1 included
    num_answers: int  # C classes, or the answer-word vocabulary (sequence head)
    model: str = "attentive"  # attentive | lstm
    answer: str = "class"  # class | sequence
    embed: int = 32  # E
    hidden: int = 32  # H: the LSTM reader's size; the attentive reader's per direction
    encoder: str = "gru"  # the attentive reader's word encoder: gru | lstm (bidirectional)
    hops: int = 3  # K
    attention: str = "general"  # score of rnnkit.engine.attention: dot | general | additive
    memory: int = 50  # the most recent statements kept per story (temporal encoding rows)
    temporal: bool = True  # add a learned recency vector to each sentence vector
    hop_temporal: bool = False  # attentive: a separate recency encoding per hop, too
    previous: bool = False  # attentive: add W_p s_{i-1}, the sentence before, to s_i
    fusion: bool = False  # attentive: a biGRU over the story's sentence vectors (x H each way)
    combine: int = 64  # the attentive reader's output layer size
    decoder_hidden: int = 32  # sequence head: GRU decoder size (and its embedding size)
    max_answer_len: int = 1  # sequence head: the longest answer, in words
    dropout: float = 0.1  # on word embeddings and on the feature vector z (training)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.check_positive("vocab_size", "num_answers", "embed", "hidden", "hops", "memory",
                            "combine", "decoder_hidden", "max_answer_len")  # fmt: skip
        self.check_choice("model", MODELS)
        self.check_choice("answer", ANSWER_HEADS)
        self.check_choice("encoder", ENCODERS)
        self.check_choice("attention", ATTENTION_KINDS)
        self.check_probability("dropout")
        self.check_dtype()
        if self.answer == "class" and self.num_answers < 2:
            raise ValueError(f"num_answers: needs at least 2 answers, got {self.num_answers}")


class QAModel(Module):
    r"""A reader (subclass: ``_read`` / ``_read_backward``) and an answer head.

    Inputs/outputs of :meth:`forward`: a :class:`QABatch` and targets: class ids (B,) for the
    class head, ``(inputs, targets, lengths)`` of :func:`rnnkit.models.generate.teacher_forcing` for
    the sequence head, or None. Returns (mean cross-entropy or None, outputs, cache);
    outputs hold ``z`` (B, F), ``logits`` (B, C) (class head) and ``attention`` (B, K, N) or
    None (the LSTM reader). Head parameters: ``answer.weight`` (C, F), ``answer.bias`` (C,);
    or ``decoder.*``, a :class:`rnnkit.models.generate.ConditionalGenerator` (GRU, feature
    fed to every step).
    """

    config: QAConfig
    feature_size: int

    def _init_head(self) -> None:
        c, F = self.config, self.feature_size
        if c.answer == "class":
            k = 1.0 / math.sqrt(F)
            self.params["answer.weight"] = self._uniform(k, (c.num_answers, F))
            self.params["answer.bias"] = self._uniform(k, (c.num_answers,))
            self.decoder = None
        else:
            gcfg = GeneratorConfig(feature_size=F, vocab_size=c.num_answers, cell="gru",
                                   embed=c.decoder_hidden, hidden=c.decoder_hidden,
                                   feed_input=True, dtype=c.dtype)  # fmt: skip
            self.decoder = ConditionalGenerator(gcfg, seed=self.rng)
            self._adopt("decoder.", self.decoder)

    def _uniform(self, k: float, shape: tuple[int, ...]) -> Array:
        return self.rng.uniform(-k, k, shape).astype(self.dtype)

    def _adopt(self, prefix: str, sub: Module) -> None:
        """Share a sub-model's parameter and gradient arrays under ``prefix``."""
        for n, p in sub.params.items():
            self.params[prefix + n] = p
            self.grads[prefix + n] = sub.grads[n]

    def _finish_grads(self) -> None:
        for n, p in self.params.items():
            if n not in self.grads:
                self.grads[n] = np.zeros_like(p)

    # --- subclasses ------------------------------------------------------------------------

    def _read(self, b: QABatch, training: bool) -> tuple[Array, Array | None, Any]:
        raise NotImplementedError

    def _read_backward(self, dz: Array, cache: Any) -> None:
        raise NotImplementedError

    # --- the whole model -------------------------------------------------------------------

    def forward(self, batch: QABatch, targets: Any = None, training: bool = True
                ) -> tuple[float | None, dict[str, Any], dict[str, Any]]:  # fmt: skip
        """See the class doc."""
        z, attention, rcache = self._read(batch, training)
        outputs: dict[str, Any] = {"z": z, "attention": attention}
        loss, hcache = None, None
        if self.decoder is None:
            logits, lin = ops.linear_forward(z, self.params["answer.weight"],
                                             self.params["answer.bias"])  # fmt: skip
            outputs["logits"] = logits
            if targets is not None:
                loss, ce = ops.cross_entropy_forward(logits, targets)
                hcache = (lin, ce)
        elif targets is not None:
            inputs, tgt, lengths = targets
            loss, _, hcache = self.decoder.forward(z, inputs, tgt, lengths, training)
        return loss, outputs, {"read": rcache, "head": hcache}

    def backward(self, cache: dict[str, Any]) -> None:
        """Backpropagate the mean loss of :meth:`forward`; gradients are added into ``grads``."""
        if cache["head"] is None:
            raise ValueError("backward: the forward pass had no targets, so there is no loss")
        if self.decoder is None:
            lin, ce = cache["head"]
            dlogits = ops.cross_entropy_backward(1.0, ce)  # (B, C)
            dz, dW, db = ops.linear_backward(dlogits, lin)
            self.grads["answer.weight"] += dW
            self.grads["answer.bias"] += db
        else:
            dz = self.decoder.backward(cache["head"])  # (B, F)
        self._read_backward(dz, cache["read"])

    def predict(self, batch: QABatch) -> tuple[list[Any], Array | None, Array | None]:
        """Answers without dropout: class ids or word-id lists, their probabilities (class
        head; None for the sequence head) and the attention (B, K, N) (or None)."""
        _, out, _ = self.forward(batch, None, training=False)
        if self.decoder is None:
            p = np.exp(ops.log_softmax(out["logits"].astype(np.float64)))
            return list(p.argmax(axis=1)), p, out["attention"]
        seqs = self.decoder.decode(out["z"], bos=1, eos=2,
                                   max_len=self.config.max_answer_len + 1)  # fmt: skip
        return seqs, None, out["attention"]


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class LSTMReader(QAModel):
    r"""Weston et al. 2015's LSTM baseline: story words then question words into one LSTM.

    x_t = E w_t over the sequence (the last ``memory`` statements, then the question);
    z = h_T, the LSTM's hidden state after the last question word (F = H).
    Parameters: ``embedding.weight`` (V, E), ``rnn.weight_ih_l0`` (4H, E) ... (PyTorch's
    ``nn.LSTM`` names), and the answer head's.

    Example:
        >>> model = LSTMReader(QAConfig(vocab_size=9, num_answers=3, model="lstm"), seed=0)
        >>> batch = make_batch([[[4, 5], [6]]], [[2, 3]], memory=50)
        >>> loss, out, cache = model.forward(batch, np.array([1]))
        >>> model.zero_grad(); model.backward(cache); out["logits"].shape
        (1, 3)
    """

    def __init__(self, config: QAConfig, seed: int | np.random.Generator | None = None):
        self.config = c = config
        self.rng = _rng(seed)
        self.dtype = np.dtype(c.dtype)
        self.rnn: Recurrent = LSTM(c.embed, c.hidden, dtype=self.dtype, seed=self.rng)
        self.feature_size = c.hidden
        self.params = {"embedding.weight": self.rng.standard_normal((c.vocab_size, c.embed))
                       .astype(self.dtype)}  # fmt: skip
        self.grads = {}
        self._adopt("rnn.", self.rnn)
        self._init_head()
        self._finish_grads()

    def _read(self, b: QABatch, training: bool) -> tuple[Array, None, Any]:
        c = self.config
        x, emb = ops.embedding_forward(b.seq_ids, self.params["embedding.weight"])  # (B, T, E)
        x, drop_x = ops.dropout_forward(x, c.dropout, self.rng, training)
        out, (h, _), rnn = self.rnn.forward(x, None, b.seq_len, training)
        z, drop_z = ops.dropout_forward(h[-1], c.dropout, self.rng, training)  # (B, H)
        return z, None, (emb, drop_x, out.shape, rnn, drop_z)

    def _read_backward(self, dz: Array, cache: Any) -> None:
        emb, drop_x, out_shape, rnn, drop_z = cache
        dh = ops.dropout_backward(dz, drop_z)
        zeros = np.zeros((1, *dh.shape), self.dtype)
        # z = h_T: the gradient enters through the final state, none through the outputs
        dx, _ = self.rnn.backward(np.zeros(out_shape, self.dtype), rnn, (dh[None], zeros))
        dx = ops.dropout_backward(dx, drop_x)
        self.grads["embedding.weight"] += ops.embedding_backward(dx, emb)


class AttentiveReader(QAModel):
    r"""Sentence encoder, temporal encoding, K attention hops, and a matching output layer.

    .. math::

        s_i = [\overrightarrow{h}_{last}; \overleftarrow{h}_{first}](\mathrm{BiGRU}(E w_{i,1..W}))
              + T_{n - 1 - i}                        (B, N, M), M = 2H, T (memory, M)
        u_0 = [\overrightarrow{h}; \overleftarrow{h}](\mathrm{BiGRU}(E q))    (same encoder)
        s_i \leftarrow s_i + \mathrm{BiGRU}(s_1 .. s_n)_i          (only with ``fusion``)
        c_k, \alpha_k = \mathrm{Attention}_k(u_{k-1}, s),  u_k = u_{k-1} + c_k,  k = 1..K
        z = \tanh(W_z [u_0; c_K; u_0 \odot c_K; |u_0 - c_K|] + b_z)        (B, F)

    The attention (``rnnkit.engine.attention.Attention`` of kind ``config.attention``, one per hop)
    scores every kept sentence against the query and averages the sentence vectors with the
    weights alpha_k (B, N), which :meth:`forward` returns as ``attention`` (B, K, N).

    Parameters: ``embedding.weight`` (V, E); ``encoder.weight_ih_l0`` ... (``nn.GRU`` names,
    bidirectional); ``temporal.weight`` (memory, M) when ``temporal``; ``fusion.*`` (a
    bidirectional ``nn.GRU``) when ``fusion``; ``hops.{k}.weight``
    (M, M) for general attention (``hops.{k}.query.weight`` ... for additive, none for dot);
    ``combine.weight`` (F, 4M), ``combine.bias`` (F,); the answer head's.

    Example:
        >>> cfg = QAConfig(vocab_size=9, num_answers=3, embed=4, hidden=3, hops=2, combine=5)
        >>> model = AttentiveReader(cfg, seed=0)
        >>> batch = make_batch([[[4, 5], [6]], [[7]]], [[2, 3], [8]], memory=50)
        >>> loss, out, cache = model.forward(batch, np.array([1, 2]))
        >>> model.zero_grad(); model.backward(cache); out["attention"].shape
        (2, 2, 2)
    """

    def __init__(self, config: QAConfig, seed: int | np.random.Generator | None = None):
        self.config = c = config
        self.rng = _rng(seed)
        self.dtype = np.dtype(c.dtype)
        self.encoder: Recurrent = ENCODERS[c.encoder](c.embed, c.hidden, bidirectional=True,
                                                      dtype=self.dtype, seed=self.rng)  # fmt: skip
        M = self.M = 2 * c.hidden
        self.feature_size = c.combine
        self.params = {"embedding.weight": self.rng.standard_normal((c.vocab_size, c.embed))
                       .astype(self.dtype)}  # fmt: skip
        self.grads = {}
        self._adopt("encoder.", self.encoder)
        if c.temporal:
            self.params["temporal.weight"] = (0.1 * self.rng.standard_normal((c.memory, M))
                                              ).astype(self.dtype)  # fmt: skip
        self.hops = [Attention(c.attention, M, M, dtype=self.dtype, seed=self.rng)
                     for _ in range(c.hops)]  # fmt: skip
        for k, att in enumerate(self.hops):
            self._adopt(f"hops.{k}.", att)
        if c.hop_temporal:
            for k in range(c.hops):
                self.params[f"temporal.{k}.weight"] = (
                    0.1 * self.rng.standard_normal((c.memory, M))).astype(self.dtype)  # fmt: skip
        if c.previous:
            self.params["previous.weight"] = self._uniform(1.0 / math.sqrt(M), (M, M))
        self.fusion: Recurrent | None = None
        if c.fusion:
            self.fusion = GRU(M, c.hidden, bidirectional=True, dtype=self.dtype, seed=self.rng)
            self._adopt("fusion.", self.fusion)
        k = 1.0 / math.sqrt(4 * M)
        self.params["combine.weight"] = self._uniform(k, (c.combine, 4 * M))
        self.params["combine.bias"] = self._uniform(k, (c.combine,))
        self._init_head()
        self._finish_grads()

    def _read(self, b: QABatch, training: bool) -> tuple[Array, Array, Any]:
        c, M = self.config, self.M
        S, B, N = len(b.sent_len), len(b.q_len), int(b.n_sent.max())
        # one encoder pass over the S story sentences and the B questions together
        W = max(b.sent_ids.shape[1], b.q_ids.shape[1])
        ids = np.zeros((S + B, W), dtype=np.int64)
        ids[:S, : b.sent_ids.shape[1]] = b.sent_ids
        ids[S:, : b.q_ids.shape[1]] = b.q_ids
        lengths = np.concatenate([b.sent_len, b.q_len])
        x, emb = ops.embedding_forward(ids, self.params["embedding.weight"])  # (S+B, W, E)
        x, drop_x = ops.dropout_forward(x, c.dropout, self.rng, training)
        out, state, enc = self.encoder.forward(x, None, lengths, training)
        h = state[0] if isinstance(state, tuple) else state  # (2, S+B, H)
        vec = np.concatenate([h[0], h[1]], axis=1)  # (S+B, M): forward last, backward first
        u0 = vec[S:]  # (B, M)
        mem = np.zeros((B, N, M), self.dtype)
        mem[b.owner, b.slot] = vec[:S]
        recency = b.n_sent[b.owner] - 1 - b.slot  # (S,) 0 = the latest statement
        pre = None
        if c.previous:  # s_i + W_p s_{i-1}: what the sentence before said ("then they ...")
            before = np.zeros_like(mem)
            before[:, 1:] = mem[:, :-1]
            add, pre = ops.linear_forward(before, self.params["previous.weight"])
            mem = mem + add
        if c.temporal:
            mem[b.owner, b.slot] += self.params["temporal.weight"][recency]
        fus = None
        if self.fusion is not None:
            # each sentence sees the story around it: s_i + BiGRU(s_1 .. s_n)_i
            fused, _, fus = self.fusion.forward(mem, None, b.n_sent, training)
            mem = mem + fused
        u, hops = u0, []
        alphas = np.empty((B, c.hops, N), self.dtype)
        for k, att in enumerate(self.hops):
            keys = mem
            if c.hop_temporal:  # this hop's own recency vectors
                keys = mem.copy()
                keys[b.owner, b.slot] += self.params[f"temporal.{k}.weight"][recency]
            memk, mcache = att.memory(keys, lengths=b.n_sent)
            ctx, alpha, acache = att.forward(u[:, None, :], memk)  # (B, 1, M), (B, 1, N)
            alphas[:, k] = alpha[:, 0]
            u = u + ctx[:, 0]
            hops.append((mcache, acache))
        cK = ctx[:, 0]
        diff = u0 - cK
        feat = np.concatenate([u0, cK, u0 * cK, np.abs(diff)], axis=1)  # (B, 4M)
        a, lin = ops.linear_forward(feat, self.params["combine.weight"],
                                    self.params["combine.bias"])  # fmt: skip
        z, act = ops.tanh_forward(a)  # (B, F)
        z, drop_z = ops.dropout_forward(z, c.dropout, self.rng, training)
        cache = (emb, drop_x, out.shape, enc, isinstance(state, tuple), b, recency, pre, fus, hops,
                 u0, cK, diff, lin, act, drop_z)  # fmt: skip
        return z, alphas, cache

    def _read_backward(self, dz: Array, cache: Any) -> None:
        (emb, drop_x, out_shape, enc, is_lstm, b, recency, pre, fus, hops, u0, cK, diff, lin, act,
         drop_z) = cache  # fmt: skip
        M, H = self.M, self.config.hidden
        dz = ops.dropout_backward(dz, drop_z)
        da = ops.tanh_backward(dz, act)
        dfeat, dW, db = ops.linear_backward(da, lin)
        self.grads["combine.weight"] += dW
        self.grads["combine.bias"] += db
        f0, f1, f2, f3 = (dfeat[:, i * M : (i + 1) * M] for i in range(4))
        sign = np.sign(diff)
        # feat = [u0, cK, u0 * cK, |u0 - cK|]
        du0 = f0 + f2 * cK + f3 * sign
        dctx = f1 + f2 * u0 - f3 * sign  # d c_K
        dmem = np.zeros((*u0.shape[:1], int(b.n_sent.max()), M), self.dtype)
        du = np.zeros_like(u0)  # d u_k, from the queries of later hops
        for k in range(len(self.hops) - 1, -1, -1):
            att = self.hops[k]
            mcache, acache = hops[k]
            # u_k = u_{k-1} + c_k: c_k receives d u_k (and, for k = K, the output's gradient)
            dc = du + (dctx if k == len(self.hops) - 1 else 0.0)
            dq, dmemk = att.backward(dc[:, None, :], acache)
            dkeys = att.memory_backward(dmemk, mcache)
            dmem += dkeys
            if self.config.hop_temporal:
                np.add.at(self.grads[f"temporal.{k}.weight"], recency, dkeys[b.owner, b.slot])
            du = du + dq[:, 0]
        du0 = du0 + du
        if self.fusion is not None:  # mem + BiGRU(mem): both paths
            dmem = dmem + self.fusion.backward(dmem, fus)[0]
        if self.config.temporal:
            np.add.at(self.grads["temporal.weight"], recency, dmem[b.owner, b.slot])
        if pre is not None:  # mem + W_p before, before_i = mem_{i-1}
            dbefore, dW, _ = ops.linear_backward(dmem, pre)
            self.grads["previous.weight"] += dW
            dmem = dmem.copy()
            dmem[:, :-1] += dbefore[:, 1:]
        dsent = dmem[b.owner, b.slot]  # (S, M)
        dvec = np.concatenate([dsent, du0], axis=0)  # (S+B, M)
        dh = np.stack([dvec[:, :H], dvec[:, H:]])  # (2, S+B, H)
        dstate = (dh, np.zeros_like(dh)) if is_lstm else dh
        # the sentence vectors are final states: no gradient reaches the outputs
        dx, _ = self.encoder.backward(np.zeros(out_shape, self.dtype), enc, dstate)
        dx = ops.dropout_backward(dx, drop_x)
        self.grads["embedding.weight"] += ops.embedding_backward(dx, emb)


def build_model(config: QAConfig, seed: int | np.random.Generator | None = None) -> QAModel:
    """The reader named by ``config.model`` with its answer head."""
    cls = AttentiveReader if config.model == "attentive" else LSTMReader
    return cls(config, seed=seed)


def answer_targets(answers: Answers, encoded: Sequence[Any]) -> Any:
    """Training targets of encoded answers (:meth:`Answers.encode`, none of them None)."""
    if answers.mode == "class":
        return np.asarray(encoded, dtype=np.int64)
    return teacher_forcing(encoded, bos=1, eos=2)


# --- pictures --------------------------------------------------------------------------------


def draw_attention(
    path: str | Path, sentences: Sequence[Sequence[str]], attention: Array,
    question: Sequence[str], answer: Sequence[str], supporting: Sequence[int] = (),
    title: str | None = None,
) -> None:  # fmt: skip
    """A heatmap (PNG, written atomically) of the attention (K, N) over N story sentences in
    each of K hops; supporting facts (indices into ``sentences``) are marked with '*'."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    att = np.asarray(attention, dtype=float)
    if att.ndim != 2 or att.shape[1] != len(sentences):
        raise ValueError(f"attention: expected shape (K, {len(sentences)}), got {att.shape}")
    K, N = att.shape
    rows = [("* " if i in set(supporting) else "") + " ".join(s) for i, s in enumerate(sentences)]
    fig = Figure(figsize=(max(5.0, 2.5 + 0.9 * K + 0.09 * max(map(len, rows))),
                          max(2.5, 0.32 * N + 1.6)), dpi=100)  # fmt: skip
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(att.T, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(K))
    ax.set_xticklabels([f"hop {k + 1}" for k in range(K)])
    ax.set_yticks(range(N))
    ax.set_yticklabels(rows, fontsize=8)
    for i in range(N):
        for k in range(K):
            ax.text(k, i, f"{att[k, i]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if att[k, i] > 0.5 else "black")  # fmt: skip
    head = f"Q: {' '.join(question)}?  A: {','.join(answer)}"
    ax.set_title(head if title is None else f"{title}\n{head}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
