"""N-gram language models: against KenLM, against the textbook formulas, and on bad input.

References we did not write: KenLM (loads our ARPA files and scores sentences itself), and
Mikolov's published Penn Treebank perplexities. A second, deliberately naive reference is
written here from the definitions (Python dicts of tuples, recursion straight from Chen &
Goodman's formula), sharing no code with the vectorised implementation.
"""

from __future__ import annotations

import gzip
import math
import os
import re
from collections import Counter
from pathlib import Path

import kenlm
import numpy as np
import pytest

from rnnkit import ngram
from rnnkit.cli import main
from rnnkit.io import RnnkitError, read_lines

DATA = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PTB = DATA / "ptb"


def synthetic_corpus(n_sentences: int, seed: int, n_words: int = 150) -> list[str]:
    """Sentences from a sparse random second-order Markov chain over Zipf-ish words.

    A context's four likely successors are drawn (from a fixed generator) when the context
    is first met, so different seeds share most frequent transitions but not all.
    """
    rng = np.random.default_rng(1234)
    words = [f"w{i}" for i in range(n_words)]
    zipf = 1.0 / np.arange(1, n_words + 1)
    zipf /= zipf.sum()
    follow = {}  # (prev2, prev1) -> a few likely next words
    draw = np.random.default_rng(seed)
    out = []
    for _ in range(n_sentences):
        sent: list[str] = []
        prev = ("<s>", "<s>")
        for _ in range(int(draw.integers(1, 14))):
            if prev not in follow:
                follow[prev] = rng.choice(n_words, size=4, replace=False, p=zipf)
            w = (
                follow[prev][draw.integers(0, 4)]
                if draw.random() < 0.8
                else draw.choice(n_words, p=zipf)
            )
            sent.append(words[int(w)])
            prev = (prev[1], words[int(w)])
        out.append(" ".join(sent))
    return out


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return synthetic_corpus(400, seed=0)


def kenlm_scores(arpa: Path, lines: list[str]) -> np.ndarray:
    cfg = kenlm.Config()
    cfg.arpa_complain = kenlm.ARPALoadComplain.NONE
    model = kenlm.Model(str(arpa), cfg)
    return np.array([model.score(s, bos=True, eos=True) for s in lines if s.split()])


# ----------------------------------------------------------------------------------------
# KenLM agreement


@pytest.mark.parametrize("order", [2, 3, 4, 5])  # KenLM loads bigram models and up
def test_kenlm_scores_our_arpa_like_we_do_on_ptb_slice(order: int, tmp_path: Path) -> None:
    train = (PTB / "ptb.train.txt").read_text().splitlines()[:3000]
    test = (PTB / "ptb.valid.txt").read_text().splitlines()[:300]  # has OOVs for this slice
    lm = ngram.train_lines(train, order=order)
    ngram.write_arpa(lm, tmp_path / "m.arpa")
    ours = ngram.evaluate_lines(lm, test)
    assert ours.n_oov > 0
    theirs = kenlm_scores(tmp_path / "m.arpa", test)
    diff = np.abs(theirs - ours.sentence_log10prob).max()
    assert diff < 1e-4, f"order {order}: max |kenlm - ours| = {diff:.2e}"
    reread = ngram.evaluate_lines(ngram.read_arpa(tmp_path / "m.arpa"), test)
    diff = np.abs(theirs - reread.sentence_log10prob).max()
    assert diff < 1e-4, f"order {order}, ARPA read back: max |kenlm - ours| = {diff:.2e}"


@pytest.mark.parametrize("method", ["kn-modified", "kn", "add-k"])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_kenlm_scores_our_arpa_like_we_do(
    corpus: list[str], method: str, order: int, tmp_path: Path
) -> None:
    lm = ngram.train_lines(corpus, order=order, method=method, k=0.1)
    ngram.write_arpa(lm, tmp_path / "m.arpa")
    test = synthetic_corpus(60, seed=1) + ["w1 zz w2 w3", "yy", "w0 w0 w0 w0 w0 w0"]
    ours = ngram.evaluate_lines(lm, test)
    theirs = kenlm_scores(tmp_path / "m.arpa", test)
    diff = np.abs(theirs - ours.sentence_log10prob).max()
    assert diff < 1e-4, f"{method} order {order}: max |kenlm - ours| = {diff:.2e}"


