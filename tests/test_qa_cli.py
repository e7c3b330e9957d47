"""``rnnkit qa`` end to end on small synthetic bAbI-format stories: training (the attentive
reader learns where people are and looks at the right sentence), evaluation per task,
``ask`` with its attention picture, multi-word answers, exact resume, and bad input as one
line and exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main

PEOPLE = ["mary", "john", "sandra", "daniel"]
PLACES = ["kitchen", "garden", "office", "hallway", "bathroom"]


def where_stories(n: int, seed: int) -> str:
    """Task-1-like stories: people move; "Where is X?" asks for X's latest place."""
    r = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        sid, at, last = 0, {}, {}
        for _ in range(int(r.integers(1, 4))):
            for _ in range(2):
                p, place = r.choice(PEOPLE), r.choice(PLACES)
                sid += 1
                lines.append(f"{sid} {p.capitalize()} went to the {place}.")
                at[p], last[p] = place, sid
            q = r.choice(sorted(at))
            sid += 1
            lines.append(f"{sid} Where is {q.capitalize()}? \t{at[q]}\t{last[q]}")
    return "\n".join(lines) + "\n"


def route_stories(n: int, seed: int) -> str:
    """Two-word answers: "Where was X?" asks for X's last two places, oldest first."""
    r = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        p = r.choice(PEOPLE)
        a, b = r.choice(PLACES, size=2, replace=False)
        lines += [f"1 {p.capitalize()} went to the {a}.", f"2 {p.capitalize()} went to the {b}.",
                  f"3 Where was {p.capitalize()}?\t{a},{b}\t1 2"]  # fmt: skip
    return "\n".join(lines) + "\n"


SMALL = ["--embed", "16", "--hidden", "8", "--hops", "1", "--combine", "16", "--lr", "0.01",
         "--batch-size", "16", "--log-every", "1", "--no-progress", "--seed", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def babi(tmp_path_factory):
    d = tmp_path_factory.mktemp("babi")
    (d / "qa1_where_train.txt").write_text(where_stories(160, 0))
    (d / "qa1_where_test.txt").write_text(where_stories(40, 1))
    (d / "qa19_route_train.txt").write_text(route_stories(120, 2))
    (d / "qa19_route_test.txt").write_text(route_stories(20, 3))
    return d


@pytest.fixture(scope="module")
def trained(babi):
    out = babi / "run"
    assert main(["qa", "train", str(babi), "--task", "1", "--epochs", "12", "--out", str(out),
                 *SMALL]) == 0  # fmt: skip
    return out


def test_train_eval_ask(babi, trained, tmp_path, capsys):
    summary = json.loads((trained / "summary.json").read_text())
    assert "test" not in summary and "valid" in summary  # training scores validation only
    capsys.readouterr()
    assert main(["qa", "eval", str(trained), str(babi), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    test = res["tasks"]["1"]  # the tasks trained on, by default
    assert test["questions"] == len(where_stories(40, 1).split("\t")) // 2
    # the model answers, and answers by reading the supporting sentence
    assert test["accuracy"] >= 0.9 and test["support_hit"] >= 0.8, test
    rec = json.loads((trained / "scores.jsonl").read_text().splitlines()[-1])
    assert rec["data"] == [str(babi / "qa1_where_test.txt")] and rec["figures"] == res
    assert main(["qa", "eval", str(trained), str(babi / "qa1_where_test.txt")]) == 0
    table = capsys.readouterr().out
    assert "support hit" in table and f"{100 * test['accuracy']:.1f}%" in table

    story = tmp_path / "story.txt"
    story.write_text("1 Mary went to the garden.\n2 John went to the office.\n"
                     "3 Mary went to the kitchen.\n4 John went to the zoo.\n")  # fmt: skip
    png = tmp_path / "att.png"
    assert main(["qa", "ask", str(trained), "--story", str(story), "--question",
                 "Where is Mary?", "--png", str(png)]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("answer: kitchen (p = ")
    assert lines[1] == "attention (hop 1):" and len(lines) == 6
    weights = [float(x.split()[0]) for x in lines[2:]]
    assert np.argmax(weights) == 2 and abs(sum(weights) - 1) < 0.02  # Mary's latest move
    assert "read as <unk>: zoo" in err
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_multiword_answers_are_sequences(babi, tmp_path, capsys):
    out = tmp_path / "route"
    assert main(["qa", "train", str(babi / "qa19_route_train.txt"), "--epochs", "6", "--out",
                 str(out), *SMALL]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "sequence answers (8 symbols)" in text  # <pad> <s> </s> + 5 places
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in recs if r["type"] == "train"]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    story = tmp_path / "s.txt"
    story.write_text("John went to the office.\nJohn went to the garden.\n")
    assert main(["qa", "ask", str(out), "--story", str(story), "--question",
                 "Where was John?"]) == 0  # fmt: skip
    answer = capsys.readouterr().out.splitlines()[0]
    assert answer.startswith("answer: ") and " (p = " not in answer  # decoded, not a class


def test_lstm_reader_and_exact_resume(babi, tmp_path, capsys):
    args = [str(babi), "--task", "1", "--model", "lstm", "--epochs", "2", *SMALL]
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["qa", "train", *args, "--out", str(full)]) == 0
    assert main(["qa", "train", *args, "--out", str(part), "--max-steps", "5"]) == 0
    assert "continue with --resume" in capsys.readouterr().out
    assert main(["qa", "train", "--resume", "--out", str(part), "--no-progress"]) == 0

    def losses(run: Path) -> list[tuple[int, float]]:
        recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], round(r["loss"], 10)) for r in recs if r["type"] == "train"]

    assert losses(part) == losses(full) and len(losses(full)) > 10
    a = json.loads((full / "summary.json").read_text())["valid"]
    assert a == json.loads((part / "summary.json").read_text())["valid"]
    assert "support_hit" not in a["overall"]  # the LSTM reader has no attention
    assert main(["qa", "train", "--resume", "--out", str(part), "--hops", "2"]) == 2


