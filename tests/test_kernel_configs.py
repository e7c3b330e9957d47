"""rnnkit.fast.target: the kernel configuration chosen per ISA, and the equivalence tests run
again with the AVX2 configuration forced.

The suite itself runs the configuration of the machine it runs on (AVX-512 on this project's
CI machines). ``RNNKIT_KERNEL=avx2`` compiles numba and the kernel without AVX-512 and with the
AVX2 micro-tile; a second process runs tests/test_gemm.py (the kernel against NumPy's
float64 products, the layers on it against torch, one and two threads) and the compiled
engine's comparisons with the NumPy engine in that configuration, and tests/test_threads.py
(the work shared between two threads).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.fast import target

HERE = Path(__file__).resolve().parent


def test_requested_reads_the_switch_and_rejects_unknown_values(monkeypatch):
    monkeypatch.delenv("RNNKIT_KERNEL", raising=False)
    assert target.requested() == "auto"
    monkeypatch.setenv("RNNKIT_KERNEL", " AVX2 ")
    assert target.requested() == "avx2"
    monkeypatch.setenv("RNNKIT_KERNEL", "sse4")
    with pytest.raises(
        ValueError, match="RNNKIT_KERNEL='sse4': expected one of auto, avx512, avx2"
    ):
        target.requested()


def test_features_without_avx512_turn_off_every_wide_feature_only():
    features = {"avx2": True, "fma": True, "avx512f": True, "avx512bw": True, "evex512": True,
                "amx-tile": True, "avx10.1": True, "sse4.2": True, "avx512vl": False}  # fmt: skip
    flags = target._without_wide(features).split(",")
    assert sorted(flags) == sorted(["+avx2", "+fma", "-avx512f", "-avx512bw", "-evex512",
                                    "-amx-tile", "-avx10.1", "+sse4.2", "-avx512vl"])  # fmt: skip


def test_this_process_runs_the_configuration_of_its_isa():
    cfg = target.config()
    active = target._codegen_features().split(",")
    avx2 = "+avx2" in active and "+fma" in active
    assert cfg.isa == ("avx512" if "+avx512f" in active else "avx2" if avx2 else "generic")
    assert (cfg.vw, cfg.nv, cfg.mr) == ({"avx512": (16, 4, 6)}.get(cfg.isa, (8, 2, 6)))
    assert cfg.nr == cfg.vw * cfg.nv
    assert cfg.isa in cfg.describe()


def _run(code_or_args: list[str], kernel: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RNNKIT_KERNEL=kernel)
    env.pop("NUMBA_CPU_NAME", None)
    env.pop("NUMBA_CPU_FEATURES", None)
    return subprocess.run([sys.executable, *code_or_args], env=env, cwd=HERE, text=True,
                          capture_output=True, timeout=900)  # fmt: skip


def test_forcing_avx2_compiles_without_avx512():
    out = _run(["-c", "from rnnkit.fast import gemm, target; cfg = target.config();"
                "print(cfg.isa, gemm.VW, gemm.NR, gemm.MR, '+avx512f' in "
                "target._codegen_features().split(','))"], "avx2")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["avx2", "8", "16", "6", "False"]


def test_an_unknown_kernel_is_refused_naming_the_value():
    out = _run(["-c", "from rnnkit.fast import gemm"], "avx1024")
    assert out.returncode != 0 and "RNNKIT_KERNEL='avx1024': expected one of" in out.stderr


def test_equivalence_tests_pass_with_the_avx2_configuration_forced():
    out = _run(["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist",
                str(HERE / "test_gemm.py"), str(HERE / "test_threads.py"),
                str(HERE / "test_kernels.py") + "::test_compiled_engine_matches_numpy_engine",
                str(HERE / "test_kernel_configs.py") + "::test_this_process_runs_the_"
                "configuration_of_its_isa"], "avx2")  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and " skipped" not in out.stdout, out.stdout[-500:]
