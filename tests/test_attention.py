"""Attention: finite differences for every score (masked, broadcast memory), a PyTorch twin
of scores, weights, context and all gradients, and the padding guarantees."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.engine.attention import Attention, length_mask
from rnnkit.engine.gradcheck import gradcheck

B, TQ, S, HQ, HK, A = 2, 3, 4, 5, 6, 7  # unequal sizes: a swapped axis fails


def _setup(kind, seed=0, mem_batch=B):
    r = np.random.default_rng(seed)
    hk = HQ if kind == "dot" else HK
    att = Attention(kind, HQ, hk, attn_size=A, dtype=np.float64, seed=seed)
    for p in att.params.values():  # larger than the init: sharper, less uniform weights
        p[...] = r.standard_normal(p.shape)
    q = r.standard_normal((B, TQ, HQ))
    keys = r.standard_normal((mem_batch, S, hk))
    lengths = np.array([4, 2])[:mem_batch]  # row 1 padded
    w_ctx = r.standard_normal((B, TQ, hk))  # random upstream gradients
    w_alpha = r.standard_normal((B, TQ, S))
    return att, q, keys, lengths, w_ctx, w_alpha


def _loss(att, q, keys, lengths, w_ctx, w_alpha):
    mem, _ = att.memory(keys, lengths)
    ctx, alpha, _ = att.forward(q, mem)
    return float((ctx * w_ctx).sum() + (alpha * w_alpha).sum())


@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
@pytest.mark.parametrize("mem_batch", [B, 1])
def test_attention_gradcheck(kind, mem_batch):
    att, q, keys, lengths, w_ctx, w_alpha = _setup(kind, mem_batch=mem_batch)
    mem, mcache = att.memory(keys, lengths)
    ctx, alpha, cache = att.forward(q, mem)
    att.zero_grad()
    dq, dmem = att.backward(w_ctx, cache, dalpha=w_alpha)
    dkeys = att.memory_backward(dmem, mcache)
    analytic = {"q": dq, "keys": dkeys, **{k: v.copy() for k, v in att.grads.items()}}
    inputs = {"q": q, "keys": keys, **att.params}
    gradcheck(lambda: _loss(att, q, keys, lengths, w_ctx, w_alpha), inputs, analytic)
    # padding: zero weight, and no gradient reaches a padded memory vector
    if mem_batch == B:
        assert np.abs(alpha[1, :, 2:]).max() == 0.0
        assert np.abs(dkeys[1, 2:]).max() == 0.0


def _torch_attention(att, q, keys, lengths):
    """The same computation written directly in torch (autograd gives the gradients)."""
    tq = torch.tensor(q, requires_grad=True)
    tk = torch.tensor(keys, requires_grad=True)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in att.params.items()}
    if att.kind == "dot":
        e = torch.bmm(tq, tk.transpose(1, 2))
    elif att.kind == "general":
        e = torch.bmm(tq, torch.nn.functional.linear(tk, tp["weight"]).transpose(1, 2))
    else:
        qp = torch.nn.functional.linear(tq, tp["query.weight"])  # (B, Tq, A)
        kp = torch.nn.functional.linear(tk, tp["key.weight"])  # (B, S, A)
        e = torch.nn.functional.linear(torch.tanh(qp[:, :, None] + kp[:, None]),
                                       tp["v.weight"])[..., 0]  # fmt: skip
    pad = ~torch.tensor(length_mask(lengths, keys.shape[1]))
    alpha = torch.softmax(e.masked_fill(pad[:, None, :], float("-inf")), dim=-1)
    ctx = torch.bmm(alpha, tk)
    return tq, tk, tp, e, alpha, ctx


@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_attention_matches_torch(kind, dtype, tol):
    att, q, keys, lengths, w_ctx, w_alpha = _setup(kind, seed=3)
    att.params = {k: v.astype(dtype) for k, v in att.params.items()}
    att.grads = {k: np.zeros_like(v) for k, v in att.params.items()}
    q, keys, w_ctx, w_alpha = (a.astype(dtype) for a in (q, keys, w_ctx, w_alpha))
    mem, mcache = att.memory(keys, lengths)
    ctx, alpha, cache = att.forward(q, mem)
    dq, dmem = att.backward(w_ctx, cache, dalpha=w_alpha)
    dkeys = att.memory_backward(dmem, mcache)

    tq, tk, tp, _, t_alpha, t_ctx = _torch_attention(att, q, keys, lengths)
    ((t_ctx * torch.tensor(w_ctx)).sum() + (t_alpha * torch.tensor(w_alpha)).sum()).backward()

    def rel(a, b):
        b = b.detach().numpy()
        return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))

    errors = {"ctx": rel(ctx, t_ctx), "alpha": rel(alpha, t_alpha), "dq": rel(dq, tq.grad),
              "dkeys": rel(dkeys, tk.grad)}  # fmt: skip
    errors.update({k: rel(att.grads[k], tp[k].grad) for k in att.params})
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, bad


def test_weights_sum_to_one_and_errors():
    att = Attention("general", 3, 4, seed=0)
    r = np.random.default_rng(0)
    mem, _ = att.memory(r.standard_normal((2, 5, 4)).astype(np.float32), np.array([5, 1]))
    _, alpha, _ = att.forward(r.standard_normal((2, 2, 3)).astype(np.float32), mem)
    assert np.allclose(alpha.sum(-1), 1.0, atol=1e-6)
    assert alpha[1, :, 0].min() == pytest.approx(1.0)  # one valid position takes all weight
    with pytest.raises(ValueError, match="dot attention"):
        Attention("dot", 3, 4)
    with pytest.raises(ValueError, match="expected one of"):
        Attention("cosine", 3, 3)
    with pytest.raises(ValueError, match="lengths"):
        att.memory(np.zeros((2, 5, 4), np.float32), np.array([0, 5]))
    with pytest.raises(ValueError, match="query"):
        att.forward(np.zeros((2, 1, 4), np.float32), mem)
