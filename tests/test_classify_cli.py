"""``rnnkit classify`` end to end on a slice of SST-2: training, exact resume (also after
Ctrl-C), prediction from files and stdin, evaluation, and bad input as one line + exit 1."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"
SMALL = ["--embed", "8", "--hidden", "6", "--batch-size", "8", "--log-every", "1",
         "--no-progress", "--seed", "1", "--embed-dropout", "0.2", "--dropout", "0.2",
         "--unk-replace", "0.3"]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("sst")
    lines = (SST2 / "train.tsv").read_text().splitlines()
    (d / "train.tsv").write_text("\n".join(lines[:121]) + "\n")  # header + 120 rows
    dev = (SST2 / "dev.tsv").read_text().splitlines()
    (d / "dev.tsv").write_text("\n".join(dev[:41]) + "\n")
    return d


def losses(out):
    recs = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], round(r["loss"], 10)) for r in recs if r["type"] == "train"]


def test_train_predict_eval(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    rc = main(["classify", "train", str(data / "train.tsv"), "--valid", str(data / "dev.tsv"),
               "--epochs", "2", "--out", str(out), *SMALL])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "epoch 2/2" in text and "valid (best epoch" in text
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "best" / "model.safetensors").exists()

    assert main(["classify", "eval", str(out), str(data / "dev.tsv"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["sentences"] == 40 and res["accuracy"] == summary["valid"]["accuracy"]

    monkeypatch.setattr(sys, "stdin", io.StringIO("a gorgeous film\n\nawful , dull .\n"))
    assert main(["classify", "predict", str(out), "--proba"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[1] == "" and lines[0].split("\t")[0] in ("0", "1")
    assert lines[0].split("\t")[1].startswith("0:")
    # the GLUE test file (index<TAB>sentence header) is read through its 'sentence' column
    test = (SST2 / "test.tsv").read_text().splitlines()[:6]
    (tmp_path / "test.tsv").write_text("\n".join(test) + "\n")
    assert main(["classify", "predict", str(out), str(tmp_path / "test.tsv")]) == 0
    assert len(capsys.readouterr().out.split()) == 5


def _toy_sentences(n, rng):
    """Filler words around one word that decides the label: learnable, and balanced."""
    filler = ["a", "the", "film", "story", "was", "is", "quite", "very", "and", "plot"]
    cue = {0: ["awful", "dull", "bad"], 1: ["great", "superb", "fine"]}
    rows = []
    for y in rng.integers(0, 2, size=n):
        words = list(rng.choice(filler, size=int(rng.integers(2, 7))))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(cue[int(y)])))
        rows.append(f"{' '.join(words)}\t{y}")
    return rows


def test_learns_a_toy_task(tmp_path, capsys):
    rng = np.random.default_rng(0)
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(_toy_sentences(200, rng)))
    valid = _toy_sentences(40, rng)
    (tmp_path / "valid.tsv").write_text("sentence\tlabel\n" + "\n".join(valid))
    out = tmp_path / "run"
    assert main(["classify", "train", str(tmp_path / "train.tsv"), "--valid",
                 str(tmp_path / "valid.tsv"), "--epochs", "3", "--lr", "0.01", "--out", str(out),
                 *SMALL]) == 0  # fmt: skip
    majority = max(
        np.mean([r.endswith("1") for r in valid]), np.mean([r.endswith("0") for r in valid])
    )
    accuracy = json.loads((out / "summary.json").read_text())["valid"]["accuracy"]
    assert majority <= 0.65 and accuracy >= 0.95  # a model that ignores the cue word cannot


def test_resume_is_exact(data, tmp_path, capsys):
    args = [str(data / "train.tsv"), "--epochs", "2", *SMALL]  # validation: 5% of train
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["classify", "train", *args, "--out", str(full)]) == 0
    assert main(["classify", "train", *args, "--out", str(part), "--max-steps", "7"]) == 0
    assert "continue with --resume" in capsys.readouterr().out
    assert main(["classify", "train", "--resume", "--out", str(part), "--no-progress"]) == 0
    assert losses(part) == losses(full) and len(losses(full)) == 30  # 2 x ceil(114 / 8)
    a = json.loads((full / "summary.json").read_text())["valid"]
    b = json.loads((part / "summary.json").read_text())["valid"]
    assert a == b
    # changing a setting on resume is refused
    assert main(["classify", "train", "--resume", "--out", str(part), "--hidden", "9"]) == 2


def test_ctrl_c_saves_and_resumes(data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rnnkit", "classify", "train", str(data / "train.tsv"),
           "--epochs", "500", "--out", str(out), *SMALL]  # fmt: skip
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr.decode()
    assert b"continue with --resume" in stdout
    assert b"Traceback" not in stderr
    assert main(["classify", "train", "--resume", "--out", str(out), "--epochs", "1",
                 "--no-progress"]) in (0,)  # fmt: skip


@pytest.mark.parametrize(
    "content,message",
    [
        ("sentence\tlabel\ngood film\t1\nbad film\n", "x.tsv:3: expected 2 tab-separated columns"),
        ("sentence\tlabel\ngood film\t1\n  \t0\n", "x.tsv:3: empty sentence"),
        ("sentence\tlabel\ngood film\t1\nbad\t0\n", None),  # fine: trains
    ],
)
def test_bad_training_files(tmp_path, capsys, content, message):
    p = tmp_path / "x.tsv"
    p.write_text(content * 1)
    rc = main(["classify", "train", str(p), "--valid", str(p), "--epochs", "1",
               "--out", str(tmp_path / "o"), *SMALL])  # fmt: skip
    err = capsys.readouterr().err
    if message is None:
        assert rc == 0, err
    else:
        assert rc == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unknown_label_and_bad_paths(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["classify", "train", str(data / "train.tsv"), "--epochs", "1",
                 "--out", str(out), *SMALL]) == 0  # fmt: skip
    capsys.readouterr()
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nfine\t1\nodd\tneutral\n")
    assert main(["classify", "eval", str(out), str(bad)]) == 1
    err = capsys.readouterr().err
    assert "bad.tsv:3: label 'neutral' was not seen in training (known: 0, 1)" in err
    assert main(["classify", "eval", str(tmp_path / "nope"), str(bad)]) == 1
    assert "no such checkpoint directory" in capsys.readouterr().err
    assert main(["classify", "train", str(data / "train.tsv"), "--out", str(out)]) == 1
    assert "already holds a checkpoint" in capsys.readouterr().err
    vec = tmp_path / "v.txt"
    vec.write_text("2 3\nfilm 1 2 3\nthe 1 2\n")
    assert main(["classify", "train", str(data / "train.tsv"), "--pretrained", str(vec),
                 "--out", str(tmp_path / "o2"), *SMALL]) == 1  # fmt: skip
    assert "v.txt:3: expected a word and 3 values, got 2" in capsys.readouterr().err


def test_ensemble_on_one_split(data, tmp_path, capsys):
    """Two seeds on one held-out split (--valid-seed); the ensemble averages probabilities."""
    runs = []
    for seed in ("1", "2"):
        out = tmp_path / f"m{seed}"
        args = [str(data / "train.tsv"), "--epochs", "1", "--out", str(out), *SMALL]
        args[args.index("--seed") + 1] = seed
        assert main(["classify", "train", *args, "--valid-seed", "7"]) == 0
        runs.append(out)
    capsys.readouterr()
    # the same validation sentences were held out for both (their split seed is 7, not --seed)
    held = [json.loads((r / "summary.json").read_text())["valid"]["sentences"] for r in runs]
    assert held[0] == held[1] == 6  # 5% of 120
    cfgs = [json.loads((r / "best" / "checkpoint.json").read_text())["config"]["train"]
            for r in runs]  # fmt: skip
    assert (
        cfgs[0]["valid_seed"] == cfgs[1]["valid_seed"] == 7 and cfgs[0]["seed"] != cfgs[1]["seed"]
    )

    dev = data / "dev.tsv"
    probs = []
    for r in runs:
        assert main(["classify", "predict", str(r), str(dev), "--proba"]) == 0
        rows = [line.split("\t")[1].split() for line in capsys.readouterr().out.splitlines()]
        probs.append([[float(x.split(":")[1]) for x in row] for row in rows])
    gold = [line.split("\t")[1] for line in dev.read_text().splitlines()[1:]]
    mean = [[(a + b) / 2 for a, b in zip(p, q, strict=True)] for p, q in zip(*probs, strict=True)]
    expected = sum(str(int(m[1] > m[0])) == g for m, g in zip(mean, gold, strict=True)) / len(gold)
    assert main(["classify", "eval", str(runs[0]), str(dev), "--ensemble", str(runs[1]),
                 "--json"]) == 0  # fmt: skip
    res = json.loads(capsys.readouterr().out)
    assert res["accuracy"] == pytest.approx(expected)
    assert main(["classify", "predict", str(runs[0]), str(dev), "--ensemble", str(runs[1])]) == 0
    labels = capsys.readouterr().out.split()
    assert labels == [str(int(m[1] > m[0])) for m in mean]
    assert main(["classify", "eval", str(runs[0]), str(dev), "--ensemble",
                 str(tmp_path / "nope")]) == 1  # fmt: skip
    assert "no such checkpoint directory" in capsys.readouterr().err


def test_pretrained_extend_reads_words_training_never_saw(data, tmp_path, capsys):
    """--pretrained-extend: the vector file's words that training lacks join the vocabulary
    with their vectors, keep them through training (no gradient reaches them), and are read
    at prediction time instead of <unk>; without the flag they are <unk>."""
    from rnnkit.recipes.task import load_classifier

    vec = tmp_path / "v.txt"
    vec.write_text("3 8\nfilm 1 2 3 4 5 6 7 8\nzyzzyva 1 -1 1 -1 1 -1 1 -1\n"
                   "quokka 0.5 0 0 0 0 0 0 2\n")  # fmt: skip
    runs = {}
    for flag in ("--pretrained-extend", "--no-pretrained-extend"):
        out = tmp_path / flag.strip("-").replace("pretrained-", "")
        assert main(["classify", "train", str(data / "train.tsv"), "--epochs", "2",
                     "--pretrained", str(vec), flag, "--out", str(out), *SMALL]) == 0  # fmt: skip
        runs[flag] = load_classifier(out)
    assert "vocabulary: " in capsys.readouterr().out
    ext, plain = runs["--pretrained-extend"], runs["--no-pretrained-extend"]
    assert len(ext.vocab) == len(plain.vocab) + 2
    emb = ext.model.params["embedding.weight"]
    for word, row in (("zyzzyva", [1, -1] * 4), ("quokka", [0.5, 0, 0, 0, 0, 0, 0, 2])):
        assert word not in plain.vocab.stoi
        assert emb[ext.vocab.stoi[word]].tolist() == pytest.approx(row)  # untouched by training
    # a trained word's row moved away from its pretrained vector
    assert emb[ext.vocab.stoi["film"]].tolist() != pytest.approx(list(range(1, 9)))
    # the new words are read, not taken as <unk>: unlike two words no file has
    sent = tmp_path / "s.txt"
    sent.write_text("zyzzyva quokka\nxqxqx qxqxq\n")
    assert main(["classify", "predict", str(tmp_path / "extend"), str(sent), "--proba"]) == 0
    known, unknown = capsys.readouterr().out.splitlines()
    assert known != unknown
    assert main(["classify", "predict", str(tmp_path / "no-extend"), str(sent), "--proba"]) == 0
    known, unknown = capsys.readouterr().out.splitlines()
    assert known == unknown
    assert main(["classify", "train", str(data / "train.tsv"), "--pretrained-extend",
                 "--out", str(tmp_path / "o3"), *SMALL]) == 1  # fmt: skip
    assert "--pretrained-extend needs --pretrained" in capsys.readouterr().err


def test_freeze_embed_keeps_the_pretrained_vectors(data, tmp_path, capsys):
    """--freeze-embed: the whole embedding keeps the --pretrained vectors through training
    (and resume) while the rest of the model trains; it needs --pretrained."""
    from rnnkit.recipes.task import load_classifier

    vec = tmp_path / "v.txt"
    vec.write_text("2 8\nfilm 1 2 3 4 5 6 7 8\nbad 1 -1 1 -1 1 -1 1 -1\n")
    out = tmp_path / "frozen"
    args = ["classify", "train", str(data / "train.tsv"), "--pretrained", str(vec),
            "--freeze-embed", "--l2", "0.001", "--clip-norm", "1", "--out", str(out),
            *SMALL]  # fmt: skip
    assert main([*args, "--epochs", "1"]) == 0
    first = load_classifier(out / "checkpoint")
    assert main(["classify", "train", "--resume", "--out", str(out), "--epochs", "2",
                 "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    clf = load_classifier(out / "checkpoint")
    assert clf.cfg.freeze_embed and clf.model.config.freeze_embed
    emb = clf.model.params["embedding.weight"]
    assert emb[clf.vocab.stoi["film"]].tolist() == list(range(1, 9))
    assert emb[clf.vocab.stoi["bad"]].tolist() == [1, -1] * 4
    np.testing.assert_array_equal(emb, first.model.params["embedding.weight"])
    assert "embedding.weight" not in clf.model.grads
    assert not np.array_equal(clf.model.params["fc.weight"], first.model.params["fc.weight"])
    assert main(["classify", "train", str(data / "train.tsv"), "--freeze-embed",
                 "--out", str(tmp_path / "o2"), *SMALL]) == 1  # fmt: skip
    assert "--freeze-embed needs --pretrained" in capsys.readouterr().err
