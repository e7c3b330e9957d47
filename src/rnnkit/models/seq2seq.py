"""Encoder-decoder (sequence-to-sequence) models with optional attention, for translation.

Translation as a conditional language model (Sutskever et al. 2014)::

    P(y | x) = prod_t P(y_t | y_<t, x)

The encoder reads the source x_1 .. x_S (embedding -> RNN/LSTM/GRU, optionally bidirectional
and stacked) into annotations h_1 .. h_S (B, S, dirs*He) and a final state; the decoder
(embedding -> RNN/LSTM/GRU, same cell and layers) starts from that final state, through a
learned bridge s_0 = tanh(W_b [h_fwd; h_bwd] + b_b) (LSTM: also c_0 = W_c [c_fwd; c_bwd] + b_c)
whenever the sizes differ (a bidirectional encoder, or He != Hd), else directly. Then:

- ``attention="none"``: P(y_t | ...) = softmax(W_s s_t + b_s), the plain encoder-decoder
  of Sutskever et al. 2014 (``reverse_source`` feeds the source reversed, their trick).
- ``"dot" | "general" | "additive"``: global attention (Luong et al. 2015, sec. 3.1): the
  context c_t = sum_s alpha_{t,s} h_s with alpha = softmax_s score(s_t, h_s) over the valid
  source positions (see :mod:`rnnkit.engine.attention`), the attentional state
  h~_t = tanh(W_c [c_t; s_t]) (eq. 5), and P(y_t | ...) = softmax(W_s h~_t + b_s) (eq. 6).
  ``additive`` is Bahdanau et al. 2015's score v^T tanh(W q + U h).
- ``input_feed``: the decoder input at step t is [embed(y_{t-1}); h~_{t-1}] (Luong et al.
  2015, sec. 3.3; h~_0 = 0), so that past alignment decisions inform the next ones (close
  to Bahdanau et al.'s decoder, whose recurrence sees the previous context).

Training is teacher-forced on padded batches: decoder inputs ``BOS y_1 .. y_n``, targets
``y_1 .. y_n EOS`` (:func:`rnnkit.models.generate.teacher_forcing`); the loss is the mean negative
log-likelihood over the real target tokens (padding never counts), the encoder runs with the
source lengths (padding never enters a state) and attention never attends to padding.
Without input feeding the decoder's recurrence runs as one layer call over all steps and the
attention as one batched call; with it, step by step.

Decoding (:meth:`Seq2Seq.translate`) uses the decoders of :mod:`rnnkit.models.generate` and
:mod:`rnnkit.models.beam` over :meth:`Seq2Seq.step_fn`: greedy and sampling batched over
sentences, beam search (batched over sentences too) with the length normalisation 1/T^alpha
or the GNMT penalty; :meth:`Seq2Seq.score` gives log P(y|x) and the attention weights of any
output (those of a decoded sentence are exactly the weights seen while decoding it).

Parameter names (PyTorch style): ``encoder.embedding.weight`` (Vs, E),
``encoder.rnn.weight_ih_l0`` ..., ``bridge.weight`` (Hd, dirs*He), ``bridge.bias``,
``bridge_c.*`` (LSTM), ``decoder.embedding.weight`` (Vt, E), ``decoder.rnn.*``,
``attention.*`` (:class:`rnnkit.engine.attention.Attention`), ``combine.weight`` (Hd, dirs*He + Hd),
``generator.weight`` (Vt, Hd), ``generator.bias`` (Vt,).

>>> cfg = Seq2SeqConfig(src_vocab=9, tgt_vocab=8, cell="gru", embed=4, hidden=3,
...                     dec_hidden=5, attention="general", input_feed=True)
>>> m = Seq2Seq(cfg, seed=0)
>>> batch = make_batch([[4, 5, 6], [7]], [[4, 5], [6, 7, 4]], bos=2, eos=3)
>>> loss, cache = m.forward(*batch)
>>> m.zero_grad(); m.backward(cache)
>>> 1.8 < loss < 2.4, cache["alpha"].shape      # about log 8 at initialisation
(True, (2, 4, 3))
>>> [len(h) for h in m.translate([[4, 5, 6]], bos=2, eos=3, beam_size=2, n_best=2)]
[2]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.attention import KINDS, Attention
from rnnkit.engine.layers import GRU, LSTM, RNN, Recurrent
from rnnkit.engine.module import ModelConfig, Module
from rnnkit.models.beam import beam_search, beam_search_batch, select_state
from rnnkit.models.generate import greedy_decode, sample_decode

Array = np.ndarray
CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
ATTENTIONS = ("none", *KINDS)

__all__ = [
    "ATTENTIONS",
    "Hypothesis",
    "Seq2Seq",
    "Seq2SeqConfig",
    "make_batch",
]


@dataclass
class Seq2SeqConfig(ModelConfig):
    """Everything needed to rebuild a seq2seq model; saved as JSON beside its weights."""

    src_vocab: int  # Vs
    tgt_vocab: int  # Vt
    cell: str = "gru"  # rnn | lstm | gru (encoder and decoder)
    embed: int = 256  # E, both embeddings
    hidden: int = 256  # He, encoder units per direction and layer
    dec_hidden: int | None = None  # Hd, decoder units per layer; None: dirs * He
    layers: int = 1  # L, encoder and decoder
    bidirectional: bool = True  # the encoder
    attention: str = "general"  # none | dot | general | additive
    attn_size: int | None = None  # A of the additive score; None: Hd
    input_feed: bool = False  # decoder input [embed(y_{t-1}); h~_{t-1}] (needs attention)
    reverse_source: bool = False  # read each source sentence backwards (Sutskever et al.)
    dropout: float = 0.0  # on embeddings, between stacked layers, before the generator
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.check_positive("src_vocab", "tgt_vocab", "embed", "hidden", "layers")
        self.check_positive("dec_hidden", "attn_size", optional=True)
        self.check_choice("cell", CELLS)
        self.check_choice("attention", ATTENTIONS)
        if self.input_feed and self.attention == "none":
            raise ValueError("input_feed: needs attention (it feeds the attentional state)")
        if self.attention == "dot" and self.decoder_size != self.memory_size:
            raise ValueError(f"dot attention: needs the decoder size ({self.decoder_size}) to "
                             f"equal the encoder output size ({self.memory_size})")  # fmt: skip
        self.check_probability("dropout")
        self.check_dtype()

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def memory_size(self) -> int:
        """dirs * He: the size of an encoder annotation."""
        return self.directions * self.hidden

    @property
    def decoder_size(self) -> int:
        """Hd."""
        return self.dec_hidden or self.memory_size

    @property
    def bridge(self) -> bool:
        """True when the decoder's initial state is a learned function of the encoder's."""
        return self.bidirectional or self.decoder_size != self.hidden


@dataclass
class Hypothesis:
    """One decoded output: token ids (no BOS/EOS) and the decoder's score for it."""

    tokens: list[int]
    score: float  # the search objective (log P, normalised as the search was told)


