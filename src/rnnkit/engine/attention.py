"""Attention over a memory of vectors: scores, a masked softmax and the context vector.

A query q_t (a decoder state, a question) reads a memory of S vectors h_1 .. h_S (encoder
outputs, "annotations"; padding marked by a mask)::

    e_{t,s}     = score(q_t, h_s)                                    scores     (B, Tq, S)
    alpha_{t,s} = exp(e_{t,s}) / sum_{s' valid} exp(e_{t,s'})       weights    (B, Tq, S)
    c_t         = sum_s alpha_{t,s} h_s                              context    (B, Tq, Hk)

(seed 002: c_t = sum_t' alpha_{t,t'} a_t', alpha a softmax over the scores). Padded memory
positions get alpha = 0 exactly and receive no gradient. Scores:

    dot       e = q^T h                       Luong et al. 2015, eq. (8); needs Hq == Hk
    general   e = q^T W_a h                   Luong et al. 2015, eq. (8)
    additive  e = v_a^T tanh(W_a q + U_a h)   Bahdanau et al. 2015, eq. (6) and App. A.1.2
                                              (Luong et al.'s "concat")

Every piece is a forward/backward pair (``*_forward -> (out, cache)``, ``*_backward(dout,
cache)``); :class:`Attention` composes them with its parameters. The memory-side projections
(W_a h, U_a h) do not depend on the query, so :meth:`Attention.memory` computes them once
per batch of memories, and a decoder that queries step by step adds the gradients of every
step into one ``dmem`` before a single :meth:`Attention.memory_backward`.

Shapes (legend of :mod:`rnnkit.engine.ops`): B batch, Tq queries per memory, S memory positions,
Hq query size, Hk memory (key = value) size, A the additive attention size.

>>> att = Attention("general", query_size=3, key_size=2, seed=0)
>>> keys = np.ones((1, 4, 2), np.float32)
>>> mem, mcache = att.memory(keys, lengths=np.array([2]))
>>> ctx, alpha, cache = att.forward(np.ones((1, 1, 3), np.float32), mem)
>>> alpha.round(3).tolist()   # equal keys, two valid positions
[[[0.5, 0.5, 0.0, 0.0]]]
>>> dq, dmem = att.backward(np.ones_like(ctx), cache)
>>> dkeys = att.memory_backward(dmem, mcache); dq.shape, dkeys.shape
((1, 1, 3), (1, 4, 2))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnnkit.engine import ops
from rnnkit.engine.module import Module

Array = np.ndarray
Cache = Any

KINDS = ("dot", "general", "additive")

__all__ = [
    "KINDS",
    "Attention",
    "additive_score_backward",
    "additive_score_forward",
    "context_backward",
    "context_forward",
    "dot_score_backward",
    "dot_score_forward",
    "length_mask",
    "masked_softmax_backward",
    "masked_softmax_forward",
]


def length_mask(lengths: Array, S: int) -> Array:
    """(B, S) boolean mask, True at the first ``lengths[b]`` positions of row b.

    >>> length_mask(np.array([2, 3]), 4).astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 1, 0]]
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths: expected a 1-D integer array, got {lengths.dtype} "
                         f"{lengths.shape}")  # fmt: skip
    if lengths.size and (lengths.min() < 1 or lengths.max() > S):
        raise ValueError(f"lengths: each must lie in [1, S={S}], got {lengths.tolist()}")
    return np.arange(S)[None, :] < lengths[:, None]


# --- scores -----------------------------------------------------------------------------------


def dot_score_forward(q: Array, k: Array) -> tuple[Array, Cache]:
    """e_{t,s} = q_t . k_s.  q (B, Tq, H), k (B, S, H) -> e (B, Tq, S).

    The batch axes broadcast (a memory of batch 1 serves K beam hypotheses).

    >>> e, _ = dot_score_forward(np.ones((1, 2, 3)), np.arange(6.0).reshape(1, 2, 3))
    >>> e.tolist()
    [[[3.0, 12.0], [3.0, 12.0]]]
    """
    e = q @ np.swapaxes(k, 1, 2)  # (B, Tq, S)
    return e, (q, k)


def dot_score_backward(de: Array, cache: Cache) -> tuple[Array, Array]:
    """Returns (dq, dk) for e = q k^T: dq = de k, dk = de^T q (summed over broadcast rows)."""
    q, k = cache
    dq = de @ k  # (B, Tq, H)
    dk = np.swapaxes(de, 1, 2) @ q  # (B', S, H)
    return dq, _unbroadcast(dk, k.shape)


def additive_score_forward(qp: Array, kp: Array, v: Array) -> tuple[Array, Cache]:
    """e_{t,s} = v . tanh(qp_t + kp_s), the projected query qp = W_a q and memory kp = U_a h.

    qp (B, Tq, A), kp (B, S, A), v (A,) -> e (B, Tq, S).  (Bahdanau et al. 2015, eq. 6.)
    """
    z = np.tanh(qp[:, :, None, :] + kp[:, None, :, :])  # (B, Tq, S, A)
    e = z @ v  # (B, Tq, S)
    return e, (z, v, qp.shape, kp.shape)


