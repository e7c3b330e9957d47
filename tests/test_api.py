"""The Python API mirrors the command line: ``rnnkit.train_*`` write the runs the train
commands write (identical losses), ``rnnkit.load`` gives models whose ``predict`` /
``sample`` / ``translate`` answer as ``predict`` / ``sample`` / ``translate`` / ``ask`` do;
callbacks see every step and epoch and can stop a run (resumable), early stopping counts its
patience; bad settings are one-line errors; ``import rnnkit`` stays light."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_data import write_tiny_data

import rnnkit
from rnnkit.cli import main
from rnnkit.io import RnnkitError
from rnnkit.recipes.task import ClassifyTrainConfig


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run of every task, trained through the API."""
    d = write_tiny_data(tmp_path_factory.mktemp("api"))
    common = {"log_every": 1, "seed": 3}
    rnnkit.train_lm({"text": [str(d / "text.txt")], "hidden": 8, "embed": 4, "bptt": 8,
                     "batch_size": 3, "epochs": 1, **common}, out=d / "lm")  # fmt: skip
    cfg = ClassifyTrainConfig(embed=6, hidden=5, batch_size=8, epochs=2, **common)
    rnnkit.train_classifier(cfg, train=str(d / "train.tsv"), out=d / "classify")
    rnnkit.train_tagger(train=str(d / "eng.train"),
                        embed=6, hidden=5, char_embed=3, char_hidden=3, batch_size=8,
                        epochs=1, out=d / "tag", **common)  # fmt: skip
    rnnkit.train_translator({"src": str(d / "train.de"), "tgt": str(d / "train.en"),
                             "embed": 6, "hidden": 5, "batch_size": 8, "epochs": 2,
                             "min_count": 1, "lr": 0.01}, out=d / "mt", **common)  # fmt: skip
    rnnkit.train_task("qa", {"inputs": [str(d / "babi" / "qa1_where_train.txt")], "embed": 8,
                             "hidden": 6, "hops": 1, "combine": 8, "batch_size": 16,
                             "epochs": 2}, out=d / "qa", **common)  # fmt: skip
    return d


def cli(argv, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def metrics(out):
    recs = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k in ("type", "step", "loss") or
             k.startswith("valid_")} for r in recs]  # fmt: skip


def test_api_runs_are_the_commands_runs(runs, tmp_path, capsys):
    cli(["classify", "train", runs / "train.tsv", "--embed", "6", "--hidden", "5", "--batch-size",
         "8", "--epochs", "2", "--log-every", "1", "--seed", "3", "--no-progress", "--out",
         tmp_path / "c"], capsys)  # fmt: skip
    assert metrics(tmp_path / "c") == metrics(runs / "classify")
    cli(["lm", "train", "--config", runs / "lm" / "config.toml", "--no-progress", "--out",
         tmp_path / "l"], capsys)  # fmt: skip
    assert metrics(tmp_path / "l") == metrics(runs / "lm")


def test_load_answers_as_the_commands_do(runs, tmp_path, capsys, monkeypatch):
    lm = rnnkit.load(runs / "lm")
    assert isinstance(lm, rnnkit.api.TrainedLM) and lm.config.hidden == 8
    out = cli(["lm", "sample", runs / "lm", "--prime", "All:", "--length", "30", "--seed", "7"],
              capsys)  # fmt: skip
    assert lm.sample("All:", length=30, seed=7) + "\n" == out
    figs = lm.evaluate(runs / "text.txt")
    assert json.loads(cli(["lm", "eval", runs / "lm", runs / "text.txt", "--json"], capsys)) == figs

    sentences = ["a gripping , funny film", "dull and tedious", "", "it 's not bad"]
    clf = rnnkit.load(runs / "classify")
    (tmp_path / "s.txt").write_text("\n".join(sentences) + "\n")
    out = cli(["classify", "predict", runs / "classify", tmp_path / "s.txt"], capsys)
    assert clf.predict(sentences) == out.split("\n")[:-1]
    assert np.allclose(clf.predict_proba(sentences).sum(1), [1, 1, 0, 1])

    words = ["EU rejects German call", "Peter Blackburn"]
    tagged = cli(["tag", "predict", runs / "tag"], capsys, "\n".join(words) + "\n", monkeypatch)
    blocks = [b.splitlines() for b in tagged.strip("\n").split("\n\n")]
    assert rnnkit.load(runs / "tag").predict(words) == [[x.split("\t")[1] for x in b]
                                                        for b in blocks]  # fmt: skip

    src = ["der hund .", "der haus katze .", ""]
    (tmp_path / "src.de").write_text("\n".join(src) + "\n")
    out = cli(["mt", "translate", runs / "mt", tmp_path / "src.de", "--beam", "3"], capsys)
    assert rnnkit.load(runs / "mt").translate(src, beam=3) == out.split("\n")[:-1]

    story = ["1 Mary went to the kitchen.", "2 John went to the garden.",
             "3 Mary went to the office."]  # fmt: skip
    (tmp_path / "story.txt").write_text("\n".join(story) + "\n")
    out = cli(["qa", "ask", runs / "qa", "--story", tmp_path / "story.txt", "--question",
               "Where is Mary?"], capsys)  # fmt: skip
    answer = out.splitlines()[0].removeprefix("answer: ").split(" (p = ")[0]
    assert rnnkit.load(runs / "qa").predict(story, "Where is Mary?") == answer


