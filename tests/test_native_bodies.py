"""The kernel's products are compiled once, as C functions called by name (rnnkit.fast.gemm's
``_native``), not into every loop that calls them; and loops loaded from numba's cache in a
new process find them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from llvmlite import binding as llvm

from rnnkit.fast import gemm as G

BODIES = ("rnnkit_gemm_body", "rnnkit_gemm2_body", "rnnkit_lstm_body", "rnnkit_pack_body",
          "rnnkit_tiles2")  # fmt: skip


def test_each_body_is_registered_under_its_name():
    assert sorted(G.NATIVE) == sorted(BODIES)
    for symbol, compiled in G.NATIVE.items():
        assert llvm.address_of_symbol(symbol) == compiled.address


RUN = """
import json, re, numpy as np, rnnkit
from rnnkit.fast import gemm as G, loops as K
rng = np.random.default_rng(0)
x = rng.standard_normal((5, 7, 10)).astype(np.float32)
numbers = []
for H in (G.NR, 13):  # a whole number of panels (the fused step, lstm_step), and not
    layer = rnnkit.LSTM(10, H, dtype=np.float32, seed=1, backend="compiled")
    out, _, cache = layer.forward(x)
    dx, _ = layer.backward(np.ones_like(out), cache)
    numbers += [float(out.sum()), float(dx.sum()), float(layer.grads["weight_hh_l0"].sum())]
TILE = r"(?:tile|wide)_\\dx\\d"  # the labels of the kernel's blocks (rnnkit.fast.gemm._tile)
callers = {{}}  # what each caller's code holds: a call to the body, and none of the kernel
for fn, symbol in ((G.gemm_packed, "rnnkit_gemm_body"), (K._rgemm, "rnnkit_gemm_body"),
                   (G.gemm_packed2, "rnnkit_gemm2_body"), (G.lstm_step, "rnnkit_lstm_body"),
                   (K.lstm_forward, "rnnkit_lstm_body")):
    irs = list(fn.inspect_llvm().values())  # empty modules where loaded from the cache
    callers[fn.__name__] = [f"@{{symbol}}(" in ir and not re.search(TILE, ir) for ir in irs]
bodies = {{s: bool(re.search(TILE, f.inspect_llvm())) for s, f in G.NATIVE.items()}}
hits = sum(K.lstm_forward.stats.cache_hits.values())
print(json.dumps({{"numbers": numbers, "hits": hits, "callers": callers, "bodies": bodies}}))
"""


def test_callers_call_the_bodies_and_load_from_the_cache(tmp_path):
    """Two processes on one empty numba cache. The first compiles: the wrappers and the loops
    hold a call to the body by name and none of the kernel's blocks (before, lstm_forward's
    code held 1,242 of them: 3.4 MB of LLVM IR). The second loads
    every loop from the cache (the names resolved at load) and gets the same numbers."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", RUN.format()], env=env, text=True,
                             capture_output=True, timeout=600)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["hits"] == 0 and second["hits"] > 0  # compiled, then loaded
    # the kernel's blocks are compiled into two bodies only; the others call _tiles2
    assert first["bodies"] == {"rnnkit_gemm_body": True, "rnnkit_tiles2": True,
                               "rnnkit_gemm2_body": False, "rnnkit_lstm_body": False,
                               "rnnkit_pack_body": False}  # fmt: skip
    assert first["callers"] and all(v and all(v) for v in first["callers"].values()), first
    assert first["numbers"] == second["numbers"]


def test_the_loops_name_the_gemm_they_were_compiled_against():
    """numba keys loops.py's cache by loops.py's source only, yet compiles gemm.py's
    wrappers into the loops: a stale cache would call a changed body with the old
    arguments. loops.py carries gemm.py's sha256, so that any change to gemm.py changes
    loops.py too (and invalidates its cache)."""
    import hashlib
    from pathlib import Path

    from rnnkit.fast import loops

    digest = hashlib.sha256(Path(G.__file__).read_bytes()).hexdigest()
    assert f"# gemm.py sha256: {digest}\n" in Path(loops.__file__).read_text(), (
        f"gemm.py changed: put its sha256 {digest} in loops.py's '# gemm.py sha256:' line"
    )
