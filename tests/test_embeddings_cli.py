"""`rnnkit embed ...`: train, similar, analogy, eval, tsne, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.embeddings import KeyedVectors

# compiled code under test: asked for by name (also under RNNKIT_BACKEND=numpy)
pytestmark = pytest.mark.usefixtures("compiled")


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)] + ["king", "queen", "man", "woman"]
    lines = [" ".join(rng.choice(words, size=10)) for _ in range(300)]
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture
def vectors(tmp_path):
    words = ["king", "queen", "man", "woman", "apple", "pear"]
    vecs = np.array([[1, 1, 0], [1, -1, 0], [0.9, 1.1, 0.1], [0.9, -0.9, 0.1],
                     [0, 0.1, 1], [0.1, 0, 1]], np.float32)  # fmt: skip
    p = tmp_path / "v.txt"
    KeyedVectors(words, vecs).save_word2vec_format(p)
    return p


@pytest.mark.parametrize("method", ["skipgram", "cbow", "glove"])
@pytest.mark.parametrize("binary", [False, True])
def test_train_writes_loadable_vectors(tmp_path, corpus, capsys, method, binary):
    out = tmp_path / "out.vec"
    args = ["embed", "train", str(corpus), "--method", method, "--dim", "8", "--epochs", "2",
            "--min-count", "2", "--out", str(out), "--seed", "3"]  # fmt: skip
    rc = main(args + (["--binary"] if binary else []))
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"wrote {out}" in captured.out and "/s" in captured.out
    unit = "pair/s" if method == "glove" else "word/s"
    assert unit in captured.err  # the progress bar went to stderr
    kv = KeyedVectors.load_word2vec_format(out)
    assert len(kv) == 34 and kv.dim == 8


def test_similar_and_analogy(vectors, capsys):
    assert main(["embed", "similar", str(vectors), "king", "-n", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t")[0] == "man" and len(lines) == 2
    assert main(["embed", "analogy", str(vectors), "man", "woman", "king"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "man : woman :: king : ?" and out[1].startswith("queen\t")
    assert main(["embed", "analogy", str(vectors), "man", "woman", "king", "--method", "mul"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("queen\t")


def test_eval_with_explicit_files(tmp_path, vectors, capsys):
    ws = tmp_path / "ws.tsv"
    ws.write_text("# header\nking\tqueen\t8\nman\twoman\t8.5\napple\tpear\t9\nking\tapple\t1\n"
                  "zebra\tapple\t2\n")  # fmt: skip
    an = tmp_path / "an.txt"
    an.write_text(": family\nman woman king queen\nwoman man queen king\nman king zebra apple\n")
    rc = main(["embed", "eval", str(vectors), "--wordsim", str(ws), "--analogies", str(an)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "WordSim-353" in out and "(4 pairs, 20.0% out of vocabulary)" in out
    assert "accuracy 100.0%" in out and "family" in out


def test_tsne(tmp_path, vectors, capsys):
    png = tmp_path / "t.png"
    assert main(["embed", "tsne", str(vectors), "--out", str(png), "--words", "king,queen",
                 "--words", "man", "--words", "woman apple"]) == 0  # fmt: skip
    assert "wrote" in capsys.readouterr().out
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, message",
    [
        (["similar", "{v}", "zebra"], "word 'zebra' is not in the vocabulary (6 words)"),
        (["analogy", "{v}", "man", "woman", "zebra"], "word 'zebra' is not in the vocabulary"),
        (["similar", "{bad}", "king"], "bad.vec: line 3: expected a word and 3 numbers"),
        (["train", "{empty}", "--out", "{tmp}/o.vec"], "empty.txt: file is empty"),
        (
            ["train", "{c}", "--min-count", "1000", "--out", "{tmp}/o.vec"],
            "--min-count 1000 leaves no vocabulary",
        ),
        (["train", "{missing}", "--out", "{tmp}/o.vec"], "nope.txt: no such file"),
        (
            ["tsne", "{v}", "--out", "{tmp}/t.png", "--words", "king,zebra"],
            "word 'zebra' is not in the vocabulary",
        ),
        (["eval", "{v}", "--eval-dir", "{tmp}"], "holds none of wordsim353.tsv"),
    ],
)
def test_errors_are_one_line(tmp_path, corpus, vectors, capsys, args, message):
    bad = tmp_path / "bad.vec"
    bad.write_text("2 3\nking 1 0 0\nqueen 1 0\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    subs = dict(
        v=vectors, bad=bad, empty=empty, c=corpus, tmp=tmp_path, missing=tmp_path / "nope.txt"
    )
    rc = main(["embed"] + [a.format(**subs) for a in args])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("rnnkit: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
