"""The shared run loader and post-training scorer of rnnkit.train.loop."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from rnnkit.io import RnnkitError
from rnnkit.models.classify import ClassifierConfig, SequenceClassifier
from rnnkit.recipes.task import ClassifyTrainConfig, load_classifier
from rnnkit.train.checkpoint import save_checkpoint
from rnnkit.train.loop import load_run, score_best


def _save(run: Path) -> SequenceClassifier:
    """Weights from seed 11 under a training config that says seed 3: a loader that only
    rebuilt the model from the config would not reproduce them."""
    cfg = ClassifierConfig(vocab_size=7, num_classes=2, embed=4, hidden=3)
    model = SequenceClassifier(cfg, seed=11)
    train = ClassifyTrainConfig(seed=3)
    save_checkpoint(run / "best", kind="classifier", params=model.params,
                    config={"model": cfg.to_dict(), "train": asdict(train)},
                    vocab={"words": {"level": "word", "unk": "<unk>", "eos": None,
                                     "tokens": ["<pad>", "<unk>", "a", "b", "c", "d", "e"]},
                           "labels": ["0", "1"]})  # fmt: skip
    return model


def test_load_run_restores_weights_and_parses_vocab(tmp_path: Path) -> None:
    saved = _save(tmp_path)
    model, cfg, labels, ck = load_run(
        tmp_path, "classifier", ClassifierConfig, ClassifyTrainConfig, SequenceClassifier,
        lambda v: v["labels"],
    )  # fmt: skip
    assert labels == ["0", "1"] and cfg.seed == 3 and ck.path == tmp_path / "best"
    for name, value in saved.params.items():
        np.testing.assert_array_equal(model.params[name], value)
    # the model as built from the config alone differs: the weights really were copied in
    other = SequenceClassifier(saved.config, seed=3)
    assert any(not np.array_equal(other.params[k], v) for k, v in model.params.items())
    assert load_classifier(tmp_path).labels == ["0", "1"]


@pytest.mark.parametrize("damage", ["no-model", "bad-field", "no-labels"])
def test_load_run_names_the_file_on_a_bad_description(tmp_path: Path, damage: str) -> None:
    _save(tmp_path)
    path = tmp_path / "best" / "checkpoint.json"
    meta = json.loads(path.read_text())
    del meta["sha256"]  # an edited checkpoint.json without its digest reads as an older one
    if damage == "no-model":
        del meta["config"]["model"]
    elif damage == "bad-field":
        meta["config"]["model"]["hidden"] = -1
    else:
        del meta["vocab"]["labels"]
    path.write_text(json.dumps(meta))
    with pytest.raises(RnnkitError, match=r"best/checkpoint\.json: invalid model description"):
        load_classifier(tmp_path)


def test_score_best_scores_each_part_and_writes_the_summary(tmp_path: Path) -> None:
    told: list[str] = []
    summary = {"complete": True, "best_epoch": 2}
    score_best(summary, tmp_path, lambda out: f"model from {out.name}",
               lambda model, data: {"n": len(data), "model": model},
               {"valid": [1, 2], "test": None},
               lambda part, s: told.append(f"{part} {s['n']}"))  # fmt: skip
    assert summary["valid"] == {"n": 2, "model": f"model from {tmp_path.name}"}
    assert "test" not in summary and told == ["valid 2"]
    assert json.loads((tmp_path / "summary.json").read_text())["valid"]["n"] == 2


def test_score_best_leaves_an_interrupted_run_alone(tmp_path: Path) -> None:
    def fail(*_: object) -> None:
        raise AssertionError("must not be called")

    summary = {"complete": False}
    score_best(summary, tmp_path, fail, fail, {"valid": [1]}, fail)
    assert summary == {"complete": False} and not (tmp_path / "summary.json").exists()
