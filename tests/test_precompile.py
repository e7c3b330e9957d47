"""rnnkit.engine.precompile and the build backend that runs it (tools/build_backend).

After :func:`rnnkit.engine.precompile.precompile`, the layers' and Adam's calls on shapes,
options and thread counts it never ran compile nothing (numba's compile events, counted in a
fresh process: loading a cached function is not a compile); and an editable install's build
runs it, reports a failure in one line without failing the install, and can be switched off.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# In a fresh process: precompile, then count numba's compilations over calls unlike the
# precompile's own (the README's language model's shapes, hidden sizes of 200-650 and 33,
# batch 1-256, given states and state gradients, hidden-state gradients, padding, three
# bidirectional layers), then one new function, to show the count sees a compilation.
COVER = """
import numpy as np
from threadpoolctl import threadpool_limits

import rnnkit
from rnnkit.engine.precompile import precompile

for line in precompile():  # first: it chooses numba's target (RNNKIT_KERNEL)
    print(line)

from numba import njit
from numba.core import event

from rnnkit.fast.optim import adam_update

compiled = []


class Count(event.Listener):
    def on_start(self, e):
        pass

    def on_end(self, e):
        compiled.append(f"{e.data['dispatcher'].py_func.__qualname__} {e.data['args']}")


event.register("numba:compile", Count())
rng = np.random.default_rng(1)


def run(cls, B, T, D, H, **kw):
    layer = cls(D, H, seed=0, backend="compiled", **kw)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    n = layer.num_layers * layer.num_directions
    h = rng.standard_normal((n, B, H)).astype(np.float32)
    state = (h, h.copy()) if cls is rnnkit.LSTM else h
    out, _, cache = layer.forward(x, state)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    layer.backward(dout, cache, state, return_hidden_grads=True)
    layer(x, lengths=np.maximum(T - np.arange(B) % T, 1))


shapes = [(8, 20, 128, 128), (1, 7, 3, 200), (3, 5, 64, 320), (64, 4, 100, 650),
          (256, 2, 16, 16), (20, 35, 200, 200), (5, 3, 1000, 33)]
for threads in (1, 2):
    with threadpool_limits(limits=threads):
        for cls in (rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN):
            for shape in shapes:
                run(cls, *shape)
            run(cls, 4, 6, 10, 12, num_layers=3, bidirectional=True, dropout=0.2)
        run(rnnkit.LSTM, 2, 8, 65, 64, num_layers=2)  # the language model's layers
f = np.float32
adam_update(*[np.zeros(1000, f) for _ in range(4)],
            *(f(v) for v in (0.9, 0.1, 0.999, 0.001, 0.01, 1.0, 1e-8, 0.01)))
print("compiled after precompile:", len(compiled), compiled)
njit(lambda x: x + 1)(1)
print("compiled after a new function:", len(compiled))
"""


@pytest.mark.parametrize("kernel", ["auto", "avx2"])
def test_after_precompile_the_layers_compile_nothing(kernel: str) -> None:
    env = dict(os.environ, RNNKIT_KERNEL=kernel)
    out = subprocess.run([sys.executable, "-c", COVER], env=env, cwd=ROOT, text=True,
                         capture_output=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[-2] == "compiled after precompile: 0 []", out.stdout
    assert lines[-1] == "compiled after a new function: 1", out.stdout


def _backend():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(
        "rnnkit_build", ROOT / "tools" / "build_backend" / "rnnkit_build.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_src(tmp_path: Path, body: str) -> Path:
    engine = tmp_path / "rnnkit" / "engine"
    engine.mkdir(parents=True)
    for init in (tmp_path / "rnnkit", engine):
        (init / "__init__.py").write_text("")
    (engine / "precompile.py").write_text(body)
    return tmp_path


def test_the_backend_runs_precompile_from_the_sources(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    build = _backend()
    src = _fake_src(tmp_path, "print('compiled', __name__)\n")
    assert build.precompile(src) is True
    err = capsys.readouterr().err
    assert "rnnkit: compiled engine precompiled in" in err and "compiled __main__" in err


def test_a_failed_precompile_is_one_line_and_not_a_failed_install(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    build = _backend()
    src = _fake_src(tmp_path, "raise ImportError('numba: no wheel for this Python')\n")
    assert build.precompile(src) is False
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "rnnkit: precompiling the compiled engine failed (ImportError: numba: no wheel for "
        "this Python); its loops will compile on first use instead"
    ]


@pytest.mark.parametrize("setting", ["1", "0"])
def test_an_editable_build_precompiles_unless_told_not_to(monkeypatch, setting: str) -> None:  # noqa: ANN001
    build = _backend()
    ran = []
    monkeypatch.setenv("RNNKIT_PRECOMPILE", setting)
    monkeypatch.setattr(build._setuptools, "build_editable", lambda *a: "rnnkit.whl")
    monkeypatch.setattr(build._setuptools, "get_requires_for_build_editable", lambda *a: [])
    monkeypatch.setattr(build, "precompile", lambda src: ran.append(src))
    assert build.build_editable("dist") == "rnnkit.whl"
    requires = build.get_requires_for_build_editable()
    if setting == "1":
        assert ran == [ROOT / "src"]
        names = {r.split(">")[0] for r in requires}
        assert names == {"numpy", "numba", "llvmlite", "threadpoolctl"}
    else:
        assert ran == [] and requires == []


def test_the_command_prints_what_it_compiled(capsys) -> None:  # noqa: ANN001
    from rnnkit.cli import main

    assert main(["precompile", "--dtype", "float32"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("numba ") and "rnnkit kernel" in lines[0]
    assert re.fullmatch(
        r"float32: \d+ layers, 1( and 2)? thread\(s\), and Adam: [\d.]+ s", lines[1]
    )


def test_without_numba_the_command_says_so_in_one_line(monkeypatch, capsys) -> None:  # noqa: ANN001
    from rnnkit import fast
    from rnnkit.cli import main

    monkeypatch.setattr(fast, "missing", lambda: "numba is not installed (pip install numba)")
    assert main(["precompile"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "rnnkit: error: no compiled engine: numba is not installed (pip install numba)"
    ]
