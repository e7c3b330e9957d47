"""Compiled word2vec training loops (numba), behind :mod:`rnnkit.embeddings.word2vec`.

The arithmetic is the NumPy reference in :mod:`rnnkit.embeddings.word2vec` (``logistic_forward`` /
``logistic_backward``) applied as one SGD step per (input, target) pair, written as explicit
loops over the E embedding coordinates so LLVM vectorises them. Threads share the weight
matrices without locks (Hogwild, Recht et al. 2011), as word2vec.c and gensim do.

Shapes: V vocabulary, E embedding size, N corpus words, L longest Huffman code.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# No 'nnan'/'ninf': exp(-s) may overflow to inf for large |s| and sigma must then be exactly 0.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_JIT = {"cache": True, "error_model": "numpy", "fastmath": _FASTMATH, "nogil": True}

# splitmix64 constants (Steele, Lea & Flood 2014); uint64 typed so numba never promotes to float
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S33 = np.uint64(33)
_LOW32 = np.uint64(0xFFFFFFFF)
_KEPOCH = np.uint64(0xD1B54A32D192ED03)
_KCHUNK = np.uint64(0x8CB92BA72F3D8DD7)


@nb.njit(**_JIT)
def rng_next(state):
    """splitmix64: returns (new state, 64 random bits)."""
    state = np.uint64(state) + _GOLDEN  # uint64 throughout: int64 + uint64 would be float64
    z = state
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return state, z ^ (z >> _S31)


@nb.njit(**_JIT)
def chunk_seed(seed, epoch, chunk):
    """The random stream of one chunk in one epoch: independent of which thread runs it."""
    s = np.uint64(seed) ^ (np.uint64(epoch) * _KEPOCH) ^ (np.uint64(chunk) * _KCHUNK)
    s, _ = rng_next(s)
    return s


@nb.njit(**_JIT)
def logistic_update(h, out, targets, labels, n, alpha, neu1e, want_loss):
    """One SGD step of the binary logistic loss of input vector h against n output rows.

    h (E,); out (R, E) output vectors theta; targets (>=n,) rows of out; labels (>=n,) y_k.
    Forward (seed 002): s_k = theta_k . h, P(y=1 | c, t_k) = sigma(s_k),
    L = -sum_k [y_k log sigma(s_k) + (1 - y_k) log sigma(-s_k)].
    Backward: dL/ds_k = sigma(s_k) - y_k, so with g_k = alpha (y_k - sigma(s_k)):
    neu1e += g_k theta_k (= -alpha dL/dh, applied to h by the caller after all targets),
    theta_k += g_k h (= -alpha dL/dtheta_k). Returns L when want_loss, else 0.
    """
    E = h.shape[0]
    loss = 0.0
    for k in range(n):
        t = targets[k]
        s = np.float32(0.0)
        for d in range(E):
            s += h[d] * out[t, d]
        p = np.float32(1.0) / (np.float32(1.0) + np.exp(-s))
        g = (labels[k] - p) * alpha
        for d in range(E):
            neu1e[d] += g * out[t, d]
            out[t, d] += g * h[d]
        if want_loss:
            # -log sigma(z) = softplus(-z), written to stay finite for large |z|
            z = np.float64(s) if labels[k] > 0.5 else -np.float64(s)
            loss += max(-z, 0.0) + np.log1p(np.exp(-abs(z)))
    return loss


@nb.njit(**_JIT)
def draw_negatives(state, t, negative, alias_p, alias_i, nv, targets):
    """targets[0] = t, then up to `negative` draws from the noise distribution (alias method,
    Walker 1977) skipping draws equal to t, as word2vec.c does. Returns (state, count)."""
    targets[0] = t
    m = 1
    for _ in range(negative):
        state, r = rng_next(state)
        b = np.int64(((r >> _S32) * nv) >> _S32)
        w = b if (r & _LOW32) < alias_p[b] else np.int64(alias_i[b])
        if w != t:
            targets[m] = w
            m += 1
    return state, m


@nb.njit(**_JIT)
def train_chunk(
    syn0, syn1neg, syn1, ids, sent_starts, s_lo, s_hi, keep, alias_p, alias_i,
    points, hs_labels, codelens, sg, negative, hs, window, alpha0, min_alpha,
    word_offset, total_words, state, buf, neu1, neu1e, targets, ns_labels, want_loss,
):  # fmt: skip
    """Train on sentences s_lo..s_hi-1. Returns (words kept after subsampling, pairs, loss)."""
    E = syn0.shape[1]
    nv = np.uint64(alias_p.shape[0])
    kept = 0
    pairs = 0
    loss = 0.0
    for s in range(s_lo, s_hi):
        a = sent_starts[s]
        b = sent_starts[s + 1]
        # linear decay from alpha0 to min_alpha over all epochs (word2vec.c, gensim)
        alpha = np.float32(alpha0 - (alpha0 - min_alpha) * (word_offset + a) / total_words)
        alpha = max(alpha, np.float32(min_alpha))
        # frequent-word subsampling: keep w with probability keep[w] / 2^32
        n = 0
        for q in range(a, b):
            w = ids[q]
            state, r = rng_next(state)
            if (r >> _S32) < keep[w]:
                buf[n] = w
                n += 1
        kept += n
        for i in range(n):
            # dynamic window: a size drawn uniformly from 1..window
            state, r = rng_next(state)
            win = window - np.int64((r >> _S33) % np.uint64(window))
            lo = max(0, i - win)
            hi = min(n, i + win + 1)
            if sg:
                # skip-gram: the centre word c predicts each word t of its window
                c = buf[i]
                h = syn0[c]
                for j in range(lo, hi):
                    if j == i:
                        continue
                    t = buf[j]
                    for d in range(E):
                        neu1e[d] = 0.0
                    if hs:
                        loss += logistic_update(
                            h, syn1, points[t], hs_labels[t], codelens[t], alpha, neu1e, want_loss
                        )
                    if negative > 0:
                        state, m = draw_negatives(state, t, negative, alias_p, alias_i, nv, targets)
                        loss += logistic_update(
                            h, syn1neg, targets, ns_labels, m, alpha, neu1e, want_loss
                        )
                    for d in range(E):
                        h[d] += neu1e[d]
                    pairs += 1
            else:
                # CBOW: the mean of the window's vectors predicts the centre word
                cnt = 0
                for d in range(E):
                    neu1[d] = 0.0
                for j in range(lo, hi):
                    if j != i:
                        cnt += 1
                        w = buf[j]
                        for d in range(E):
                            neu1[d] += syn0[w, d]
                if cnt == 0:
                    continue
                inv = np.float32(1.0) / np.float32(cnt)
                for d in range(E):
                    neu1[d] *= inv
                    neu1e[d] = 0.0
                t = buf[i]
                if hs:
                    loss += logistic_update(
                        neu1, syn1, points[t], hs_labels[t], codelens[t], alpha, neu1e, want_loss
                    )
                if negative > 0:
                    state, m = draw_negatives(state, t, negative, alias_p, alias_i, nv, targets)
                    loss += logistic_update(
                        neu1, syn1neg, targets, ns_labels, m, alpha, neu1e, want_loss
                    )
                # word2vec.c / gensim (cbow_mean=1): every context vector moves by -alpha dL/dh,
                # not by the exact -alpha dL/dh / cnt
                for j in range(lo, hi):
                    if j != i:
                        w = buf[j]
                        for d in range(E):
                            syn0[w, d] += neu1e[d]
                pairs += 1
    return kept, pairs, loss


@nb.njit(parallel=True, **_JIT)
def train_block(
    syn0, syn1neg, syn1, ids, sent_starts, chunk_bounds, c_lo, c_hi, n_threads, keep,
    alias_p, alias_i, points, hs_labels, codelens, sg, negative, hs, window, alpha0,
    min_alpha, word_offset, total_words, seed, epoch, max_sent, want_loss, stats,
):  # fmt: skip
    """Chunks c_lo..c_hi-1 of one epoch; thread `tid` takes chunks c_lo+tid, c_lo+tid+T, ...
    so all threads walk the corpus front to back together (the learning rate then follows
    the true progress). stats (c_hi - c_lo, 3) float64 gets (kept words, pairs, loss)."""
    E = syn0.shape[1]
    for tid in nb.prange(n_threads):
        buf = np.empty(max_sent, np.int32)
        neu1 = np.empty(E, np.float32)
        neu1e = np.empty(E, np.float32)
        targets = np.empty(negative + 1, np.int64)
        ns_labels = np.zeros(negative + 1, np.float32)
        ns_labels[0] = 1.0
        for c in range(c_lo + tid, c_hi, n_threads):
            state = chunk_seed(seed, epoch, c)
            kept, pairs, loss = train_chunk(
                syn0, syn1neg, syn1, ids, sent_starts, chunk_bounds[c], chunk_bounds[c + 1],
                keep, alias_p, alias_i, points, hs_labels, codelens, sg, negative, hs, window,
                alpha0, min_alpha, word_offset, total_words, state, buf, neu1, neu1e, targets,
                ns_labels, want_loss,
            )  # fmt: skip
            stats[c - c_lo, 0] = kept
            stats[c - c_lo, 1] = pairs
            stats[c - c_lo, 2] = loss