def test_callbacks_see_every_step_and_epoch_and_stop_a_run(runs, tmp_path):
    steps, epochs = [], []
    hooks = rnnkit.Callback(on_step=lambda r: steps.append(r["step"]) or r["step"] == 5,
                            on_epoch=epochs.append)  # fmt: skip
    settings = {"train": str(runs / "train.tsv"), "embed": 6, "hidden": 5, "batch_size": 8,
                "epochs": 3, "log_every": 1}  # fmt: skip
    s = rnnkit.train_classifier(settings, out=tmp_path / "a", callbacks=[hooks])
    assert steps == [1, 2, 3, 4, 5] and epochs == [] and not s["complete"]
    again = rnnkit.Callback(on_step=lambda r: steps.append(r["step"]), on_epoch=epochs.append)
    s = rnnkit.train_classifier(out=tmp_path / "a", resume=True, callbacks=[again])
    assert s["complete"] and steps == list(range(1, s["steps"] + 1))
    assert [e["epoch"] for e in epochs] == [1, 2, 3] and all("valid_accuracy" in e for e in epochs)
    full = rnnkit.train_classifier(settings, out=tmp_path / "b")
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b") and full["steps"] == s["steps"]


def test_early_stopping_counts_its_patience(runs, tmp_path):
    # no change is an improvement (min_delta): epoch 1 sets the best, 2 and 3 use the patience
    stop = rnnkit.EarlyStopping("valid_loss", patience=2, min_delta=1e9)
    s = rnnkit.train_classifier({"train": str(runs / "train.tsv"), "embed": 6, "hidden": 5,
                                 "batch_size": 16, "epochs": 10}, out=tmp_path / "r",
                                callbacks=[stop])  # fmt: skip
    assert (s["stopped_early"], s["epochs_completed"], s["complete"]) == (3, 3, True)
    assert stop.best_epoch == 1 and "valid" in s  # the best weights were scored
    lm = rnnkit.EarlyStopping("valid_perplexity", patience=1, min_delta=1e9)
    s = rnnkit.train_lm({"text": [str(runs / "text.txt")], "hidden": 8, "embed": 4, "bptt": 8,
                         "batch_size": 3, "epochs": 5},
                        out=tmp_path / "l", callbacks=[lm])  # fmt: skip
    assert (s["stopped_early"], s["epochs_completed"], lm.mode) == (2, 2, "min")
    assert "valid" in s and "test" not in s  # training scores validation only


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"hiden": 3}, "settings: unknown key 'hiden' (did you mean 'hidden'?)"),
        ({"hidden": "big"}, "settings: hidden: expected int, got 'big'"),
        ({"lr": True}, "settings: lr: expected float, got True"),
        ({"text": "a.txt"}, "settings: text: expected a list of strings, got 'a.txt'"),
        ({"cell": None}, "settings: cell: must be set (expected str)"),
    ],
)
def test_bad_settings_are_one_line(settings, message, tmp_path):
    with pytest.raises(RnnkitError) as e:
        rnnkit.train_lm(settings, out=tmp_path / "x")
    assert str(e.value) == message
    assert not (tmp_path / "x").exists()


def test_config_file_errors_name_the_file(runs, tmp_path):
    f = tmp_path / "run.toml"
    f.write_text("hidden = 8\nhops = 2\n")
    with pytest.raises(RnnkitError, match=rf"^{f}: unknown key 'hops' \(not a setting of "):
        rnnkit.train_lm(f, out=tmp_path / "x")
    with pytest.raises(RnnkitError, match="EarlyStopping: the epoch records have no 'valid_f1'"):
        rnnkit.train_classifier({"train": str(runs / "train.tsv"), "epochs": 2, "embed": 4,
                                 "hidden": 4}, out=tmp_path / "y",
                                callbacks=[rnnkit.EarlyStopping("valid_f1")])  # fmt: skip
    with pytest.raises(RnnkitError, match="no such checkpoint directory"):
        rnnkit.load(tmp_path / "nothing")


def test_import_rnnkit_stays_light():
    code = ("import sys, rnnkit; assert 'rnnkit.api' not in sys.modules; "
            "assert 'click' not in sys.modules; rnnkit.train_lm; "
            "assert 'rnnkit.api' in sys.modules")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
