"""Image captioning: a convolutional encoder and an LSTM decoder, with or without attention.

Captioning is the one-to-many case of a recurrent network: one picture in, a sentence out,
P(y | I) = prod_t P(y_t | y_<t, I). Both captioners share the encoder and the decoder's
start:

- **Encoder** (:mod:`rnnkit.engine.conv`): ``len(channels)`` blocks of conv 3x3 (padding 1)
  -> [batch norm ->] ReLU -> max-pool 2, laid out as ``torch.nn.Sequential`` names them
  (``encoder.0.weight``, ``encoder.3.weight``, ...; with batch norm ``encoder.1.weight``,
  ``encoder.1.running_mean``, ``encoder.4.weight``...). The last feature map (B, D, g, g) is
  the grid of S = g^2 annotation vectors a_1 .. a_S (B, S, D), each seeing one patch of the
  image (Xu et al. 2015, sec. 3.1.1).
- **Start**: h_0 = tanh(W_h abar + b_h), c_0 = tanh(W_c abar + b_c), abar = (1/S) sum_i a_i,
  the pooled image feature (Xu et al. 2015, sec. 3.1.2; the same role as Vinyals et al.
  2015's image fed to the LSTM before the first word).

``attention="none"``, **show and tell** (Vinyals et al. 2015): the image enters only through
h_0, c_0; then h_t = LSTM(E y_{t-1}, h_{t-1}) and P(y_t | ...) = softmax(W_o h_t + b_o).

``attention="soft"``, **show, attend and tell** (Xu et al. 2015, soft attention, eqs. 4-6 and
9): at every step the previous state queries the grid,

    e_{t,i} = v^T tanh(W_a h_{t-1} + U_a a_i)   alpha_t = softmax(e_t)   z_t = sum_i alpha_{t,i} a_i

(the additive score of :class:`rnnkit.engine.attention.Attention`), the LSTM reads
[E y_{t-1}; z_t], and P(y_t | ...) = softmax(W_o [h_t; z_t] + b_o) (a simpler deep output
than their L_o(E y + L_h h + L_z z); no gating scalar beta). The loss adds the doubly
stochastic attention penalty of their eq. 14, lambda sum_i (1 - sum_t alpha_{t,i})^2 per
caption, which asks every grid cell to be looked at about once over the caption; as the
NLL here is a mean over tokens, the penalty summed over the batch is divided by the same
token count (the same objective as theirs divided by the number of tokens).

Training is teacher-forced on padded batches (inputs BOS y, targets y EOS, padding masked
in the loss and the penalty); decoding uses the greedy decoder and the beam search of
:mod:`rnnkit.models.generate` / :mod:`rnnkit.models.beam` (length normalisation log P /
T^alpha) through :meth:`Captioner.step_fn`, exactly as translation does.

>>> cfg = CaptionConfig(vocab=7, image_size=8, channels=[2, 3], embed=4, hidden=5,
...                     attention="soft", attn_size=3)
>>> m = Captioner(cfg, seed=0)
>>> images = np.random.default_rng(0).integers(0, 256, (2, 1, 8, 8)).astype(np.uint8)
>>> loss, cache = m.forward(images, *teacher_forcing([[4, 5], [6]], bos=2, eos=3))
>>> m.zero_grad(); m.backward(cache)
>>> cache["alpha"].shape, m.grid
((2, 3, 4), (2, 2))
>>> out = m.caption(images, bos=2, eos=3, beam_size=2, max_len=4)
>>> len(out), all(len(c) <= 4 for c in out)
(2, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.attention import Attention
from rnnkit.engine.conv import BatchNorm2d, Conv2d, maxpool2d_backward, maxpool2d_forward
from rnnkit.engine.layers import LSTM
from rnnkit.engine.module import ModelConfig, Module
from rnnkit.models.beam import beam_search_batch, select_state
from rnnkit.models.generate import greedy_decode, teacher_forcing

Array = np.ndarray
ATTENTIONS = ("none", "soft")

__all__ = ["ATTENTIONS", "CaptionConfig", "Captioner"]


@dataclass
class CaptionConfig(ModelConfig):
    """Everything needed to rebuild a captioner; saved as JSON beside its weights."""

    vocab: int  # V
    in_channels: int = 1  # C of the images: 1 grey, 3 RGB
    image_size: int = 40  # images are image_size x image_size
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])  # conv blocks' outputs
    batch_norm: bool = False  # batch normalisation after each convolution
    embed: int = 64  # E
    hidden: int = 128  # H, the LSTM's units
    attention: str = "soft"  # none (show and tell) | soft (show, attend and tell)
    attn_size: int = 64  # A of the additive score
    penalty: float = 1.0  # lambda of the doubly stochastic attention penalty (soft)
    dropout: float = 0.0  # before the output layer
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.check_positive("vocab", "in_channels", "image_size", "embed", "hidden", "attn_size")
        self.channels = [int(c) for c in self.channels]
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels: expected positive integers, got {self.channels}")
        if self.image_size >> len(self.channels) < 1:
            raise ValueError(f"image_size {self.image_size} is too small for "
                             f"{len(self.channels)} halvings")  # fmt: skip
        self.check_choice("attention", ATTENTIONS)
        if self.penalty < 0:
            raise ValueError(f"penalty: must be >= 0, got {self.penalty}")
        self.check_probability("dropout")
        self.check_dtype()


class Captioner(Module):
    """Conv encoder + LSTM decoder, with soft attention or without; see the module doc.

    Args:
        config: the :class:`CaptionConfig`. seed: int or ``np.random.Generator``.

    Inputs of :meth:`forward`: images (B, C, H, W) (uint8 pixels are divided by 255),
    tgt_in, tgt_out (B, T) ids and lengths (B,) (see
    :func:`rnnkit.models.generate.teacher_forcing`). Returns the loss (mean NLL per token,
    plus the attention penalty) and a cache holding ``logits``
    (B, T, V), ``nll`` and, with attention, ``alpha`` (B, T, S) over the S = g*g grid cells
    in row-major order (:attr:`grid` is (g, g)).

    Parameters: ``encoder.{3k}.weight/bias`` (conv k), ``init_h.*``, ``init_c.*`` (H, D),
    ``embedding.weight`` (V, E), ``decoder.weight_ih_l0`` ... (the LSTM),
    ``attention.query.weight`` / ``key.weight`` / ``v.weight``, ``generator.weight``
    (V, H [+ D]), ``generator.bias``.
    """

    def __init__(self, config: CaptionConfig, seed: int | np.random.Generator | None = None):
        self.config = c = config
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.dtype = dtype = np.dtype(c.dtype)
        self.convs: list[Conv2d] = []
        self.norms: list[BatchNorm2d] = []
        ch = c.in_channels
        for out_ch in c.channels:  # with batch norm the conv's bias is redundant (PyTorch's way)
            self.convs.append(Conv2d(ch, out_ch, 3, padding=1, bias=not c.batch_norm,
                                     dtype=dtype, seed=self.rng))  # fmt: skip
            if c.batch_norm:
                self.norms.append(BatchNorm2d(out_ch, dtype=dtype))
            ch = out_ch
        D, H = ch, c.hidden
        g = c.image_size >> len(c.channels)
        self.grid = (g, g)
        soft = c.attention == "soft"
        self.decoder = LSTM(c.embed + (D if soft else 0), H, dtype=dtype, seed=self.rng)
        self.attention = Attention("additive", H, D, c.attn_size, dtype, seed=self.rng) if soft \
            else None  # fmt: skip
        u, k = self.rng.uniform, (lambda n: 1.0 / math.sqrt(n))
        out_in = H + (D if soft else 0)
        p: dict[str, Array] = {
            "init_h.weight": u(-k(D), k(D), (H, D)), "init_h.bias": u(-k(D), k(D), H),
            "init_c.weight": u(-k(D), k(D), (H, D)), "init_c.bias": u(-k(D), k(D), H),
            "embedding.weight": self.rng.standard_normal((c.vocab, c.embed)),
            "generator.weight": u(-k(out_in), k(out_in), (c.vocab, out_in)),
            "generator.bias": u(-k(out_in), k(out_in), c.vocab),
        }  # fmt: skip
        self.params: dict[str, Array] = {n: v.astype(dtype) for n, v in p.items()}
        self.grads: dict[str, Array] = {n: np.zeros_like(v) for n, v in self.params.items()}
        # torch.nn.Sequential's indices: conv, [batch norm,] ReLU, max-pool per block
        step = 4 if c.batch_norm else 3
        subs: list[tuple[str, Module | None]] = [(f"encoder.{step * i}.", m)
                                                 for i, m in enumerate(self.convs)]  # fmt: skip
        subs += [(f"encoder.{step * i + 1}.", m) for i, m in enumerate(self.norms)]
        subs += [("decoder.", self.decoder), ("attention.", self.attention)]
        for prefix, mod in subs:  # shared arrays, not copies
            if mod is not None:
                self.params.update({prefix + n: v for n, v in mod.params.items()})
                self.grads.update({prefix + n: v for n, v in mod.grads.items()})
        for i, bn in enumerate(self.norms):
            # running statistics: saved with the weights, but without a gradient buffer, so
            # the optimizers, penalties and clipping leave them alone
            self.params.update({f"encoder.{step * i + 1}.{n}": v for n, v in bn.buffers.items()})

    # --- encoder ---------------------------------------------------------------------------------

    def _pixels(self, images: Array) -> Array:
        images = np.asarray(images)
        c = self.config
        want = (c.in_channels, c.image_size, c.image_size)
        if images.ndim != 4 or images.shape[1:] != want:
            raise ValueError(f"images: expected shape (B, {', '.join(map(str, want))}), got "
                             f"{images.shape}")  # fmt: skip
        x = images.astype(self.dtype)
        return x / 255.0 if images.dtype == np.uint8 else x

    def encode(self, images: Array, training: bool = False) -> tuple[Array, Any]:
        """images (B, C, H, W) -> annotations (B, S, D) and the cache for the backward pass
        (``training``: batch norm uses, and updates, the batch's statistics)."""
        x = self._pixels(images)
        caches = []
        for k, conv in enumerate(self.convs):
            x, kc = conv.forward(x)
            kn = None
            if self.norms:
                x, kn = self.norms[k].forward(x, training)
            x, kr = ops.relu_forward(x)
            x, kp = maxpool2d_forward(x, 2)
            caches.append((kc, kn, kr, kp))
        B, D = x.shape[:2]
        return np.ascontiguousarray(x.reshape(B, D, -1).transpose(0, 2, 1)), (caches, x.shape)

    def encode_backward(self, dann: Array, cache: Any) -> None:
        caches, shape = cache
        d = dann.transpose(0, 2, 1).reshape(shape)  # (B, S, D) -> (B, D, g, g)
        for k in reversed(range(len(self.convs))):
            kc, kn, kr, kp = caches[k]
            d = ops.relu_backward(maxpool2d_backward(d, kp), kr)
            if kn is not None:
                d = self.norms[k].backward(d, kn)
            d = self.convs[k].backward(d, kc)

    def _start(self, ann: Array) -> tuple[tuple[Array, Array], Any]:
        """h_0 = tanh(W_h abar + b_h), c_0 = tanh(W_c abar + b_c); states (1, B, H)."""
        mean = ann.mean(axis=1)  # (B, D)
        out, caches = [], []
        for name in ("init_h", "init_c"):
            pre, lin = ops.linear_forward(mean, self.params[name + ".weight"],
                                          self.params[name + ".bias"])  # fmt: skip
            s, act = ops.tanh_forward(pre)
            out.append(np.ascontiguousarray(s[None]))
            caches.append((name, lin, act))
        return (out[0], out[1]), (caches, ann.shape)

    def _start_backward(self, dstate: tuple[Array, Array], cache: Any) -> Array:
        caches, shape = cache
        dmean = np.zeros((shape[0], shape[2]), self.dtype)
        for d, (name, lin, act) in zip(dstate, caches, strict=True):
            dm, dW, db = ops.linear_backward(ops.tanh_backward(d[0], act), lin)
            self.grads[name + ".weight"] += dW
            self.grads[name + ".bias"] += db
            dmean += dm
        # abar = mean over S: each annotation gets 1/S of the gradient
        return np.broadcast_to(dmean[:, None, :] / shape[1], shape)

    # --- teacher forcing ------------------------------------------------------------------------

    def forward(
        self, images: Array, tgt_in: Array, tgt_out: Array | None, lengths: Array,
        training: bool = True,
    ) -> tuple[float | None, dict[str, Any]]:  # fmt: skip
        """Teacher-forced pass; see the class doc. ``tgt_out=None``: no loss (scoring)."""
        c = self.config
        tgt_in, lengths = np.asarray(tgt_in), np.asarray(lengths)
        B, T = tgt_in.shape
        if len(images) != B or lengths.shape != (B,):
            raise ValueError(f"{len(images)} images, captions {tgt_in.shape}, lengths "
                             f"{lengths.shape}")  # fmt: skip
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths: must lie in [1, {T}], got {lengths.tolist()}")
        ann, enc_cache = self.encode(images, training)  # (B, S, D)
        state, start_cache = self._start(ann)
        emb, emb_cache = ops.embedding_forward(tgt_in, self.params["embedding.weight"])
        emb = emb.astype(self.dtype, copy=False)  # (B, T, E)
        mask = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
        alpha = None
        if self.attention is None:
            h, _, rnn_cache = self.decoder.forward(emb, state, lengths, training)  # (B, T, H)
            steps: Any = rnn_cache
            mem_cache = None
        else:
            mem, mem_cache = self.attention.memory(ann)
            H, D, S = c.hidden, ann.shape[2], ann.shape[1]
            h = np.empty((B, T, H + D), self.dtype)
            alpha = np.empty((B, T, S), self.dtype)
            steps = []
            query = state[0][0][:, None, :]  # h_{t-1} (B, 1, H)
            for t in range(T):
                z, a, att_cache = self.attention.forward(query, mem)  # (B, 1, D), (B, 1, S)
                x = np.concatenate([emb[:, t : t + 1], z], axis=2)  # (B, 1, E + D)
                out, state, rnn_cache = self.decoder.forward(x, state, None, training)
                h[:, t : t + 1] = np.concatenate([out, z], axis=2)
                alpha[:, t : t + 1] = a
                steps.append((att_cache, rnn_cache))
                query = out
        h, drop = ops.dropout_forward(h, c.dropout, self.rng, training)
        logits, gen = ops.linear_forward(h, self.params["generator.weight"],
                                         self.params["generator.bias"])  # fmt: skip
        loss = nll = ce = None
        penalty_cache = None
        if tgt_out is not None:
            nll, ce = ops.cross_entropy_forward(logits, np.asarray(tgt_out), mask)
            loss = nll
            if alpha is not None and c.penalty > 0:
                # lambda sum_b sum_i (1 - sum_t alpha_{b,t,i})^2 / (number of tokens)
                cover = (alpha * mask[:, :, None]).sum(axis=1)  # (B, S)
                ntok = float(mask.sum())
                loss += c.penalty * float(((1.0 - cover) ** 2).sum()) / ntok
                penalty_cache = (cover, ntok)
        cache = dict(logits=logits, alpha=alpha, nll=nll, enc=enc_cache, start=start_cache,
                     emb=emb_cache, steps=steps, mem=mem_cache, drop=drop, gen=gen, ce=ce,
                     mask=mask, penalty=penalty_cache)  # fmt: skip
        return loss, cache

    def backward(self, cache: dict[str, Any]) -> None:
        """Backpropagate the loss of :meth:`forward` into ``grads`` (+=)."""
        c = self.config
        if cache["ce"] is None:
            raise ValueError("backward: the forward pass had no targets, so there is no loss")
        dlogits = ops.cross_entropy_backward(1.0, cache["ce"])
        dh, dW, db = ops.linear_backward(dlogits, cache["gen"])
        self.grads["generator.weight"] += dW
        self.grads["generator.bias"] += db
        dh = ops.dropout_backward(dh, cache["drop"])
        B, T = cache["mask"].shape
        if self.attention is None:
            demb, dstate = self.decoder.backward(dh, cache["steps"])
            dann = np.zeros(cache["start"][1], self.dtype)
        else:
            H = c.hidden
            dalpha_all = None
            if cache["penalty"] is not None:
                cover, ntok = cache["penalty"]
                # d/d alpha_{b,t,i} of lambda (1 - cover_{b,i})^2 / ntok, at valid steps
                dcover = -2.0 * c.penalty * (1.0 - cover) / ntok  # (B, S)
                dalpha_all = (cache["mask"][:, :, None] * dcover[:, None, :]).astype(self.dtype)
            demb = np.empty((B, T, c.embed), self.dtype)
            dmem: dict[str, Array] | None = None
            dquery = np.zeros((B, 1, H), self.dtype)  # d h_t from step t+1's query
            dstate = None
            for t in range(T - 1, -1, -1):
                att_cache, rnn_cache = cache["steps"][t]
                dout = dh[:, t : t + 1, :H] + dquery
                dx, dstate = self.decoder.backward(dout, rnn_cache, dstate)
                demb[:, t] = dx[:, 0, : c.embed]
                dz = dh[:, t : t + 1, H:] + dx[:, :, c.embed :]
                da = None if dalpha_all is None else dalpha_all[:, t : t + 1]
                dquery, dm = self.attention.backward(dz, att_cache, dalpha=da)
                if dmem is None:
                    dmem = {k: v.copy() for k, v in dm.items()}
                else:
                    for k, v in dm.items():
                        dmem[k] += v
            assert dmem is not None and dstate is not None
            # the first query was h_0
            dstate = (dstate[0] + dquery.transpose(1, 0, 2), dstate[1])
            dann = self.attention.memory_backward(dmem, cache["mem"])
        self.grads["embedding.weight"] += ops.embedding_backward(demb, cache["emb"])
        dann = dann + self._start_backward(dstate, cache["start"])
        self.encode_backward(dann, cache["enc"])

    # --- decoding -----------------------------------------------------------------------------

    def init_decoder(self, images: Array) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Encode images for decoding: (attention memory or None, initial state)."""
        ann, _ = self.encode(images)
        state, _ = self._start(ann)
        mem = None if self.attention is None else self.attention.memory(ann)[0]
        return mem, {"rnn": state, "sent": np.arange(len(ann))}

    def step_fn(self, mem: dict[str, Any] | None) -> Any:
        """``step(tokens (K,), state) -> (log_probs (K, V), state)`` over hypotheses whose
        image rows are ``state["sent"]`` (K,)."""
        emb_w = self.params["embedding.weight"]
        W, bias = self.params["generator.weight"], self.params["generator.bias"]

        def step(tokens: Array, state: dict[str, Any]) -> tuple[Array, dict[str, Any]]:
            x = emb_w[np.asarray(tokens)][:, None, :]  # (K, 1, E)
            h_prev = state["rnn"][0][0][:, None, :]
            if mem is not None:
                assert self.attention is not None
                rows = {k: None if v is None else v[state["sent"]] for k, v in mem.items()}
                z, _, _ = self.attention.forward(h_prev, rows)
                x = np.concatenate([x, z], axis=2)
            out, rnn = self.decoder(x, state["rnn"])  # (K, 1, H)
            h = out[:, 0] if mem is None else np.concatenate([out[:, 0], z[:, 0]], axis=1)
            logits = h @ W.T + bias  # (K, V)
            return ops.log_softmax(logits.astype(np.float64)), {"rnn": rnn, "sent": state["sent"]}

        return step

    @staticmethod
    def reorder(state: dict[str, Any], index: Array) -> dict[str, Any]:
        return {"rnn": select_state(state["rnn"], index, 1), "sent": state["sent"][index]}

    def caption(
        self, images: Array, bos: int, eos: int, method: str = "beam", beam_size: int = 3,
        alpha: float = 1.0, max_len: int = 30, batch_size: int = 100,
    ) -> list[list[int]]:  # fmt: skip
        """Decode a caption (token ids, no BOS/EOS) for each image: ``"greedy"`` or
        ``"beam"`` (K = ``beam_size``, ranked by log P / T^alpha)."""
        if method not in ("greedy", "beam"):
            raise ValueError(f"method: expected greedy or beam, got {method!r}")
        out: list[list[int]] = []
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            mem, state = self.init_decoder(chunk)
            step = self.step_fn(mem)
            if method == "greedy":
                out += greedy_decode(step, state, bos, eos, max_len, len(chunk))
            else:
                found = beam_search_batch(step, state, bos, eos, beam_size,
                                          [max_len] * len(chunk), alpha,
                                          self.reorder)  # fmt: skip
                out += [hyps[0][0] for hyps in found]
        return out

    def attention_of(self, images: Array, captions: Sequence[Sequence[int]], bos: int,
                     eos: int) -> list[Array]:  # fmt: skip
        """The attention weights (len(y) + 1, S) with which the model reads each image while
        producing caption y (and its EOS): a teacher-forced pass, so for a decoded caption
        they are the weights seen while decoding it."""
        if self.attention is None:
            raise ValueError("this captioner has no attention")
        t_in, _, lengths = teacher_forcing(captions, bos, eos)
        _, cache = self.forward(images, t_in, None, lengths, training=False)
        return [cache["alpha"][b, : lengths[b]].copy() for b in range(len(captions))]
