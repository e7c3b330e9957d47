"""Training reports validation only; a test set is scored by `eval`, and each score recorded.

The results protocol (RESULTS.md) counts how often a test file was scored against a run from
RUN/scores.jsonl; these tests check that every eval command appends a record that names the
commit, the command, the data's SHA-256 and the figures, that training never scores a test
set, and that the old --test option stops with one line.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.recipes.lm import load_lm
from rnnkit.train.scores import read_scores, run_folder, source_commit

ROOT = Path(__file__).resolve().parents[1]
TEXT = "".join(f"the {w} sat on the mat and the {w} ran.\n" for w in ("cat", "dog", "fox") * 40)
SMALL = ["--hidden", "16", "--embed", "8", "--layers", "1", "--bptt", "10", "--batch-size", "4",
         "--no-progress", "--seed", "3"]  # fmt: skip


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_commit_is_the_checkouts():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    # the tests run from the checkout (editable install): the recorded commit is its HEAD
    assert source_commit() is not None and source_commit().split("+")[0] == head


def test_lm_patience_best_and_held_out_test(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    out = tmp_path / "run"
    # a learning rate this large makes validation worse after a while: patience 1 stops it
    rc, o, e = run(["lm", "train", text, "--out", out, "--epochs", "30", "--patience", "1",
                    "--optimizer", "adam", "--lr", "0.05", *SMALL], capsys)  # fmt: skip
    assert rc == 0, e
    summary = json.loads((out / "summary.json").read_text())
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [r["valid_loss"] for r in epochs if r["type"] == "epoch"]
    best = int(np.argmin(valid)) + 1
    assert summary["stopped_early"] == len(valid) == best + 1 < 30
    assert summary["best_epoch"] == best and "test" not in summary
    assert summary["valid"]["loss"] == pytest.approx(valid[best - 1], rel=1e-6)
    assert "validation loss not improved for 1 epochs" in o
    ck = json.loads((out / "best" / "checkpoint.json").read_text())
    assert ck["trainer"]["epoch"] == best
    # `lm eval RUN` without TEXT scores the held-out last 5%, with the best weights
    assert run(["lm", "eval", out, "--json"], capsys)[0] == 0
    model, vocab, cfg, _ = load_lm(out)
    part = TEXT[int(len(TEXT) * 0.95) :]
    rc, o, e = run(["lm", "eval", out, "--json"], capsys)
    assert rc == 0 and "this run has scored this data 2 times" in e
    recs = read_scores(out)
    assert len(recs) == 2 and recs[0]["sha256"] == hashlib.sha256(part.encode()).hexdigest()
    assert recs[1]["figures"] == json.loads(o) and recs[1]["part"] == "held-out test part"
    assert recs[1]["command"] == ["rnnkit", "lm", "eval", str(out), "--json"]
    # given its own --valid, a run holds nothing out: eval then needs a TEXT
    out2 = tmp_path / "run2"
    assert run(["lm", "train", text, "--valid", text, "--out", out2, "--epochs", "1", *SMALL],
               capsys)[0] == 0  # fmt: skip
    rc, _, e = run(["lm", "eval", out2], capsys)
    assert rc == 1 and "held no test part" in e and e.count("\n") == 1


@pytest.mark.parametrize("command", ["lm", "classify", "tag", "qa"])
def test_train_refuses_test(command, tmp_path, capsys):
    rc, _, e = run([command, "train", tmp_path / "x", "--test", tmp_path / "y"], capsys)
    assert rc == 2 and e.count("\n") == 1
    assert f"score the test data once, after training, with `rnnkit {command} eval" in e


def test_classify_eval_records_ensembles(tmp_path, capsys):
    rows = ["sentence\tlabel"] + [f"{w} movie\t{int(w == 'good')}" for w in ["good", "bad"] * 30]
    data = tmp_path / "d.tsv"
    data.write_text("\n".join(rows) + "\n")
    runs = []
    for seed in (1, 2):
        out = tmp_path / f"c{seed}"
        assert run(["classify", "train", data, "--valid", data, "--out", out, "--epochs", "1",
                    "--embed", "4", "--hidden", "4", "--seed", seed, "--no-progress"],
                   capsys)[0] == 0  # fmt: skip
        runs.append(out)
    rc, o, e = run(["classify", "eval", runs[0] / "best", data, "--ensemble", runs[1], "--json"],
                   capsys)  # fmt: skip
    assert rc == 0 and "scored this data once" in e
    assert run_folder(runs[0] / "best") == runs[0]
    (rec,) = read_scores(runs[0])
    assert rec["ensemble"] == [str(runs[1])] and rec["figures"] == json.loads(o)
    assert rec["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert rec["commit"] == source_commit() and rec["time"].endswith("+00:00")
    (runs[0] / "scores.jsonl").write_text("not json\n")
    rc, _, e = run(["classify", "eval", runs[0], data], capsys)
    assert rc == 1 and "scores.jsonl:1: not a JSON record" in e
