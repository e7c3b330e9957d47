"""Choosing the engine: ``backend=`` on the layers, ``rnnkit.set_backend``, ``RNNKIT_BACKEND``,
``rnnkit --backend``; with "numpy" nothing compiled is imported (checked in fresh processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tiny_data import write_tiny_data

import rnnkit
from rnnkit import fast
from rnnkit.cli import main
from rnnkit.engine import backend

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak.\n" * 8


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        env={**os.environ, **env}, timeout=300,
    )  # fmt: skip


NAMES = "('numba', 'llvmlite', 'rnnkit.fast.loops', 'rnnkit.fast.gemm')"
COMPILED = f"[m for m in {NAMES} if m in sys.modules]"


def test_numpy_backend_imports_no_compiled_code():
    """Every layer, forward and backward, and the optimizers (Adam has a compiled update),
    with RNNKIT_BACKEND=numpy: numba never imported. The same code with the default (auto)
    does import it, so the check can fail."""
    code = f"""
        import sys, numpy as np, rnnkit
        from rnnkit.train import Adam
        for layer in (rnnkit.RNN(3, 4), rnnkit.LSTM(3, 4, peepholes=True, num_layers=2),
                      rnnkit.GRU(3, 4, bidirectional=True), rnnkit.LSTM(3, 4, dtype=np.float64)):
            x = np.ones((5, 6, 3), layer.dtype)
            out, _, cache = layer.forward(x, lengths=[6, 2, 3, 1, 5])
            layer.backward(np.ones_like(out), cache)
            layer(x)
            Adam(layer.params, layer.grads).step()
        print(rnnkit.get_backend(), {COMPILED})
    """
    r = run_python(code, RNNKIT_BACKEND="numpy")
    assert r.returncode == 0 and r.stdout.split() == ["numpy", "[]"], r.stdout + r.stderr
    r = run_python(code, RNNKIT_BACKEND="auto")
    assert r.returncode == 0 and "'numba'" in r.stdout, r.stdout + r.stderr


def test_numpy_backend_runs_the_commands_without_compiled_code(tmp_path):
    """Every train command (lm, classify, tag, mt, qa), lm sample/eval, classify predict, mt
    translate, gradflow and the n-gram baseline through ``rnnkit --backend numpy``, in one
    fresh process: no numba afterwards. (The whole suite also passes under
    RNNKIT_BACKEND=numpy; see docs/ARCHITECTURE.md.)"""
    d = write_tiny_data(tmp_path)
    run, png, arpa = tmp_path / "run", tmp_path / "g.png", tmp_path / "m.arpa"
    small = ["--epochs", "1", "--no-progress", "--embed", "6", "--hidden", "5"]
    calls = [
        ["lm", "train", d / "text.txt", "--bptt", "8", "--batch-size", "2", *small, "--out", run],
        ["lm", "sample", run, "--length", "20", "--seed", "1"],
        ["lm", "eval", run, d / "text.txt"],
        ["classify", "train", d / "train.tsv", "--batch-size", "8", *small, "--out",
         tmp_path / "c"],
        ["classify", "predict", tmp_path / "c", d / "train.tsv"],
        ["tag", "train", d / "eng.train", "--valid", d / "eng.testa", "--char-embed", "3",
         "--char-hidden", "3", "--batch-size", "8", *small, "--out", tmp_path / "t"],
        ["mt", "train", "--src", d / "train.de", "--tgt", d / "train.en", "--valid-src",
         d / "train.vde", "--valid-tgt", d / "train.ven", "--min-count", "1", "--batch-size",
         "8", *small, "--out", tmp_path / "m"],
        ["mt", "translate", tmp_path / "m", d / "train.vde", "--beam", "2"],
        ["qa", "train", d / "babi", "--task", "1", "--hops", "1", "--combine", "8",
         "--batch-size", "16", *small, "--out", tmp_path / "q"],
        ["gradflow", "--cell", "all", "--length", "8", "--hidden", "4", "--out", png],
        ["ngram", "train", d / "text.txt", "--order", "2", "--out", arpa],
    ]  # fmt: skip
    code = f"""
        import sys
        from rnnkit.cli import main
        for argv in {[[str(a) for a in c] for c in calls]!r}:
            rc = main(["--backend", "numpy", *argv])
            assert rc == 0, argv
        print("compiled:", {COMPILED})
    """
    r = run_python(code)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "compiled: []" in r.stdout, r.stdout[-2000:]


def test_auto_runs_one_step_calls_on_numpy_and_sampling_compiles_nothing(tmp_path):
    """backend "auto" gives a call of one time step (generation) to NumPy and longer ones to
    the compiled engine; so ``rnnkit lm sample``, prime of several characters included,
    never imports numba (a first sample does not wait for compilation), while training
    (the same process, before) does."""
    lstm = rnnkit.LSTM(3, 4)
    assert lstm.engine(np.ones((2, 1, 3), np.float32)) == "numpy"
    assert lstm.engine(np.ones((2, 2, 3), np.float32)) == "compiled"
    assert rnnkit.LSTM(3, 4, backend="compiled").engine(np.ones((2, 1, 3))) == "compiled"
    d = write_tiny_data(tmp_path)
    run = tmp_path / "run"
    small = ["--epochs", "1", "--no-progress", "--embed", "6", "--hidden", "5"]
    train = ["lm", "train", d / "text.txt", "--bptt", "8", "--batch-size", "2", *small,
             "--out", run]  # fmt: skip
    sample = ["lm", "sample", run, "--length", "20", "--seed", "1", "--prime", "First"]
    for argv, compiled in ((train, "['numba', 'llvmlite', 'rnnkit.fast.loops', "
                            "'rnnkit.fast.gemm']"), (sample, "[]")):  # fmt: skip
        code = f"""
            import sys
            from rnnkit.cli import main
            assert main({[str(a) for a in argv]!r}) == 0
            print("compiled:", {COMPILED})
        """
        r = run_python(code, RNNKIT_BACKEND="auto")
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert f"compiled: {compiled}" in r.stdout, r.stdout[-2000:]


def test_compiled_and_numpy_layers_agree_and_backward_follows_the_forward_engine():
    layer = rnnkit.GRU(4, 6, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 5, 4))
    results = {}
    for name in ("numpy", "compiled"):
        previous = rnnkit.set_backend(name)
        try:
            assert layer.engine(x) == name
            out, _, cache = layer.forward(x, lengths=[5, 1, 3])
        finally:
            rnnkit.set_backend(previous)
        # the process default is back to auto; backward still runs on the forward's engine
        assert cache[0].name == name
        layer.zero_grad()
        dx, _ = layer.backward(np.ones_like(out), cache)
        results[name] = (out, dx, layer.grads["weight_hh_l1_reverse"].copy())
    for a, b in zip(results["numpy"], results["compiled"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_choice_order_and_errors(monkeypatch):
    monkeypatch.delenv("RNNKIT_BACKEND", raising=False)
    layer = rnnkit.LSTM(2, 3)
    assert rnnkit.get_backend() == "auto" and layer.engine() == "compiled"
    monkeypatch.setenv("RNNKIT_BACKEND", "numpy")
    assert layer.engine() == "numpy"
    assert rnnkit.LSTM(2, 3, backend="compiled").engine() == "compiled"  # the layer's own wins
    previous = rnnkit.set_backend("compiled")
    try:
        assert layer.engine() == "compiled"  # set_backend wins over the environment
    finally:
        rnnkit.set_backend(previous)
    monkeypatch.setenv("RNNKIT_BACKEND", "gpu")
    with pytest.raises(ValueError, match=r"^RNNKIT_BACKEND: expected one of .*got 'gpu'$"):
        layer.engine()
    with pytest.raises(ValueError, match=r"^backend: expected one of .*got 'cuda'$"):
        rnnkit.RNN(2, 3, backend="cuda")


def test_auto_falls_back_and_compiled_says_why(monkeypatch):
    monkeypatch.setattr(fast, "missing", lambda: "numba is not installed (pip install numba)")
    x = np.zeros((1, 2, 2), np.float32)
    auto = rnnkit.LSTM(2, 3, backend="auto")
    assert auto.engine(x) == "numpy"
    out, _ = auto(x)  # runs, on NumPy
    assert out.shape == (1, 2, 3)
    with pytest.raises(ValueError, match=r"^backend='compiled': numba is not installed"):
        rnnkit.LSTM(2, 3, backend="compiled")(x)
    assert backend.choose("numpy", auto, x) == "numpy"


def test_cli_backend_option_and_bad_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RNNKIT_BACKEND", raising=False)
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n" * 50)
    rc = main(["--backend", "numpy", "embed", "train", str(corpus), "--min-count", "1",
               "--dim", "4", "--epochs", "1", "--out", str(tmp_path / "v.txt")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "backend is 'numpy'" in err[0], err
    assert not (tmp_path / "v.txt").exists()
    assert rnnkit.get_backend() == "auto"  # the option did not outlive the command
    monkeypatch.setenv("RNNKIT_BACKEND", "fast")
    assert main(["ngram", "--help"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnnkit: error: RNNKIT_BACKEND: expected one of 'auto', 'numpy', "
                   "'compiled', got 'fast'"]  # fmt: skip


@pytest.mark.parametrize("B", [1, 3])
def test_the_cache_shares_no_memory_with_the_callers_arrays(B, engine):
    """Changing x in place after forward leaves backward's gradients as they were, on both
    engines; at B = 1 the time-major view of x is already contiguous, which once let the
    NumPy engine keep x itself in its cache. The output is a view of the cache's states
    (no copy) and refuses changes in place."""
    layer = rnnkit.GRU(3, 4, num_layers=2, dtype=np.float64, seed=0)
    x = np.random.default_rng(B).standard_normal((B, 5, 3))
    dout = np.random.default_rng(9).standard_normal((B, 5, 4))
    grads = []
    for change in (False, True):
        xin = x.copy()
        out, _, cache = layer.forward(xin)
        if change:  # the caller reuses its arrays before backward
            with pytest.raises(ValueError, match="read-only"):
                out += 100.0
            xin += 100.0
        layer.zero_grad()
        dx, _ = layer.backward(dout, cache)
        grads.append((dx, {k: v.copy() for k, v in layer.grads.items()}))
    for k in grads[0][1]:
        np.testing.assert_array_equal(grads[1][1][k], grads[0][1][k])
    np.testing.assert_array_equal(grads[1][0], grads[0][0])


def test_a_padded_output_is_the_callers_own(engine):
    """With lengths the output is a new array (padded steps zeroed): writable, and changing
    it leaves backward's gradients as they were."""
    layer = rnnkit.LSTM(3, 4, bidirectional=True, dtype=np.float64, seed=0)
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((3, 5, 3)), rng.standard_normal((3, 5, 8))
    lengths = np.array([5, 2, 4])
    grads = []
    for change in (False, True):
        out, _, cache = layer.forward(x, lengths=lengths)
        assert out.flags.writeable
        if change:
            out += 100.0
        layer.zero_grad()
        dx, _ = layer.backward(dout, cache)
        grads.append((dx, {k: v.copy() for k, v in layer.grads.items()}))
    np.testing.assert_array_equal(grads[1][0], grads[0][0])
    for k in grads[0][1]:
        np.testing.assert_array_equal(grads[1][1][k], grads[0][1][k])


