"""The header every benchmark prints: CPU model, instruction set, the kernels each library runs.

A speed figure means nothing without the machine it was measured on, and on an AVX-512 machine
"measured as AVX2" means nothing unless every library was capped in the same command. This
module reports what each library actually runs, not what was asked for:

- the CPU model and whether it has AVX-512 and AVX2 + FMA (``/proc/cpuinfo``);
- rnnkit's compiled-kernel configuration (:mod:`rnnkit.fast.target`, ``RNNKIT_KERNEL``);
- torch's vector ISA (``torch.backends.cpu.get_cpu_capability()``, capped by
  ``ATEN_CPU_CAPABILITY``) and oneDNN's (its verbose line for an LSTM, which torch's float32
  LSTM runs through; capped by ``ONEDNN_MAX_CPU_ISA``);
- each BLAS threadpoolctl finds and its kernel (OpenBLAS: ``OPENBLAS_CORETYPE``).

``capped_avx2()`` says whether every cap of an AVX2 measurement took effect; the benchmarks
refuse to run a capped measurement that is only half capped.
"""

from __future__ import annotations

import functools
import os
import platform

CAPS = {  # what an AVX2 measurement on an AVX-512 machine sets, for every library at once
    "RNNKIT_KERNEL": "avx2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_isa() -> str:
    flags = cpu_flags()
    if "avx512f" in flags:
        return "AVX-512"
    if {"avx2", "fma"} <= flags:
        return "AVX2 + FMA"
    return "no AVX2"


def blas_kernels() -> list[str]:
    from threadpoolctl import threadpool_info

    out = []
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            lib = info.get("filepath", "").split("/")[-1]
            out.append(
                f"{info.get('internal_api')} {info.get('version')} "
                f"({info.get('architecture', '?')} kernel, {lib})"
            )
    return out


def torch_isa() -> str:
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


@functools.cache
def onednn_isa() -> str:
    """The ISA oneDNN dispatches torch's float32 LSTM to, from its verbose line (written by C
    code to file descriptor 1, so read through a temporary file; once per process, as oneDNN
    prints it once)."""
    import tempfile

    import torch

    lstm, x = torch.nn.LSTM(8, 8), torch.zeros(2, 1, 8)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            with torch.no_grad(), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                lstm(x)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    for line in text.splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return "unknown"


def rnnkit_kernel() -> str:
    from rnnkit.fast import target

    return target.config().describe()


def capped_avx2() -> tuple[bool, list[str]]:
    """Whether this process measures an AVX2 machine on an AVX-512 one: every cap set and in
    effect. Returns (capped, problems); problems lists the caps missing or not in effect when
    some but not all were set."""
    from rnnkit.fast import target

    asked = [k for k, v in CAPS.items() if os.environ.get(k, "").lower() == v.lower()]
    if not asked:
        return False, []
    problems = [f"{k} is not {v}" for k, v in CAPS.items() if k not in asked]
    if target.config().isa != "avx2":
        problems.append(f"rnnkit kernel is {target.config().isa}")
    if torch_isa().lower() not in ("avx2", "default"):
        problems.append(f"torch runs {torch_isa()}")
    if "512" in onednn_isa():
        problems.append(f"oneDNN runs {onednn_isa()}")
    kernels = " ".join(blas_kernels()).lower()
    if any(wide in kernels for wide in ("skylakex", "cooperlake", "sapphirerapids", "zen4")):
        problems.append(f"a BLAS runs an AVX-512 kernel ({kernels})")
    return not problems, problems


def header() -> str:
    """Lines to print first: machine, ISA, each library's kernel, native or capped."""
    import numpy as np
    import torch

    capped, problems = capped_avx2()
    if problems:
        raise SystemExit("half-capped AVX2 measurement: " + "; ".join(problems))
    native = native_isa()
    run_as = f"AVX2, capped on an {native} machine" if capped else f"{native}, native"
    caps = " ".join(f"{k}={os.environ[k]}" for k in CAPS if k in os.environ)
    return "\n".join(
        [
            f"machine: {cpu_model()}, {os.cpu_count()} cores; measured as {run_as}",
            f"caps: {caps or 'none'}",
            rnnkit_kernel(),
            f"torch {torch.__version__}: ATen {torch_isa()}, oneDNN {onednn_isa()}",
            f"numpy {np.__version__}, BLAS: {'; '.join(blas_kernels()) or 'unknown'}",
        ]
    )


if __name__ == "__main__":
    print(header())
