"""`rnnkit lm` end to end: training, exact resume (also after Ctrl-C), sampling, evaluation,
and every bad input of the issue as one line on stderr with a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.train.checkpoint import save_checkpoint

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\n"
    "Resolved. resolved.\n"
) * 6

SMALL = ["--hidden", "16", "--embed", "8", "--layers", "2", "--bptt", "10", "--batch-size", "4",
         "--dropout", "0.2", "--log-every", "1", "--no-progress", "--seed", "3"]  # fmt: skip


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "text.txt"
    p.write_text(TEXT)
    return p


def losses(out):
    recs = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in recs if r["type"] == "train"]


def run(argv, capsys):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_train_sample_eval(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    rc, o, e = run(["lm", "train", corpus, "--epochs", "2", "--out", out, *SMALL], capsys)
    assert rc == 0, e
    assert (out / "loss.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["valid"]["bits_per_char"] > 0
    first, last = losses(out)[0][1], losses(out)[-1][1]
    assert last < first  # it learns
    rc, o, e = run(
        ["lm", "sample", out, "--prime", "All:", "--length", "40", "--seed", "1"], capsys
    )
    assert rc == 0 and o.startswith("All:") and len(o) >= 44, e
    rc2, o2, _ = run(
        ["lm", "sample", out, "--prime", "All:", "--length", "40", "--seed", "1"], capsys
    )
    assert o2 == o  # seeded
    rc, o, e = run(["lm", "eval", out, corpus, "--json"], capsys)
    assert rc == 0, e
    res = json.loads(o)
    assert abs(res["bits_per_char"] - res["loss"] / np.log(2)) < 1e-9
    assert abs(res["perplexity"] - np.exp(res["loss"])) < 1e-6


def test_resume_reproduces_uninterrupted_losses(corpus, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(["lm", "train", corpus, "--epochs", "2", "--out", a, *SMALL], capsys)[0] == 0
    n = len(losses(a))
    # b: stopped twice mid-epoch (at steps 5 and 5 + n//2), resumed each time
    assert run(["lm", "train", corpus, "--epochs", "2", "--out", b, *SMALL, "--max-steps", "5"],
               capsys)[0] == 0  # fmt: skip
    assert run(["lm", "train", "--resume", "--out", b, "--max-steps", n // 2, "--no-progress"],
               capsys)[0] == 0  # fmt: skip
    assert len(losses(b)) == 5 + n // 2
    assert run(["lm", "train", "--resume", "--out", b, "--no-progress"], capsys)[0] == 0
    assert losses(b) == losses(a)  # exactly the same floats
    assert json.loads((b / "summary.json").read_text()) == json.loads(
        (a / "summary.json").read_text()
    )


def test_resuming_at_the_end_of_an_epoch(corpus, tmp_path, capsys):
    """A run stopped after an epoch's last window but before its record (Ctrl-C can land
    there too) resumes with no window of that epoch left: it records the epoch and goes
    on, without a traceback."""
    out = tmp_path / "run"
    rc, text, _ = run(["lm", "train", corpus, "--epochs", "1", *SMALL, "--max-steps", "1",
                       "--out", tmp_path / "probe"], capsys)  # fmt: skip
    assert rc == 0
    windows = int(re.search(r"(\d+) windows", text).group(1))
    rc, _, _ = run(["lm", "train", corpus, "--epochs", "2", *SMALL, "--max-steps", windows,
                    "--out", out], capsys)  # fmt: skip
    assert rc == 0 and len(losses(out)) == windows
    rc, text, err = run(["lm", "train", "--resume", "--out", out, "--no-progress"], capsys)
    assert rc == 0, err
    assert "epoch 1/2: no windows left" in text and "epoch 2/2: train loss" in text
    assert len(losses(out)) == 2 * windows


def test_ctrl_c_leaves_a_resumable_checkpoint(corpus, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["lm", "train", str(corpus), "--epochs", "40", *SMALL]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", *args, "--out", str(b)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline:
        m = b / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 30:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    stopped = len(losses(b))
    assert 30 <= stopped < 40 * 20
    assert run(["lm", "train", "--resume", "--out", b, "--epochs", "3", "--no-progress"],
               capsys)[0] == 0  # fmt: skip
    args[4] = "3"  # the same run, uninterrupted, for 3 epochs
    assert run([*args, "--out", a], capsys)[0] == 0
    assert losses(b) == losses(a)


def expect_error(argv, capsys, pattern):
    rc, out, err = run(argv, capsys)
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert pattern in lines[0], lines[0]
    return lines[0]


def test_bad_text_files(tmp_path, capsys):
    out = tmp_path / "out"
    expect_error(
        ["lm", "train", tmp_path / "nope.txt", "--out", out], capsys, "nope.txt: no such file"
    )
    (tmp_path / "empty.txt").write_text("")
    expect_error(
        ["lm", "train", tmp_path / "empty.txt", "--out", out], capsys, "empty.txt: file is empty"
    )
    (tmp_path / "bin.txt").write_bytes(b"abc\x00\x01\x02" * 10)
    expect_error(
        ["lm", "train", tmp_path / "bin.txt", "--out", out], capsys, "bin.txt: looks binary"
    )
    (tmp_path / "latin.txt").write_bytes(("caf\xe9 " * 200).encode("latin-1"))
    expect_error(["lm", "train", tmp_path / "latin.txt", "--out", out], capsys,
                 "latin.txt: not valid utf-8 at byte offset 3")  # fmt: skip
    (tmp_path / "short.txt").write_text("too short\n")
    expect_error(["lm", "train", tmp_path / "short.txt", "--out", out], capsys,
                 "corpus has")  # fmt: skip
    expect_error(["lm", "train", tmp_path / "short.txt", "--hidden", "0", "--out", out], capsys,
                 "'--hidden'")  # fmt: skip
    expect_error(["lm", "train", "--bptt", "-3", "--out", out], capsys, "'--bptt'")
    assert not out.exists() or not any(out.iterdir())  # nothing half-written


def test_encoding_option(tmp_path, capsys):
    p = tmp_path / "latin.txt"
    p.write_bytes(("caf\xe9 au lait " * 300).encode("latin-1"))
    rc, _, err = run(["lm", "train", p, "--encoding", "latin-1", "--epochs", "1", "--out",
                      tmp_path / "o", *SMALL], capsys)  # fmt: skip
    assert rc == 0, err


def test_bad_checkpoints_and_prime(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["lm", "train", corpus, "--epochs", "1", "--out", out, *SMALL], capsys)[0] == 0
    expect_error(["lm", "sample", out, "--prime", "Zero\u2603"], capsys,
                 "--prime: 2 symbols not in the vocabulary: 'Z', '\u2603'")  # fmt: skip
    expect_error(["lm", "sample", tmp_path / "missing"], capsys, "no such checkpoint directory")
    other = tmp_path / "other"
    save_checkpoint(other, kind="classifier", params={"w": np.zeros(2)})
    expect_error(["lm", "sample", other], capsys, "holds a 'classifier' model, expected 'lm'")
    for part in ("best", "checkpoint"):  # a run folder is read through best/ first
        weights = out / part / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])
        expect_error(["lm", "sample", out], capsys, "model.safetensors: truncated")
        expect_error(["lm", "sample", out / part], capsys, "model.safetensors: truncated")
    expect_error(
        ["lm", "train", corpus, "--out", out, *SMALL], capsys, "already holds a checkpoint"
    )
