"""Memory reused between calls for the layers' large arrays (states, gates, their gradients).

A fresh NumPy array of a few MiB or more comes from the operating system as untouched pages,
and the first write to each page faults into the kernel, which zeroes it. The recurrent
layers allocate such arrays on every call (the gates of all steps, their gradients, the packed
weights), so a training step paid for its memory again each time, and with 2 threads their
page faults contend with each other (the measurements: BENCHMARKS.md, session 7).

:func:`empty` hands out views of byte buffers kept here. A buffer is free again when nothing
but this module refers to it (a view of it holds a reference to it, so an array still used,
say a forward pass's cache or an output the caller kept, is never handed out twice); a
request takes the smallest free buffer of 1 to 2 times its size rounded up to a size class
(:func:`_size_class`). Arrays below
:data:`MIN_BYTES` are not pooled (NumPy's small-block cache serves them); the pool holds at
most :data:`LIMIT` bytes (free buffers are dropped, largest first, to make room; past that,
arrays come from np.empty); :func:`release` drops all free buffers.

Example:
    >>> a = empty((1024, 1024), np.float32)
    >>> a.shape, a.dtype
    ((1024, 1024), dtype('float32'))
    >>> address = a.ctypes.data
    >>> del a  # the buffer is free again: the next request of that size reuses it
    >>> empty((1024, 1024), np.float32).ctypes.data == address
    True
"""

from __future__ import annotations

import sys
import threading
from math import prod
from typing import Any

import numpy as np

MIN_BYTES = 1 << 20  # smaller arrays come from np.empty
LIMIT = 1 << 30  # bytes held by the pool at most, free or in use

_buffers: list[np.ndarray] = []  # 1-D uint8 arrays
_lock = threading.Lock()


def _count(buffers: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(buffers[i])


# what _count gives for a buffer nothing else refers to (2 on CPython 3.11: the list's
# reference and the argument's), measured rather than assumed; a view adds one
_FREE = _count([np.empty(1, np.uint8)], 0)


def _is_free(i: int) -> bool:
    return _count(_buffers, i) == _FREE


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array, like ``np.empty``, on reused memory when large."""
    dtype = np.dtype(dtype)
    n = prod(shape) * dtype.itemsize
    if n < MIN_BYTES:
        return np.empty(shape, dtype)
    want = _size_class(n)
    with _lock:
        best = -1
        for i in range(len(_buffers)):  # the smallest free buffer of 1-2 times the class
            size = _buffers[i].nbytes
            if want <= size <= 2 * want and (best < 0 or size < _buffers[best].nbytes) \
                    and _is_free(i):  # fmt: skip
                best = i
        if best < 0:
            _trim(LIMIT - want)
            if sum(b.nbytes for b in _buffers) + want > LIMIT:
                return np.empty(shape, dtype)
            _buffers.append(np.empty(want, np.uint8))
            best = len(_buffers) - 1
        return _buffers[best][:n].view(dtype).reshape(shape)


def _size_class(n: int) -> int:
    """n rounded up to m * 2^e with m in 8..15 (at most 12.5% more), so that requests of
    nearly the same size (a forward pass's packed W^T and the backward's packed W, say)
    share buffers: without classes the pool kept both (benchmarks/bench_memory.py)."""
    e = max(n.bit_length() - 4, 0)
    return -(-n >> e) << e


def _trim(limit: int) -> None:
    """Drop free buffers, largest first, until the pool holds at most ``limit`` bytes (or
    none of it is free)."""
    free = sorted((i for i in range(len(_buffers)) if _is_free(i)),
                  key=lambda i: _buffers[i].nbytes)  # fmt: skip
    total = sum(b.nbytes for b in _buffers)
    drop = set()
    while free and total > limit:
        i = free.pop()
        total -= _buffers[i].nbytes
        drop.add(i)
    _buffers[:] = [b for i, b in enumerate(_buffers) if i not in drop]


def release() -> None:
    """Return the memory of all free buffers (those no array refers to) to the system."""
    with _lock:
        _trim(0)


def pooled_bytes() -> int:
    """Bytes held by the pool, free or in use."""
    with _lock:
        return sum(b.nbytes for b in _buffers)
