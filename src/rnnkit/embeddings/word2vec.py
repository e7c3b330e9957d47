"""word2vec: skip-gram and CBOW with negative sampling or hierarchical softmax.

Notation (seed 002, Mikolov et al. 2013a/b). Each word w has an input vector
``e_w = E o_w`` (row w of E, shape (V, E), called syn0 in word2vec.c) and an output vector
``theta_w`` (row w of Theta, syn1neg). The softmax model of a target word t given a context
word c is

    P(t | c) = exp(theta_t . e_c) / sum_j exp(theta_j . e_c)

(:func:`softmax_forward`), too costly to train over V words. Negative sampling replaces it by
k + 1 binary questions "is t a real neighbour of c?" answered by
``P(y = 1 | c, t) = sigma(theta_t . e_c)``: one positive (the true t, y = 1) and k words drawn
from the unigram distribution raised to 3/4 (y = 0); hierarchical softmax writes P(t | c) as a
product of sigma(+-theta_n . e_c) over the inner nodes n on t's path in a Huffman tree. Both are
the same binary logistic loss (:func:`logistic_forward`) of an input vector h against a few
output rows:

    L = -sum_k [ y_k log sigma(theta_k . h) + (1 - y_k) log sigma(-theta_k . h) ]

with h = e_c for skip-gram (the centre word predicts each word of its window) and
h = mean of the window's e_w for CBOW (the window predicts the centre word, :func:`mean_forward`).
The compiled trainer (:mod:`rnnkit.fast.word2vec`) applies exactly ``-alpha * dL/d(parameter)``
example (CBOW's context vectors: see below); the tests check it against these NumPy functions.

The sigmoid is computed exactly; word2vec.c and gensim read it from a 1000-entry table on
[-6, 6] (gensim also skips an example whose score is beyond +-6). For CBOW, word2vec.c and
gensim move every context vector by -alpha dL/dh (h the window mean), not by the exact
-alpha dL/dh / C; we do the same so the two trainers are comparable, and the tests pin it.

Training follows word2vec.c: words below ``min_count`` removed, frequent words subsampled
(keep probability (sqrt(f / (s T)) + 1) s T / f for a word seen f times out of T, s = sample),
window size drawn uniformly from 1..window for each centre word, learning rate decaying
linearly from ``alpha`` to ``min_alpha`` over all epochs.

Example:
    >>> sents = [["the", "cat", "sat", "on", "the", "mat"]] * 20
    >>> model = Word2Vec(Word2VecConfig(dim=8, min_count=1, epochs=2, sample=0, seed=3))
    >>> wv = model.fit(Corpus.from_sentences(sents))
    >>> wv.vectors.shape, wv.words[0]
    ((5, 8), 'the')
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rnnkit.embeddings.runtime import progress_bar, require_compiled, set_threads
from rnnkit.embeddings.vectors import KeyedVectors
from rnnkit.io import RnnkitError
from rnnkit.text.corpus import Corpus, EncodedCorpus
from rnnkit.text.vocab import Vocab

# ---------------------------------------------------------------------------------------------
# NumPy reference: forward/backward of the loss of one example, in float64 for gradcheck


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # split by sign so exp never overflows
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def logistic_forward(
    h: np.ndarray, theta: np.ndarray, labels: np.ndarray
) -> tuple[float, tuple[np.ndarray, ...]]:
    """Binary logistic loss of one input vector against K output vectors.

    ``s_k = theta_k . h``, ``P(y=1 | c, t_k) = sigma(s_k)``,
    ``L = -sum_k [y_k log sigma(s_k) + (1 - y_k) log sigma(-s_k)]``.
    Negative sampling: rows = [theta_t, theta_n1..theta_nk], labels = [1, 0, ..., 0].
    Hierarchical softmax: rows = the inner nodes on t's path, labels = 1 - Huffman code bits.

    Args:
        h: (E,) input vector (e_c for skip-gram, the window mean for CBOW).
        theta: (K, E) output vectors.
        labels: (K,) y_k in {0, 1}.

    Returns:
        (L, cache) for :func:`logistic_backward`.

    Example:
        >>> L, _ = logistic_forward(np.zeros(3), np.ones((2, 3)), np.array([1.0, 0.0]))
        >>> bool(np.isclose(L, 2 * np.log(2)))
        True
    """
    s = theta @ h  # (K,)
    # -log sigma(z) = softplus(-z) = max(-z, 0) + log1p(exp(-|z|)), with z = +-s
    z = np.where(labels > 0.5, s, -s)
    loss = float(np.sum(np.maximum(-z, 0.0) + np.log1p(np.exp(-np.abs(z)))))
    return loss, (h, theta, labels, _sigmoid(s))


def logistic_backward(dloss: float, cache: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`logistic_forward`: returns (dL/dh (E,), dL/dtheta (K, E)).

    Example:
        >>> L, cache = logistic_forward(np.zeros(3), np.ones((2, 3)), np.array([1.0, 0.0]))
        >>> dh, dtheta = logistic_backward(1.0, cache)
        >>> dh.tolist(), dtheta.tolist()
        ([0.0, 0.0, 0.0], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    """
    h, theta, labels, p = cache
    # L = -y log sigma(s) - (1-y) log(1 - sigma(s))  =>  dL/ds = sigma(s) - y
    ds = dloss * (p - labels)  # (K,)
    # s = theta @ h  =>  dL/dh = theta^T ds, dL/dtheta = ds h^T
    return theta.T @ ds, np.outer(ds, h)


