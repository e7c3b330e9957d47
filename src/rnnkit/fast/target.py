"""Which vector instructions the compiled engine is built for, chosen when it is first imported.

The GEMM micro-kernel (:mod:`rnnkit.fast.gemm`) keeps an ``MR x NR`` block of C in vector
registers, and the best block depends on how many registers there are:

============ ========== ============== ===================================================
ISA          registers  floats/vector  block (MR x NV vectors): registers used
============ ========== ============== ===================================================
``avx512``   32         16             6 x 4 (NR = 64): 24 accumulators, 4 of B, 1 of A
``avx2``     16         8              6 x 2 (NR = 16): 12 accumulators, 2 of B, 1 of A
============ ========== ============== ===================================================

(the AVX2 block is the one BLIS uses for Haswell; a 3 x 4 block would need 17 registers.)

By default (``RNNKIT_KERNEL=auto``) the ISA is that of the processor, as LLVM sees it. The
environment variable ``RNNKIT_KERNEL=avx2`` forces the AVX2 configuration on an AVX-512
machine: numba and the kernel are then compiled without any AVX-512 instruction, as for a
processor that has none (how BENCHMARKS.md measures an AVX2 machine on an AVX-512 one, with
the other libraries capped in the same command). ``RNNKIT_KERNEL=avx512`` asks for AVX-512
and stops with a message where the processor lacks it.

numba compiles for one target per process, fixed when its code generator starts: the choice
is made before then, by setting ``numba.config.CPU_FEATURES``, and checked after. numba's
on-disk cache keeps the code of each target apart (its index is keyed by CPU name and
features), so the configurations never load each other's code.

>>> cfg = config()
>>> cfg.isa in ("avx512", "avx2", "generic") and cfg.nr == cfg.vw * cfg.nv
True
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

KERNELS = ("auto", "avx512", "avx2")
# LLVM features that need AVX-512 (or its successors): all off in the avx2 configuration
_WIDE = ("avx512", "avx10", "amx", "evex512")


@dataclass(frozen=True)
class Config:
    """The kernel configuration: ISA, vector width and blocking, and numba's target."""

    isa: str  # "avx512", "avx2" or "generic" (no AVX2 + FMA: the 8-wide code, legalised)
    requested: str  # RNNKIT_KERNEL as given ("auto" when unset)
    vw: int  # floats per vector register
    mr: int  # rows of the micro-tile
    nv: int  # vectors per row of the micro-tile
    kc: int  # k block: the panel's KC x NR floats stay in L2
    mc: int  # rows of A swept per panel
    cpu: str  # the CPU name numba compiles for
    # products with a transposed A (the weight gradients, dA^T X) through BLAS: with AVX2,
    # OpenBLAS's Haswell kernel ran them at 105 GFLOP/s, this kernel at 66 (each k of dA^T a
    # row of dA away: a new page per step of its k loop), and at 90 with A copied into
    # blocks first; with AVX-512 the kernel's 109 beats OpenBLAS's 100 (BENCHMARKS.md). In
    # one thread only (rnnkit.fast.recurrent._transposed_a_on_blas): with two, the RNN's and
    # GRU's training steps ran 9-55% faster on the kernel split between rnnkit's threads
    transposed_a_on_blas: bool = False
    # where a transposed A stays on the kernel (AVX2 in two threads), copy each KC x MC block
    # of it into a buffer first, so that the tile's k loop reads it row by row: 66 -> 90
    # GFLOP/s with AVX2 (one thread, BENCHMARKS.md); with AVX-512 the copy costs more than it
    # saves (109 -> 99)
    copy_columns: bool = False

    @property
    def nr(self) -> int:
        """Columns of a packed panel (and units of the LSTM's fused block)."""
        return self.vw * self.nv

    def describe(self) -> str:
        """One line for benchmark headers and logs."""
        forced = "" if self.requested == "auto" else f", forced by RNNKIT_KERNEL={self.requested}"
        return (
            f"rnnkit kernel {self.isa}{forced}: {self.vw}-float vectors, micro-tile "
            f"{self.mr}x{self.nr} ({self.mr}x{self.nv} vectors), KC {self.kc}, MC {self.mc}"
            f"{', transposed A on BLAS in 1 thread' if self.transposed_a_on_blas else ''}"
            f"{', else copied into blocks' if self.copy_columns else ''}; "
            f"numba target {self.cpu}{' without AVX-512' if self.isa == 'avx2' else ''}"
        )


def requested() -> str:
    """``RNNKIT_KERNEL`` (auto, avx512 or avx2), checked."""
    value = os.environ.get("RNNKIT_KERNEL", "auto").strip().lower() or "auto"
    if value not in KERNELS:
        raise ValueError(f"RNNKIT_KERNEL={value!r}: expected one of {', '.join(KERNELS)}")
    return value


def _host() -> tuple[str, dict[str, bool]]:
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name(), dict(llvm.get_host_cpu_features())


def _without_wide(features: dict[str, bool]) -> str:
    """LLVM's feature string for this processor with every AVX-512 feature off."""
    return ",".join(
        ("-" if (not on or name.startswith(_WIDE)) else "+") + name
        for name, on in sorted(features.items())
    )


def _codegen_features() -> str:
    """The features numba's code generator compiles for (starting it if need be)."""
    from numba.core.registry import cpu_target

    return str(cpu_target.target_context.codegen()._tm_features)


@functools.cache
def config() -> Config:
    """Choose the configuration (once per process) and point numba at it."""
    import numba

    want = requested()
    cpu, features = _host()
    has_avx2 = features.get("avx2", False) and features.get("fma", False)
    if want == "avx512" and not features.get("avx512f", False):
        raise RuntimeError(f"RNNKIT_KERNEL=avx512: this processor ({cpu}) has no AVX-512")
    if want == "avx2":
        if not has_avx2:
            raise RuntimeError(f"RNNKIT_KERNEL=avx2: this processor ({cpu}) has no AVX2 and FMA")
        if numba.config.CPU_NAME is None:
            numba.config.CPU_NAME = cpu
        numba.config.CPU_FEATURES = _without_wide(features)
    active = _codegen_features()
    cpu = numba.config.CPU_NAME or cpu
    if want == "avx2" and "+avx512f" in active.split(","):
        raise RuntimeError(
            "RNNKIT_KERNEL=avx2: numba's code generator had started (with AVX-512) before "
            "rnnkit.fast was imported; set RNNKIT_KERNEL before any numba code runs"
        )
    if "+avx512f" in active.split(","):
        return Config("avx512", want, vw=16, mr=6, nv=4, kc=1024, mc=192, cpu=cpu)
    isa = "avx2" if has_avx2 and "+avx2" in active.split(",") else "generic"
    return Config(isa, want, vw=8, mr=6, nv=2, kc=1024, mc=192, cpu=cpu,
                  transposed_a_on_blas=True, copy_columns=True)  # fmt: skip
