"""word2vec: gradients by finite differences, the compiled trainer against the NumPy reference,
and training quality against gensim 4.4 on the Lee corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnkit.embeddings import Corpus, Vocab, Word2Vec
from rnnkit.embeddings.word2vec import (
    alias_table,
    huffman_codes,
    logistic_backward,
    logistic_forward,
    mean_backward,
    mean_forward,
    softmax_backward,
    softmax_forward,
    subsample_keep,
)
from rnnkit.engine.gradcheck import gradcheck
from rnnkit.io import RnnkitError

# compiled code under test: asked for by name (also under RNNKIT_BACKEND=numpy)
pytestmark = pytest.mark.usefixtures("compiled")

LEE = str(
    Path(__file__).resolve().parents[2] / "shared" / "data" / "word_eval" / "lee_background.cor"
)


# --------------------------------------------------------------------------------------------
# gradients of the NumPy reference (float64, central differences)


def test_gradcheck_negative_sampling_loss():
    # one (centre c, target t, k = 3 negatives) example: L = -log s(th_t.e_c) - sum log s(-th_n.e_c)
    rng = np.random.default_rng(0)
    e_c = rng.normal(size=5)
    theta = rng.normal(size=(4, 5))  # rows: t, n1, n2, n3
    labels = np.array([1.0, 0.0, 0.0, 0.0])
    dloss = 0.7
    _, cache = logistic_forward(e_c, theta, labels)
    de_c, dtheta = logistic_backward(dloss, cache)
    gradcheck(
        lambda: dloss * logistic_forward(e_c, theta, labels)[0],
        {"e_c": e_c, "theta": theta},
        {"e_c": de_c, "theta": dtheta},
    )


def test_gradcheck_hierarchical_softmax_loss():
    # HS: labels are 1 - code bits along a path, several of each
    rng = np.random.default_rng(1)
    h = rng.normal(size=6)
    theta = rng.normal(size=(3, 6))
    labels = np.array([0.0, 1.0, 1.0])
    _, cache = logistic_forward(h, theta, labels)
    dh, dtheta = logistic_backward(1.3, cache)
    gradcheck(
        lambda: 1.3 * logistic_forward(h, theta, labels)[0],
        {"h": h, "theta": theta},
        {"h": dh, "theta": dtheta},
    )


def test_gradcheck_cbow_loss():
    # CBOW: h = mean of C = 4 context vectors, then the negative-sampling loss
    rng = np.random.default_rng(2)
    e_ctx = rng.normal(size=(4, 5))
    theta = rng.normal(size=(3, 5))
    labels = np.array([1.0, 0.0, 0.0])

    def loss() -> float:
        return logistic_forward(mean_forward(e_ctx)[0], theta, labels)[0]

    h, mcache = mean_forward(e_ctx)
    _, lcache = logistic_forward(h, theta, labels)
    dh, dtheta = logistic_backward(1.0, lcache)
    gradcheck(
        loss,
        {"e_ctx": e_ctx, "theta": theta},
        {"e_ctx": mean_backward(dh, mcache), "theta": dtheta},
    )


def test_gradcheck_full_softmax_and_its_meaning():
    # L = -log P(t|c), P(t|c) = exp(th_t . e_c) / sum_j exp(th_j . e_c)
    rng = np.random.default_rng(3)
    e_c = rng.normal(size=4)
    theta = rng.normal(size=(7, 4))
    loss, cache = softmax_forward(e_c, theta, 2)
    s = theta @ e_c
    assert loss == pytest.approx(-(s[2] - np.log(np.exp(s).sum())), rel=1e-12)
    de_c, dtheta = softmax_backward(0.5, cache)
    gradcheck(
        lambda: 0.5 * softmax_forward(e_c, theta, 2)[0],
        {"e_c": e_c, "theta": theta},
        {"e_c": de_c, "theta": dtheta},
    )


def test_logistic_loss_is_stable_for_large_scores():
    loss, cache = logistic_forward(
        np.array([100.0]), np.array([[1.0], [-1.0]]), np.array([0.0, 1.0])
    )
    assert loss == pytest.approx(200.0)
    dh, _ = logistic_backward(1.0, cache)
    assert np.allclose(dh, [2.0])


# --------------------------------------------------------------------------------------------
# tables


def test_huffman_paths_define_a_distribution_and_match_gensim_cost():
    # sum over all words of P(w|c) = prod_n sigma(+-theta_n . h) must be 1 for any h
    rng = np.random.default_rng(4)
    counts = np.sort(rng.integers(1, 1000, size=37))[::-1]
    points, codes, lens = huffman_codes(counts)
    theta = rng.normal(size=(len(counts) - 1, 3))
    h = rng.normal(size=3)
    total = 0.0
    for w in range(len(counts)):
        loss, _ = logistic_forward(h, theta[points[w, : lens[w]]], 1.0 - codes[w, : lens[w]])
        total += np.exp(-loss)
    assert total == pytest.approx(1.0, abs=1e-12)
    # Huffman optimality: the same weighted path length as gensim's tree for these counts
    from gensim.models import Word2Vec as GensimW2V

    g = GensimW2V(vector_size=2, min_count=1, hs=1, negative=0)
    g.build_vocab_from_freq({f"w{i}": int(c) for i, c in enumerate(counts)})
    gensim_cost = sum(
        int(g.wv.get_vecattr(f"w{i}", "count")) * len(g.wv.get_vecattr(f"w{i}", "code"))
        for i in range(len(counts))
    )
    assert int((counts * lens).sum()) == gensim_cost


def test_alias_sampler_draws_unigram_to_the_three_quarters():
    from rnnkit.fast import word2vec as K

    counts = np.array([500, 120, 60, 30, 7, 1], np.float64)
    p = counts**0.75 / (counts**0.75).sum()
    accept, alias = alias_table(counts**0.75)
    targets = np.zeros(101, np.int64)
    state = np.uint64(12345)
    hist = np.zeros(len(counts))
    # t = -1 never equals a draw, so every draw is kept
    for _ in range(400):
        state, m = K.draw_negatives(state, -1, 100, accept, alias, np.uint64(len(counts)), targets)
        assert m == 101
        hist += np.bincount(targets[1:m], minlength=len(counts))
    n = hist.sum()
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(hist / n - p) < 5 * se), (hist / n, p)


def test_subsampling_probabilities_match_gensim():
    from gensim.models import Word2Vec as GensimW2V

    corpus = Corpus.from_file(LEE)
    vocab = Vocab.build(corpus, min_count=3)
    g = GensimW2V(vector_size=2, min_count=3, sample=1e-3)
    g.build_vocab(list(corpus))
    assert g.wv.index_to_key == vocab.words
    theirs = np.array([g.wv.get_vecattr(w, "sample_int") for w in vocab.words]) / (2.0**32 - 1)
    ours = subsample_keep(vocab.counts, 1e-3) / 2.0**32
    assert np.abs(ours - theirs).max() < 1e-6


# --------------------------------------------------------------------------------------------
# the compiled trainer applies exactly -alpha * the NumPy gradient


def test_compiled_pair_update_is_minus_lr_times_gradient():
    from rnnkit.fast import word2vec as K

    rng = np.random.default_rng(5)
    syn0 = rng.normal(size=(6, 7)).astype(np.float32)
    out = rng.normal(size=(6, 7)).astype(np.float32)
    c, targets = 2, np.array([4, 0, 5, 1], np.int64)  # target t = 4, negatives 0, 5, 1
    labels = np.array([1, 0, 0, 0], np.float32)
    alpha = np.float32(0.05)
    loss_ref, cache = logistic_forward(
        syn0[c].astype(np.float64), out[targets].astype(np.float64), labels
    )
    dh, dtheta = logistic_backward(1.0, cache)
    out_new, neu1e = out.copy(), np.zeros(7, np.float32)
    loss = K.logistic_update(syn0[c], out_new, targets, labels, 4, alpha, neu1e, True)
    assert loss == pytest.approx(loss_ref, rel=1e-5)
    np.testing.assert_allclose(neu1e, -alpha * dh, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        out_new[targets], out[targets] - alpha * dtheta, rtol=1e-5, atol=1e-7
    )
    untouched = [2, 3]
    np.testing.assert_array_equal(out_new[untouched], out[untouched])


def _noise_only(model: Word2Vec, word_id: int) -> None:
    # every negative draw returns word_id (all buckets alias to it)
    v = len(model.vocab)
    model.alias_accept = np.zeros(v, np.uint64)
    model.alias_accept[word_id] = np.uint64(2**32)
    model.alias_index = np.full(v, word_id, np.int32)


def test_skipgram_epochs_equal_numpy_replay():
    # corpus "a b", "b a", "z"; every negative draw is z; two epochs with the learning rate
    # decaying linearly in the words already seen: alpha = 0.1 - 0.08 * done / (2 epochs * 5)
    corpus = Corpus.from_sentences([["a", "b"], ["b", "a"], ["z"]])
    m = Word2Vec(dim=5, window=1, negative=1, sample=0, min_count=1, epochs=2, alpha=0.1,
                 min_alpha=0.02, seed=7)  # fmt: skip
    vocab = m.build_vocab(corpus)
    a, b, z = (vocab.stoi[w] for w in "abz")
    _noise_only(m, z)
    m.syn1neg[:] = np.random.default_rng(8).normal(scale=0.3, size=m.syn1neg.shape)
    e, theta = m.syn0.astype(np.float64), m.syn1neg.astype(np.float64)
    for epoch in range(2):
        for start, sent in [(0, (a, b)), (2, (b, a))]:
            alpha = 0.1 - 0.08 * (epoch * 5 + start) / 10
            # centre c = sent[i] predicts t = the other word (seed 002's P(t | c))
            for c, t in [sent, sent[::-1]]:
                rows = [t, z]
                _, cache = logistic_forward(e[c], theta[rows], np.array([1.0, 0.0]))
                dh, dtheta = logistic_backward(1.0, cache)
                theta[rows] -= alpha * dtheta
                e[c] -= alpha * dh
    m.train(vocab.encode(corpus))
    np.testing.assert_allclose(m.syn0, e, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.syn1neg, theta, rtol=1e-5, atol=1e-7)


def test_cbow_epoch_equals_numpy_replay():
    # "a b c", window 1: [b] -> a, mean(a, c) -> b, [b] -> c; each context row moves by
    # -alpha dL/dh (word2vec.c's rule, = C times the exact gradient of the mean)
    corpus = Corpus.from_sentences([["a", "b", "c"], ["z"]])
    m = Word2Vec(method="cbow", dim=4, window=1, negative=1, sample=0, min_count=1, epochs=1,
                 alpha=0.2, seed=9)  # fmt: skip
    vocab = m.build_vocab(corpus)
    a, b, c, z = (vocab.stoi[w] for w in "abcz")
    _noise_only(m, z)
    m.syn1neg[:] = np.random.default_rng(10).normal(scale=0.3, size=m.syn1neg.shape)
    e, theta = m.syn0.astype(np.float64), m.syn1neg.astype(np.float64)
    for ctx, t in [([b], a), ([a, c], b), ([b], c)]:
        h, mcache = mean_forward(e[ctx])
        rows = [t, z]
        _, cache = logistic_forward(h, theta[rows], np.array([1.0, 0.0]))
        dh, dtheta = logistic_backward(1.0, cache)
        theta[rows] -= 0.2 * dtheta
        de_ctx = mean_backward(dh, mcache) * len(ctx)
        for k, w in enumerate(ctx):
            e[w] -= 0.2 * de_ctx[k]
    m.train(vocab.encode(corpus))
    np.testing.assert_allclose(m.syn0, e, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.syn1neg, theta, rtol=1e-5, atol=1e-7)


def test_hierarchical_softmax_epoch_equals_numpy_replay():
    corpus = Corpus.from_sentences([["a", "b", "a", "c"], ["d", "a"]])
    m = Word2Vec(dim=3, window=1, negative=0, hs=True, sample=0, min_count=1, epochs=1,
                 alpha=0.1, min_alpha=0.1, seed=11)  # fmt: skip
    vocab = m.build_vocab(corpus)
    m.syn1[:] = np.random.default_rng(12).normal(scale=0.5, size=m.syn1.shape)
    e, theta = m.syn0.astype(np.float64), m.syn1.astype(np.float64)
    pts, lbl, lens = m.points, m.hs_labels, m.codelens
    for sent in [["a", "b", "a", "c"], ["d", "a"]]:
        ids = [vocab.stoi[w] for w in sent]
        for i, c in enumerate(ids):
            for j in (i - 1, i + 1):
                if 0 <= j < len(ids):
                    t = ids[j]
                    rows = pts[t, : lens[t]]
                    _, cache = logistic_forward(e[c], theta[rows], lbl[t, : lens[t]].astype(float))
                    dh, dtheta = logistic_backward(1.0, cache)
                    np.subtract.at(theta, rows, 0.1 * dtheta)
                    e[c] -= 0.1 * dh
    m.train(vocab.encode(corpus))
    np.testing.assert_allclose(m.syn0, e, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.syn1, theta, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# reproducibility, threads, quality against gensim


def _small_corpus() -> Corpus:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    p = 1.0 / np.arange(1, 61)
    p /= p.sum()
    return Corpus.from_sentences([list(rng.choice(words, size=12, p=p)) for _ in range(300)])


@pytest.mark.parametrize("method", ["skipgram", "cbow"])
def test_one_thread_is_reproducible_and_seed_matters(method):
    corpus = _small_corpus()
    kw = dict(method=method, dim=16, min_count=1, epochs=2, hs=True)
    v1 = Word2Vec(seed=3, **kw).fit(corpus).vectors
    v2 = Word2Vec(seed=3, **kw).fit(corpus).vectors
    v3 = Word2Vec(seed=4, **kw).fit(corpus).vectors
    np.testing.assert_array_equal(v1, v2)
    assert np.abs(v1 - v3).max() > 1e-3


def _cosine_agreement(kv_a, kv_b, words) -> float:
    # Spearman correlation of the cosine similarities of all pairs of `words` in two models
    from scipy.stats import spearmanr

    ua = np.stack([kv_a[w] / np.linalg.norm(kv_a[w]) for w in words])
    ub = np.stack([kv_b[w] / np.linalg.norm(kv_b[w]) for w in words])
    iu = np.triu_indices(len(words), 1)
    return float(spearmanr((ua @ ua.T)[iu], (ub @ ub.T)[iu])[0])


@pytest.mark.parametrize("method, threads", [("skipgram", 1), ("cbow", 2)])
def test_quality_agrees_with_gensim_on_lee(method, threads):
    # Same data and hyperparameters: our vectors must agree with gensim's about as well as
    # gensim agrees with itself under another seed (cosines of all pairs of the top words).
    from gensim.models import Word2Vec as GensimW2V

    corpus = Corpus.from_file(LEE, lowercase=True)
    sents = list(corpus)
    kw = dict(vector_size=50, window=5, negative=5, min_count=3, epochs=10, sample=1e-3)
    sg = int(method == "skipgram")
    g1 = GensimW2V(sents, sg=sg, workers=1, seed=1, **kw).wv
    g2 = GensimW2V(sents, sg=sg, workers=1, seed=2, **kw).wv
    ours = Word2Vec(method=method, dim=50, window=5, negative=5, min_count=3, epochs=10,
                    sample=1e-3, seed=1, threads=threads).fit(corpus)  # fmt: skip
    assert ours.words == g1.index_to_key
    top = ours.words[20:220]  # frequent words, past the stop words
    ref = _cosine_agreement(g1, g2, top)
    got = _cosine_agreement(ours, g1, top)
    print(f"{method}: agreement ours-gensim {got:.3f}, gensim-gensim {ref:.3f}")
    assert ref > 0.5
    assert got > ref - 0.05


# --------------------------------------------------------------------------------------------
# bad input


def test_empty_corpus_and_no_vocabulary(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_text("\n  \n")
    with pytest.raises(RnnkitError, match="empty.txt: file is empty"):
        Corpus.from_file(p)
    with pytest.raises(RnnkitError, match="corpus has no words"):
        Word2Vec(min_count=1).fit(Corpus.from_sentences([[], []]))
    with pytest.raises(RnnkitError, match="--min-count 5 leaves no vocabulary"):
        Word2Vec(min_count=5).fit(Corpus.from_sentences([["a", "b", "a"]]))


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(method="glove"), "--method must be skipgram or cbow"),
        (dict(dim=0), "--dim must be at least 1"),
        (dict(negative=0), "--negative 0 needs hierarchical softmax"),
        (dict(negative=-1), "--negative must be >= 0"),
        (dict(threads=0), "--threads must be at least 1"),
    ],
)
def test_bad_settings(kw, msg):
    with pytest.raises(RnnkitError, match=msg):
        Word2Vec(**kw)
