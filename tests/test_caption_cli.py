"""``rnnkit caption prepare|train|eval|describe|export-image`` end to end on a tiny model, and
their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rnnkit.cli import main

TINY = ["--channels", "4,8", "--embed", "8", "--hidden", "16", "--attn-size", "8",
        "--batch-size", "20", "--epochs", "2", "--max-len", "12", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("caption")
    data = d / "scenes"
    assert main(["caption", "prepare", "--out", str(data), "--train", "40", "--valid", "8",
                 "--test", "8", "--seed", "1"]) == 0  # fmt: skip
    out = {}
    for att in ("none", "soft"):
        out[att] = d / f"run-{att}"
        extra = ["--batch-norm"] if att == "soft" else []
        assert main(["--backend", "numpy", "caption", "train", "--data", str(data),
                     "--attention", att, "--out", str(out[att]), *TINY, *extra]) == 0  # fmt: skip
    return data, out


def test_train_writes_a_run_and_validates_only(runs, capsys):
    data, out = runs
    summary = json.loads((out["soft"] / "summary.json").read_text())
    assert summary["epochs_completed"] == 2 and "test" not in summary
    v = summary["valid"]
    assert v["images"] == 8 and set(v["greedy"]) >= {"bleu1", "bleu4", "cider_d", "grounding"}
    epochs = [json.loads(x) for x in (out["soft"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["type"] == "epoch"] == [1, 2]
    assert all("valid_bleu" in r for r in epochs if r["type"] == "epoch")


def test_eval_records_the_test_split_once(runs, capsys, tmp_path):
    data, out = runs
    run = out["none"]
    assert main(["caption", "eval", str(run), "--split", "test", "--beam", "2"]) == 0
    text = capsys.readouterr().out
    assert "test greedy: BLEU-1" in text and "CIDEr-D" in text and "scored 1 time(s)" in text
    record = json.loads((run / "eval-test.json").read_text())
    assert record["times_scored"] == 1 and record["figures"]["images"] == 8
    assert record["command"].startswith("rnnkit caption eval") and record["commit"]
    (score,) = [json.loads(x) for x in (run / "scores.jsonl").read_text().splitlines()]
    assert score["part"] == "test" and score["figures"]["greedy"] == record["figures"]["greedy"]
    assert main(["caption", "eval", str(run), "--split", "test"]) == 1
    err = capsys.readouterr().err
    assert "already scored" in err and err.count("\n") == 1
    assert main(["caption", "eval", str(out["soft"]), "--split", "valid", "--json"]) == 0
    figs = json.loads(capsys.readouterr().out)["figures"]
    assert figs["greedy"]["grounding"]["digit"]["words"] >= 0


def test_describe_draws_the_attention(runs, capsys, tmp_path):
    data, out = runs
    png = tmp_path / "scene.png"
    assert main(["caption", "export-image", str(data), "3", str(png), "--split", "test"]) == 0
    refs = capsys.readouterr().out.splitlines()
    assert len(refs) >= 3 and Image.open(png).size == (40, 40)
    att = tmp_path / "att.png"
    assert main(["caption", "describe", str(out["soft"]), str(png), "--png", str(att)]) == 0
    caption = capsys.readouterr().out.strip()
    picture = np.asarray(Image.open(att))
    assert picture.ndim == 3 and picture.shape[0] > 100  # a figure, one panel per word
    n_words = len(caption.split()) + 1  # and </s>
    assert n_words >= 1
    # no attention, no picture: one line
    assert main(["caption", "describe", str(out["none"]), str(png), "--png", str(att)]) == 1
    assert "no attention" in capsys.readouterr().err


def test_prepare_from_caption_files(tmp_path, capsys):
    for k in range(6):
        Image.new("RGB", (20, 24), (40 * k, 0, 0)).save(tmp_path / f"p{k}.png")
    (tmp_path / "c.tsv").write_text("".join(f"p{k}.png#0\tA photo, number {k}.\n"
                                            for k in range(6)))  # fmt: skip
    out = tmp_path / "mine"
    assert main(["caption", "prepare", "--out", str(out), "--captions", str(tmp_path / "c.tsv"),
                 "--images", str(tmp_path), "--size", "16"]) == 0  # fmt: skip
    assert "6 " not in capsys.readouterr().err
    counts = sum(len((out / f"{s}.jsonl").read_text().splitlines())
                 for s in ("train", "valid", "test"))  # fmt: skip
    assert counts == 6


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["caption", "train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "caption prepare" in err and err.count("\n") == 1
    assert main(["caption", "prepare", "--out", str(tmp_path / "x"), "--captions", "c.tsv"]) == 2
    assert main(["caption", "train", "--data", str(tmp_path), "--channels", "4,x",
                 "--out", str(tmp_path / "r2"), "--no-progress"]) == 1  # fmt: skip
    assert "--channels" in capsys.readouterr().err


def test_resume_is_exact(runs, tmp_path, capsys):
    """Stopped after 1 step and resumed, a run ends with the weights (batch-norm running
    statistics included) of the run that was not stopped: the caption drawn for each image
    comes from the model's generator, which the checkpoint keeps."""
    from safetensors.numpy import load_file

    data, out = runs
    args = ["--backend", "numpy", "caption", "train", "--data", str(data), "--attention",
            "soft", "--batch-norm", *TINY, "--epochs", "1"]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*args, "--out", str(a)]) == 0
    assert main([*args, "--out", str(b), "--max-steps", "1"]) == 0
    assert "continue with --resume" in capsys.readouterr().out
    assert main(["--backend", "numpy", "caption", "train", "--out", str(b), "--resume",
                 "--no-progress"]) == 0  # fmt: skip
    wa = load_file(str(a / "checkpoint" / "model.safetensors"))
    wb = load_file(str(b / "checkpoint" / "model.safetensors"))
    assert "encoder.1.running_var" in wa
    assert max(float(np.abs(wa[k] - wb[k]).max()) for k in wa) == 0.0