HAND_ARPA = """
\\data\\
ngram 1=5
ngram 2=3
ngram 3=1

\\1-grams:
-1.0 <s> -0.30
-0.5 a -0.20
-0.8 b -0.10
-0.7 </s>
-1.2 c

\\2-grams:
-0.25 <s> a -0.05
-0.40 a b
-0.60 b a -0.15

\\3-grams:
-0.10 <s> a b

\\end\\
"""


def test_read_hand_written_arpa_without_unk_scores_like_kenlm(tmp_path: Path) -> None:
    # no <unk>, contexts listed without extensions, backoffs omitted; KenLM needs tabs
    path = tmp_path / "hand.arpa"
    path.write_text(re.sub(r"(?m)^(-\S+) (.*?)(?: (-\S+))?$", tab_fields, HAND_ARPA))
    lm = ngram.read_arpa(path)
    assert lm.vocab[-1] == "<unk>" and lm.logprob[0][-1] == -100.0 and not lm.closed
    test = ["a b", "b a b c", "a a a", "c b a", "a zz b"]
    ours = ngram.evaluate_lines(lm, test)
    theirs = kenlm_scores(path, test)
    diff = np.abs(theirs - ours.sentence_log10prob).max()
    assert diff < 1e-5, f"max |kenlm - ours| = {diff:.2e}"
    # by hand: p(a | <s>) p(b | <s> a) bo(a b) bo(b) p(</s>), bo(a b) not listed (0)
    assert ours.sentence_log10prob[0] == pytest.approx(-0.25 - 0.10 + 0 - 0.10 - 0.7)
    # the same file with spaces (SRILM accepts those too) reads the same
    spaced = tmp_path / "spaced.arpa"
    spaced.write_text(HAND_ARPA)
    again = ngram.evaluate_lines(ngram.read_arpa(spaced), test).sentence_log10prob
    assert np.array_equal(again, ours.sentence_log10prob)


def tab_fields(m: re.Match) -> str:
    return "\t".join(x for x in m.groups() if x is not None)


def test_ptb_perplexity_matches_mikolov_table_4_1() -> None:
    # Mikolov (2012), Strategies for training large scale neural network language models,
    # Table 4.1: PTB test perplexity KN5 141.2, KN3 148.3 (SRILM, modified Kneser-Ney).
    train = read_lines(PTB / "ptb.train.txt")
    test = read_lines(PTB / "ptb.test.txt")
    for order, published in ((5, 141.2), (3, 148.3)):
        ppl = ngram.evaluate_lines(ngram.train_lines(train, order=order), test).perplexity
        assert abs(ppl / published - 1) < 0.02, f"KN{order}: {ppl:.2f} vs {published}"


# ----------------------------------------------------------------------------------------
# Against the definitions


def naive_counts(lines: list[str], order: int) -> Counter:
    c: Counter = Counter()
    for line in lines:
        toks = ["<s>", *line.split(), "</s>"]
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                g = tuple(toks[i : i + n])
                if g != ("<s>",):
                    c[g] += 1
    return c


