"""``rnnkit music`` end to end on six chorales and tiny models: prepare, train (roll and
tokens), eval (the test split once, with the commit), sample (MIDI read by mido, MusicXML
read by music21, PNG, WAV), check; bad input is one line and a non-zero exit."""

from __future__ import annotations

import json

import mido
import music21
import pytest

from rnnkit.cli import main
from rnnkit.text.chorales import read_dataset, split_of

# four training chorales, one validation, one test (the split is by name)
NAMES = ["bwv10.7", "bwv101.7", "bwv103.6", "bwv104.6", "bwv102.7", "bwv114.7"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("music") / "data"
    assert main(["music", "prepare", "--out", str(out), "--names", ",".join(NAMES)]) == 0
    return out


@pytest.fixture(scope="module")
def roll_run(data):
    run = data.parent / "roll"
    args = ["music", "train", str(data), "--cell", "gru", "--hidden", "8", "--epochs", "2",
            "--batch-size", "2", "--out", str(run), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return run


def test_prepare_writes_the_split_and_tokens(data):
    d = read_dataset(data)
    assert {s: [c.name for c in cs] for s, cs in d.chorales.items()} == {
        "train": ["bwv10.7", "bwv101.7", "bwv103.6", "bwv104.6"],
        "valid": ["bwv102.7"], "test": ["bwv114.7"],
    }  # fmt: skip
    assert all(c.split == split_of(c.name) for cs in d.chorales.values() for c in cs)
    lines = (data / "tokens.valid.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("| S")


def test_train_eval_test_once(roll_run, capsys):
    summary = json.loads((roll_run / "summary.json").read_text())
    assert summary["complete"] and "test" not in summary  # training never scores the test
    assert main(["music", "eval", str(roll_run), "--split", "valid"]) == 0
    assert main(["music", "eval", str(roll_run), "--split", "test"]) == 0
    rec = json.loads((roll_run / "eval-test.json").read_text())
    assert rec["times_scored"] == 1 and len(rec["commit"]) == 40
    assert (
        rec["figures"]["chorales"] == 1
        and rec["command"] == f"rnnkit music eval {roll_run} --split test"
    )
    capsys.readouterr()
    assert main(["music", "eval", str(roll_run), "--split", "test"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already scored (1 time(s)" in err
    assert main(["music", "eval", str(roll_run), "--split", "test", "--rescore"]) == 0
    rec = json.loads((roll_run / "eval-test.json").read_text())
    assert rec["times_scored"] == 2 and len(rec["history"]) == 2
    assert rec["history"][0]["figures"] == rec["history"][1]["figures"]


def test_sample_files_load_elsewhere(roll_run, tmp_path, capsys):
    out = tmp_path / "chorale.mid"
    args = ["music", "sample", str(roll_run), "--out", str(out), "--seed", "1", "--bars", "2",
            "--prime", "bwv102.7", "--prime-bars", "1", "--wav"]  # fmt: skip
    assert main(args) == 0
    assert "bwv102.7 (valid chorale" in capsys.readouterr().out
    mf = mido.MidiFile(str(out))
    assert mf.type == 1 and any(m.type == "note_on" for m in mf.tracks[1])
    score = music21.converter.parse(str(out.with_suffix(".musicxml")))
    assert len(score.parts) == 4
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.with_suffix(".wav").read_bytes()[:4] == b"RIFF"
    again = tmp_path / "again.mid"
    assert main([*args[:4], str(again), *args[5:]]) == 0
    assert again.read_bytes() == out.read_bytes()  # --seed makes it reproducible


def test_tokens_run(data, tmp_path):
    run = tmp_path / "tok"
    args = ["music", "train", str(data), "--form", "tokens", "--cell", "lstm", "--hidden", "8",
            "--embed", "4", "--bptt", "20", "--epochs", "1", "--out", str(run),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert main(["music", "eval", str(run), "--split", "valid"]) == 0
    fig = json.loads((run / "eval-valid.json").read_text())["figures"]
    assert fig["tokens"] > 100 and fig["nats_per_step"] > fig["nll_per_token"]
    out = tmp_path / "t.mid"
    assert main(["music", "sample", str(run), "--out", str(out), "--seed", "2", "--bars", "2"]) == 0
    mf = mido.MidiFile(str(out))
    assert [t.name for t in mf.tracks[1:]] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert main(["music", "check", str(run), "--samples", "2", "--bars", "2"]) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["music", "prepare", "--out", "{tmp}/d", "--names", "bwv0"], "--names: not chorales"),
        (["music", "train", "{tmp}"], "not a prepared chorale data set"),
        (["music", "sample", "{roll}", "--out", "{tmp}/x.txt"], "--out: expected a .mid"),
        (["music", "sample", "{roll}", "--out", "{tmp}/x.mid", "--prime", "bwv0"], "no chorale"),
        (["music", "eval", "{tmp}"], "not an rnnkit checkpoint"),
    ],
)
def test_bad_input_is_one_line(roll_run, tmp_path, capsys, args, message):
    args = [a.format(tmp=tmp_path, roll=roll_run) for a in args]
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not list(tmp_path.glob("x.*"))


def test_transposition_changes_what_is_trained(data, tmp_path, capsys):
    common = ["--cell", "rnn", "--hidden", "4", "--epochs", "1", "--batch-size", "2",
              "--no-progress"]  # fmt: skip
    losses = []
    for k in ("0", "3"):
        out = tmp_path / f"t{k}"
        assert (
            main(["music", "train", str(data), *common, "--transpose", k, "--out", str(out)]) == 0
        )
        rec = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        losses.append([r["train_loss"] for r in rec if r.get("type") == "epoch"][0])
    assert losses[0] != losses[1]
    capsys.readouterr()
    args = ["music", "train", str(data), "--form", "tokens", "--hidden", "4", "--embed", "4",
            "--epochs", "1", "--batch-size", "1", "--bptt", "10", "--no-progress"]  # fmt: skip
    sizes = []
    for k in ("0", "1"):
        assert main([*args, "--transpose", k, "--out", str(tmp_path / f"k{k}")]) == 0
        line = capsys.readouterr().out.splitlines()[0]
        sizes.append(int(line.split(" tokens per epoch")[0].rsplit(" ", 1)[1].replace(",", "")))
    # each chorale also a semitone down and up, but those with the range's extreme notes
    assert 2 * sizes[0] < sizes[1] < 3 * sizes[0]