@pytest.mark.parametrize("cell", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_reads_dout_in_place_and_leaves_it(
    cell, layers, bidirectional, dtype, engine, monkeypatch
):
    """backward reads dout through a time-major view (no copy: peak memory) and never writes
    it, at any layout (a float32 layer given float64 dout casts a copy); dx is new memory,
    neither dout nor x, and the same as from a contiguous time-major copy of dout (B = 8:
    the compiled LSTM's fused step; T = 11 over chunks of 3 steps and a last of 2)."""
    monkeypatch.setattr("rnnkit.fast.recurrent.CHUNK_ROWS", 24)
    layer = getattr(rnnkit, cell)(5, 4, num_layers=layers, bidirectional=bidirectional,
                                  dtype=np.float32, seed=0)  # fmt: skip
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 11, 5)).astype(np.float32)
    dout = rng.standard_normal((8, 11, 4 * (1 + bidirectional))).astype(dtype)
    kept, results = dout.copy(), []
    for d in (dout, np.ascontiguousarray(dout.astype(np.float32))):
        out, _, cache = layer.forward(x)
        layer.zero_grad()
        dx, _ = layer.backward(d, cache)
        assert not np.shares_memory(dx, d) and not np.shares_memory(dx, x)
        results.append((dx, {k: v.copy() for k, v in layer.grads.items()}))
    np.testing.assert_array_equal(dout, kept)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6, atol=1e-6)
    for k, v in results[0][1].items():
        np.testing.assert_allclose(v, results[1][1][k], rtol=1e-5, atol=1e-6)


def test_a_cache_is_used_by_one_backward_pass(engine):
    """backward writes dx over the first layer's input kept in the cache (memory: one
    (T, B, D) array less), so a second backward pass on the same cache is refused in one
    line, as PyTorch refuses to go through a graph twice; another forward pass works."""
    layer = rnnkit.LSTM(3, 4, seed=0)
    x = np.ones((2, 5, 3), np.float32)
    out, _, cache = layer.forward(x)
    dx, _ = layer.backward(np.ones_like(out), cache)
    with pytest.raises(ValueError, match=r"^cache: already used by a backward pass"):
        layer.backward(np.ones_like(out), cache)
    out, _, cache = layer.forward(x)
    dx2, _ = layer.backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx, dx2)