def make_batch(
    src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]] | None, bos: int, eos: int,
    pad: int = 0,
) -> tuple[Array, ...]:  # fmt: skip
    """Pad a batch of id sequences: (src (B, S), src_len (B,), tgt_in (B, T), tgt_out (B, T),
    tgt_len (B,)); ``tgt_in`` is ``BOS y``, ``tgt_out`` is ``y EOS``, T = max len(y) + 1.

    With ``tgt=None`` only (src, src_len). Source sentences must be non-empty.

    >>> s, sl, ti, to, tl = make_batch([[5, 6], [7]], [[8], [9, 9]], bos=1, eos=2)
    >>> s.tolist(), sl.tolist(), ti.tolist(), to.tolist(), tl.tolist()
    ([[5, 6], [7, 0]], [2, 1], [[1, 8, 0], [1, 9, 9]], [[8, 2, 0], [9, 9, 2]], [2, 3])
    """
    src_len = np.array([len(s) for s in src], dtype=np.int64)
    if src_len.size == 0:
        raise ValueError("make_batch: empty batch")
    if src_len.min() < 1:
        raise ValueError(f"make_batch: source sentence {int(np.argmin(src_len))} is empty")
    S = int(src_len.max())
    s_ids = np.full((len(src), S), pad, dtype=np.int64)
    for b, s in enumerate(src):
        s_ids[b, : len(s)] = s
    if tgt is None:
        return s_ids, src_len
    if len(tgt) != len(src):
        raise ValueError(f"make_batch: {len(src)} sources but {len(tgt)} targets")
    tgt_len = np.array([len(t) + 1 for t in tgt], dtype=np.int64)
    T = int(tgt_len.max())
    t_in = np.full((len(tgt), T), pad, dtype=np.int64)
    t_out = np.full((len(tgt), T), pad, dtype=np.int64)
    for b, t in enumerate(tgt):
        t_in[b, : len(t) + 1] = [bos, *t]
        t_out[b, : len(t) + 1] = [*t, eos]
    return s_ids, src_len, t_in, t_out, tgt_len


