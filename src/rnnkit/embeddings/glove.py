"""GloVe: global vectors from weighted least squares on co-occurrence counts.

Pennington, Socher & Manning (2014). X_ij counts how often word j occurs in the window of
word i, each occurrence at distance d weighted 1/d (eq. and section 4.2 of the paper; with
``symmetric`` the window looks both ways, else only to the left, as the GloVe tool's
``-symmetric 0``). Each word has a vector w_i and a context vector wt_j (seed 002's e_w and
theta_w) with biases b_i, bt_j, fitted by minimising (paper eq. 8, halved as the GloVe tool's
cost is)

    J = 1/2 sum_{ij: X_ij > 0} f(X_ij) (w_i . wt_j + b_i + bt_j - log X_ij)^2,
    f(x) = min(1, (x / x_max)^alpha)

with AdaGrad, one entry at a time in shuffled order. The word's final vector is
w_i + wt_i (paper, section 4.2; seed 002 averages them, which has the same cosines).

AdaGrad here is Duchi et al.'s: G += g^2, then p -= lr g / sqrt(G), with G starting at 1 as in
the GloVe tool (which, unlike this, accumulates (lr g)^2 into G).

Example:
    >>> sents = [["the", "cat", "sat", "on", "the", "mat"]] * 20
    >>> wv = GloVe(dim=8, min_count=1, epochs=3, window=2).fit(Corpus.from_sentences(sents))
    >>> wv.vectors.shape
    (5, 8)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rnnkit.embeddings.runtime import progress_bar, require_compiled, set_threads
from rnnkit.embeddings.vectors import KeyedVectors
from rnnkit.embeddings.word2vec import TrainStats
from rnnkit.io import RnnkitError
from rnnkit.text.corpus import Corpus, EncodedCorpus
from rnnkit.text.vocab import Vocab


def cooccurrence(
    enc: EncodedCorpus,
    vocab_size: int,
    window: int,
    symmetric: bool = True,
    distance_weighting: bool = True,
    block: int = 500_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed co-occurrence counts X_ij within sentences.

    For each word i at position p and each earlier word j at p - d (1 <= d <= window) in the
    same sentence, X_ij += 1/d (1 without ``distance_weighting``); with ``symmetric`` also
    X_ji += 1/d.

    Returns:
        rows (nnz,) int32 i, cols (nnz,) int32 j, vals (nnz,) float64 X_ij, sorted by (i, j).

    Example:
        >>> enc = EncodedCorpus(np.array([0, 1, 2], np.int32), np.array([0, 3]), 3)
        >>> r, c, x = cooccurrence(enc, 3, window=2)
        >>> [(int(i), int(j), float(v)) for i, j, v in zip(r, c, x)]
        [(0, 1, 1.0), (0, 2, 0.5), (1, 0, 1.0), (1, 2, 1.0), (2, 0, 0.5), (2, 1, 1.0)]
    """
    ids = enc.ids.astype(np.int64)
    n = len(ids)
    sent = np.repeat(np.arange(len(enc.sent_starts) - 1), np.diff(enc.sent_starts))
    keys_parts: list[np.ndarray] = []
    vals_parts: list[np.ndarray] = []
    for lo in range(0, n, block):
        ks: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        for d in range(1, window + 1):
            p = np.arange(lo, min(lo + block, n - d))  # left word at p, centre word at p + d
            if len(p) == 0:
                continue
            p = p[sent[p] == sent[p + d]]
            centre, left = ids[p + d], ids[p]
            w = 1.0 / d if distance_weighting else 1.0
            ks.append(centre * vocab_size + left)
            if symmetric:
                ks.append(left * vocab_size + centre)
            vs.extend([np.full(len(p), w)] * (2 if symmetric else 1))
        if ks:
            keys_parts.append(np.concatenate(ks))
            vals_parts.append(np.concatenate(vs))
            keys_parts[-1], vals_parts[-1] = _sum_by_key(keys_parts[-1], vals_parts[-1])
    if not keys_parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float64)
    keys, vals = _sum_by_key(np.concatenate(keys_parts), np.concatenate(vals_parts))
    return (keys // vocab_size).astype(np.int32), (keys % vocab_size).astype(np.int32), vals


def _sum_by_key(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq, np.bincount(inv.ravel(), weights=vals, minlength=len(uniq))


def weighting(x: np.ndarray, x_max: float, alpha: float) -> np.ndarray:
    """f(x) = min(1, (x / x_max)^alpha) (paper eq. 9).

    Example:
        >>> weighting(np.array([1.0, 100.0, 400.0]), 100.0, 0.5).tolist()
        [0.1, 1.0, 1.0]
    """
    return np.minimum(1.0, (x / x_max) ** alpha)


def glove_forward(
    w: np.ndarray,
    wt: np.ndarray,
    b: np.ndarray,
    bt: np.ndarray,
    x: np.ndarray,
    x_max: float = 100.0,
    alpha: float = 0.75,
) -> tuple[float, tuple[np.ndarray, ...]]:
    """The GloVe cost of B entries: J = 1/2 sum_k f(x_k) (w_k . wt_k + b_k + bt_k - log x_k)^2.

    Args:
        w, wt: (B, E) word and context vectors of each entry (rows gathered by the caller);
        b, bt: (B,) their biases; x: (B,) co-occurrence counts X_ij > 0.

    Example:
        >>> J, _ = glove_forward(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros(1), np.zeros(1),
        ...                      np.array([np.e]), x_max=1.0)
        >>> J
        0.5
    """
    fx = weighting(x, x_max, alpha)
    diff = np.sum(w * wt, axis=1) + b + bt - np.log(x)  # (B,)
    return float(0.5 * np.sum(fx * diff**2)), (w, wt, fx, diff)


def glove_backward(
    dloss: float, cache: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`glove_forward`: (dw (B, E), dwt (B, E), db (B,), dbt (B,)).

    Example:
        >>> J, cache = glove_forward(np.ones((1, 2)), np.ones((1, 2)), np.zeros(1), np.zeros(1),
        ...                          np.array([1.0]), x_max=1.0)
        >>> [g.tolist() for g in glove_backward(1.0, cache)]
        [[[2.0, 2.0]], [[2.0, 2.0]], [2.0], [2.0]]
    """
    w, wt, fx, diff = cache
    # J = 1/2 f diff^2, diff = w . wt + b + bt - log x  =>  dJ/ddiff = f diff
    g = dloss * fx * diff  # (B,)
    return g[:, None] * wt, g[:, None] * w, g.copy(), g.copy()


@dataclass
class GloVeConfig:
    """Hyperparameters of :class:`GloVe` (defaults: the paper's x_max, alpha and lr)."""

    dim: int = 100  # E
    window: int = 10  # context words on each side
    min_count: int = 5  # drop rarer words
    symmetric: bool = True  # count left and right context (False: left only)
    distance_weighting: bool = True  # an occurrence at distance d counts 1/d
    x_max: float = 100.0  # weighting cut-off (the GloVe tool's demo uses 10 on text8)
    alpha: float = 0.75  # weighting exponent
    lr: float = 0.05  # AdaGrad learning rate
    epochs: int = 25  # passes over the co-occurrence entries
    threads: int = 1  # worker threads (1: reproducible results)
    seed: int = 1

    def validate(self) -> None:
        """Raise RnnkitError naming the first bad setting."""
        for name in ("dim", "window", "min_count", "epochs", "threads"):
            if getattr(self, name) < 1:
                raise RnnkitError(f"--{name.replace('_', '-')} must be at least 1")
        if not (self.x_max > 0 and self.alpha > 0 and self.lr > 0):
            raise RnnkitError("x_max, alpha and lr must be > 0")


class GloVe:
    """GloVe trainer: count co-occurrences, then AdaGrad on the weighted least squares.

    Attributes (after :meth:`fit`): vocab; W, Wt (V, E); b, bt (V,); rows, cols, counts (the
    co-occurrence entries); stats (:class:`TrainStats`, words = entries visited, loss = mean
    cost per entry per epoch); wv: :class:`KeyedVectors` of W + Wt.

    Example:
        >>> g = GloVe(dim=4, min_count=1, epochs=2)
        >>> wv = g.fit(Corpus.from_sentences([["a", "b", "c"]] * 5))
        >>> g.W.shape, len(g.rows)
        ((3, 4), 6)
    """

    def __init__(self, config: GloVeConfig | None = None, **overrides: Any) -> None:
        cfg = asdict(config or GloVeConfig())
        cfg.update(overrides)
        self.config = GloVeConfig(**cfg)
        self.config.validate()
        self.vocab: Vocab | None = None
        self.stats = TrainStats()

    def fit(self, corpus: Corpus, progress: bool = False) -> KeyedVectors:
        """Build the vocabulary and co-occurrence counts, train, return W + Wt."""
        rng = self.prepare(corpus)
        self.train(rng, progress)
        return self.wv

    def prepare(self, corpus: Corpus) -> np.random.Generator:
        """The vocabulary, the co-occurrence entries, the initial vectors and AdaGrad sums
        (attributes ``W, Wt, b, bt, GW, GWt, Gb, Gbt``); returns the generator that
        shuffles the epochs."""
        cfg = self.config
        self.vocab = Vocab.build(corpus, cfg.min_count)
        enc = self.vocab.encode(corpus)
        v = len(self.vocab)
        self.rows, self.cols, self.counts = cooccurrence(
            enc, v, cfg.window, cfg.symmetric, cfg.distance_weighting
        )
        if len(self.rows) == 0:
            raise RnnkitError(f"{corpus.source}: no two vocabulary words share a sentence")
        rng = np.random.default_rng(cfg.seed)
        # the GloVe tool's initialisation: uniform in [-0.5/E, 0.5/E), AdaGrad sums at 1
        self.W, self.Wt = ((rng.random((2, v, cfg.dim)) - 0.5) / cfg.dim).astype(np.float32)
        self.b, self.bt = ((rng.random((2, v)) - 0.5) / cfg.dim).astype(np.float32)
        self.GW, self.GWt = np.ones_like(self.W), np.ones_like(self.Wt)
        self.Gb, self.Gbt = np.ones_like(self.b), np.ones_like(self.bt)
        return rng

    def train(
        self,
        rng: np.random.Generator,
        progress: bool = False,
        start: dict[str, Any] | None = None,
        on_epoch: Callable[[dict[str, Any]], bool] | None = None,
    ) -> TrainStats:
        """Run the epochs over the co-occurrence entries (set up by :meth:`prepare`).

        Args:
            start: a position given to ``on_epoch`` earlier (``epoch``: the next epoch,
                ``losses``), with the arrays and ``rng`` as they were then: training
                continues from there exactly (at one thread: the same bits).
            on_epoch: called after every epoch with the position; returning True stops.
        """
        require_compiled("GloVe")
        from rnnkit.fast import glove as K

        cfg = self.config
        threads = set_threads(cfg.threads)
        GW, GWt, Gb, Gbt = self.GW, self.GWt, self.Gb, self.Gbt
        logx = np.log(self.counts).astype(np.float32)
        fx = weighting(self.counts, cfg.x_max, cfg.alpha).astype(np.float32)
        nnz = len(self.rows)
        stats = TrainStats()
        bar = progress_bar(cfg.epochs * nnz, progress, "glove", unit="pair")
        visit = np.arange(nnz)
        # compile (or load from numba's cache) before the clock starts
        params = (self.W, self.Wt, self.b, self.bt, GW, GWt, Gb, Gbt)
        K.train_epoch(*params, self.rows, self.cols, logx, fx, visit[:0], threads,
                      np.float32(cfg.lr), np.zeros(threads))  # fmt: skip
        t0 = time.perf_counter()
        first = int((start or {}).get("epoch", 0))
        stats.loss = [float(x) for x in (start or {}).get("losses", [])]
        if bar is not None:
            bar.update(first * nnz)
        for epoch in range(first, cfg.epochs):
            # shuffle the entries themselves (not an index into them): the kernel then reads
            # them in memory order, a cache miss fewer per entry
            perm = rng.permutation(nnz)
            rows, cols, lx, f = self.rows[perm], self.cols[perm], logx[perm], fx[perm]
            loss_out = np.zeros(threads, np.float64)
            K.train_epoch(
                self.W, self.Wt, self.b, self.bt, GW, GWt, Gb, Gbt, rows, cols, lx, f, visit,
                threads, np.float32(cfg.lr), loss_out,
            )  # fmt: skip
            stats.loss.append(float(loss_out.sum()) / nnz)
            if bar is not None:
                bar.update(nnz)
                bar.set_postfix(cost=f"{stats.loss[-1]:.4f}", refresh=False)
            if on_epoch is not None and on_epoch({"epoch": epoch + 1, "losses": stats.loss}):
                break
        stats.seconds = time.perf_counter() - t0
        stats.words = cfg.epochs * nnz
        if bar is not None:
            bar.close()
        self.stats = stats
        return stats

    @property
    def wv(self) -> KeyedVectors:
        """W + Wt as :class:`KeyedVectors`."""
        if self.vocab is None:
            raise RnnkitError("the model has not been trained yet")
        return KeyedVectors(self.vocab.words, self.W + self.Wt, counts=self.vocab.counts)
