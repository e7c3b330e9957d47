"""The logs of a training run as other tools read them: TensorBoard's own reader
(``EventAccumulator``) and Python's ``csv`` give back metrics.jsonl's figures, for the
language model's loop and the shared loop (classify), also after a resume; the per-layer
gradient norms are those of PyTorch's gradients; without tensorboardX, one line says so."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rnnkit.cli import main
from rnnkit.models.lm import LanguageModel
from rnnkit.recipes.lm import LMTrainConfig
from rnnkit.text.vocab import Vocab
from rnnkit.train.data import TBPTTStream

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 5  # fmt: skip
VALID = "All:\nResolved. resolved.\nFirst Citizen:\nFirst, you know Caius Marcius.\n"
LM = ["--hidden", "12", "--embed", "6", "--layers", "2", "--bptt", "8", "--batch-size", "3",
      "--log-every", "2", "--no-progress", "--seed", "4"]  # fmt: skip
SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


@pytest.fixture
def texts(tmp_path):
    (tmp_path / "train.txt").write_text(TEXT)
    (tmp_path / "valid.txt").write_text(VALID)
    return tmp_path


def records(out):
    return [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def check_tensorboard(out):
    """Every number of every record is the scalar TYPE/KEY at its step, in 32 bits."""
    acc = EventAccumulator(str(out), size_guidance={"scalars": 0})
    acc.Reload()
    want: dict[str, list[tuple[int, float]]] = {}
    for r in records(out):
        for k, v in r.items():
            if k not in ("type", "step", "epoch") and isinstance(v, (int, float)):
                want.setdefault(f"{r['type']}/{k}", []).append((r["step"], v))
    assert sorted(acc.Tags()["scalars"]) == sorted(want)
    for tag, points in want.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in points], tag
        for (_, g), (_, w) in zip(got, points, strict=True):
            assert g == float(np.float32(w)) or (math.isnan(g) and math.isnan(w)), (tag, g, w)
    return want


def check_csv(out):
    """metrics.csv: one row per record, every key a column, every value's digits kept."""
    with open(Path(out) / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    recs = records(out)
    assert len(rows) == len(recs)
    for row, r in zip(rows, recs, strict=True):
        assert {k for k, v in row.items() if v != ""} == {k for k, v in r.items() if v is not None}
        for k, v in r.items():
            if isinstance(v, str):
                assert row[k] == v
            elif isinstance(v, float):
                assert float(row[k]) == v or (math.isnan(v) and row[k] == "nan"), k
            elif v is not None:
                assert int(row[k]) == v, k


def test_lm_events_and_csv_equal_metrics_jsonl_also_after_resume(texts, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    args = ["lm", "train", texts / "train.txt", "--valid", texts / "valid.txt", "--epochs", "2",
            *LM]  # fmt: skip
    assert main([str(a) for a in [*args, "--out", full]]) == 0
    tags = check_tensorboard(full)
    check_csv(full)
    expected = {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s",
                "train/grad_norm/rnn.l0", "train/grad_norm/rnn.l1", "epoch/train_loss",
                "epoch/valid_loss", "epoch/valid_perplexity",
                "epoch/valid_bits_per_char"}  # fmt: skip
    assert expected <= set(tags), expected - set(tags)
    # stopped mid-epoch and resumed: the stale events are gone, the logs are the full run's
    assert main([str(a) for a in [*args, "--out", part, "--max-steps", "7"]]) == 0
    assert main(["lm", "train", "--resume", "--out", str(part), "--no-progress"]) == 0
    assert len(list(part.glob("events.out.tfevents.*"))) == 1
    check_tensorboard(part)
    check_csv(part)
    keep = ("type", "step", "loss", "grad_norm", "lr", "valid_loss")
    assert [{k: r.get(k) for k in keep} for r in records(part)] == [
        {k: r.get(k) for k in keep} for r in records(full)
    ]
    capsys.readouterr()


@pytest.fixture
def sst(tmp_path):
    lines = (SST2 / "train.tsv").read_text().splitlines()
    (tmp_path / "train.tsv").write_text("\n".join(lines[:61]) + "\n")
    dev = (SST2 / "dev.tsv").read_text().splitlines()
    (tmp_path / "dev.tsv").write_text("\n".join(dev[:21]) + "\n")
    return tmp_path


def test_shared_loop_logs_per_direction_norms_throughput_and_validation(sst, tmp_path, capsys):
    out = tmp_path / "clf"
    argv = ["classify", "train", sst / "train.tsv", "--valid", sst / "dev.tsv", "--epochs", "2",
            "--embed", "6", "--hidden", "5", "--layers", "2", "--batch-size", "8",
            "--log-every", "1", "--clip-norm", "0.05", "--no-progress", "--out", out]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    tags = check_tensorboard(out)
    check_csv(out)
    expected = {"train/examples_per_s", "train/tokens_per_s", "epoch/valid_accuracy",
                "epoch/valid_loss", "train/grad_norm/rnn.l0", "train/grad_norm/rnn.l0_reverse",
                "train/grad_norm/rnn.l1_reverse", "train/grad_norm/embedding"}  # fmt: skip
    assert expected <= set(tags), expected - set(tags)
    for r in records(out):
        if r["type"] == "train":
            # the groups partition the parameters; the norms are taken before clipping
            total = math.sqrt(sum(v * v for k, v in r.items() if k.startswith("grad_norm/")))
            assert abs(total - r["grad_norm"]) < 1e-6 * r["grad_norm"]
    assert any(r["type"] == "train" and r["grad_norm"] > 0.05 for r in records(out))


def test_layer_norms_are_those_of_torch_gradients(texts, tmp_path, capsys):
    """Step 1's logged norms against the same first window through torch.nn with the run's
    initial weights (the model built from the run's seed)."""
    out = tmp_path / "run"
    argv = ["lm", "train", texts / "train.txt", "--valid", texts / "valid.txt", *LM,
            "--log-every", "1", "--max-steps", "1", "--out", out]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    rec = records(out)[0]
    cfg = LMTrainConfig(hidden=12, embed=6, layers=2, bptt=8, batch_size=3, seed=4)
    vocab = Vocab.build(TEXT + VALID, level="char", unk=None)
    lm = LanguageModel(cfg.model_config(len(vocab)), seed=cfg.seed)
    x, y = next(iter(TBPTTStream(vocab.encode(TEXT, where="text"), cfg.batch_size, cfg.bptt)))
    V, E, H = len(vocab), cfg.embed, cfg.hidden
    sd = {k: torch.from_numpy(v.copy()).double() for k, v in lm.state_dict().items()}
    enc = torch.nn.Embedding(V, E, dtype=torch.float64)
    rnn = torch.nn.LSTM(E, H, cfg.layers, batch_first=True, dtype=torch.float64)
    dec = torch.nn.Linear(H, V, dtype=torch.float64)
    enc.load_state_dict({"weight": sd["encoder.weight"]})
    rnn.load_state_dict({k[4:]: v for k, v in sd.items() if k.startswith("rnn.")})
    dec.load_state_dict({"weight": sd["decoder.weight"], "bias": sd["decoder.bias"]})
    logits = dec(rnn(enc(torch.from_numpy(x.copy())))[0])  # (B, T, V)
    target = torch.from_numpy(y.copy()).reshape(-1)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), target)
    loss.backward()

    def norm(*grads):
        return math.sqrt(sum(float((g * g).sum()) for g in grads))

    want = {
        "grad_norm/encoder": norm(enc.weight.grad),
        "grad_norm/decoder": norm(dec.weight.grad, dec.bias.grad),
        "grad_norm": norm(enc.weight.grad, dec.weight.grad, dec.bias.grad,
                          *(p.grad for p in rnn.parameters())),
    }  # fmt: skip
    for k in range(cfg.layers):
        want[f"grad_norm/rnn.l{k}"] = norm(*(p.grad for n, p in rnn.named_parameters()
                                             if n.endswith(f"_l{k}")))  # fmt: skip
    assert abs(rec["loss"] - loss.item()) < 1e-5
    for key, value in want.items():
        assert abs(rec[key] - value) <= 1e-4 * value, (key, rec[key], value)


def test_without_tensorboardx_one_line_says_so(texts, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as when missing
    out = tmp_path / "run"
    argv = ["lm", "train", texts / "train.txt", *LM, "--max-steps", "2", "--out", out]
    assert main([str(a) for a in argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    notes = [line for line in lines if "tensorboardX" in line]
    assert notes == ["note: tensorboardX is not installed (pip install 'rnnkit[tensorboard]'): "
                     "no TensorBoard event files are written"]  # fmt: skip
    assert not list(out.glob("events.out.tfevents.*"))
    check_csv(out)