def additive_score_backward(de: Array, cache: Cache) -> tuple[Array, Array, Array]:
    """Returns (dqp, dkp, dv)."""
    z, v, qp_shape, kp_shape = cache
    # e = z v  ->  dv = sum e-grad * z, dz = de v
    dv = np.tensordot(de, z, axes=([0, 1, 2], [0, 1, 2]))  # (A,)
    # z = tanh(a)  ->  da = dz (1 - z^2)
    da = de[..., None] * v * (1.0 - z * z)  # (B, Tq, S, A)
    dqp = _unbroadcast(da.sum(axis=2), qp_shape)
    dkp = _unbroadcast(da.sum(axis=1), kp_shape)
    return dqp, dkp, dv


def _unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum a gradient over the batch rows that forward broadcast (memory batch 1 vs K)."""
    if g.shape[0] != shape[0] and shape[0] == 1:
        g = g.sum(axis=0, keepdims=True)
    return g


# --- weights and context -------------------------------------------------------------------


def masked_softmax_forward(e: Array, mask: Array | None) -> tuple[Array, Cache]:
    """alpha = softmax of e over the last axis, restricted to mask (B, S); alpha = 0 elsewhere.

    e (B, Tq, S) -> alpha (B, Tq, S). Every row must have at least one valid position.

    >>> a, _ = masked_softmax_forward(np.zeros((1, 1, 3)), np.array([[True, True, False]]))
    >>> a.tolist()
    [[[0.5, 0.5, 0.0]]]
    """
    if mask is not None:
        # -inf, not a large negative number: exp(-inf - max) is exactly 0, so padding gets
        # weight 0 and gradient 0 however large the valid scores are
        e = np.where(mask[:, None, :], e, -np.inf)
    return ops.softmax_forward(e, axis=-1)


def masked_softmax_backward(dalpha: Array, cache: Cache) -> Array:
    """de = alpha * (dalpha - sum(dalpha * alpha)); zero at masked positions (alpha = 0)."""
    return ops.softmax_backward(dalpha, cache)


def context_forward(alpha: Array, values: Array) -> tuple[Array, Cache]:
    """c_t = sum_s alpha_{t,s} values_s.  alpha (B, Tq, S), values (B, S, Hk) -> (B, Tq, Hk)."""
    return alpha @ values, (alpha, values)


def context_backward(dc: Array, cache: Cache) -> tuple[Array, Array]:
    """Returns (dalpha, dvalues): dalpha = dc values^T, dvalues = alpha^T dc."""
    alpha, values = cache
    dalpha = dc @ np.swapaxes(values, 1, 2)  # (B, Tq, S)
    dvalues = np.swapaxes(alpha, 1, 2) @ dc  # (B', S, Hk)
    return dalpha, _unbroadcast(dvalues, values.shape)


# --- the module ---------------------------------------------------------------------------------


class Attention(Module):
    r"""Global attention of a query over a masked memory (see the module doc for the math).

    Args:
        kind: ``"dot"``, ``"general"`` or ``"additive"``.
        query_size: Hq. key_size: Hk (the memory vectors are both keys and values).
        attn_size: A, the hidden size of the additive score (default Hq).
        dtype: float32 or float64. seed: int or ``np.random.Generator`` (initialisation).

    Parameters (``torch.nn.Linear(in, out, bias=False)`` layout, U(+-1/sqrt(in)) init):
    general ``weight`` (Hq, Hk) = W_a; additive ``query.weight`` (A, Hq) = W_a,
    ``key.weight`` (A, Hk) = U_a, ``v.weight`` (1, A) = v_a^T; dot has none.

    Inputs/outputs: :meth:`memory` keys (B, S, Hk) with ``lengths`` (B,) or ``mask`` (B, S)
    -> a memory dict; :meth:`forward` query (B', Tq, Hq) -> context (B', Tq, Hk), alpha
    (B', Tq, S), cache, where B' = B or the memory has B = 1 (broadcast over B' queries).

    Example:
        >>> att = Attention("additive", query_size=4, key_size=6, attn_size=5, seed=0)
        >>> sorted(att.params), att.params["key.weight"].shape
        (['key.weight', 'query.weight', 'v.weight'], (5, 6))
    """

    def __init__(
        self, kind: str, query_size: int, key_size: int, attn_size: int | None = None,
        dtype: Any = np.float32, seed: int | np.random.Generator | None = None,
    ) -> None:  # fmt: skip
        if kind not in KINDS:
            raise ValueError(f"attention: expected one of {list(KINDS)}, got {kind!r}")
        if kind == "dot" and query_size != key_size:
            raise ValueError(f"dot attention: needs query size == key size, got {query_size} "
                             f"and {key_size}")  # fmt: skip
        self.kind = kind
        self.query_size, self.key_size = int(query_size), int(key_size)
        self.attn_size = int(attn_size or query_size)
        self.dtype = np.dtype(dtype)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

        def lin(out: int, inp: int) -> Array:
            k = 1.0 / math.sqrt(inp)
            return rng.uniform(-k, k, (out, inp)).astype(self.dtype)

        self.params: dict[str, Array] = {}
        if kind == "general":
            self.params["weight"] = lin(self.query_size, self.key_size)
        elif kind == "additive":
            A = self.attn_size
            self.params["query.weight"] = lin(A, self.query_size)
            self.params["key.weight"] = lin(A, self.key_size)
            self.params["v.weight"] = lin(1, A)
        self.grads: dict[str, Array] = {n: np.zeros_like(p) for n, p in self.params.items()}

    # --- the memory ----------------------------------------------------------------------------

    def memory(
        self, keys: Array, lengths: Array | None = None, mask: Array | None = None
    ) -> tuple[dict[str, Any], Cache]:
        """Prepare a memory: keys (B, S, Hk) and the query-independent projection.

        Returns ``{"keys", "proj", "mask"}`` (proj: W_a h (B, S, Hq) for general,
        U_a h (B, S, A) for additive, None for dot) and the cache for :meth:`memory_backward`.
        """
        keys = np.asarray(keys)
        if keys.ndim != 3 or keys.shape[2] != self.key_size:
            raise ValueError(f"keys: expected shape (B, S, {self.key_size}), got {keys.shape}")
        B, S, _ = keys.shape
        if lengths is not None:
            if mask is not None:
                raise ValueError("memory: give lengths or mask, not both")
            mask = length_mask(lengths, S)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (B, S):
                raise ValueError(f"mask: expected shape ({B}, {S}), got {mask.shape}")
            if not mask.any(axis=1).all():
                raise ValueError("mask: every memory needs at least one valid position")
        proj, pcache = None, None
        if self.kind == "general":
            # q^T W_a h = q . (W_a h): project the memory once, (B, S, Hk) -> (B, S, Hq)
            proj, pcache = ops.linear_forward(keys, self.params["weight"])
        elif self.kind == "additive":
            proj, pcache = ops.linear_forward(keys, self.params["key.weight"])  # (B, S, A)
        return {"keys": keys, "proj": proj, "mask": mask}, pcache

    def memory_backward(self, dmem: dict[str, Array], cache: Cache) -> Array:
        """Gradient w.r.t. the keys from ``dmem = {"keys", "proj"}`` (summed over queries)."""
        dkeys = dmem["keys"]
        if self.kind != "dot" and dmem.get("proj") is not None:
            dk, dW, _ = ops.linear_backward(dmem["proj"], cache)
            self.grads["weight" if self.kind == "general" else "key.weight"] += dW
            dkeys = dkeys + dk
        return dkeys

    # --- querying ------------------------------------------------------------------------------

    def forward(self, query: Array, mem: dict[str, Any]) -> tuple[Array, Array, Cache]:
        """query (B', Tq, Hq) -> context (B', Tq, Hk), alpha (B', Tq, S), cache."""
        query = np.asarray(query)
        if query.ndim != 3 or query.shape[2] != self.query_size:
            raise ValueError(f"query: expected shape (B, Tq, {self.query_size}), "
                             f"got {query.shape}")  # fmt: skip
        keys, proj, mask = mem["keys"], mem["proj"], mem["mask"]
        if keys.shape[0] not in (1, query.shape[0]):
            raise ValueError(f"query: batch {query.shape[0]} does not match the memory's "
                             f"{keys.shape[0]}")  # fmt: skip
        if self.kind == "dot":
            e, scache = dot_score_forward(query, keys)
        elif self.kind == "general":
            e, scache = dot_score_forward(query, proj)
        else:
            qp, qcache = ops.linear_forward(query, self.params["query.weight"])  # (B', Tq, A)
            e, ecache = additive_score_forward(qp, proj, self.params["v.weight"][0])
            scache = (qcache, ecache)
        alpha, acache = masked_softmax_forward(e, mask)
        ctx, ccache = context_forward(alpha, keys)
        return ctx, alpha, (scache, acache, ccache)

    def backward(
        self, dctx: Array, cache: Cache, dalpha: Array | None = None
    ) -> tuple[Array, dict[str, Array]]:
        """Returns dquery (B', Tq, Hq) and ``dmem = {"keys", "proj"}``; parameter grads added.

        ``dalpha`` is an optional gradient reaching the weights directly (e.g. a penalty).
        """
        scache, acache, ccache = cache
        da, dvalues = context_backward(dctx, ccache)
        if dalpha is not None:
            da = da + dalpha
        de = masked_softmax_backward(da, acache)
        dproj = None
        if self.kind == "dot":
            dq, dk = dot_score_backward(de, scache)
            dvalues = dvalues + dk
        elif self.kind == "general":
            dq, dproj = dot_score_backward(de, scache)
        else:
            qcache, ecache = scache
            dqp, dproj, dv = additive_score_backward(de, ecache)
            self.grads["v.weight"] += dv[None, :]
            dq, dWq, _ = ops.linear_backward(dqp, qcache)
            self.grads["query.weight"] += dWq
        return dq, {"keys": dvalues, "proj": dproj}
