"""Run configs: ``--config FILE`` on every train command; a run's ``config.toml`` trains it
again with identical losses; options override the file; a bad file is one line naming the
key and the file; what the writer writes, tomllib reads back; shell completion works as the
README says."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from tiny_data import write_tiny_data

from rnnkit.cli import cli, main
from rnnkit.cli.options import NOT_SETTINGS
from rnnkit.recipes.lm import LMData, LMTrainConfig
from rnnkit.recipes.mt import MTData, MTTrainConfig
from rnnkit.recipes.qa import QAData, QATrainConfig
from rnnkit.recipes.task import ClassifyData, ClassifyTrainConfig, TagData, TagTrainConfig
from rnnkit.train.runconfig import dumps, tomllib  # tomllib, or tomli before Python 3.11

COMMON = ["--log-every", "1", "--no-progress", "--seed", "5"]


def test_writer_round_trips_through_tomllib():
    settings = {
        "quotes": 'say "hi" \\ bye', "controls": "tab\tnew\nline\x00\x1f\x7f\x08",
        "unicode": "ünïcödé ☃ 𝄞", "empty": "", "tiny": 1e-5, "big": 1e300, "third": 1 / 3,
        "neg_zero": -0.0, "inf": math.inf, "ninf": -math.inf, "int": 2**62, "neg": -7,
        "yes": True, "no": False, "none": None, "files": ["a b.txt", 'c"d'], "nothing": [],
    }  # fmt: skip
    back = tomllib.loads(dumps(settings, "a header\nof two lines"))
    assert back == {**settings, "none": False}
    assert math.isnan(tomllib.loads(dumps({"x": math.nan}))["x"])
    assert str(back["neg_zero"]) == "-0.0"


TRAIN_COMMANDS = {
    "lm": (LMData, LMTrainConfig), "classify": (ClassifyData, ClassifyTrainConfig),
    "tag": (TagData, TagTrainConfig), "mt": (MTData, MTTrainConfig), "qa": (QAData, QATrainConfig),
}  # fmt: skip


@pytest.mark.parametrize("group", sorted(TRAIN_COMMANDS))
def test_every_config_key_is_a_setting_of_its_command(group):
    command = cli.commands[group].commands["train"]
    names = {p.name for p in command.params}
    assert "config" in names
    keys = {f.name for cls in TRAIN_COMMANDS[group] for f in fields(cls)}
    assert keys <= names - set(NOT_SETTINGS), keys - names


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_data(tmp_path_factory.mktemp("data"))


def runs(d):
    return {
        "lm": ["lm", "train", d / "text.txt", "--hidden", "8", "--embed", "8", "--bptt", "8",
               "--batch-size", "3", "--epochs", "2", "--clip-norm", "1", "--tie"],
        "classify": ["classify", "train", d / "train.tsv", "--embed", "6", "--hidden", "5",
                     "--batch-size", "8", "--epochs", "2", "--unk-replace", "0.3",
                     "--dropout", "0.2"],
        "tag": ["tag", "train", d / "eng.train", "--valid", d / "eng.testa", "--embed", "6",
                "--hidden", "5", "--char-embed", "3", "--char-hidden", "3", "--batch-size", "8",
                "--epochs", "1"],
        "mt": ["mt", "train", "--src", d / "train.de", "--tgt", d / "train.en", "--valid-src",
               d / "train.vde", "--valid-tgt", d / "train.ven", "--embed", "6", "--hidden", "5",
               "--batch-size", "8", "--epochs", "2", "--min-count", "1", "--lr", "0.01"],
        "qa": ["qa", "train", d / "babi", "--task", "1", "--embed", "8", "--hidden", "6",
               "--hops", "1", "--combine", "8", "--batch-size", "16", "--epochs", "2"],
    }  # fmt: skip


def figures(out):
    recs = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k in ("type", "step", "loss", "train_loss")
             or k.startswith("valid_")} for r in recs]  # fmt: skip


def body(out):
    """config.toml without its comment lines (they name the run folder)."""
    lines = (Path(out) / "config.toml").read_text().splitlines()
    return [line for line in lines if not line.startswith("#")]


@pytest.mark.parametrize("group", sorted(TRAIN_COMMANDS))
def test_config_toml_trains_the_run_again(group, data, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([str(x) for x in [*runs(data)[group], *COMMON, "--out", a]]) == 0
    assert main([group, "train", "--config", str(a / "config.toml"), "--out", str(b),
                 "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    first = figures(a)
    assert any(r["type"] == "train" for r in first) and any(r["type"] == "epoch" for r in first)
    assert figures(b) == first
    assert body(b) == body(a)
    written = tomllib.loads((a / "config.toml").read_text())
    assert written["log_every"] == 1 and written["seed"] == 5


def test_the_command_line_overrides_the_file(data, tmp_path, capsys):
    run = tmp_path / "run.toml"
    run.write_text(f'text = "{data / "text.txt"}"\nhidden = 8\nembed = 4\nbptt = 8\n'
                   "batch_size = 3\nepochs = 2\ncell = 'gru'\nclip_value = false\n")  # fmt: skip
    out = tmp_path / "out"
    assert main(["lm", "train", "--config", str(run), "--epochs", "1", "--hidden", "6",
                 "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    got = tomllib.loads((out / "config.toml").read_text())
    assert (got["epochs"], got["hidden"], got["embed"], got["cell"]) == (1, 6, 4, "gru")
    assert got["text"] == [str(data / "text.txt")] and got["clip_value"] is False  # none
    assert json.loads((out / "summary.json").read_text())["epochs_completed"] == 1


@pytest.mark.parametrize(
    "content,message",
    [
        ("hiden = 3", "{f}: unknown key 'hiden' (did you mean 'hidden'?)"),
        ("frobnicate = 3", "{f}: unknown key 'frobnicate' (not a setting of rnnkit lm train)"),
        ("hidden = -3", "{f}: hidden: -3 is not in the range x>=1."),
        ("cell = 'transformer'", "{f}: cell: 'transformer' is not one of 'rnn', 'lstm', 'gru'."),
        ("hidden = [1, 2]", "{f}: hidden: expected integer range, got [1, 2]"),
        ("hidden = ", "{f}: not valid TOML: Invalid value (at line 1, column 10)"),
        ("out = 'x'", "{f}: 'out' is not a run setting; give --out on the command line"),
        ("[model]\nhidden = 3", "{f}: unknown key 'model' (not a setting of rnnkit lm train)"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(content, message, tmp_path, capsys):
    f = tmp_path / "run.toml"
    f.write_text(content + "\n")
    assert main(["lm", "train", "--config", str(f), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err == f"rnnkit: error: {message.format(f=f)}\n"
    assert not (tmp_path / "o").exists()


def test_missing_file_and_resume_with_a_config(data, tmp_path, capsys):
    assert main(["lm", "train", "--config", str(tmp_path / "no.toml")]) == 1
    assert capsys.readouterr().err == f"rnnkit: error: {tmp_path / 'no.toml'}: no such file\n"
    f = tmp_path / "run.toml"
    f.write_text("hidden = 8\n")
    assert main(["lm", "train", "--resume", "--config", str(f), "--out", str(tmp_path)]) == 2
    assert "only --epochs may change (got --hidden)" in capsys.readouterr().err


def test_shell_completion_as_documented():
    env = {**os.environ, "_RNNKIT_COMPLETE": "bash_source"}
    r = subprocess.run([sys.executable, "-m", "rnnkit"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "_rnnkit_completion()" in r.stdout, r.stderr
    env = {**os.environ, "_RNNKIT_COMPLETE": "bash_complete", "COMP_WORDS": "rnnkit lm train --con",
           "COMP_CWORD": "3"}  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "rnnkit"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.splitlines() == ["plain,--config"], r.stdout + r.stderr