def test_counting_matches_naive_counter(corpus: list[str]) -> None:
    order = 4
    vocab = ngram.build_vocab(corpus)
    ids, lengths, _, _ = ngram.encode_lines(corpus, {w: i for i, w in enumerate(vocab)})
    c = ngram.count_ngrams(ids, lengths, vocab, order)
    ours: dict = {}
    words = [[(w,) for w in vocab]]
    V = len(vocab)
    for n in range(1, order + 1):
        if n > 1:
            keys = c.keys[n - 1]
            words.append([words[-1][k // V] + (vocab[k % V],) for k in keys.tolist()])
        for g, cnt in zip(words[-1], c.counts[n - 1].tolist(), strict=True):
            if cnt:
                ours[g] = cnt
        if n > 1:  # suffix indices point at the right (n-1)-grams
            suf = [words[n - 2][s] for s in c.suffix[n - 1].tolist()]
            assert suf == [g[1:] for g in words[-1]]
    assert ours == dict(naive_counts(corpus, order))


def naive_kn(lines: list[str], order: int, modified: bool):
    """p(w | h) from Chen & Goodman's interpolated (modified) Kneser-Ney, by the definition."""
    c = naive_counts(lines, order)
    cont: Counter = Counter(g[1:] for g in c if len(g) > 1)  # N1+(. g)

    def a(g: tuple) -> int:
        return c[g] if len(g) == order or g[0] == "<s>" else cont[g]

    discounts = {}
    for n in range(1, order + 1):
        t = Counter(min(a(g), 5) for g in c if len(g) == n)
        n1, n2, n3, n4 = t[1], t[2], t[3], t[4]
        y = n1 / (n1 + 2 * n2)
        if modified:
            discounts[n] = (0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        else:
            discounts[n] = (0, y, y, y)
    vocab = sorted({w for g in c for w in g} - {"<s>"} | {"<unk>"})
    by_context: dict = {}
    for g in c:
        by_context.setdefault(g[:-1], []).append(g)

    def p(w: str, h: tuple) -> float:
        if not h:
            D = discounts[1]
            total = sum(a((u,)) for u in vocab)
            gamma = sum(D[min(a((u,)), 3)] for u in vocab if a((u,)) > 0) / total
            return max(a((w,)) - D[min(a((w,)), 3)], 0) / total + gamma / len(vocab)
        grams = by_context.get(h, [])
        if not grams:
            return p(w, h[1:])
        D = discounts[len(h) + 1]
        total = sum(a(g) for g in grams)
        gamma = sum(D[min(a(g), 3)] for g in grams) / total
        own = a(h + (w,)) if h + (w,) in c else 0
        return (own - D[min(own, 3)] if own else 0) / total + gamma * p(w, h[1:])

    return p, vocab


@pytest.mark.parametrize("method", ["kn-modified", "kn"])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_kneser_ney_matches_the_definition(corpus: list[str], method: str, order: int) -> None:
    small = corpus[:150]
    lm = ngram.train_lines(small, order=order, method=method)
    assert not lm.notes  # the discounts come from the count-of-counts, not the fallback
    p, vocab = naive_kn(small, order, modified=method == "kn-modified")
    ids = [lm.word_to_id[w] for w in vocab]
    contexts = [("<s>",), ("<s>", "w0"), ("w0", "w1"), ("w2", "w0", "w1"), ("w3",), ("w9", "w9")]
    contexts += [tuple(s.split()[:3]) for s in small[:10]]
    for h in contexts:
        h = h[len(h) - (order - 1) :] if order > 1 else ()
        want = np.array([p(w, h) for w in vocab])
        got = lm.distribution(list(h))[ids]
        assert np.allclose(got, want, rtol=1e-10, atol=0), (h, np.abs(got - want).max())
        assert want.sum() == pytest.approx(1.0, abs=1e-12)


def test_add_k_matches_the_definition() -> None:
    lines = ["a b a", "b c", "a a c b"]
    uni = ngram.train_lines(lines, order=1, method="add-k", k=0.5)
    counts = {"a": 4, "b": 3, "c": 2, "</s>": 3, "<unk>": 0}  # V' = 5 words, 12 tokens
    for w, cnt in counts.items():
        assert 10 ** uni.logprob[0][uni.word_to_id[w]] == pytest.approx((cnt + 0.5) / (12 + 2.5))
    bi = ngram.train_lines(lines, order=2, method="add-k", k=0.5)
    dist = bi.distribution(["a"])  # a is followed by b, </s>, a, c once each: c(a .) = 4
    for w in ("b", "</s>", "a", "c"):
        assert dist[bi.word_to_id[w]] == pytest.approx((1 + 0.5) / (4 + 2.5))
    assert dist[bi.word_to_id["<unk>"]] == pytest.approx(0.5 / (4 + 2.5))  # add-k's unseen mass


@pytest.mark.parametrize("method", ngram.METHODS)
@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("unk", ["open", "closed"])
def test_distributions_sum_to_one(
    corpus: list[str], method: str, order: int, unk: str, tmp_path: Path
) -> None:
    lm = ngram.train_lines(corpus, order=order, method=method, k=0.3, unk=unk)
    rng = np.random.default_rng(0)
    contexts = [["<s>"], [], ["zz"], ["<s>", "zz", "w1"], ["w1", "</s>"]]
    contexts += [["<s>", *s.split()[: order - 1]] for s in corpus[:40]]  # seen
    contexts += [list(rng.choice(lm.vocab[2:], size=order - 1)) for _ in range(40)]  # mostly not
    ngram.write_arpa(lm, tmp_path / "m.arpa")
    reread = ngram.read_arpa(tmp_path / "m.arpa")
    for ctx in contexts:
        p = lm.distribution(ctx)
        assert abs(p.sum() - 1) < 1e-10, (ctx, p.sum())
        assert p[lm.bos_id] == 0 and np.all(p[np.arange(len(p)) != lm.bos_id] >= 0)
        assert abs(reread.distribution(ctx).sum() - 1) < 1e-5
    assert (lm.distribution(["w1"])[lm.unk_id] == 0) == (unk == "closed")


def test_vectorised_scores_are_products_of_distributions(corpus: list[str]) -> None:
    lm = ngram.train_lines(corpus, order=4)
    test = synthetic_corpus(10, seed=5) + ["w1 qq w2"]
    r = ngram.evaluate_lines(lm, test)
    for s, got in zip(test, r.sentence_log10prob, strict=True):
        toks = [*s.split(), "</s>"]
        want = sum(
            math.log10(lm.distribution(["<s>", *toks[:i]])[lm.word_to_id.get(w, lm.unk_id)])
            for i, w in enumerate(toks)
        )
        assert got == pytest.approx(want, abs=1e-9)


def test_perplexity_counts_words_end_of_sentence_and_unk() -> None:
    lm = ngram.train_lines(["a b", "b <unk> a"], order=2)
    r = ngram.evaluate_lines(lm, ["a b c", "", "  ", "<unk> a"])
    assert (r.n_sentences, r.n_words, r.n_oov, r.n_predictions) == (2, 5, 1, 7)
    assert r.line_numbers.tolist() == [1, 4]
    assert r.log10prob == pytest.approx(r.sentence_log10prob.sum())
    assert r.perplexity == pytest.approx(10 ** (-r.log10prob / 7))
    assert r.sentence_perplexity()[1] == pytest.approx(10 ** (-r.sentence_log10prob[1] / 3))


def test_scoring_rejects_sentence_boundary_tokens() -> None:
    lm = ngram.train_lines(["a b", "b a"], order=2)
    with pytest.raises(RnnkitError, match=r"^t.txt:3: the token </s> is reserved"):
        ngram.evaluate_lines(lm, ["a b", "", "b </s> a"], where="t.txt")
    with pytest.raises(RnnkitError, match=r"^t.txt:1: the token <s> is reserved"):
        ngram.evaluate_lines(lm, ["<s> a"], where="t.txt")


def test_closed_vocabulary_rejects_unknown_words(tmp_path: Path) -> None:
    lm = ngram.train_lines(["a b", "b a"], order=2, unk="closed")
    assert lm.closed
    assert ngram.evaluate_lines(lm, ["a b a"]).n_oov == 0
    with pytest.raises(RnnkitError, match=r"^test.txt:2: 'zz' is not in the closed vocab"):
        ngram.evaluate_lines(lm, ["a", "b zz"], where="test.txt")
    ngram.write_arpa(lm, tmp_path / "c.arpa")
    assert ngram.read_arpa(tmp_path / "c.arpa").closed
    assert not ngram.train_lines(["a b", "b a"], order=2).closed


def test_min_count_maps_rare_words_to_unk() -> None:
    lm = ngram.train_lines(["a b a", "a c"], order=2, min_count=2)
    assert lm.vocab == ["<unk>", "<s>", "</s>", "a"]
    assert ngram.evaluate_lines(lm, ["a b"]).n_oov == 1


def test_discount_fallback_on_repeated_corpus(corpus: list[str]) -> None:
    lm = ngram.train_lines(corpus * 10, order=3)  # every 3-gram count is a multiple of 10
    assert any("3-grams" in n and "fallback" in n for n in lm.notes)
    assert lm.discounts[2] == list(ngram.FALLBACK_DISCOUNTS)
    assert abs(lm.distribution(["<s>", "w0"]).sum() - 1) < 1e-10


def test_arpa_round_trip(corpus: list[str], tmp_path: Path) -> None:
    lm = ngram.train_lines(corpus, order=3)
    ngram.write_arpa(lm, tmp_path / "m.arpa")
    gz = tmp_path / "m.arpa.gz"
    gz.write_bytes(gzip.compress((tmp_path / "m.arpa").read_bytes()))
    back = ngram.read_arpa(gz)
    assert back.vocab == lm.vocab
    for a, b in zip(lm.keys, back.keys, strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(lm.logprob + lm.backoff, back.logprob + back.backoff, strict=True):
        assert np.abs(a - b).max() < 1e-6 * np.abs(a).max()


def test_arpa_read_in_small_blocks(corpus: list[str], tmp_path: Path, monkeypatch) -> None:
    lm = ngram.train_lines(corpus, order=3)
    path = tmp_path / "m.arpa"
    ngram.write_arpa(lm, path)
    whole = ngram.read_arpa(path)
    monkeypatch.setattr(ngram.arpa, "_BLOCK", 7)
    blocks = ngram.read_arpa(path)
    for a, b in zip(whole.keys + whole.logprob, blocks.keys + blocks.logprob, strict=True):
        assert np.array_equal(a, b)
    lines = path.read_text().splitlines()
    bad = lines.index("\\3-grams:") + 30  # 0-based index of a 3-gram line, past block 4
    lines[bad] = lines[bad].replace("\t", "\tzz ", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RnnkitError, match=rf"m.arpa:{bad + 1}: a 3-gram line needs 4 fields"):
        ngram.read_arpa(path)


def test_sample_is_seeded_and_uses_the_vocabulary(corpus: list[str]) -> None:
    lm = ngram.train_lines(corpus, order=3)
    s1 = [lm.sample(np.random.default_rng(7), 30) for _ in range(3)]
    s2 = [lm.sample(np.random.default_rng(7), 30) for _ in range(3)]
    assert s1 == s2
    many = [w for _ in range(50) for w in lm.sample(np.random.default_rng(_), 5)]
    assert set(many) <= set(lm.vocab) - {"<s>", "</s>"} and len(set(many)) > 5
    assert all(len(lm.sample(np.random.default_rng(i), 5)) <= 5 for i in range(20))


# ----------------------------------------------------------------------------------------
# Bad input


def test_training_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(RnnkitError, match="empty.txt: file is empty"):
        ngram.train_file(empty)
    with pytest.raises(RnnkitError, match=r"--order: expected an integer >= 1, got 0"):
        ngram.train_lines(["a b"], order=0)
    with pytest.raises(RnnkitError, match=r"--order"):
        ngram.train_lines(["a b"], order=-2)
    with pytest.raises(RnnkitError, match=r"--method"):
        ngram.train_lines(["a b"], method="witten-bell")
    with pytest.raises(RnnkitError, match=r"--k: expected a number > 0"):
        ngram.train_lines(["a b"], method="add-k", k=0)
    with pytest.raises(RnnkitError, match=r"x.txt: the token </s> is reserved"):
        ngram.train_lines(["a </s> b"], where="x.txt")
    with pytest.raises(RnnkitError, match="no such file"):
        ngram.train_file(tmp_path / "missing.txt")


GOOD = "\n\\data\\\nngram 1=4\nngram 2=2\n\n\\1-grams:\n-1\t<s>\t-0.2\n-0.5\ta\t-0.1\n-0.6\t</s>\n-2\t<unk>\n\n\\2-grams:\n-0.3\t<s> a\n-0.2\ta </s>\n\n\\end\\\n"  # noqa: E501


@pytest.mark.parametrize(
    "broken, message",
    [
        (GOOD.replace("\\data\\", "data"), r"not an ARPA file \(no \\data\\ line\)"),
        (GOOD.replace("ngram 2=2", "ngram 3=2"), r":4: expected 'ngram 2=COUNT'"),
        (
            GOOD.replace("ngram 2=2", "ngram 2=3"),
            r":15: the header says 3 2-grams, but the section has only 2$",
        ),
        (GOOD.replace("-0.5\ta", "-0.5x\ta"), r":8: log10 probability '-0.5x' is not a number"),
        (GOOD.replace("-0.5\ta\t-0.1", "-0.5\ta\tNaN"), r":8: backoff 'NaN' is not a number"),
        (GOOD.replace("-0.5\ta", "0.5\ta"), r":8: log10 probability 0.5 > 0"),
        (GOOD.replace("-0.2\ta </s>", "-0.2\ta b"), r":14: word 'b' is not among the 1-grams"),
        (GOOD.replace("-0.2\ta </s>", "-0.2\ta"), r":14: a 2-gram line needs 3 fields"),
        (GOOD.replace("-0.2\ta </s>", "-0.3\t<s> a"), r":14: 2-gram listed twice"),
        (GOOD.replace("\\end\\", ""), r"expected \\end\\, got the end of the file"),
        (GOOD.replace("\\2-grams:", "\\3-grams:"), r":12: expected \\2-grams:"),
        (GOOD.replace("</s>", "b"), r"the 1-grams do not list </s>"),
        (GOOD.replace("-2\t<unk>", "-2\ta"), r":10: unigram 'a' listed twice"),
        ("", r"file is empty"),
    ],
)
def test_malformed_arpa_names_file_and_line(tmp_path: Path, broken: str, message: str) -> None:
    good = tmp_path / "good.arpa"
    good.write_text(GOOD)
    assert ngram.read_arpa(good).order == 2
    path = tmp_path / "bad.arpa"
    path.write_text(broken)
    with pytest.raises(RnnkitError, match=message) as e:
        ngram.read_arpa(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_missing_context_in_arpa(tmp_path: Path) -> None:
    text = GOOD.replace("ngram 2=2", "ngram 2=2\nngram 3=1").replace(
        "\\end\\", "\\3-grams:\n-0.1\t</s> a </s>\n\n\\end\\"
    )
    path = tmp_path / "ctx.arpa"
    path.write_text(text)
    with pytest.raises(RnnkitError, match=r":18: the context '</s> a' of this 3-gram is not"):
        ngram.read_arpa(path)


# ----------------------------------------------------------------------------------------
# Command line


def test_cli_train_eval_sample(corpus: list[str], tmp_path: Path, capsys) -> None:
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("\n".join(corpus) + "\n")
    test.write_text("\n".join(synthetic_corpus(20, seed=3)) + "\n")
    arpa = tmp_path / "m.arpa"
    assert main(["ngram", "train", str(train), "--order", "3", "--out", str(arpa)]) == 0
    out = capsys.readouterr().out
    assert "kn-modified 3-gram model" in out and "3-grams=" in out and arpa.exists()
    assert main(["ngram", "eval", str(arpa), str(test), "--per-sentence"]) == 0
    out = capsys.readouterr().out.splitlines()
    want = ngram.evaluate_file(ngram.train_file(train, 3), test)
    assert out[0] == "line\twords\tlog10prob\tperplexity" and len(out) == 20 + 2
    assert f"perplexity {want.perplexity:.2f}" in out[-1]
    assert main(["ngram", "sample", str(arpa), "--seed", "3", "-n", "2", "--length", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(len(s.split()) <= 4 for s in lines)
    arpa2 = tmp_path / "addk.arpa"
    args = ["ngram", "train", str(train), "-n", "2", "--method", "add-k", "--k", "0.2"]
    assert main([*args, "--out", str(arpa2)]) == 0
    assert "add-k (k=0.2) 2-gram" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["ngram", "train", "{empty}", "--out", "{tmp}/m.arpa"], "empty.txt: file is empty"),
        (["ngram", "train", "{text}", "--order", "0", "--out", "{tmp}/m.arpa"], "--order"),
        (["ngram", "eval", "{tmp}/none.arpa", "{text}"], "none.arpa: no such file"),
        (["ngram", "eval", "{text}", "{text}"], r"text.txt: not an ARPA file"),
        (["ngram", "sample", "{text}"], "not an ARPA file"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "text.txt").write_text("a b\n")
    fill = {"empty": tmp_path / "empty.txt", "text": tmp_path / "text.txt", "tmp": tmp_path}
    assert main([a.format(**fill) for a in args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and message in err and err.count("\n") == 1