def test_bad_input_is_one_line(babi, trained, tmp_path, capsys):
    bad = tmp_path / "qa1_bad_train.txt"
    bad.write_text("1 Mary went home.\n2 Where is Mary?\thome\t1\n4 John left.\n")
    assert main(["qa", "train", str(bad), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"rnnkit: error: {bad}:3: ID 4 does not follow 2 (IDs count 1, 2, 3, ... " \
                  "and restart at 1 with each story)"  # fmt: skip
    bad.write_text("1 Where is Mary?\thome\t1\n")
    assert main(["qa", "eval", str(trained), str(bad)]) == 1
    assert "question before any statement" in capsys.readouterr().err
    assert main(["qa", "train", str(babi), "--out", str(tmp_path / "y")]) == 2  # no --task
    assert "--task" in capsys.readouterr().err
    assert main(["qa", "train", str(babi), "--task", "7", "--out", str(tmp_path / "y")]) == 1
    assert "no train file of task 7" in capsys.readouterr().err
    story = tmp_path / "s.txt"
    story.write_text("Mary went home.\n")
    assert main(["qa", "ask", str(trained), "--story", str(story), "--question", "?"]) == 1
    assert capsys.readouterr().err.strip() == "rnnkit: error: --question: holds no words"
    # an answer never seen in training is wrong, counted, and no error
    unseen = tmp_path / "qa1_unseen_test.txt"
    unseen.write_text("1 Mary went to the moon.\n2 Where is Mary?\tmoon\t1\n"
                      "3 John went to the garden.\n4 Where is John?\tgarden\t3\n")  # fmt: skip
    assert main(["qa", "eval", str(trained), str(unseen), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["tasks"]["1"]
    assert res["unknown_answers"] == 1 and res["accuracy"] <= 0.5


def test_attentive_reader_options_reach_the_model(babi, tmp_path):
    """--previous and --hop-temporal (and --fusion) are saved in the checkpoint's model config
    and add their parameters."""
    from rnnkit.recipes.qa import load_qa

    out = tmp_path / "prev"
    assert main(["qa", "train", str(babi), "--task", "1", "--epochs", "1", "--no-test",
                 "--previous", "--hop-temporal", "--out", str(out), *SMALL]) == 0  # fmt: skip
    reader = load_qa(out)
    assert reader.model.config.previous and reader.model.config.hop_temporal
    assert "previous.weight" in reader.model.params and "temporal.0.weight" in reader.model.params
    plain = tmp_path / "plain"
    assert main(["qa", "train", str(babi), "--task", "1", "--epochs", "1", "--no-test",
                 "--out", str(plain), *SMALL]) == 0  # fmt: skip
    assert "previous.weight" not in load_qa(plain).model.params
