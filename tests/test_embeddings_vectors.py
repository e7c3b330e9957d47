"""KeyedVectors against gensim 4.4: similarity queries, analogies, evaluation, file formats
in both directions; malformed files and unknown words; the t-SNE picture."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import gensim.models.keyedvectors as gensim_kv  # the reference; missing = failure, no skip
import numpy as np
import pytest

from rnnkit.embeddings import KeyedVectors, plot_tsne
from rnnkit.embeddings.vectors import rankdata, spearman
from rnnkit.io import RnnkitError

EVAL = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "word_eval")
# gensim's most_similar_cosmul calls its own deprecated init_sims
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")


def to_gensim(kv: KeyedVectors):
    g = gensim_kv.KeyedVectors(kv.dim)
    g.add_vectors(kv.words, kv.vectors)
    return g


def random_kv(n: int = 300, dim: int = 12, seed: int = 0) -> KeyedVectors:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n - 4)] + ["café", "naïve", "日本", "Zoë"]
    return KeyedVectors(words, rng.normal(size=(n, dim)).astype(np.float32))


# --------------------------------------------------------------------------------------------
# queries


def test_similarity_neighbours_and_odd_one_out_match_gensim():
    kv = random_kv()
    g = to_gensim(kv)
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b, c = (kv.words[i] for i in rng.choice(len(kv), 3, replace=False))
        assert kv.similarity(a, b) == pytest.approx(float(g.similarity(a, b)), abs=1e-6)
        ours = kv.most_similar(positive=[a, b], negative=[c], topn=8)
        theirs = g.most_similar(positive=[a, b], negative=[c], topn=8)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6)
        r = kv.most_similar(a, topn=5, restrict_vocab=100)
        assert [w for w, _ in r] == [w for w, _ in g.most_similar(a, topn=5, restrict_vocab=100)]
        four = [kv.words[i] for i in rng.choice(len(kv), 4, replace=False)]
        assert kv.doesnt_match(four) == g.doesnt_match(four)


def test_analogies_3cosadd_and_3cosmul_match_gensim():
    kv = random_kv(seed=2)
    g = to_gensim(kv)
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b, c = (kv.words[i] for i in rng.choice(len(kv), 3, replace=False))
        add = kv.analogy(a, b, c, topn=5)
        assert [w for w, _ in add] == [w for w, _ in g.most_similar([b, c], [a], topn=5)]
        mul = kv.analogy(a, b, c, topn=5, method="mul", eps=1e-6)
        ref = g.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
        assert [w for w, _ in mul] == [w for w, _ in ref]
        np.testing.assert_allclose([s for _, s in mul], [s for _, s in ref], rtol=1e-5)


def test_unknown_words_are_named():
    kv = random_kv()
    for call in (
        lambda: kv.most_similar("nope"),
        lambda: kv.similarity("w1", "nope"),
        lambda: kv.analogy("w1", "w2", "nope"),
        lambda: kv.doesnt_match(["w1", "nope"]),
    ):
        with pytest.raises(
            RnnkitError, match=r"word 'nope' is not in the vocabulary \(300 words\)"
        ):
            call()


# --------------------------------------------------------------------------------------------
# evaluation


def test_spearman_matches_scipy_with_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(4)
    x = rng.integers(0, 6, size=40)
    y = x + rng.integers(0, 4, size=40)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
    from scipy.stats import rankdata as sp_rank

    np.testing.assert_array_equal(rankdata(x), sp_rank(x))


def _eval_words(path: str) -> list[str]:
    words = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or line.startswith(":"):
            continue
        words += line.split("\t")[:2] if "\t" in line else line.split()
    return list(dict.fromkeys(words))


def test_word_pair_evaluation_matches_gensim():
    rng = np.random.default_rng(5)
    ws, sl = f"{EVAL}/wordsim353.tsv", f"{EVAL}/simlex999.txt"
    words = _eval_words(ws) + _eval_words(sl)
    words = list(dict.fromkeys(words))
    keep = [w for w in words if rng.random() < 0.8]  # ~20% out of vocabulary
    # upper-case variants placed first: case-insensitive lookup must take the earlier one
    variants = [w.capitalize() for w in keep[:30]]
    vocab = variants + keep
    kv = KeyedVectors(vocab, rng.normal(size=(len(vocab), 10)).astype(np.float32))
    g = to_gensim(kv)
    for path in (ws, sl):
        for restrict in (300000, 500):
            ours = kv.evaluate_word_pairs(path, restrict_vocab=restrict)
            pear, spear, oov = g.evaluate_word_pairs(path, restrict_vocab=restrict)
            assert ours.spearman == pytest.approx(spear[0], abs=1e-6)
            assert ours.pearson == pytest.approx(pear[0], abs=1e-6)
            assert 100 * ours.oov_rate == pytest.approx(oov)


def _structured_analogy_vectors(path: os.PathLike[str], seed: int):
    # vectors where many analogies hold: right word = left word + section offset + noise
    rng = np.random.default_rng(seed)
    vec: dict[str, np.ndarray] = {}
    offset = None
    for line in open(path, encoding="utf-8"):
        if line.startswith(":"):
            offset = rng.normal(size=16)
            continue
        a, b, c, d = line.split()
        for left, right in ((a, b), (c, d)):
            if left not in vec:
                vec[left] = rng.normal(size=16)
            if right not in vec:
                vec[right] = vec[left] + offset + rng.normal(scale=0.6, size=16)
    words = list(vec)
    rng.shuffle(words)
    words = words[:800] + [w.lower() for w in words[:40] if w.lower() not in vec] + words[800:]
    vectors = [vec.get(w, rng.normal(size=16)) for w in words]
    return KeyedVectors(words, np.array(vectors, np.float32))


@pytest.mark.parametrize("restrict", [300000, 600])
def test_analogy_evaluation_matches_gensim(tmp_path, restrict):
    # every 4th question of the Google set (gensim's evaluator is slow on all 19,544)
    lines, k = [], 0
    for line in open(f"{EVAL}/questions-words.txt", encoding="utf-8"):
        k += 1
        if line.startswith(":") or k % 4 == 0:
            lines.append(line)
    path = tmp_path / "questions.txt"
    path.write_text("".join(lines), encoding="utf-8")
    kv = _structured_analogy_vectors(path, seed=6)
    ours = kv.evaluate_word_analogies(path, restrict_vocab=restrict)
    score, sections = to_gensim(kv).evaluate_word_analogies(str(path), restrict_vocab=restrict)
    theirs = {s["section"]: s for s in sections}
    assert 0.2 < ours.accuracy < 0.95  # a test with something to get right and wrong
    assert ours.accuracy == pytest.approx(score)
    for s in ours.sections:
        t = theirs[s.name]
        assert (s.correct, s.incorrect) == (len(t["correct"]), len(t["incorrect"])), s.name
        assert set(s.correct_items) == set(t["correct"]), s.name
    print(f"restrict {restrict}: accuracy {ours.accuracy:.3f}, OOV {ours.oov_rate:.3f}")
    assert (ours.oov_rate > 0.1) == (restrict < 1000)


# --------------------------------------------------------------------------------------------
# files, both directions


@pytest.mark.parametrize("binary", [False, True])
def test_our_files_load_in_gensim(tmp_path, binary):
    kv = random_kv()
    p = tmp_path / "ours.vec"
    kv.save_word2vec_format(p, binary=binary)
    g = gensim_kv.KeyedVectors.load_word2vec_format(str(p), binary=binary)
    assert g.index_to_key == kv.words
    np.testing.assert_array_equal(g.vectors, kv.vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_files_load_in_ours(tmp_path, binary):
    g = to_gensim(random_kv(seed=7))
    p = tmp_path / "gensim.vec"
    g.save_word2vec_format(str(p), binary=binary)
    for flag in (binary, None):  # given, and detected
        kv = KeyedVectors.load_word2vec_format(p, binary=flag)
        assert kv.words == g.index_to_key
        np.testing.assert_array_equal(kv.vectors, g.vectors)


def test_gzip_and_headerless_text(tmp_path):
    kv = random_kv(n=20)
    p = tmp_path / "v.txt"
    kv.save_word2vec_format(p)
    gz = tmp_path / "v.txt.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    np.testing.assert_array_equal(KeyedVectors.load_word2vec_format(gz).vectors, kv.vectors)
    noheader = tmp_path / "glove.txt"
    noheader.write_text("\n".join(p.read_text().splitlines()[1:]) + "\n")
    back = KeyedVectors.load_word2vec_format(noheader)
    assert back.words == kv.words
    np.testing.assert_array_equal(back.vectors, kv.vectors)


def _binary(entries, header=None) -> bytes:
    out = (header or f"{len(entries)} 2\n").encode()
    for w, v in entries:
        out += w.encode() + b" " + np.array(v, "<f4").tobytes() + b"\n"
    return out


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "file is empty"),
        (b"2 2\nx 1 0\ny 0.5\n", "line 3: expected a word and 2 numbers, found 1 number"),
        (b"2 2\nx 1 0\ny 0.5 abc\n", "line 3: 'abc' is not a finite number"),
        (b"2 2\nx 1 0\ny 0.5 nan\n", "line 3: 'nan' is not a finite number"),
        (b"3 2\nx 1 0\ny 0.5 1\n", "header says 3 words, found 2 lines"),
        (b"2 2\nx 1 0\nx 0.5 1\n", "line 3: word 'x' appears twice"),
        (b"2 2\nx 1 0\n\xff 0.5 1\n", "line 3: not valid utf-8"),
        # a header that claims more than the file holds is refused before anything is read
        (
            _binary([("x", [1, 2]), ("y", [3, 4])])[:-6],
            "header says 2 words of 2 float32 "
            "values, which needs at least 20 bytes; the file holds 16 after the header",
        ),
        (_binary([("x", [1, 2])], header="2 2\n"), "header says 2 words .* holds 11 after"),
        (_binary([("x", [1, 2]), ("x", [3, 4])]), "entry 2: word 'x' appears twice"),
        (_binary([("x", [1, 2]), ("y", [3, np.inf])]), "entry 2 \\(word 'y'.*non-finite"),
        (_binary([("x", [1, 2])]) + b"junk", "data after the 1 entries"),
    ],
)
def test_malformed_vector_files(tmp_path, content, message):
    p = tmp_path / "bad.vec"
    p.write_bytes(content)
    with pytest.raises(RnnkitError, match=message) as exc:
        KeyedVectors.load_word2vec_format(p)
    assert "bad.vec" in str(exc.value) and "\n" not in str(exc.value)


def test_words_with_spaces_cannot_be_saved(tmp_path):
    kv = KeyedVectors(["new york"], np.ones((1, 2), np.float32))
    with pytest.raises(RnnkitError, match="contains whitespace"):
        kv.save_word2vec_format(tmp_path / "x.vec")
    assert not (tmp_path / "x.vec").exists()


# --------------------------------------------------------------------------------------------
# t-SNE


def test_tsne_png(tmp_path):
    kv = random_kv(n=40)
    words, xy = plot_tsne(kv, tmp_path / "t.png", words=kv.words[:15], seed=0)
    assert words == kv.words[:15] and xy.shape == (15, 2) and np.isfinite(xy).all()
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(RnnkitError, match="word 'nope' is not in the vocabulary"):
        plot_tsne(kv, tmp_path / "u.png", words=["w1", "nope"])


def test_tsne_without_sklearn_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)  # import now raises ImportError
    with pytest.raises(RnnkitError, match=r"pip install rnnkit\[tsne\]"):
        plot_tsne(random_kv(n=10), tmp_path / "t.png", top=8)
