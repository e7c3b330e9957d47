"""Checkpoint directories: round trip, PyTorch loading, atomic replacement, every failure."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

import rnnkit.train.checkpoint as ckmod
from rnnkit.io import RnnkitError
from rnnkit.text.vocab import Vocab
from rnnkit.train import (
    Adam,
    TBPTTStream,
    load_checkpoint,
    rng_from_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _lstm_params(seed: int = 0) -> dict[str, np.ndarray]:
    """Parameters named and shaped as torch.nn.LSTM(3, 4, num_layers=2)."""
    rng = np.random.default_rng(seed)
    shapes = {}
    for layer, d in ((0, 3), (1, 4)):
        shapes[f"weight_ih_l{layer}"] = (16, d)
        shapes[f"weight_hh_l{layer}"] = (16, 4)
        shapes[f"bias_ih_l{layer}"] = (16,)
        shapes[f"bias_hh_l{layer}"] = (16,)
    return {k: rng.uniform(-0.1, 0.1, size=s) for k, s in shapes.items()}


def _save(path: Path, seed: int = 0, **overrides):
    params = _lstm_params(seed)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    opt = Adam(params, grads, lr=0.01)
    opt.step()
    vocab = Vocab.build("to be or not to be\n", level="word")
    stream = TBPTTStream(np.arange(100), batch_size=2, bptt=5)
    next(iter(stream))
    kwargs = {
        "kind": "lm",
        "params": params,
        "config": {"cell": "lstm", "hidden": 4, "layers": 2, "seed": seed},
        "vocab": vocab.to_json(),
        "trainer": {"epoch": 0, "step": 1, "stream": stream.state_dict(),
                    "rng": rng_state(np.random.default_rng(seed))},
        "optimizer": opt.state_dict(),
        "arrays": {"h0": np.full((2, 2, 4), 0.5), "c0": np.zeros((2, 2, 4), np.float32)},
    }  # fmt: skip
    kwargs.update(overrides)
    save_checkpoint(path, **kwargs)
    return kwargs, opt


def test_round_trip(tmp_path):
    path = tmp_path / "run" / "checkpoint"  # parents are created
    saved, opt = _save(path)
    assert sorted(os.listdir(path)) == [
        "checkpoint.json", "model.safetensors", "optimizer.json", "optimizer.safetensors",
        "state.safetensors",
    ]  # fmt: skip
    ck = load_checkpoint(path, kind="lm")
    assert ck.kind == "lm" and ck.config == saved["config"] and ck.trainer == saved["trainer"]
    assert Vocab.from_json(ck.vocab).tokens == Vocab.from_json(saved["vocab"]).tokens
    for name, a in saved["params"].items():
        assert ck.params[name].dtype == a.dtype
        np.testing.assert_array_equal(ck.params[name], a)
    for name, a in saved["arrays"].items():
        assert ck.arrays[name].dtype == a.dtype
        np.testing.assert_array_equal(ck.arrays[name], a)
    # Resuming: a fresh model and optimizer continue exactly like the original.
    params = {k: np.zeros_like(v) for k, v in saved["params"].items()}
    grads = {k: np.ones_like(v) for k, v in params.items()}
    ck.copy_params_into(params)
    opt2 = Adam(params, grads)
    ck.load_optimizer_into(opt2)
    opt.step()
    opt2.step()
    for k in params:
        np.testing.assert_array_equal(params[k], opt.params[k])
    rng = rng_from_state(ck.trainer["rng"])
    assert rng.random() == np.random.default_rng(0).random()
    # no temporary or backup directory left beside it
    assert sorted(os.listdir(path.parent)) == ["checkpoint"]


def test_weights_load_into_pytorch(tmp_path):
    saved, _ = _save(tmp_path / "ck")
    lstm = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True).double()
    lstm.load_state_dict(safetensors.torch.load_file(tmp_path / "ck" / "model.safetensors"))
    for name, value in lstm.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved["params"][name])


def test_replace_existing_checkpoint(tmp_path):
    path = tmp_path / "ck"
    _save(path, seed=1)
    _save(path, seed=2)
    assert load_checkpoint(path).config["seed"] == 2
    assert os.listdir(tmp_path) == ["ck"]


def test_interrupt_while_writing_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    _save(path, seed=1)
    real_write = ckmod._write
    calls = []

    def interrupted_write(p, data):
        calls.append(p)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_write(p, data)

    monkeypatch.setattr(ckmod, "_write", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        _save(path, seed=2)
    assert load_checkpoint(path).config["seed"] == 1
    assert os.listdir(tmp_path) == ["ck"]  # the partial new one is cleaned up


def test_ctrl_c_during_the_swap_is_held_until_the_new_checkpoint_is_in_place(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    _save(path, seed=1)
    real_rename = os.rename

    def rename_with_sigint(src, dst):
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C between the two renames
        real_rename(src, dst)

    monkeypatch.setattr(ckmod.os, "rename", rename_with_sigint)
    # Python's own Ctrl-C handler, also when this process started with SIGINT ignored (as a
    # shell starts background jobs): the held signal is re-delivered to it after the swap
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _save(path, seed=2)
    finally:
        signal.signal(signal.SIGINT, previous)
    monkeypatch.undo()
    assert load_checkpoint(path).config["seed"] == 2  # delivered after the swap
    leftovers = [p for p in os.listdir(tmp_path) if p != "ck"]
    assert all(p.startswith("ck.old-") for p in leftovers)
    _save(path, seed=3)  # the next save removes the stale backup
    assert os.listdir(tmp_path) == ["ck"]


def test_failed_second_rename_puts_the_previous_checkpoint_back(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    _save(path, seed=1)
    real_rename = os.rename
    calls = []

    def fail_on_second(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(ckmod.os, "rename", fail_on_second)
    with pytest.raises(RnnkitError, match=r"ck: cannot save the checkpoint \(No space left on "
                       r"device\); the previous checkpoint is unchanged"):  # fmt: skip
        _save(path, seed=2)
    monkeypatch.undo()
    assert load_checkpoint(path).config["seed"] == 1
    assert os.listdir(tmp_path) == ["ck"]


def test_refuses_to_replace_a_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RnnkitError, match="out: exists and is not an rnnkit checkpoint"):
        _save(tmp_path / "out")
    assert (tmp_path / "out" / "metrics.jsonl").exists()
    (tmp_path / "empty").mkdir()
    _save(tmp_path / "empty")  # an empty folder is fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(RnnkitError, match="file: exists and is not a checkpoint directory"):
        _save(tmp_path / "file")


def test_not_json_able_config_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="checkpoint metadata is not JSON-able"):
        _save(tmp_path / "ck", config={"x": object()})
    with pytest.raises(ValueError, match="not JSON-able"):
        _save(tmp_path / "ck2", config={"lr": float("nan")})
    assert os.listdir(tmp_path) == []


# --- failures on load: one line naming the file ------------------------------------------------


def _one_line_error(path, match, **kw):
    with pytest.raises(RnnkitError) as e:
        load_checkpoint(path, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    assert match in msg, msg
    return msg


def test_missing_directory_and_files(tmp_path):
    _one_line_error(tmp_path / "nope", "nope: no such checkpoint directory")
    path = tmp_path / "ck"
    _save(path)
    (path / "optimizer.safetensors").unlink()
    _one_line_error(path, f"{path / 'optimizer.safetensors'}: missing from the checkpoint")
    (path / "checkpoint.json").unlink()
    _one_line_error(path, f"{path / 'checkpoint.json'}: missing (not an rnnkit checkpoint?)")


def test_truncated_safetensors(tmp_path):
    path = tmp_path / "ck"
    _save(path)
    f = path / "model.safetensors"
    size = f.stat().st_size
    f.write_bytes(f.read_bytes()[: size - 100])
    _one_line_error(path, f"{f}: truncated or altered ({size - 100} bytes, expected {size})")


def test_corrupted_byte(tmp_path):
    path = tmp_path / "ck"
    _save(path)
    f = path / "state.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    _one_line_error(path, f"{f}: corrupted (sha256 differs")


def test_corrupt_safetensors_with_matching_record(tmp_path):
    """A file that passes the size/sha check but does not parse (e.g. written by a bad tool)."""
    path = tmp_path / "ck"
    _save(path)
    bad = b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header..}"
    (path / "model.safetensors").write_bytes(bad)
    meta = json.loads((path / "checkpoint.json").read_text())
    del meta["sha256"]  # an edited checkpoint.json without its digest reads as an older one
    import hashlib

    meta["files"]["model.safetensors"] = {
        "bytes": len(bad),
        "sha256": hashlib.sha256(bad).hexdigest(),
    }
    (path / "checkpoint.json").write_text(json.dumps(meta))
    _one_line_error(path, f"{path / 'model.safetensors'}: corrupt safetensors file")


def test_truncated_and_empty_json(tmp_path):
    path = tmp_path / "ck"
    _save(path)
    meta = path / "checkpoint.json"
    text = meta.read_text()
    meta.write_text(text[: len(text) // 2])
    _one_line_error(path, f"{meta}: corrupt JSON at line ")
    meta.write_text("")
    _one_line_error(path, f"{meta}: file is empty")
    meta.write_text('{"hello": 1}')
    _one_line_error(path, f"{meta}: not an rnnkit checkpoint")
    meta.write_text(json.dumps({"format": "rnnkit-checkpoint", "version": 99, "kind": "lm"}))
    _one_line_error(path, "checkpoint format version 99 is newer than this rnnkit reads (1)")


def test_optimizer_json_truncated(tmp_path):
    path = tmp_path / "ck"
    _save(path)
    f = path / "optimizer.json"
    f.write_bytes(f.read_bytes()[:-5])
    _one_line_error(path, f"{f}: truncated or altered")


def test_other_model_kind(tmp_path):
    path = tmp_path / "ck"
    _save(path, kind="classifier")
    _one_line_error(
        path,
        f"{path / 'checkpoint.json'}: this checkpoint holds a 'classifier' model, expected 'lm'",
        kind="lm",
    )


def test_shape_and_name_mismatches(tmp_path):
    path = tmp_path / "ck"
    saved, _ = _save(path)
    ck = load_checkpoint(path, kind="lm")
    where = path / "model.safetensors"
    params = {k: np.zeros_like(v) for k, v in saved["params"].items()}
    params["weight_hh_l1"] = np.zeros((20, 5))
    with pytest.raises(RnnkitError, match=rf"{where}: tensor 'weight_hh_l1' has shape "
                       r"\(16, 4\), the model expects \(20, 5\)"):  # fmt: skip
        ck.copy_params_into(params)
    assert not params["weight_ih_l0"].any()  # nothing copied when a check fails
    params = {k: np.zeros_like(v) for k, v in saved["params"].items()}
    params["decoder.weight"] = np.zeros((3, 4))
    with pytest.raises(RnnkitError, match=f"{where}: lacks tensor 'decoder.weight'"):
        ck.copy_params_into(params)
    del params["decoder.weight"], params["bias_hh_l1"]
    with pytest.raises(RnnkitError, match=f"{where}: has tensor 'bias_hh_l1' that the model"):
        ck.copy_params_into(params)
    small = {"weight_ih_l0": np.zeros((16, 3))}
    with pytest.raises(RnnkitError, match=f"{path / 'optimizer.safetensors'}: optimizer state "
                       "has unexpected array"):  # fmt: skip
        ck.load_optimizer_into(Adam(small, {"weight_ih_l0": np.zeros((16, 3))}))


def test_checkpoint_without_optimizer(tmp_path):
    path = tmp_path / "ck"
    _save(path, optimizer=None, arrays=None)
    ck = load_checkpoint(path)
    assert ck.optimizer is None and ck.arrays == {}
    assert sorted(os.listdir(path)) == ["checkpoint.json", "model.safetensors"]
    with pytest.raises(RnnkitError, match="checkpoint has no optimizer state"):
        ck.load_optimizer_into(None)


@pytest.mark.parametrize("kind", ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"])
def test_rng_state_json_round_trip(kind):
    rng = np.random.Generator(getattr(np.random, kind)(1234))
    rng.random(7)
    rng.integers(0, 10, size=3)  # leaves a buffered 32-bit value in some generators
    state = json.loads(json.dumps(rng_state(rng), allow_nan=False))
    restored = rng_from_state(state)
    other = np.random.Generator(getattr(np.random, kind)(1))
    set_rng_state(other, state)
    expected = rng.random(5)
    np.testing.assert_array_equal(restored.random(5), expected)
    np.testing.assert_array_equal(other.random(5), expected)


def test_rng_state_errors():
    state = rng_state(np.random.default_rng(0))
    with pytest.raises(RnnkitError, match="RNG state is for 'PCG64', the generator is MT19937"):
        set_rng_state(np.random.Generator(np.random.MT19937()), state)
    with pytest.raises(RnnkitError, match="unknown RNG kind 'Nope'"):
        rng_from_state(dict(state, bit_generator="Nope"))