def _reverse_within(ids: Array, lengths: Array) -> Array:
    """Each row's first lengths[b] entries reversed, padding left in place (an involution)."""
    B, S = ids.shape
    pos = np.arange(S)[None, :]
    idx = np.where(pos < lengths[:, None], lengths[:, None] - 1 - pos, pos)
    return np.take_along_axis(ids, idx, axis=1)


class Seq2Seq(Module):
    """Encoder-decoder with optional global attention; see the module doc for the model.

    Args:
        config: the :class:`Seq2SeqConfig`.
        seed: int or ``np.random.Generator`` for initialisation and dropout.

    Inputs of :meth:`forward`: src (B, S) ids and src_len (B,) in [1, S]; tgt_in, tgt_out
    (B, T) ids and tgt_len (B,) in [1, T] (see :func:`make_batch`). Returns the mean NLL
    per target token and a cache holding ``logits`` (B, T, Vt) and, with attention,
    ``alpha`` (B, T, S) (weights over the source positions as given, even when the model
    reads the source reversed; zero at padding).
    """

    def __init__(self, config: Seq2SeqConfig, seed: int | np.random.Generator | None = None):
        self.config = c = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.dtype = dtype = np.dtype(c.dtype)
        Hd, M = c.decoder_size, c.memory_size
        kw: dict[str, Any] = dict(num_layers=c.layers, dropout=c.dropout, dtype=dtype,
                                  seed=self.rng)  # fmt: skip
        Cell = CELLS[c.cell]
        self.encoder: Recurrent = Cell(c.embed, c.hidden, bidirectional=c.bidirectional, **kw)
        d_in = c.embed + (Hd if c.input_feed else 0)
        self.decoder: Recurrent = Cell(d_in, Hd, **kw)
        self.attention: Attention | None = None
        if c.attention != "none":
            self.attention = Attention(c.attention, Hd, M, c.attn_size, dtype, seed=self.rng)

        u, k = self.rng.uniform, (lambda n: 1.0 / math.sqrt(n))
        p: dict[str, Array] = {
            # PyTorch's defaults: nn.Embedding ~ N(0, 1), nn.Linear ~ U(+-1/sqrt(in))
            "encoder.embedding.weight": self.rng.standard_normal((c.src_vocab, c.embed)),
            "decoder.embedding.weight": self.rng.standard_normal((c.tgt_vocab, c.embed)),
        }
        if c.bridge:
            p["bridge.weight"] = u(-k(M), k(M), (Hd, M))
            p["bridge.bias"] = u(-k(M), k(M), Hd)
            if c.cell == "lstm":
                p["bridge_c.weight"] = u(-k(M), k(M), (Hd, M))
                p["bridge_c.bias"] = u(-k(M), k(M), Hd)
        if self.attention is not None:
            p["combine.weight"] = u(-k(M + Hd), k(M + Hd), (Hd, M + Hd))
        p["generator.weight"] = u(-k(Hd), k(Hd), (c.tgt_vocab, Hd))
        p["generator.bias"] = u(-k(Hd), k(Hd), c.tgt_vocab)
        self.params: dict[str, Array] = {n: v.astype(dtype) for n, v in p.items()}
        self.grads: dict[str, Array] = {n: np.zeros_like(v) for n, v in self.params.items()}
        # the sub-modules' arrays are shared, not copied: updating one updates both
        for prefix, mod in (("encoder.rnn.", self.encoder), ("decoder.rnn.", self.decoder),
                            ("attention.", self.attention)):  # fmt: skip
            if mod is not None:
                self.params.update({prefix + n: v for n, v in mod.params.items()})
                self.grads.update({prefix + n: v for n, v in mod.grads.items()})

    # --- bookkeeping ---------------------------------------------------------------------------

    def _check_ids(self, ids: Any, lengths: Any, vocab: int, name: str) -> tuple[Array, Array]:
        ids, lengths = np.asarray(ids), np.asarray(lengths)
        if ids.ndim != 2 or lengths.shape != (ids.shape[0],):
            raise ValueError(f"{name}: expected ids (B, T) and lengths (B,), got {ids.shape} "
                             f"and {lengths.shape}")  # fmt: skip
        if ids.size and (ids.min() < 0 or ids.max() >= vocab):
            raise ValueError(f"{name}: ids must lie in [0, {vocab}), got range "
                             f"[{ids.min()}, {ids.max()}]")  # fmt: skip
        if lengths.min() < 1 or lengths.max() > ids.shape[1]:
            raise ValueError(f"{name}: lengths must lie in [1, {ids.shape[1]}], got "
                             f"{lengths.tolist()}")  # fmt: skip
        return ids, lengths

    # --- encoder and bridge --------------------------------------------------------------------

    def _encode(self, src: Array, src_len: Array, training: bool) -> tuple[Any, ...]:
        """src (B, S) -> memory dict (or None), decoder initial state, cache."""
        c = self.config
        if c.reverse_source:
            src = _reverse_within(src, src_len)
        emb, emb_cache = ops.embedding_forward(src, self.params["encoder.embedding.weight"])
        emb, drop = ops.dropout_forward(emb, c.dropout, self.rng, training)  # (B, S, E)
        enc_out, enc_state, rnn_cache = self.encoder.forward(emb, None, src_len, training)
        mem, mem_cache = None, None
        if self.attention is not None:
            mem, mem_cache = self.attention.memory(enc_out, src_len)  # keys (B, S, dirs*He)
        parts = enc_state if isinstance(enc_state, tuple) else (enc_state,)
        init, bridge_caches = [], []
        for k, s in enumerate(parts):
            L, B = c.layers, s.shape[1]
            # (L*dirs, B, He) -> (L, B, dirs*He): [forward; backward] of each layer
            s = s.reshape(L, c.directions, B, c.hidden).transpose(0, 2, 1, 3).reshape(L, B, -1)
            bc = None
            if c.bridge:
                name = "bridge" if k == 0 else "bridge_c"
                s, lin = ops.linear_forward(
                    s, self.params[name + ".weight"], self.params[name + ".bias"]
                )  # (L, B, Hd)
                act = None
                if k == 0:  # h0 = tanh(W_b h + b_b); the LSTM's c0 stays linear (unbounded)
                    s, act = ops.tanh_forward(s)
                bc = (name, lin, act)
            init.append(np.ascontiguousarray(s))
            bridge_caches.append(bc)
        state = (init[0], init[1]) if len(init) == 2 else init[0]
        cache = dict(emb=emb_cache, drop=drop, rnn=rnn_cache, mem=mem_cache,
                     bridge=bridge_caches, B=src.shape[0])  # fmt: skip
        return mem, state, cache

    def _encode_backward(self, dmem: dict[str, Array] | None, dstate: Any, cache: Any) -> None:
        c = self.config
        parts = dstate if isinstance(dstate, tuple) else (dstate,)
        denc_state = []
        for d, bc in zip(parts, cache["bridge"], strict=True):
            if bc is not None:
                name, lin, act = bc
                if act is not None:
                    d = ops.tanh_backward(d, act)
                d, dW, db = ops.linear_backward(d, lin)
                self.grads[name + ".weight"] += dW
                self.grads[name + ".bias"] += db
            L, B = c.layers, cache["B"]
            # (L, B, dirs*He) -> (L*dirs, B, He)
            d = d.reshape(L, B, c.directions, c.hidden).transpose(0, 2, 1, 3)
            denc_state.append(np.ascontiguousarray(d.reshape(L * c.directions, B, c.hidden)))
        dstate_enc = tuple(denc_state) if len(denc_state) == 2 else denc_state[0]
        layers_cache = cache["rnn"]
        if dmem is not None:
            assert self.attention is not None
            dout = self.attention.memory_backward(dmem, cache["mem"])
        else:
            B, S = cache["B"], cache["emb"][0].shape[1]
            dout = np.zeros((B, S, c.memory_size), self.dtype)
        demb, _ = self.encoder.backward(dout, layers_cache, dstate_enc)
        demb = ops.dropout_backward(demb, cache["drop"])
        self.grads["encoder.embedding.weight"] += ops.embedding_backward(demb, cache["emb"])

    # --- attentional output --------------------------------------------------------------------

    def _attend(self, dec_out: Array, mem: dict[str, Any]) -> tuple[Array, Array, Any]:
        """s (B, T, Hd) -> h~ = tanh(W_c [c; s]) (B, T, Hd), alpha (B, T, S), cache."""
        assert self.attention is not None
        ctx, alpha, acache = self.attention.forward(dec_out, mem)
        if ctx.shape[0] != dec_out.shape[0]:  # a memory of batch 1 serving K hypotheses
            ctx = np.broadcast_to(ctx, (dec_out.shape[0], *ctx.shape[1:]))
        pre, lin = ops.linear_forward(np.concatenate([ctx, dec_out], axis=2),
                                      self.params["combine.weight"])  # fmt: skip
        h, act = ops.tanh_forward(pre)
        return h, alpha, (acache, lin, act)

    def _attend_backward(self, dh: Array, cache: Any) -> tuple[Array, dict[str, Array]]:
        """Returns d s (B, T, Hd) and the memory gradient of this call."""
        assert self.attention is not None
        acache, lin, act = cache
        dcat, dW, _ = ops.linear_backward(ops.tanh_backward(dh, act), lin)
        self.grads["combine.weight"] += dW
        M = self.config.memory_size
        dq, dmem = self.attention.backward(dcat[:, :, :M], acache)
        return dq + dcat[:, :, M:], dmem

    # --- teacher forcing ----------------------------------------------------------------------

    def forward(
        self, src: Array, src_len: Array, tgt_in: Array, tgt_out: Array | None, tgt_len: Array,
        training: bool = True,
    ) -> tuple[float | None, dict[str, Any]]:  # fmt: skip
        """Teacher-forced pass; see the class doc. ``tgt_out=None``: no loss (scoring)."""
        c = self.config
        src, src_len = self._check_ids(src, src_len, c.src_vocab, "src")
        tgt_in, tgt_len = self._check_ids(tgt_in, tgt_len, c.tgt_vocab, "tgt_in")
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"batch sizes differ: src {src.shape[0]}, tgt {tgt_in.shape[0]}")
        B, T = tgt_in.shape
        mem, state, enc_cache = self._encode(src, src_len, training)
        emb, emb_cache = ops.embedding_forward(tgt_in, self.params["decoder.embedding.weight"])
        emb, drop_e = ops.dropout_forward(emb, c.dropout, self.rng, training)  # (B, T, E)
        alpha = None
        if not c.input_feed:
            # the whole target at once: one recurrent call, one batched attention call
            dec_out, _, rnn_cache = self.decoder.forward(emb, state, tgt_len, training)
            if mem is not None:
                h, alpha, att_cache = self._attend(dec_out, mem)  # (B, T, Hd)
            else:
                h, att_cache = dec_out, None
            steps = (rnn_cache, att_cache)
        else:
            Hd = c.decoder_size
            feed = np.zeros((B, Hd), self.dtype)  # h~_0 = 0
            hs = np.empty((B, T, Hd), self.dtype)
            alpha = np.empty((B, T, src.shape[1]), self.dtype)
            step_caches = []
            for t in range(T):
                x = np.concatenate([emb[:, t], feed], axis=1)[:, None, :]  # (B, 1, E + Hd)
                out, state, rnn_cache = self.decoder.forward(x, state, None, training)
                h_t, alpha[:, t : t + 1], att_cache = self._attend(out, mem)  # (B, 1, Hd)
                hs[:, t] = feed = h_t[:, 0]
                step_caches.append((rnn_cache, att_cache))
            h, steps = hs, step_caches
        h, drop_h = ops.dropout_forward(h, c.dropout, self.rng, training)
        logits, gen = ops.linear_forward(
            h, self.params["generator.weight"], self.params["generator.bias"]
        )  # (B, T, Vt)
        loss, ce = None, None
        if tgt_out is not None:
            tgt_out = np.asarray(tgt_out)
            if tgt_out.shape != tgt_in.shape:
                raise ValueError(f"tgt_out: expected shape {tgt_in.shape}, got {tgt_out.shape}")
            mask = np.arange(T)[None, :] < tgt_len[:, None]  # (B, T): padding never counts
            loss, ce = ops.cross_entropy_forward(logits, tgt_out, mask)
        if alpha is not None and c.reverse_source:
            alpha = _reverse_within(alpha.reshape(B * T, -1), np.repeat(src_len, T)).reshape(
                B, T, -1)  # fmt: skip
        cache = dict(logits=logits, alpha=alpha, enc=enc_cache, emb=emb_cache, drop_e=drop_e,
                     steps=steps, drop_h=drop_h, gen=gen, ce=ce, B=B, T=T)  # fmt: skip
        return loss, cache

    def backward(self, cache: dict[str, Any], dlogits: Array | None = None) -> None:
        """Backpropagate the mean loss of :meth:`forward` (or an upstream ``dlogits`` (B, T,
        Vt)) into ``grads`` (+=)."""
        c = self.config
        if dlogits is None:
            if cache["ce"] is None:
                raise ValueError("backward: the forward pass had no targets, so there is no loss")
            dlogits = ops.cross_entropy_backward(1.0, cache["ce"])  # (B, T, Vt)
        dh, dW, db = ops.linear_backward(dlogits, cache["gen"])
        self.grads["generator.weight"] += dW
        self.grads["generator.bias"] += db
        dh = ops.dropout_backward(dh, cache["drop_h"])  # (B, T, Hd)
        dmem: dict[str, Array] | None = None

        def add_mem(d: dict[str, Array]) -> None:
            nonlocal dmem
            if dmem is None:
                dmem = {k: (None if v is None else v.copy()) for k, v in d.items()}
            else:
                for k, v in d.items():
                    if v is not None:
                        dmem[k] += v

        if not c.input_feed:
            rnn_cache, att_cache = cache["steps"]
            if att_cache is not None:
                dh, dm = self._attend_backward(dh, att_cache)
                add_mem(dm)
            demb, dstate = self.decoder.backward(dh, rnn_cache)
        else:
            B, T, E = cache["B"], cache["T"], c.embed
            demb = np.empty((B, T, E), self.dtype)
            dfeed = np.zeros((B, c.decoder_size), self.dtype)
            dstate = None
            for t in range(T - 1, -1, -1):
                rnn_cache, att_cache = cache["steps"][t]
                # h~_t feeds both the generator and the next step's input
                dh_t = dh[:, t : t + 1] + dfeed[:, None, :]
                dout, dm = self._attend_backward(dh_t, att_cache)
                add_mem(dm)
                dx, dstate = self.decoder.backward(dout, rnn_cache, dstate)
                demb[:, t] = dx[:, 0, :E]
                dfeed = dx[:, 0, E:]
        demb = ops.dropout_backward(demb, cache["drop_e"])
        self.grads["decoder.embedding.weight"] += ops.embedding_backward(demb, cache["emb"])
        self._encode_backward(dmem, dstate, cache["enc"])

    # --- scoring ----------------------------------------------------------------------------

    def score(
        self, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], bos: int, eos: int,
        pad: int = 0, batch_size: int = 64,
    ) -> tuple[Array, list[Array | None]]:  # fmt: skip
        """log P(y | x) (nats, EOS included) of each pair, and each pair's attention weights
        (len(y) + 1, len(x)) (None without attention). No dropout.

        >>> m = Seq2Seq(Seq2SeqConfig(src_vocab=6, tgt_vocab=6, embed=3, hidden=4), seed=1)
        >>> logp, alphas = m.score([[4, 5]], [[5]], bos=2, eos=3)
        >>> bool(logp[0] < 0), alphas[0].shape
        (True, (2, 2))
        """
        logp = np.empty(len(src))
        alphas: list[Array | None] = []
        for i in range(0, len(src), batch_size):
            s, sl, ti, to, tl = make_batch(src[i : i + batch_size], tgt[i : i + batch_size],
                                           bos, eos, pad)  # fmt: skip
            _, cache = self.forward(s, sl, ti, None, tl, training=False)
            lp = ops.log_softmax(cache["logits"].astype(np.float64))  # (B, T, Vt)
            tok = np.take_along_axis(lp, to[:, :, None], axis=2)[:, :, 0]
            mask = np.arange(ti.shape[1])[None, :] < tl[:, None]
            logp[i : i + len(s)] = (tok * mask).sum(axis=1)
            for b in range(len(s)):
                a = cache["alpha"]
                alphas.append(None if a is None else a[b, : tl[b], : sl[b]].copy())
        return logp, alphas

    # --- decoding -----------------------------------------------------------------------------

    def init_decoder(self, src: Array, src_len: Array) -> tuple[dict[str, Any] | None, Any]:
        """Encode a padded source batch for decoding: (memory, initial decoder state)."""
        src, src_len = self._check_ids(src, src_len, self.config.src_vocab, "src")
        mem, state, _ = self._encode(src, src_len, training=False)
        feed = np.zeros((src.shape[0], self.config.decoder_size), self.dtype)
        return mem, {"rnn": state, "feed": feed}

    def step_fn(self, mem: dict[str, Any] | None) -> Any:
        """The step function ``step(tokens (K,), state) -> (log_probs (K, Vt), state)`` of
        :mod:`rnnkit.models.generate` over a memory of batch K, or of batch 1 shared by K
        hypotheses. The state is ``{"rnn": decoder state, "feed": h~ (K, Hd)}``, plus, for
        :func:`rnnkit.models.beam.beam_search_batch`, ``"sent"`` (K,): the memory row of each
        hypothesis."""
        c = self.config
        emb_w = self.params["decoder.embedding.weight"]
        W, bias = self.params["generator.weight"], self.params["generator.bias"]

        def step(tokens: Array, state: dict[str, Any]) -> tuple[Array, dict[str, Any]]:
            x = emb_w[np.asarray(tokens)]  # (K, E)
            if c.input_feed:
                x = np.concatenate([x, state["feed"]], axis=1)
            out, rnn_state = self.decoder(x[:, None, :], state["rnn"])  # (K, 1, Hd)
            if mem is None:
                h = out
            else:
                m = mem
                if "sent" in state:  # hypotheses of several sentences: their memory rows
                    i = state["sent"]
                    m = {k: None if v is None else v[i] for k, v in mem.items()}
                h = self._attend(out, m)[0]
            logits = h[:, 0] @ W.T + bias  # (K, Vt)
            new = {"rnn": rnn_state, "feed": h[:, 0]}
            if "sent" in state:
                new["sent"] = state["sent"]
            return ops.log_softmax(logits.astype(np.float64)), new

        return step

    @staticmethod
    def reorder(state: dict[str, Any], index: Array) -> dict[str, Any]:
        """Select hypotheses ``index`` of a decoder state (beam search's reorder)."""
        new = {"rnn": select_state(state["rnn"], index, 1), "feed": state["feed"][index]}
        if "sent" in state:
            new["sent"] = state["sent"][index]
        return new

    def translate(
        self, src: Sequence[Sequence[int]], bos: int, eos: int, method: str = "beam",
        beam_size: int = 5, alpha: float = 1.0, penalty: str = "length", n_best: int = 1,
        max_len_a: float = 2.0, max_len_b: int = 10, batch_size: int = 64, pad: int = 0,
        temperature: float = 1.0, rng: np.random.Generator | None = None,
        batch_beam: bool = True,
    ) -> list[list[Hypothesis]]:  # fmt: skip
        """Decode each source sentence; returns its ``n_best`` hypotheses, best first.

        Args:
            src: source id sequences (each non-empty).
            method: ``"greedy"`` or ``"sample"`` (batched over ``batch_size`` sentences;
                one hypothesis each, scored by log P) or ``"beam"``
                (:func:`rnnkit.models.beam.beam_search_batch` over ``batch_size`` sentences;
                with ``batch_beam=False`` :func:`rnnkit.models.beam.beam_search`, one sentence at a
                time, which gives the same hypotheses).
            beam_size: K >= 1. With K = 1 the search stops at the first EOS, so the output
                is exactly the greedy one.
            alpha: length-normalisation exponent (>= 0); ``penalty`` ``"length"`` ranks
                finished hypotheses by log P / T^alpha (seed 002; T the output length with
                EOS), ``"gnmt"`` by log P / ((5 + T) / 6)^alpha (Wu et al. 2016, eq. 14).
            n_best: how many hypotheses to return per sentence (beam: at most K).
            max_len_a, max_len_b: at most ``int(a * len(x) + b)`` output tokens.
        """
        if method not in ("greedy", "sample", "beam"):
            raise ValueError(f"method: expected greedy, sample or beam, got {method!r}")
        if beam_size < 1:
            raise ValueError(f"beam size: must be at least 1, got {beam_size}")
        if n_best < 1 or (method == "beam" and n_best > beam_size):
            raise ValueError(f"n-best: must lie in [1, beam size {beam_size}], got {n_best}")
        if penalty not in ("length", "gnmt"):
            raise ValueError(f"penalty: expected length or gnmt, got {penalty!r}")
        if alpha < 0:
            raise ValueError(f"alpha: must be >= 0, got {alpha}")
        limits = [max(1, int(max_len_a * len(s) + max_len_b)) for s in src]
        out: list[list[Hypothesis]] = []
        if method in ("greedy", "sample"):
            rng = rng or np.random.default_rng()
            for i in range(0, len(src), batch_size):
                chunk = src[i : i + batch_size]
                lim = limits[i : i + batch_size]
                s, sl = make_batch(chunk, None, bos, eos, pad)
                mem, state = self.init_decoder(s, sl)
                step = self.step_fn(mem)
                if method == "greedy":
                    seqs = greedy_decode(step, state, bos, eos, max(lim), len(chunk))
                else:
                    seqs = sample_decode(step, state, bos, eos, max(lim), len(chunk), rng,
                                         temperature)  # fmt: skip
                # a row that ran past its own limit is cut there (its prefix is unchanged)
                seqs = [q[:m] for q, m in zip(seqs, lim, strict=True)]
                logp, _ = self.score(chunk, seqs, bos, eos, pad)
                out += [[Hypothesis(q, float(lp))] for q, lp in zip(seqs, logp, strict=True)]
            return out
        found: list[list[tuple[list[int], float]]] = []
        if batch_beam:
            for i in range(0, len(src), batch_size):
                mem, state = self.init_decoder(*make_batch(src[i : i + batch_size], None, bos,
                                                           eos, pad))  # fmt: skip
                state["sent"] = np.arange(len(state["feed"]))
                found += beam_search_batch(self.step_fn(mem), state, bos, eos, beam_size,
                                           limits[i : i + batch_size], alpha,
                                           self.reorder)  # fmt: skip
        else:
            for s, lim in zip(src, limits, strict=True):
                mem, state = self.init_decoder(*make_batch([s], None, bos, eos, pad))
                found.append(beam_search(self.step_fn(mem), state, bos, eos, beam_size, lim,
                                         alpha, reorder=self.reorder))  # fmt: skip
        for hyps, lim in zip(found, limits, strict=True):
            if penalty == "gnmt":
                hyps = [(q, _gnmt(v, q, lim, alpha)) for q, v in hyps]
                hyps.sort(key=lambda h: -h[1])
            out.append([Hypothesis(q, v) for q, v in hyps[:n_best]])
        return out


def _gnmt(score: float, tokens: list[int], max_len: int, alpha: float) -> float:
    """Re-rank a beam hypothesis: log P / T^alpha -> log P / ((5 + T) / 6)^alpha.

    T counts EOS; a hypothesis of ``max_len`` tokens was cut unterminated (T = max_len).
    """
    T = len(tokens) if len(tokens) >= max_len else len(tokens) + 1
    return score * T**alpha / ((5.0 + T) / 6.0) ** alpha
