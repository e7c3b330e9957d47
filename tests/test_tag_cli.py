"""``rnnkit tag`` end to end on slices of CoNLL-2003 and UD EWT: training, exact resume,
prediction (text from stdin, CoNLL, CoNLL-U), evaluation against seqeval, bad input."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest
from seqeval.metrics import f1_score

from rnnkit.cli import main
from rnnkit.text.metrics import iob1_to_iob2
from rnnkit.text.readers import read_tagged

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tagging"
SMALL = ["--embed", "8", "--hidden", "8", "--char-embed", "4", "--char-hidden", "4",
         "--batch-size", "16", "--log-every", "1", "--no-progress", "--seed", "2",
         "--unk-replace", "0.5", "--dropout", "0.2"]  # fmt: skip


def _head_sentences(lines, n):
    out, k = [], 0
    for line in lines:
        out.append(line)
        if not line.strip():
            k += 1
            if k >= n:
                break
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def conll(tmp_path_factory):
    d = tmp_path_factory.mktemp("conll")
    for split, n in (("train", 120), ("testa", 40)):
        lines = (DATA / "conll2003" / f"eng.{split}").read_text().splitlines()
        (d / f"eng.{split}").write_text(_head_sentences(lines, n))
    return d


@pytest.fixture(scope="module")
def ewt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ewt")
    for split, n in (("train", 100), ("dev", 30)):
        with gzip.open(DATA / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu.gz", "rt") as f:
            lines = f.read().splitlines()
        with gzip.open(d / f"{split}.conllu.gz", "wt") as f:
            f.write(_head_sentences(lines, n))
    return d


def losses(out):
    recs = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], round(r["loss"], 10)) for r in recs if r["type"] == "train"]


def test_ner_train_eval_predict(conll, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ner"
    valid = str(conll / "eng.testa")
    rc = main(["tag", "train", str(conll / "eng.train"), "--valid", valid,
               "--epochs", "2", "--out", str(out), "--lower", "--zero-digits", *SMALL])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "char BiLSTM" in text and "span P/R/F1" in text
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["valid"]) >= {"accuracy", "precision", "recall", "f1", "per_type"}
    assert "test" not in summary  # training scores validation only

    # predictions in conlleval layout (gold column then predicted column), scored by seqeval
    assert main(["tag", "predict", str(out), valid]) == 0
    pred_lines = capsys.readouterr().out.splitlines()
    gold, pred, g, p = [], [], [], []
    for line in pred_lines:
        if not line:
            if g:
                gold.append(iob1_to_iob2(g))
                pred.append(p)
            g, p = [], []
            continue
        cols = line.split()
        if cols[0] == "-DOCSTART-":
            continue
        g.append(cols[-2])
        p.append(cols[-1])
    assert main(["tag", "eval", str(out), valid, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(gold) == res["sentences"] > 30 and abs(res["f1"] - f1_score(gold, pred)) < 1e-12
    assert {k: res[k] for k in ("accuracy", "f1")} == {
        k: summary["valid"][k] for k in ("accuracy", "f1")
    }
    recs = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert len(recs) == 1 and recs[0]["figures"] == res and recs[0]["data"] == valid

    monkeypatch.setattr(sys, "stdin", io.StringIO("Peter lives in Berlin .\n\nEU\n"))
    assert main(["tag", "predict", str(out)]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[0].startswith("Peter\t") and lines[5:8] == ["", "", "EU\t" + lines[7][3:]]


def test_pos_conllu_gz(ewt, tmp_path, capsys):
    out = tmp_path / "pos"
    dev = str(ewt / "dev.conllu.gz")
    assert main(["tag", "train", str(ewt / "train.conllu.gz"), "--valid", dev, "--epochs", "6",
                 "--lr", "0.02", "--out", str(out), *SMALL]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["tag", "eval", str(out), dev, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    # above the share of the most frequent tag: a model that learnt nothing would not be
    with gzip.open(dev, "rt") as f:
        tags = [ln.split("\t")[3] for ln in f if ln.strip() and not ln.startswith("#")
                and ln.split("\t")[0].isdigit()]  # fmt: skip
    majority = max(tags.count(t) for t in set(tags)) / len(tags)
    assert "f1" not in res and res["tokens"] == len(tags)
    assert res["accuracy"] > majority + 0.1, (res["accuracy"], majority)
    assert main(["tag", "predict", str(out), dev]) == 0
    pred = tmp_path / "pred.conllu"
    pred.write_text(capsys.readouterr().out)
    # the output is CoNLL-U again: same words, the UPOS column now holds predictions
    a, b = read_tagged(dev), read_tagged(pred)
    assert a.words == b.words
    with gzip.open(dev, "rt") as f:  # comments and multiword-token lines are kept
        original = f.read().splitlines()
    written = pred.read_text().splitlines()
    assert len(written) == len(original)
    assert [x for x in written if x.startswith("#")] == [x for x in original if x.startswith("#")]
    acc = sum(
        x == y for s, t in zip(a.tags, b.tags, strict=True) for x, y in zip(s, t, strict=True)
    )
    assert abs(acc / sum(map(len, a.tags)) - res["accuracy"]) < 1e-12


def test_tagger_resume_is_exact(conll, tmp_path, capsys):
    args = [str(conll / "eng.train"), "--epochs", "2", *SMALL]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["tag", "train", *args, "--out", str(full)]) == 0
    assert main(["tag", "train", *args, "--out", str(part), "--max-steps", "5"]) == 0
    assert main(["tag", "train", "--resume", "--out", str(part), "--no-progress"]) == 0
    assert losses(part) == losses(full) and len(losses(full)) == 14  # 2 x ceil(110 / 16)
    capsys.readouterr()


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("a.conll", "EU NNP B-ORG\nrejects VBZ\n", "a.conll:2: expected 3 columns"),
        ("a.conllu", "1\tHi\thi\tINTJ\n", "a.conllu:1: expected 10 tab-separated"),
        ("a.conll", "\n", "a.conll: file is empty"),
    ],
)
def test_bad_files(tmp_path, capsys, name, content, message):
    p = tmp_path / name
    p.write_text(content)
    assert main(["tag", "train", str(p), "--out", str(tmp_path / "o"), *SMALL]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_gold_tags_counted_and_reported(conll, tmp_path, capsys):
    out = tmp_path / "ner"
    assert main(["tag", "train", str(conll / "eng.train"), "--epochs", "1", "--out", str(out),
                 *SMALL]) == 0  # fmt: skip
    p = tmp_path / "odd.conll"
    p.write_text("Paris NNP B-CITY\nis VBZ O\n\nRome NNP B-CITY\n")
    capsys.readouterr()
    assert main(["tag", "eval", str(out), str(p)]) == 0
    captured = capsys.readouterr()
    assert "counted as errors: B-CITY (2)" in captured.err
    assert "span precision" in captured.out