def mean_forward(e_ctx: np.ndarray) -> tuple[np.ndarray, tuple[int]]:
    """CBOW's input: the mean of the C context vectors e_ctx (C, E) -> h (E,).

    Example:
        >>> mean_forward(np.array([[1.0, 2.0], [3.0, 4.0]]))[0].tolist()
        [2.0, 3.0]
    """
    return e_ctx.mean(axis=0), (e_ctx.shape[0],)


def mean_backward(dh: np.ndarray, cache: tuple[int]) -> np.ndarray:
    """dL/de_ctx (C, E) of :func:`mean_forward`: each context row gets dh / C.

    (word2vec.c's and gensim's trainers, and ours, apply dh itself to every context row; see
    the module docstring.)

    Example:
        >>> mean_backward(np.array([2.0, 4.0]), (2,)).tolist()
        [[1.0, 2.0], [1.0, 2.0]]
    """
    (c,) = cache
    return np.broadcast_to(dh / c, (c, dh.shape[0])).copy()


def softmax_forward(
    e_c: np.ndarray, theta: np.ndarray, t: int
) -> tuple[float, tuple[np.ndarray, ...]]:
    """Full-softmax loss ``-log P(t | c)`` with ``P(t|c) = softmax(Theta e_c)_t`` (seed 002).

    Args:
        e_c: (E,) input vector of context word c; theta: (V, E) all output vectors; t: target id.

    Example:
        >>> L, _ = softmax_forward(np.zeros(2), np.zeros((4, 2)), 1)
        >>> bool(np.isclose(L, np.log(4)))
        True
    """
    s = theta @ e_c  # (V,)
    s = s - s.max()  # shift for a stable exp; softmax is unchanged
    p = np.exp(s) / np.exp(s).sum()
    return float(-np.log(p[t])), (e_c, theta, p, np.int64(t))


