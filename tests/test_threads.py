"""How the compiled engine shares work between threads (rnnkit.fast.recurrent): the hand-off
to worker threads (_in_parallel) and the weight-gradient products of the RNN's and GRU's
chunks run side by side in one hand-off (_balanced), against torch and the NumPy engine.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from test_layers_torch import compare, make_layer
from threadpoolctl import threadpool_limits
from torch_ref import max_rel

import rnnkit
from rnnkit.fast import recurrent as R

pytestmark = pytest.mark.usefixtures("compiled")


def test_every_call_runs_once_and_the_caller_runs_the_first():
    ran: list[tuple[int, int]] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        with lock:
            ran.append((i, threading.get_ident()))

    R._in_parallel([lambda i=i: call(i) for i in range(3)])
    assert sorted(i for i, _ in ran) == [0, 1, 2]
    names = dict(ran)
    assert names[0] == threading.get_ident()
    assert len(set(names.values())) == 3  # three threads at once, two of them workers


def test_a_worker_is_pinned_to_a_cpu_other_than_the_callers(monkeypatch):
    """The worker runs on a CPU other than the one the caller is on when it hands the call
    over (the two halves of the work must not share a core); with one CPU, on that one."""
    cpus = sorted(os.sched_getaffinity(0))
    for here in cpus:
        monkeypatch.setattr(R, "_this_cpu", lambda here=here: here)
        pinned: list[set[int]] = []
        R._in_parallel([lambda: None, lambda p=pinned: p.append(os.sched_getaffinity(0))])
        expect = [c for c in cpus if c != here] or cpus
        assert len(pinned[0]) == 1 and pinned[0] <= set(expect)


def test_a_failing_call_is_raised_after_all_have_finished():
    done = threading.Event()

    def slow() -> None:
        done.wait(0.2)
        done.set()

    def fails() -> None:
        raise ValueError("in a worker")

    with pytest.raises(ValueError, match="in a worker"):
        R._in_parallel([lambda: None, fails, slow])
    assert done.is_set()
    with pytest.raises(KeyError):  # from the caller's own part, the workers waited for
        R._in_parallel([lambda: {}["x"], slow])
    R._in_parallel([lambda: None, lambda: None])  # the workers are free again


def test_callers_in_two_threads_at_once_get_their_own_workers():
    results: dict[int, list[int]] = {}

    def caller(k: int) -> None:
        out = [0, 0]
        for _ in range(200):
            R._in_parallel([lambda: out.__setitem__(0, out[0] + 1),
                            lambda: out.__setitem__(1, out[1] + 1)])  # fmt: skip
        results[k] = out

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: [200, 200], 1: [200, 200]}


# (cell, options, D, H): the plain RNN, the GRU in both forms, a small LSTM (its products
# over all steps, under BALANCE_MAX_BYTES); H = 70 leaves a partial panel in every product
BALANCED = [("RNN", {}, 40, 70), ("GRU", {}, 40, 70), ("GRU", {"reset_after": False}, 40, 70),
            ("LSTM", {}, 40, 70)]  # fmt: skip


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    taken: list[bool] = []
    real = R._balanced

    def spy(*args):  # type: ignore[no-untyped-def]
        taken.append(real(*args))
        return taken[-1]

    monkeypatch.setattr(R, "_balanced", spy)
    return taken


@pytest.mark.parametrize("mode,options,D,H", BALANCED, ids=["RNN", "GRU", "GRU-textbook", "LSTM"])
def test_balanced_products_match_the_numpy_engine(mode, options, D, H, monkeypatch):
    """In two threads the weight gradients and dX of each chunk run in one hand-off (each
    weight's product whole on one thread, dX's rows shared out): the gradients agree with
    the NumPy engine (float32 against float32, both layers bidirectional and stacked, the
    second layer's dX written over its input)."""
    taken = _spy(monkeypatch)
    rng = np.random.default_rng(3)
    B, T = 24, 30  # chunks of ceil(512 / 24) = 22 steps: two per direction
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    lengths = rng.integers(1, T + 1, size=B)
    grads = []
    for backend in ("numpy", "compiled"):
        layer = getattr(rnnkit, mode)(D, H, num_layers=2, bidirectional=True, seed=5,
                                      dtype=np.float32, backend=backend, **options)  # fmt: skip
        with threadpool_limits(2):
            out, _, cache = layer.forward(x, None, lengths)
            dout = np.cos(np.arange(out.size, dtype=np.float32)).reshape(out.shape)
            dx, _ = layer.backward(dout, cache)
        grads.append((dx, dict(layer.grads)))
    assert taken and all(taken)
    (dx0, g0), (dx1, g1) = grads
    assert max_rel(dx1, dx0) < 1e-4
    for name in g0:
        assert max_rel(g1[name], g0[name]) < 1e-4, name


@pytest.mark.parametrize("mode,nonlin", [("RNN", "relu"), ("GRU", None), ("LSTM", None)])
def test_balanced_products_match_torch(mode, nonlin, monkeypatch):
    taken = _spy(monkeypatch)
    rng = np.random.default_rng(4)
    layer = make_layer(mode, nonlin, 40, 70, 2, True, np.float32, seed=6)
    with threadpool_limits(2):
        compare(layer, 24, 30, rng.integers(1, 31, size=24), rng)
    assert taken and all(taken)


def test_large_operands_are_not_balanced(monkeypatch):
    """Past BALANCE_MAX_BYTES of B operands (all packed at once), each product runs in
    turn, split by rows: the path the LSTM's products over all steps take at larger sizes."""
    taken = _spy(monkeypatch)
    monkeypatch.setattr(R, "BALANCE_MAX_BYTES", 1024)
    rng = np.random.default_rng(5)
    layer = make_layer("GRU", None, 40, 70, 1, False, np.float32, seed=6)
    with threadpool_limits(2):
        compare(layer, 24, 30, rng.integers(1, 31, size=24), rng)
    assert taken and not any(taken)


def test_a_forked_child_starts_its_own_workers():
    """A fork copies no threads: the child must not hand work to the parent's workers (it
    would wait for them forever)."""
    import signal
    import time

    R._in_parallel([lambda: None, lambda: None])  # the parent's workers exist
    pid = os.fork()
    if pid == 0:  # the child: exit 0 once a hand-off came back
        try:
            out: list[int] = []
            R._in_parallel([lambda: out.append(1), lambda: out.append(2)])
            os._exit(0 if sorted(out) == [1, 2] else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's hand-off did not come back within 30 s")
