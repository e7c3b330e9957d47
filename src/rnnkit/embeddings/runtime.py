"""Thread count, progress bars and the compiled-code check shared by the embedding trainers."""

from __future__ import annotations

from typing import Any

from rnnkit import fast
from rnnkit.engine import backend
from rnnkit.io import RnnkitError


def require_compiled(what: str) -> None:
    """The trainers' inner loops exist only compiled (numba): a clear error where the
    process asked for no compiled code (``RNNKIT_BACKEND=numpy``, ``rnnkit --backend numpy``)
    or numba is missing."""
    if backend.get_backend() == "numpy":
        raise RnnkitError(
            f"{what}: the trainer's loops are compiled (numba), and the backend is 'numpy' "
            "(RNNKIT_BACKEND or --backend): use 'auto' or 'compiled' to train embeddings"
        )
    reason = fast.missing()
    if reason is not None:
        raise RnnkitError(f"{what}: the trainer's loops are compiled, but {reason}")


def set_threads(threads: int) -> int:
    """Numba's worker count for the next parallel call; returns the logical thread count.

    Asking for more threads than numba has (NUMBA_NUM_THREADS, the core count by default) still
    splits the work into that many interleaved streams, run by the threads numba has.
    """
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return threads


def progress_bar(total: int, enabled: bool, desc: str, unit: str = "word") -> Any:
    """A tqdm bar on stderr counting words (so it shows words/s), or None when disabled."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, desc=desc, dynamic_ncols=True)