def softmax_backward(dloss: float, cache: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of :func:`softmax_forward`: (dL/de_c (E,), dL/dTheta (V, E)).

    Example:
        >>> L, cache = softmax_forward(np.zeros(2), np.zeros((4, 2)), 1)
        >>> [g.shape for g in softmax_backward(1.0, cache)]
        [(2,), (4, 2)]
    """
    e_c, theta, p, t = cache
    # L = -log softmax(s)_t  =>  dL/ds = p - onehot(t)
    ds = dloss * p
    ds[int(t)] -= dloss
    return theta.T @ ds, np.outer(ds, e_c)


# ---------------------------------------------------------------------------------------------
# Tables built once per vocabulary


def huffman_codes(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Huffman tree over word counts, for hierarchical softmax (Morin & Bengio 2005; word2vec.c).

    Args:
        counts: (V,) word counts, sorted in decreasing order.

    Returns:
        points (V, L) int32 inner-node ids (0..V-2, root V-2) along each word's path from the
        root; codes (V, L) int8 branch bits; codelens (V,) int32 path lengths.

    Example:
        >>> points, codes, lens = huffman_codes(np.array([4, 2, 1, 1]))
        >>> lens.tolist(), codes[0, :1].tolist()
        ([1, 2, 3, 3], [1])
    """
    v = len(counts)
    if v < 2:
        return np.zeros((v, 1), np.int32), np.zeros((v, 1), np.int8), np.zeros(v, np.int32)
    # word2vec.c's linear-time construction: leaves sorted descending, inner nodes appended
    cnt = np.concatenate([counts.astype(np.float64), np.full(v - 1, np.inf)])
    parent = np.zeros(2 * v - 1, np.int64)
    bit = np.zeros(2 * v - 1, np.int8)
    pos1, pos2 = v - 1, v
    for a in range(v - 1):
        mins = []
        for _ in range(2):
            if pos1 >= 0 and cnt[pos1] < cnt[pos2]:
                mins.append(pos1)
                pos1 -= 1
            else:
                mins.append(pos2)
                pos2 += 1
        cnt[v + a] = cnt[mins[0]] + cnt[mins[1]]
        parent[mins[0]] = parent[mins[1]] = v + a
        bit[mins[1]] = 1
    root = 2 * v - 2
    paths = []
    for w in range(v):
        nodes, bits = [], []
        b = w
        while b != root:
            bits.append(bit[b])
            b = parent[b]
            nodes.append(b - v)
        paths.append((nodes[::-1], bits[::-1]))
    depth = max(len(p[0]) for p in paths)
    points = np.zeros((v, depth), np.int32)
    codes = np.zeros((v, depth), np.int8)
    lens = np.zeros(v, np.int32)
    for w, (nodes, bits) in enumerate(paths):
        lens[w] = len(nodes)
        points[w, : len(nodes)] = nodes
        codes[w, : len(bits)] = bits
    return points, codes, lens


def alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose 1991) for O(1) draws from a discrete distribution.

    A draw picks bucket b uniformly, then keeps b with probability accept[b] / 2^32, else takes
    alias[b]. Returns accept (V,) uint64 in [0, 2^32] and alias (V,) int32.

    Example:
        >>> accept, alias = alias_table(np.array([0.5, 0.25, 0.25]))
        >>> # bucket mass: b's own share plus what other buckets alias to b
        >>> own = accept / 2.0**32 / 3
        >>> mass = own + np.bincount(alias, weights=1 / 3 - own, minlength=3)
        >>> np.round(mass, 6).tolist()
        [0.5, 0.25, 0.25]
    """
    v = len(probs)
    scaled = probs.astype(np.float64) / probs.sum() * v
    accept = np.ones(v, np.float64)
    alias = np.arange(v, dtype=np.int32)
    small = [i for i in range(v) if scaled[i] < 1.0]
    large = [i for i in range(v) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s] = scaled[s]
        alias[s] = g
        scaled[g] -= 1.0 - scaled[s]
        (small if scaled[g] < 1.0 else large).append(g)
    return np.round(accept * 2.0**32).astype(np.uint64), alias


def subsample_keep(counts: np.ndarray, sample: float) -> np.ndarray:
    """Keep thresholds (V,) uint64 in [0, 2^32] for frequent-word subsampling.

    word2vec.c's formula (as in gensim): a word seen f times out of T in-vocabulary words is
    kept with probability min(1, (sqrt(f / (s T)) + 1) * s T / f); sample s = 0 keeps all.

    Example:
        >>> (subsample_keep(np.array([1000, 10]), 1e-3) / 2.0**32).round(3).tolist()
        [0.033, 0.419]
    """
    if sample <= 0:
        return np.full(len(counts), 2**32, np.uint64)
    f = counts.astype(np.float64)
    t = sample * f.sum()
    p = np.minimum(1.0, (np.sqrt(f / t) + 1.0) * t / f)
    return np.round(p * 2.0**32).astype(np.uint64)


# ---------------------------------------------------------------------------------------------
# Trainer


@dataclass
class Word2VecConfig:
    """Hyperparameters of :class:`Word2Vec` (defaults are gensim 4's)."""

    method: str = "skipgram"  # "skipgram" or "cbow"
    dim: int = 100  # E, size of the word vectors
    window: int = 5  # largest distance between centre and context word
    negative: int = 5  # k noise words per example (0: no negative sampling)
    hs: bool = False  # hierarchical softmax (may be combined with negative sampling)
    sample: float = 1e-3  # subsampling threshold s (0: off)
    min_count: int = 5  # drop words seen fewer times
    epochs: int = 5  # passes over the corpus
    alpha: float = 0.025  # initial learning rate
    min_alpha: float = 1e-4  # final learning rate
    ns_exponent: float = 0.75  # noise distribution: unigram counts ** ns_exponent
    threads: int = 1  # worker threads (1: reproducible results)
    seed: int = 1  # seeds the initial vectors and all random draws
    compute_loss: bool = False  # sum the loss while training (a little slower)

    def validate(self) -> None:
        """Raise RnnkitError naming the first bad setting."""
        if self.method not in ("skipgram", "cbow"):
            raise RnnkitError(f"--method must be skipgram or cbow, got {self.method!r}")
        for name in ("dim", "window", "min_count", "epochs", "threads"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"--{name.replace('_', '-')} must be at least 1")
        if self.negative < 0:
            raise RnnkitError(f"--negative must be >= 0, got {self.negative}")
        if self.negative == 0 and not self.hs:
            raise RnnkitError("--negative 0 needs hierarchical softmax (--hs)")
        if self.sample < 0:
            raise RnnkitError(f"--sample must be >= 0, got {self.sample}")
        if not self.alpha > 0 or self.min_alpha < 0:
            raise RnnkitError("--alpha must be > 0 and min_alpha >= 0")


@dataclass
class TrainStats:
    """What a training run measured."""

    words: int = 0  # in-vocabulary corpus words processed (all epochs)
    seconds: float = 0.0  # wall time of the training loops
    loss: list[float] = field(default_factory=list)  # per-epoch mean loss per pair (compute_loss)

    @property
    def words_per_s(self) -> float:
        """Training throughput."""
        return self.words / self.seconds if self.seconds > 0 else 0.0


class Word2Vec:
    """Skip-gram / CBOW word2vec trained by compiled SGD loops.

    Args:
        config: hyperparameters (:class:`Word2VecConfig`); keyword arguments override fields.

    Attributes (after :meth:`fit`):
        vocab: the :class:`Vocab`; syn0 (V, E) input vectors e_w; syn1neg (V, E) output
        vectors theta_w (negative sampling); syn1 (V-1, E) inner-node vectors (hierarchical
        softmax); wv: :class:`KeyedVectors` of syn0; stats: :class:`TrainStats`.

    Example:
        >>> m = Word2Vec(dim=4, min_count=1, epochs=1, method="cbow", hs=True, negative=0)
        >>> wv = m.fit(Corpus.from_sentences([["a", "b", "c"]] * 5))
        >>> m.syn1.shape, len(wv)
        ((2, 4), 3)
    """

    def __init__(self, config: Word2VecConfig | None = None, **overrides: Any) -> None:
        cfg = asdict(config or Word2VecConfig())
        cfg.update(overrides)
        self.config = Word2VecConfig(**cfg)
        self.config.validate()
        self.vocab: Vocab | None = None
        self.stats = TrainStats()

    def build_vocab(self, corpus: Corpus) -> Vocab:
        """Count the corpus, set up vectors and sampling tables."""
        cfg = self.config
        self.vocab = Vocab.build(corpus, cfg.min_count)
        v, e = len(self.vocab), cfg.dim
        rng = np.random.default_rng(cfg.seed)
        # gensim 4's initialisation: e_w uniform in [-1/E, 1/E) (word2vec.c: half that), theta = 0
        self.syn0 = ((rng.random((v, e), dtype=np.float32) * 2 - 1) / e).astype(np.float32)
        self.syn1neg = np.zeros((v if cfg.negative else 1, e), np.float32)
        self.points, codes, self.codelens = huffman_codes(self.vocab.counts)
        self.hs_labels = (1 - codes).astype(np.float32)  # y = 1 - code bit
        self.syn1 = np.zeros((max(v - 1, 1) if cfg.hs else 1, e), np.float32)
        noise = self.vocab.counts.astype(np.float64) ** cfg.ns_exponent
        self.alias_accept, self.alias_index = alias_table(noise)
        self.keep = subsample_keep(self.vocab.counts, cfg.sample)
        return self.vocab

    def train(
        self,
        enc: EncodedCorpus,
        progress: bool = False,
        start: dict[str, Any] | None = None,
        on_block: Callable[[dict[str, Any]], bool] | None = None,
    ) -> TrainStats:
        """Run all epochs over an encoded corpus (from ``self.vocab.encode``).

        The corpus is trained in blocks of ``4 * threads`` chunks, each chunk's random stream
        seeded by (seed, epoch, chunk), so training can stop after any block and continue
        from it exactly (at one thread: the same bits as an uninterrupted run):

        Args:
            start: a position given to ``on_block`` earlier (``epoch``, ``chunk``: the next
                block's first chunk, ``loss``, ``pairs``, ``losses``), with the vectors as
                they were then: training continues from there.
            on_block: called after every block with the position; returning True stops
                training there (``stats.words`` then counts the words trained so far).
        """
        require_compiled("word2vec")
        from rnnkit.fast import word2vec as K

        cfg = self.config
        threads = set_threads(cfg.threads)
        bounds = enc.chunks()
        n_chunks = len(bounds) - 1
        block = max(threads * 4, 1)
        max_sent = int(np.diff(enc.sent_starts).max())
        total = cfg.epochs * enc.n_words
        stats = TrainStats()
        bar = progress_bar(total, progress, "word2vec")
        args = (self.keep, self.alias_accept, self.alias_index, self.points, self.hs_labels,
                self.codelens, cfg.method == "skipgram", cfg.negative, cfg.hs, cfg.window,
                cfg.alpha, cfg.min_alpha)  # fmt: skip
        # compile (or load from numba's cache) before the clock starts: an empty block
        K.train_block(self.syn0, self.syn1neg, self.syn1, enc.ids, enc.sent_starts, bounds, 0, 0,
                      threads, *args, 0, total, cfg.seed, 0, max_sent, cfg.compute_loss,
                      np.zeros((0, 3)))  # fmt: skip
        t0 = time.perf_counter()
        first = dict(start or {"epoch": 0, "chunk": 0, "loss": 0.0, "pairs": 0, "losses": []})
        # losses are None in a position (JSON) where they are NaN here (no compute_loss)
        stats.loss = [float("nan") if x is None else float(x) for x in first["losses"]]
        if bar is not None:
            bar.update(int(first["epoch"]) * enc.n_words + int(enc.sent_starts[
                bounds[min(int(first["chunk"]), n_chunks)]]))  # fmt: skip
        for epoch in range(int(first["epoch"]), cfg.epochs):
            resumed = epoch == int(first["epoch"])
            loss = float(first["loss"]) if resumed else 0.0
            pairs = int(first["pairs"]) if resumed else 0
            for c_lo in range(int(first["chunk"]) if resumed else 0, n_chunks, block):
                c_hi = min(n_chunks, c_lo + block)
                out = np.zeros((c_hi - c_lo, 3), np.float64)
                K.train_block(
                    self.syn0, self.syn1neg, self.syn1, enc.ids, enc.sent_starts, bounds,
                    c_lo, c_hi, threads, *args, epoch * enc.n_words, total, cfg.seed, epoch,
                    max_sent, cfg.compute_loss, out,
                )  # fmt: skip
                loss += out[:, 2].sum()
                pairs += int(out[:, 1].sum())
                if bar is not None:
                    words = enc.sent_starts[bounds[c_hi]] - enc.sent_starts[bounds[c_lo]]
                    bar.update(int(words))
                    if cfg.compute_loss and pairs:
                        bar.set_postfix(loss=f"{loss / pairs:.4f}", refresh=False)
                position = {"epoch": epoch, "chunk": c_hi, "loss": loss, "pairs": pairs,
                            "losses": [x if x == x else None for x in stats.loss]}  # fmt: skip
                if on_block is not None and on_block(position):
                    stats.seconds = time.perf_counter() - t0
                    stats.words = epoch * enc.n_words + int(enc.sent_starts[bounds[c_hi]])
                    if bar is not None:
                        bar.close()
                    self.stats = stats
                    return stats
            stats.loss.append(loss / max(pairs, 1) if cfg.compute_loss else float("nan"))
        stats.seconds = time.perf_counter() - t0
        stats.words = total
        if bar is not None:
            bar.close()
        self.stats = stats
        return stats

    def fit(self, corpus: Corpus, progress: bool = False) -> KeyedVectors:
        """Build the vocabulary, train, and return the word vectors e_w."""
        vocab = self.build_vocab(corpus)
        self.train(vocab.encode(corpus), progress=progress)
        return self.wv

    @property
    def wv(self) -> KeyedVectors:
        """The input vectors e_w as :class:`KeyedVectors` (what word2vec.c writes out)."""
        if self.vocab is None:
            raise RnnkitError("the model has not been trained yet")
        return KeyedVectors(self.vocab.words, self.syn0, counts=self.vocab.counts)
