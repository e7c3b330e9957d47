"""GloVe: the objective's gradient by finite differences, co-occurrence counts by brute force,
the compiled AdaGrad step against NumPy, and the fit itself."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from rnnkit.embeddings import Corpus, GloVe, Vocab
from rnnkit.embeddings.glove import cooccurrence, glove_backward, glove_forward, weighting
from rnnkit.engine.gradcheck import gradcheck
from rnnkit.io import RnnkitError

# compiled code under test: asked for by name (also under RNNKIT_BACKEND=numpy)
pytestmark = pytest.mark.usefixtures("compiled")


def test_gradcheck_glove_objective():
    rng = np.random.default_rng(0)
    B, E = 5, 4
    w, wt = rng.normal(size=(B, E)), rng.normal(size=(B, E))
    b, bt = rng.normal(size=B), rng.normal(size=B)
    x = np.array([0.5, 3.0, 20.0, 150.0, 1.0])  # below and above x_max = 10
    dloss = 0.8
    _, cache = glove_forward(w, wt, b, bt, x, x_max=10.0, alpha=0.75)
    dw, dwt, db, dbt = glove_backward(dloss, cache)
    gradcheck(
        lambda: dloss * glove_forward(w, wt, b, bt, x, x_max=10.0, alpha=0.75)[0],
        {"w": w, "wt": wt, "b": b, "bt": bt},
        {"w": dw, "wt": dwt, "b": db, "bt": dbt},
    )


def test_objective_is_the_papers_weighted_least_squares():
    rng = np.random.default_rng(1)
    w, wt = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    b, bt = rng.normal(size=3), rng.normal(size=3)
    x = np.array([1.0, 50.0, 500.0])
    J, _ = glove_forward(w, wt, b, bt, x, x_max=100.0, alpha=0.75)
    expected = 0.0
    for k in range(3):
        f = min(1.0, (x[k] / 100.0) ** 0.75)
        expected += 0.5 * f * (w[k] @ wt[k] + b[k] + bt[k] - np.log(x[k])) ** 2
    assert J == pytest.approx(expected, rel=1e-12)
    assert weighting(np.array([100.0, 1e6]), 100.0, 0.75).tolist() == [1.0, 1.0]


def _brute_cooc(sentences, window, symmetric, distance_weighting):
    X = defaultdict(float)
    for s in sentences:
        for p, centre in enumerate(s):
            for d in range(1, window + 1):
                if p - d < 0:
                    break
                inc = 1.0 / d if distance_weighting else 1.0
                X[(centre, s[p - d])] += inc
                if symmetric:
                    X[(s[p - d], centre)] += inc
    return X


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("distance_weighting", [True, False])
def test_cooccurrence_counts_match_brute_force(symmetric, distance_weighting):
    rng = np.random.default_rng(2)
    sents = [list(rng.integers(0, 7, size=rng.integers(1, 12))) for _ in range(40)]
    corpus = Corpus.from_sentences([[f"w{t}" for t in s] for s in sents])
    vocab = Vocab.build(corpus, min_count=1)
    enc = vocab.encode(corpus)
    ids = [[vocab.stoi[f"w{t}"] for t in s] for s in sents]
    rows, cols, vals = cooccurrence(enc, len(vocab), 3, symmetric, distance_weighting, block=17)
    got = {(int(i), int(j)): float(v) for i, j, v in zip(rows, cols, vals, strict=True)}
    ref = _brute_cooc(ids, 3, symmetric, distance_weighting)
    assert got.keys() == ref.keys()
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k


def test_compiled_step_is_adagrad_on_the_numpy_gradient():
    from rnnkit.fast import glove as K

    rng = np.random.default_rng(3)
    V, E = 4, 6
    W, Wt = rng.normal(scale=0.3, size=(2, V, E)).astype(np.float32)
    b, bt = rng.normal(scale=0.3, size=(2, V)).astype(np.float32)
    GW, GWt = (1 + rng.random((2, V, E))).astype(np.float32)
    Gb, Gbt = (1 + rng.random((2, V))).astype(np.float32)
    i, j, x, lr = 1, 3, 7.0, 0.05
    f = min(1.0, (x / 10.0) ** 0.75)
    J, cache = glove_forward(W[[i]].astype(float), Wt[[j]].astype(float), b[[i]].astype(float),
                             bt[[j]].astype(float), np.array([x]), x_max=10.0)  # fmt: skip
    dw, dwt, db, dbt = (g[0] for g in glove_backward(1.0, cache))
    state = [a.copy() for a in (W, Wt, b, bt, GW, GWt, Gb, Gbt)]
    loss = np.zeros(1)
    K.train_epoch(*state, np.array([i], np.int32), np.array([j], np.int32),
                  np.array([np.log(x)], np.float32), np.array([f], np.float32),
                  np.array([0]), 1, np.float32(lr), loss)  # fmt: skip
    assert loss[0] == pytest.approx(J, rel=1e-5)
    # AdaGrad: G += g^2, p -= lr g / sqrt(G)
    for p, g_acc, grad, p_new, g_new in [
        (W[i], GW[i], dw, state[0][i], state[4][i]),
        (Wt[j], GWt[j], dwt, state[1][j], state[5][j]),
        (b[i], Gb[i], db, state[2][i], state[6][i]),
        (bt[j], Gbt[j], dbt, state[3][j], state[7][j]),
    ]:
        G = g_acc + grad**2
        np.testing.assert_allclose(g_new, G, rtol=1e-5)
        np.testing.assert_allclose(p_new, p - lr * grad / np.sqrt(G), rtol=1e-5, atol=1e-7)
    untouched = [0, 2]
    np.testing.assert_array_equal(state[0][untouched], W[untouched])


def _topic_corpus() -> Corpus:
    # two topics whose words never share a sentence; Zipfian frequencies within a topic
    rng = np.random.default_rng(4)
    topics = [[f"a{k}" for k in range(10)], [f"b{k}" for k in range(10)]]
    p = 1.0 / np.arange(1, 11)
    p /= p.sum()
    sents = [list(rng.choice(topics[s % 2], size=8, p=p)) for s in range(400)]
    return Corpus.from_sentences(sents)


def test_glove_fits_log_counts_and_separates_topics():
    g = GloVe(dim=10, window=3, min_count=1, epochs=30, x_max=10.0, seed=1)
    kv = g.fit(_topic_corpus())
    assert g.stats.loss[-1] < 0.2 * g.stats.loss[0]
    # the model's w_i . wt_j + b_i + bt_j tracks log X_ij
    pred = np.sum(g.W[g.rows] * g.Wt[g.cols], axis=1) + g.b[g.rows] + g.bt[g.cols]
    assert np.corrcoef(pred, np.log(g.counts))[0, 1] > 0.9
    within = np.mean([kv.similarity(f"a{k}", f"a{k + 1}") for k in range(9)])
    across = np.mean([kv.similarity(f"a{k}", f"b{k}") for k in range(10)])
    assert within > 0.8 and across < 0.0


def test_one_thread_is_reproducible():
    a = GloVe(dim=6, window=2, min_count=1, epochs=3, seed=5).fit(_topic_corpus()).vectors
    b = GloVe(dim=6, window=2, min_count=1, epochs=3, seed=5).fit(_topic_corpus()).vectors
    np.testing.assert_array_equal(a, b)
    c = GloVe(dim=6, window=2, min_count=1, epochs=3, seed=5, threads=2).fit(_topic_corpus())
    assert np.isfinite(c.vectors).all()


def test_bad_input():
    with pytest.raises(RnnkitError, match="no two vocabulary words share a sentence"):
        GloVe(min_count=1).fit(Corpus.from_sentences([["a"], ["b"]]))
    with pytest.raises(RnnkitError, match="--min-count 9 leaves no vocabulary"):
        GloVe(min_count=9).fit(Corpus.from_sentences([["a", "b"]]))
    with pytest.raises(RnnkitError, match="--window must be at least 1"):
        GloVe(window=0)
