"""`rnnkit gradflow`, `rnnkit cliff`, `rnnkit pathological` and `rnnkit summary` end to
end, and their bad inputs as one line on stderr with a non-zero exit."""

from __future__ import annotations

import json

import pytest

from rnnkit.cli import main
from rnnkit.models.lm import LanguageModel, LMConfig
from rnnkit.train.checkpoint import save_checkpoint


def one_line_error(capsys, rc, *fragments):
    err = capsys.readouterr().err.strip()
    assert rc != 0 and len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, err


def test_gradflow_writes_a_plot(tmp_path, capsys):
    out = tmp_path / "g.png"
    rc = main(["gradflow", "--length", "12", "--hidden", "4", "--batch", "2", "--lambda1",
               "0.5", "--lambda1", "2", "--forget-bias", "3", "--out", str(out)])  # fmt: skip
    assert rc == 0 and out.read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    for label in ("RNN lambda_1=0.5", "RNN lambda_1=2", "LSTM forget bias 3", "GRU"):
        assert label in text
    row = next(line for line in text.splitlines() if line.startswith("RNN lambda_1=0.5"))
    assert row.split()[2:4] == ["0.500", "0.500"]  # lambda_1 and gamma * lambda_1 (tanh)


def test_gradflow_one_cell_and_bad_input(tmp_path, capsys):
    out = tmp_path / "g.png"
    rc = main(["gradflow", "--cell", "rnn", "--nonlinearity", "sigmoid", "--lambda1", "2",
               "-T", "5", "--hidden", "3", "--out", str(out)])  # fmt: skip
    assert rc == 0 and "0.500" in capsys.readouterr().out  # gamma = 1/4: 2 / 4
    one_line_error(capsys, main(["gradflow", "--cell", "xyz", "--out", str(out)]), "--cell")
    one_line_error(capsys, main(["gradflow", "--lambda1", "-1", "--out", str(out)]), "--lambda1")
    one_line_error(capsys, main(["gradflow", "--length", "0", "--out", str(out)]), "--length")
    one_line_error(capsys, main(["gradflow"]), "--out")


def test_cliff(tmp_path, capsys):
    out = tmp_path / "c.png"
    assert main(["cliff", "--resolution", "10", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "b* = -4.479674" in text and out.stat().st_size > 0
    one_line_error(capsys, main(["cliff", "--resolution", "3", "--out", str(out)]), "resolution")


def test_pathological_runs_resumes_and_plots(tmp_path, capsys):
    out = tmp_path / "exp"
    args = ["pathological", "temporal_order", "-T", "12", "-T", "15", "--method", "sgd",
            "--method", "clip", "--seeds", "1", "--steps", "4", "--hidden", "6", "--eval-every",
            "2", "--test-size", "50", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    cap = capsys.readouterr()
    assert "| 12 | 0/1 | 0/1 |" in cap.out and "| 15 |" in cap.out
    assert cap.err.count("not solved after 4 steps") == 4
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["method"] for r in rows} == {"sgd", "clip"}
    for name in ("table.md", "success-temporal_order.png", "gradnorm-temporal_order.png"):
        assert (out / name).stat().st_size > 0
    assert main(args) == 0  # everything is already there: nothing runs again
    assert capsys.readouterr().err == ""
    more = ["pathological", "temporal_order", "-T", "20", "--method", "clip", "--seeds", "1",
            "--steps", "2", "--hidden", "6", "--test-size", "20", "--no-progress", "--out",
            str(out)]  # fmt: skip
    assert main(more) == 0  # another command adds a row to the folder's table
    text = capsys.readouterr().out
    assert "| 12 | 0/1 | 0/1 |" in text and "| 20 |  | 0/1 |" in text
    assert "| 20 |  | 0/1 |" in (out / "table.md").read_text()


def test_pathological_bad_input(tmp_path, capsys):
    base = ["pathological", "temporal_order", "--no-progress"]
    one_line_error(capsys, main([*base, "-T", "5"]), "--length", "at least 10")
    one_line_error(capsys, main(["pathological", "nope", "-T", "20"]), "TASK")
    one_line_error(capsys, main([*base, "-T", "20", "--method", "adam"]), "--method")
    one_line_error(capsys, main([*base, "-T", "20", "--lr", "0"]), "--lr")
    bad = tmp_path / "exp"
    bad.mkdir()
    (bad / "results.jsonl").write_text("{not json\n")
    one_line_error(capsys, main([*base, "-T", "20", "--steps", "1", "--out", str(bad)]),
                   "results.jsonl:1")  # fmt: skip


def test_summary_of_an_lm_checkpoint(tmp_path, capsys):
    cfg = LMConfig(vocab_size=11, cell="gru", embed=4, hidden=5, layers=2)
    lm = LanguageModel(cfg, seed=0)
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint", kind="lm", params=lm.params,
                    config={"model": cfg.to_dict()}, trainer={"epoch": 2, "step": 40})  # fmt: skip
    for path in (run, run / "checkpoint"):  # the run folder or the checkpoint itself
        assert main(["summary", str(path)]) == 0
        text = capsys.readouterr().out
        lines = text.splitlines()
        assert lines[-1].split() == ["total", str(lm.num_parameters())]
        assert "kind: lm" in text and "epoch: 2" in text and "cell=gru" in text
        counts = {ln.split()[0]: int(ln.split()[-1]) for ln in lines if ln.startswith("rnn.")}
        assert counts["rnn.weight_hh_l1"] == 3 * 5 * 5
    assert sum(p.size for p in lm.params.values()) == lm.num_parameters()


def test_summary_bad_input(tmp_path, capsys):
    one_line_error(capsys, main(["summary", str(tmp_path / "missing")]), "no such checkpoint")
    (tmp_path / "d").mkdir()
    one_line_error(capsys, main(["summary", str(tmp_path / "d")]), "checkpoint.json")


@pytest.mark.parametrize("task", ["adding", "permutation", "memorization_5bit"])
def test_pathological_other_tasks(tmp_path, capsys, task):
    rc = main(["pathological", task, "-T", "10", "--method", "clip-reg", "--seeds", "1",
               "--steps", "2", "--hidden", "4", "--test-size", "20", "--no-progress"])  # fmt: skip
    assert rc == 0 and f"**{task}**" in capsys.readouterr().out
