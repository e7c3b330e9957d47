"""Compiled BPTT loops (numba) behind :mod:`rnnkit.fast.recurrent`, one per cell and direction.

The arithmetic is that of :mod:`rnnkit.engine.cells` (the NumPy reference, one step at a time);
here the whole time loop of one layer and direction runs in one compiled function, so a step
costs one recurrent matmul (float32: rnnkit.fast.gemm on W_hh packed once per call; float64:
BLAS) plus vectorised passes over the gates, with no Python in between. Each loop works on
the batch rows [b_lo, b_hi) of full arrays, so that the layer can run row ranges in
parallel threads.

Layouts (time-major, C-contiguous; B batch, T time, H hidden, G = gates * H, C columns of
the layer's output, dirs * H):

- ``xw`` (T + 1, B, G) for the LSTM and GRU (see ``_gate_slots``): the input projection
  W_ih x_t + biases, computed by the layer before the loop; the forward loop adds the
  recurrent matmul in place and then writes the gate activations, which backward reads.
  The plain RNN has no ``xw``: the layer writes the projection of step t into the slot of
  h_t in ``hbuf``, and the loop replaces it by h_t.
- ``hbuf`` (T + 2, B, C): slot 0 holds the forward direction's initial state, slots 1..T
  the state after each step, slot T + 1 the reverse direction's initial state; direction
  ``d`` owns columns ``col = d * H`` to ``col + H``. So step t reads h_{t-1} from slot t
  (forward) or t + 2 (reverse) and writes slot t + 1, and the previous states of all T
  steps are one strided (T*B, H) matrix, which makes dW_hh one matmul after the loop.
- ``cbuf`` (T + 1, B, H), the LSTM's cell states: slot 0 (forward) or T (reverse) holds
  the initial state, c_t is in slot t + 1 (forward) or t (reverse). In inference, where
  backward does not read them, cbuf has 2 slots, and slot s above is slot s % 2.
- ``valid`` (T, B) uint8: 1 where step t of sequence b is real, 0 for padding (the state is
  carried unchanged); an empty (0, 0) array means no padding.
- Backward keeps the gradient reaching the state, ``dh`` (B, H) (and ``dc``), and adds the
  output gradient ``dout`` (T, B, C) of each step to it; it writes the gradients of the gate
  pre-activations, ``dax`` (input side) and ``dah`` (recurrent side; the same array except
  in the GRU), from which the layer computes every weight gradient with one matmul. The
  RNN's and GRU's backward loops run on a few steps at a time (the layer passes views of
  its arrays cut to those steps; t is then counted from the first of them), so that these
  gradients are never held for all T steps (rnnkit.fast.recurrent.direction_backward).

Pointwise code is written as several short loops rather than one fused loop: LLVM
vectorises a loop only if it can rule out aliasing between its arrays at run time, and a
loop touching eight arrays needs more checks than it is willing to emit (a fused LSTM step
stayed scalar). float32 uses a rational approximation of tanh (Eigen's, relative
error < 3e-7) because numba's ``math.tanh`` is a scalar libm call that blocks vectorisation;
float64 uses ``math.tanh``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import math
import os
import sys

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from rnnkit.fast import gemm as _g

# numba compiles gemm.py's small functions (the wrappers that call the bodies by name) into
# these loops, but keys this file's on-disk cache by this file's source alone: a cache made
# against another gemm.py would be loaded and call the bodies with a stale argument list. So
# this line names the gemm.py the loops were written against, and changes with it
# (tests/test_native_bodies.py holds it to the file; after editing gemm.py, put its new
# sha256 here, which also invalidates the loops' cache):
# gemm.py sha256: 1db4fc461787154533867a34943bff75956abc6c56a4c46026bb0c659db50053

# 'contract' lets LLVM fuse a*b+c into FMAs; nothing that changes results beyond rounding.
_JIT = {"cache": True, "error_model": "numpy", "fastmath": {"contract"}, "nogil": True}

ACT_CODES = {"tanh": 0, "relu": 1, "sigmoid": 2}

# --- BLAS: numpy's own library, called from compiled code ------------------------------------


def _blas_candidates() -> list[str]:
    """Shared libraries that may hold a CBLAS sgemm, numpy's own first."""
    root = os.path.dirname(np.__file__)
    paths: list[str] = []
    for pattern in ("../numpy.libs/*blas*", ".dylibs/*blas*", "../numpy.libs/*.dll"):
        paths += sorted(glob.glob(os.path.join(root, pattern)))
    if sys.platform == "darwin":
        paths.append("/System/Library/Frameworks/Accelerate.framework/Accelerate")
    for name in ("openblas", "cblas", "blas", "mkl_rt"):
        found = ctypes.util.find_library(name)
        if found:
            paths.append(found)
    return paths


def _address(lib: ctypes.CDLL, name: str) -> int:
    fn = getattr(lib, name, None)
    return 0 if fn is None else int(ctypes.cast(fn, ctypes.c_void_p).value or 0)


def _uses_64bit_ints(lib: ctypes.CDLL, prefix: str, suffix: str) -> bool:
    """Whether a CBLAS takes 64-bit integers: the ``64_`` suffix says so; an unsuffixed
    OpenBLAS tells in its build configuration; anything else is taken as 32-bit."""
    if suffix == "64_":
        return True
    config = getattr(lib, f"{prefix.replace('cblas_', '')}openblas_get_config{suffix}", None)
    if config is None:
        return False
    config.restype = ctypes.c_char_p
    return b"USE64BITINT" in (config() or b"")


def find_blas() -> tuple[int, int, int, int, int]:
    """Addresses of a CBLAS: (sgemm, dgemm, 1 if 64-bit integers, somatcopy, domatcopy).

    Zeros where nothing is found. numpy >= 2 wheels bundle OpenBLAS with 64-bit integers
    and prefixed names (``scipy_cblas_sgemm64_``); loading the same file again returns the
    library numpy already uses, so threadpoolctl and ``OPENBLAS_NUM_THREADS`` govern both.
    ``?omatcopy`` (an OpenBLAS extension, a fast transpose) is optional.
    """
    names = [("scipy_cblas_", "64_"), ("cblas_", "64_"), ("cblas_", "")]
    for path in _blas_candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in names:
            s, d = (_address(lib, f"{prefix}{t}gemm{suffix}") for t in "sd")
            if s and d:
                so, do = (_address(lib, f"{prefix}{t}omatcopy{suffix}") for t in "sd")
                return s, d, int(_uses_64bit_ints(lib, prefix, suffix)), so, do
    return 0, 0, 0, 0, 0


BLAS = find_blas()  # passed to every loop; zeros select the slow compiled fallbacks


def _find_thread_query() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    names = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
             "openblas_get_num_threads")  # fmt: skip
    for path in _blas_candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in names:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype, fn.argtypes = ctypes.c_int, []
                return fn
    return None


_THREAD_QUERY = _find_thread_query()


def blas_threads() -> int:
    """How many threads NumPy's BLAS may use now (1 where it cannot tell): the layers run
    their float32 work on as many, so ``threadpoolctl`` and ``OPENBLAS_NUM_THREADS`` govern
    rnnkit as they govern NumPy."""
    return max(1, int(_THREAD_QUERY())) if _THREAD_QUERY is not None else 1


def _cblas_gemm(int_bits: int):  # type: ignore[no-untyped-def]
    """An intrinsic calling cblas_?gemm at a run-time address (so compiled code caches)."""

    @intrinsic
    def call(typingctx, fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):  # type: ignore[no-untyped-def]
        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            fn, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc = args
            i32, iN = ir.IntType(32), ir.IntType(int_bits)
            ft = context.get_value_type(sig.args[6])
            ptr = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(
                ir.VoidType(), [i32, i32, i32, iN, iN, iN, ft, ptr, iN, ptr, iN, ft, ptr, iN]
            )

            def to_int(v):  # type: ignore[no-untyped-def]
                return builder.trunc(v, iN) if int_bits < 64 else v

            builder.call(
                builder.inttoptr(fn, fnty.as_pointer()),
                [ir.Constant(i32, 101),  # CblasRowMajor
                 builder.trunc(ta, i32), builder.trunc(tb, i32),
                 to_int(m), to_int(n), to_int(k), alpha,
                 builder.inttoptr(a, ptr), to_int(lda), builder.inttoptr(b, ptr), to_int(ldb),
                 beta, builder.inttoptr(c, ptr), to_int(ldc)],
            )  # fmt: skip
            return context.get_dummy_value()

        i64 = types.int64
        sig = types.void(i64, i64, i64, i64, i64, i64, alpha, i64, i64, i64, i64, alpha, i64, i64)
        return sig, codegen

    return call


_cblas_gemm64 = _cblas_gemm(64)
_cblas_gemm32 = _cblas_gemm(32)


def _cblas_omatcopy(int_bits: int):  # type: ignore[no-untyped-def]
    """An intrinsic calling cblas_?omatcopy(order, trans, rows, cols, alpha, a, lda, b, ldb)."""

    @intrinsic
    def call(typingctx, fn, rows, cols, alpha, a, lda, b, ldb):  # type: ignore[no-untyped-def]
        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            fn, rows, cols, alpha, a, lda, b, ldb = args
            i32, iN = ir.IntType(32), ir.IntType(int_bits)
            ft = context.get_value_type(sig.args[3])
            ptr = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i32, i32, iN, iN, ft, ptr, iN, ptr, iN])

            def to_int(v):  # type: ignore[no-untyped-def]
                return builder.trunc(v, iN) if int_bits < 64 else v

            builder.call(
                builder.inttoptr(fn, fnty.as_pointer()),
                [ir.Constant(i32, 101), ir.Constant(i32, 112),  # CblasRowMajor, CblasTrans
                 to_int(rows), to_int(cols), alpha, builder.inttoptr(a, ptr), to_int(lda),
                 builder.inttoptr(b, ptr), to_int(ldb)],
            )  # fmt: skip
            return context.get_dummy_value()

        i64 = types.int64
        return types.void(i64, i64, i64, alpha, i64, i64, i64, i64), codegen

    return call


_cblas_omatcopy64 = _cblas_omatcopy(64)
_cblas_omatcopy32 = _cblas_omatcopy(32)


def _cast(x, like):  # type: ignore[no-untyped-def]
    """x converted to the dtype of the array ``like`` (compiled code only)."""


@overload(_cast, jit_options=_JIT)
def _cast_impl(x, like):  # type: ignore[no-untyped-def]
    # numba promotes int64 (op) float32 to float64: every constant meeting float32 data must
    # be cast first, or the arithmetic silently runs (unvectorised) in float64
    dtype = like.dtype if isinstance(like, types.Array) else like
    if dtype == types.float32:
        return lambda x, like: np.float32(x)
    return lambda x, like: np.float64(x)


@nb.njit(**_JIT)
def _lead(a):  # type: ignore[no-untyped-def]
    """The leading dimension of a 2-D array with unit column stride, as BLAS wants it."""
    if a.shape[1] > 1 and a.strides[1] != a.itemsize:
        raise ValueError("gemm: columns must be contiguous")
    return max(a.strides[0] // a.itemsize, a.shape[1], 1)


@nb.njit(**_JIT)
def gemm(blas, trans_a, trans_b, alpha, a, b, beta, c):  # type: ignore[no-untyped-def]
    """c = alpha op(a) op(b) + beta c for row-major 2-D arrays (op: transpose if trans_*).

    ``blas`` is :data:`BLAS`; without a BLAS it runs a plain compiled loop (slow, correct).
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if m == 0 or n == 0:
        return
    if blas[0] != 0:
        fn = blas[0] if c.itemsize == 4 else blas[1]
        ta, tb = 112 if trans_a else 111, 112 if trans_b else 111
        al, be = _cast(alpha, c), _cast(beta, c)
        pa, pb, pc = a.ctypes.data, b.ctypes.data, c.ctypes.data
        la, lb, lc = _lead(a), _lead(b), _lead(c)
        if blas[2]:
            _cblas_gemm64(fn, ta, tb, m, n, k, al, pa, la, pb, lb, be, pc, lc)
        else:
            _cblas_gemm32(fn, ta, tb, m, n, k, al, pa, la, pb, lb, be, pc, lc)
        return
    aa = a.T if trans_a else a
    bb = b.T if trans_b else b
    for i in range(m):
        row = np.zeros(n, c.dtype)
        for p in range(k):
            s = aa[i, p]
            for j in range(n):
                row[j] += s * bb[p, j]
        for j in range(n):
            c[i, j] = alpha * row[j] + (beta * c[i, j] if beta != 0 else 0)


@nb.njit(**_JIT)
def transpose(blas, a):  # type: ignore[no-untyped-def]
    """a.T as a new C-contiguous array (a C-contiguous 2-D): BLAS ?omatcopy, else 32 x 32 tiles.

    The recurrent weight is transposed on every forward call, and NumPy's
    ``ascontiguousarray(a.T)`` thrashes the cache on power-of-two widths (BENCHMARKS.md).
    """
    R, C = a.shape
    out = np.empty((C, R), a.dtype)
    fn = blas[3] if a.itemsize == 4 else blas[4]
    if fn != 0 and R > 0 and C > 0:
        one = _cast(1.0, a)
        if blas[2]:
            _cblas_omatcopy64(fn, R, C, one, a.ctypes.data, C, out.ctypes.data, R)
        else:
            _cblas_omatcopy32(fn, R, C, one, a.ctypes.data, C, out.ctypes.data, R)
        return out
    for i0 in range(0, R, 32):
        i1 = min(i0 + 32, R)
        for j0 in range(0, C, 32):
            j1 = min(j0 + 32, C)
            for j in range(j0, j1):
                for i in range(i0, i1):
                    out[j, i] = a[i, j]
    return out


# --- activations -------------------------------------------------------------------------------


def _tanh(x):  # type: ignore[no-untyped-def]
    """tanh for compiled code: a vectorisable rational approximation in float32."""


@overload(_tanh, jit_options=_JIT)
def _tanh_impl(x):  # type: ignore[no-untyped-def]
    if x == types.float32:
        clamp_, P, Q = _g.TANH_CLAMP, _g.TANH_P, _g.TANH_Q  # Eigen's fit (see rnnkit.fast.gemm)

        def tanh32(x):  # type: ignore[no-untyped-def]
            clamp = np.float32(clamp_)
            y = clamp if x > clamp else x  # written so that NaN passes through
            y = -clamp if y < -clamp else y
            y2 = y * y
            p = y2 * np.float32(P[0]) + np.float32(P[1])
            p = y2 * p + np.float32(P[2])
            p = y2 * p + np.float32(P[3])
            p = y2 * p + np.float32(P[4])
            p = y2 * p + np.float32(P[5])
            p = y2 * p + np.float32(P[6])
            q = y2 * np.float32(Q[0]) + np.float32(Q[1])
            q = y2 * q + np.float32(Q[2])
            q = y2 * q + np.float32(Q[3])
            return y * p / q

        return tanh32
    return lambda x: math.tanh(x)


@nb.njit(**_JIT)
def _sigmoid(x):  # type: ignore[no-untyped-def]
    """1 / (1 + e^-x) = (1 + tanh(x / 2)) / 2, as :func:`rnnkit.engine.ops.sigmoid`."""
    half = _cast(0.5, x)
    return half + half * _tanh(half * x)


@nb.njit(**_JIT)
def tanh_array(x, out):  # type: ignore[no-untyped-def]
    """out = tanh(x) elementwise with the compiled tanh (1-D arrays; used by the tests)."""
    for i in range(x.shape[0]):
        out[i] = _tanh(x[i])


@nb.njit(**_JIT)
def _act(x, code):  # type: ignore[no-untyped-def]
    if code == 0:
        return _tanh(x)
    if code == 1:
        zero = _cast(0.0, x)
        return zero if x < zero else x  # NaN passes through, as np.maximum
    return _sigmoid(x)


@nb.njit(**_JIT)
def _act_grad(y, code):  # type: ignore[no-untyped-def]
    """d act / d x in terms of y = act(x): 1 - y^2, [y > 0], y (1 - y)."""
    one = _cast(1.0, y)
    if code == 0:
        return one - y * y
    if code == 1:
        return one if y > 0 else _cast(0.0, y)
    return y * (one - y)


# --- helpers shared by the loops ---------------------------------------------------------------
#
# Inner loops run over 1-D row views with indices from 0: an index such as ``col + j`` into
# a 3-D array makes numba emit a wraparound select for negative indices, and LLVM then cannot
# analyse the addresses and leaves the loop scalar.


@nb.njit(**_JIT)
def _slots(t, reverse):  # type: ignore[no-untyped-def]
    """(hbuf slot of h_{t-1}, hbuf slot of h_t) for step t."""
    return (t + 2, t + 1) if reverse else (t, t + 1)


@nb.njit(**_JIT)
def _gate_slots(t, reverse):  # type: ignore[no-untyped-def]
    """(xw slot of step t's pre-activations, xw slot its gate activations go to).

    xw has T + 1 slots: the pre-activations of step t sit one slot past its gates, so
    each step writes its gates out of place (which vectorises better than in place) into
    the slot of the step before it, already consumed, and xw[:T] (forward) or xw[1:]
    (reverse) ends up holding the gates of steps 0..T-1 in order.
    """
    return (t, t + 1) if reverse else (t + 1, t)


@nb.njit(**_JIT)
def _carry(valid, t, b):  # type: ignore[no-untyped-def]
    """True when step t of sequence b is padding (its state is carried unchanged)."""
    return valid.shape[0] > 0 and valid[t, b] == 0


@nb.njit(**_JIT)
def _zero(dst):  # type: ignore[no-untyped-def]
    for j in range(dst.shape[0]):
        dst[j] = 0


@nb.njit(**_JIT)
def _add(dst, src):  # type: ignore[no-untyped-def]
    for j in range(dst.shape[0]):
        dst[j] += src[j]


@nb.njit(**_JIT)
def _add_output_grad(dh, dout, t, col, valid, hid, b_lo, b_hi):  # type: ignore[no-untyped-def]
    """dh += dout[t] (the step's output gradient; none at padding); keep it if asked."""
    H = dh.shape[1]
    for b in range(b_lo, b_hi):
        if not _carry(valid, t, b):
            _add(dh[b], dout[t, b, col : col + H])
        if hid.shape[0] > 0:
            _g.copy_into(hid[t, b], dh[b])


@nb.njit(**_JIT)
def _rgemm(blas, a, w, wp, beta, c):  # type: ignore[no-untyped-def]
    """c = beta c + a w (beta 0 or 1) for the recurrent products of the loops: on ``wp``, w
    packed once per call by :func:`rnnkit.fast.gemm.pack` (float32), or through :func:`gemm`
    where ``wp`` is empty."""
    if wp.shape[0] > 0:  # int64, not literals: one compiled gemm_packed for every caller
        _g.gemm_packed(a, wp, c.shape[1], np.int64(beta), c, np.int64(0), a.shape[0], _g.NO_BIAS)
    else:
        gemm(blas, False, False, 1.0, a, w, beta, c)


@nb.njit(**_JIT)
def _recurrent_grad(blas, dh, da_t, w_hh, wp, db, valid, t, b_lo, b_hi):  # type: ignore[no-untyped-def]
    """db += the rows of da_t; dh <- (dh at padding rows, else 0) + da_t W_hh: dL/dh_{t-1}."""
    for b in range(b_lo, b_hi):
        _add(db, da_t[b])
    if valid.shape[0] > 0:
        for b in range(b_lo, b_hi):
            if valid[t, b] != 0:
                _zero(dh[b])
        _rgemm(blas, da_t[b_lo:b_hi], w_hh, wp, np.int64(1), dh[b_lo:b_hi])
    else:
        _rgemm(blas, da_t[b_lo:b_hi], w_hh, wp, np.int64(0), dh[b_lo:b_hi])


# --- vanilla RNN ---------------------------------------------------------------------------------


@nb.njit(**_JIT)
def rnn_forward(blas, T, H, w_hh_t, wp, hbuf, col, reverse, valid, act, b_lo, b_hi):  # type: ignore[no-untyped-def]
    """h_t = act(a_t + h_{t-1} W_hh^T) for t < T. The slot of h_t in hbuf holds the input
    projection a_t = x_t W_ih^T + biases on entry (the layer writes it there, so that the
    RNN keeps no (T, B, H) array besides its states); the step adds the recurrent product
    to it and replaces it by h_t."""
    for s in range(T):
        t = T - 1 - s if reverse else s
        hp, ho = _slots(t, reverse)
        _rgemm(blas, hbuf[hp, b_lo:b_hi, col : col + H], w_hh_t, wp, np.int64(1),
               hbuf[ho, b_lo:b_hi, col : col + H])  # fmt: skip
        for b in range(b_lo, b_hi):
            h_new = hbuf[ho, b, col : col + H]
            if _carry(valid, t, b):
                _g.copy_into(h_new, hbuf[hp, b, col : col + H])
                continue
            if act == 0:
                for j in range(H):
                    h_new[j] = _tanh(h_new[j])
            else:
                for j in range(H):
                    h_new[j] = _act(h_new[j], act)


@nb.njit(**_JIT)
def rnn_backward(
    blas, hbuf, col, w_hh, wp, dout, dcol, dh, da, db, valid, reverse, act, hid, b_lo, b_hi
):  # type: ignore[no-untyped-def]
    """Fills da (T, B, H) with dL/d(pre-activation), adds its sum over steps and rows to db
    (H,); dh (B, H) ends as dL/dh_init."""
    T, B, H = da.shape
    one = _cast(1.0, da)
    for s in range(T):
        t = s if reverse else T - 1 - s
        _, ho = _slots(t, reverse)
        _add_output_grad(dh, dout, t, dcol, valid, hid, b_lo, b_hi)
        for b in range(b_lo, b_hi):
            d = da[t, b]
            if _carry(valid, t, b):
                _zero(d)
                continue
            h, dh_b = hbuf[ho, b, col : col + H], dh[b]
            if act == 0:
                for j in range(H):
                    d[j] = dh_b[j] * (one - h[j] * h[j])
            else:
                for j in range(H):
                    d[j] = dh_b[j] * _act_grad(h[j], act)
        _recurrent_grad(blas, dh, da[t], w_hh, wp, db, valid, t, b_lo, b_hi)


# --- LSTM ----------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def lstm_forward(
    blas,
    xw,
    w_hh_t,
    wp,
    hbuf,
    col,
    cbuf,
    tcbuf,
    reverse,
    valid,
    peep,
    b_lo,
    b_hi,
    xs,
    wp_ih,
    bias,
    pre,
    h0_zero,
    batch_first,
):  # type: ignore[no-untyped-def]
    """The LSTM over all steps; xw (T+1, B, 4H) ends holding the gates i, f, g, o.

    cbuf (T+1 or 2, B, H) receives c_t; tcbuf (T or 1, B, H) tanh(c_t) (kept for backward when
    it has T slots); peep (3, H) holds w_ci, w_cf, w_co, or is empty (0, H) without peepholes.

    With xs (T, B, D) not empty (float32), xw holds no projection: each step computes
    x_t W_ih^T + b + h_{t-1} W_hh^T into ``pre`` (B, 4H) (_g.gemm_packed2, on W_ih^T packed
    as wp_ih and the bias padded), and the gates go to xw as above, or over ``pre`` where
    xw is empty (inference). h0_zero: the initial state h is zero (its product is skipped).
    batch_first: xs is (B, T, D) instead, the layer's input as given (inference reads it in
    place; one compiled loop serves both layouts, x_t being a strided view either way).
    Without peepholes and with H a whole number of panels, _g.lstm_step does the product
    and the pointwise step together, block by block, and ``pre`` is not used.
    """
    fused = xs.shape[0] > 0
    T = (xs.shape[1] if batch_first else xs.shape[0]) if fused else xw.shape[0] - 1
    G = pre.shape[1] if fused else xw.shape[2]
    H = G // 4
    has_peep = peep.shape[0] > 0
    vector = xw.itemsize == 4 and not has_peep
    # float32 without peepholes, H a whole number of panels: the product and the pointwise
    # step in one pass over blocks of the gates (_g.lstm_step)
    blocked = fused and vector and H % _g.NR == 0
    keep = xw.shape[0] > 0  # gates and tanh(c) kept for backward (else inference)
    no_padding = valid.ravel()[:0]
    for s in range(T):
        t = T - 1 - s if reverse else s
        hp, ho = _slots(t, reverse)
        cp, co = (t + 1, t) if reverse else (t, t + 1)
        if cbuf.shape[0] == 2:  # inference: the cell states in two slots, in turn
            cp, co = cp % 2, co % 2
        pa, pg = _gate_slots(t, reverse)
        k = t if tcbuf.shape[0] > 1 else 0
        if fused:
            x_t = xs[b_lo:b_hi, t] if batch_first else xs[t, b_lo:b_hi]
        if blocked:  # what is not kept is passed with 0 rows
            gates = xw[pg, b_lo:b_hi] if keep else pre[:0]
            tc_t = tcbuf[k, b_lo:b_hi] if keep else pre[:0, :H]
            real = valid[t, b_lo:b_hi] if valid.shape[0] > 0 else no_padding
            k2 = 0 if s == 0 and h0_zero else H
            _g.lstm_step(x_t, wp_ih, hbuf[hp, b_lo:b_hi, col : col + H], k2, wp,
                         bias, cbuf[cp, b_lo:b_hi], cbuf[co, b_lo:b_hi],
                         hbuf[ho, b_lo:b_hi, col : col + H], gates, tc_t, real)  # fmt: skip
            continue
        if fused:
            a = pre
            g = xw[pg] if xw.shape[0] > 0 else pre
            h_prev = hbuf[hp, b_lo:b_hi, col : col + H]
            if s == 0 and h0_zero:  # h_0 = 0: no recurrent product at the first step
                h_prev = h_prev[:, :0]
            _g.gemm_packed2(x_t, wp_ih, h_prev, wp, G, pre[b_lo:b_hi], bias)
        else:
            a, g = xw[pa], xw[pg]
            _rgemm(blas, hbuf[hp, b_lo:b_hi, col : col + H], w_hh_t, wp, np.int64(1), a[b_lo:b_hi])
        for b in range(b_lo, b_hi):
            h_new, c_new, c_prev = hbuf[ho, b, col : col + H], cbuf[co, b], cbuf[cp, b]
            if _carry(valid, t, b):
                _g.copy_into(h_new, hbuf[hp, b, col : col + H])
                _g.copy_into(c_new, c_prev)
                continue
            tc = tcbuf[k, b]
            j0 = 0
            if vector:  # float32 without peepholes: whole vectors in registers (_g.lstm_cell)
                pa_b, pg_b, pc_b = a[b].ctypes.data, g[b].ctypes.data, c_prev.ctypes.data
                pn_b, pt_b, ph_b = c_new.ctypes.data, tc.ctypes.data, h_new.ctypes.data
                for j0 in range(0, H - _g.VW + 1, _g.VW):
                    o = j0 * 4
                    _g.lstm_cell(pa_b + o, H, pg_b + o, pc_b + o, pn_b + o, pt_b + o, ph_b + o)
                j0 = H - H % _g.VW
                if j0 == H:
                    continue
            # the loops (all units, or the last H % VW ones), on views from unit j0
            n = H - j0
            a_i, a_f = a[b, j0:H], a[b, H + j0 : 2 * H]
            a_g, a_o = a[b, 2 * H + j0 : 3 * H], a[b, 3 * H + j0 :]
            g_i, g_f = g[b, j0:H], g[b, H + j0 : 2 * H]
            g_g, g_o = g[b, 2 * H + j0 : 3 * H], g[b, 3 * H + j0 :]
            c_prev, c_new, tc, h_new = c_prev[j0:], c_new[j0:], tc[j0:], h_new[j0:]
            if has_peep:
                w_ci, w_cf = peep[0, j0:], peep[1, j0:]
                for j in range(n):
                    a_i[j] += w_ci[j] * c_prev[j]
                for j in range(n):
                    a_f[j] += w_cf[j] * c_prev[j]
            for j in range(n):
                g_i[j] = _sigmoid(a_i[j])
            for j in range(n):
                g_f[j] = _sigmoid(a_f[j])
            for j in range(n):
                g_g[j] = _tanh(a_g[j])
            for j in range(n):  # c = f * c_prev + i * g
                c_new[j] = g_f[j] * c_prev[j] + g_i[j] * g_g[j]
            if has_peep:
                w_co = peep[2, j0:]
                for j in range(n):
                    a_o[j] += w_co[j] * c_new[j]
            for j in range(n):
                g_o[j] = _sigmoid(a_o[j])
            for j in range(n):
                tc[j] = _tanh(c_new[j])
            for j in range(n):  # h = o * tanh(c)
                h_new[j] = g_o[j] * tc[j]


@nb.njit(**_JIT)
def lstm_backward(blas, gates, cbuf, tcbuf, w_hh, wp, dout, dcol, dh, dc, da, db, valid, reverse,
                  peep, dpeep, hid, b_lo, b_hi):  # type: ignore[no-untyped-def]  # fmt: skip
    """Fills da (T, B, 4H) and adds its sum to db (4H,); dh, dc (B, H) end as the gradients
    of the initial state. dpeep (3, H) accumulates the peephole gradients (unused when peep
    is empty).
    """
    T, B, G = da.shape
    H = G // 4
    one = _cast(1.0, da)
    has_peep = peep.shape[0] > 0
    vector = da.itemsize == 4 and not has_peep
    for s in range(T):
        t = s if reverse else T - 1 - s
        cp, co = (t + 1, t) if reverse else (t, t + 1)
        _add_output_grad(dh, dout, t, dcol, valid, hid, b_lo, b_hi)
        for b in range(b_lo, b_hi):
            d = da[t, b]
            if _carry(valid, t, b):
                _zero(d)
                continue
            j0 = 0
            if vector:  # float32 without peepholes: whole vectors in registers
                pg_b, pt_b, pc_b = (
                    gates[t, b].ctypes.data,
                    tcbuf[t, b].ctypes.data,
                    cbuf[cp, b].ctypes.data,
                )
                ph_b, pd_b, pa_b = dh[b].ctypes.data, dc[b].ctypes.data, d.ctypes.data
                for j0 in range(0, H - _g.VW + 1, _g.VW):
                    o = j0 * 4
                    _g.lstm_cell_backward(pg_b + o, H, pt_b + o, pc_b + o, ph_b + o, pd_b + o,
                                          pa_b + o)  # fmt: skip
                j0 = H - H % _g.VW
                if j0 == H:
                    continue
            # the loops (all units, or the last H % VW ones), on views from unit j0
            n = H - j0
            g_i, g_f = gates[t, b, j0:H], gates[t, b, H + j0 : 2 * H]
            g_g, g_o = gates[t, b, 2 * H + j0 : 3 * H], gates[t, b, 3 * H + j0 :]
            d_i, d_f, d_g, d_o = d[j0:H], d[H + j0 : 2 * H], d[2 * H + j0 : 3 * H], d[3 * H + j0 :]
            tc, c_prev, dh_b, dc_b = tcbuf[t, b, j0:], cbuf[cp, b, j0:], dh[b, j0:], dc[b, j0:]
            # h = o * tanh(c): da_o = dh tanh(c) o (1 - o)
            for j in range(n):
                d_o[j] = dh_b[j] * tc[j] * g_o[j] * (one - g_o[j])
            # dL/dc_t = dc (from c_{t+1} = f c_t + ...) + dh o (1 - tanh(c)^2) [+ da_o w_co]
            for j in range(n):
                dc_b[j] += dh_b[j] * g_o[j] * (one - tc[j] * tc[j])
            if has_peep:
                w_co = peep[2, j0:]
                for j in range(n):
                    dc_b[j] += d_o[j] * w_co[j]
            # c = f * c_prev + i * g
            for j in range(n):
                d_i[j] = dc_b[j] * g_g[j] * g_i[j] * (one - g_i[j])
            for j in range(n):
                d_f[j] = dc_b[j] * c_prev[j] * g_f[j] * (one - g_f[j])
            for j in range(n):
                d_g[j] = dc_b[j] * g_i[j] * (one - g_g[j] * g_g[j])
            # the constant error carousel: dc_{t-1} = dc_t f_t [+ da_i w_ci + da_f w_cf]
            for j in range(n):
                dc_b[j] *= g_f[j]
            if has_peep:
                c_new = cbuf[co, b, j0:]
                dp_i, dp_f, dp_o = dpeep[0, j0:], dpeep[1, j0:], dpeep[2, j0:]
                w_ci, w_cf = peep[0, j0:], peep[1, j0:]
                for j in range(n):
                    dp_i[j] += d_i[j] * c_prev[j]
                for j in range(n):
                    dp_f[j] += d_f[j] * c_prev[j]
                for j in range(n):
                    dp_o[j] += d_o[j] * c_new[j]
                for j in range(n):
                    dc_b[j] += d_i[j] * w_ci[j] + d_f[j] * w_cf[j]
        _recurrent_grad(blas, dh, da[t], w_hh, wp, db, valid, t, b_lo, b_hi)


# --- GRU -----------------------------------------------------------------------------------------


@nb.njit(**_JIT)
def gru_forward(
    blas, xw, w_hh_t, wp1, wp2, b_hn, hbuf, col, aux, gh, reverse, valid, reset_after, b_lo, b_hi
):  # type: ignore[no-untyped-def]
    """The GRU over all steps; xw (T+1, B, 3H) ends holding the gates r, z, n.

    reset_after: xw holds W_ih x + b_ih + [b_hr, b_hz, 0]; aux (T or 1, B, H) receives
    W_hn h_{t-1} + b_hn (kept for backward); gh (B, 3H) is scratch.
    textbook: xw holds W_ih x + b_ih + b_hh; aux receives r * h_{t-1}, what W_hn multiplies.
    """
    T = xw.shape[0] - 1
    G = xw.shape[2]
    H = G // 3
    for s in range(T):
        t = T - 1 - s if reverse else s
        hp, ho = _slots(t, reverse)
        pa, pg = _gate_slots(t, reverse)
        k = t if aux.shape[0] > 1 else 0
        a, g = xw[pa], xw[pg]
        h_prev = hbuf[hp, b_lo:b_hi, col : col + H]
        if reset_after:
            _rgemm(blas, h_prev, w_hh_t, wp1, np.int64(0), gh[b_lo:b_hi])
        else:
            _rgemm(blas, h_prev, w_hh_t[:, : 2 * H], wp1, np.int64(1), a[b_lo:b_hi, : 2 * H])
        for b in range(b_lo, b_hi):
            x_b = aux[k, b]
            if _carry(valid, t, b):
                _zero(x_b)
                continue
            a_rz, g_rz, g_r = a[b, : 2 * H], g[b, : 2 * H], g[b, :H]
            if reset_after:
                gh_rz, gh_n = gh[b, : 2 * H], gh[b, 2 * H :]
                a_n, g_n = a[b, 2 * H :], g[b, 2 * H :]
                for j in range(2 * H):
                    g_rz[j] = _sigmoid(a_rz[j] + gh_rz[j])
                for j in range(H):
                    x_b[j] = gh_n[j] + b_hn[j]
                for j in range(H):  # n = tanh(xn + r * (W_hn h + b_hn))
                    g_n[j] = _tanh(a_n[j] + g_r[j] * x_b[j])
            else:
                h_b = hbuf[hp, b, col : col + H]
                for j in range(2 * H):
                    g_rz[j] = _sigmoid(a_rz[j])
                for j in range(H):
                    x_b[j] = g_r[j] * h_b[j]
        if not reset_after:  # n = tanh(xn + W_hn (r * h) + b_hn), b_hn already in xw
            _rgemm(blas, aux[k, b_lo:b_hi], w_hh_t[:, 2 * H :], wp2, np.int64(1),
                   a[b_lo:b_hi, 2 * H :])  # fmt: skip
            for b in range(b_lo, b_hi):
                if not _carry(valid, t, b):
                    a_n, g_n = a[b, 2 * H :], g[b, 2 * H :]
                    for j in range(H):
                        g_n[j] = _tanh(a_n[j])
        for b in range(b_lo, b_hi):
            h_new, h_b = hbuf[ho, b, col : col + H], hbuf[hp, b, col : col + H]
            if _carry(valid, t, b):
                _g.copy_into(h_new, h_b)
                continue
            g_z, g_n = g[b, H : 2 * H], g[b, 2 * H :]
            for j in range(H):  # h = (1 - z) n + z h_prev = n + z (h_prev - n)
                h_new[j] = g_n[j] + g_z[j] * (h_b[j] - g_n[j])


@nb.njit(**_JIT)
def gru_backward(blas, gates, hbuf, col, aux, w_hh, wp1, wp2, dout, dcol, dh, dax, dah, dbx, dbh,
                 drec, valid, reverse, reset_after, hid, b_lo, b_hi):  # type: ignore[no-untyped-def]  # fmt: skip
    """Fills dax (T, B, 3H), the gradients of the input-side pre-activations, and adds
    their sums to dbx (3H,); dh ends as dL/dh_0. W_hh comes packed as its r, z rows (wp1)
    and its n rows (wp2).

    reset_after: dah (T, B, H) receives the gradient of W_hn h_{t-1} + b_hn (the recurrent
    side's r and z rows are dax's), and dbh (3H,) the sums of both.
    textbook: dah is dax, dbh is dbx; drec (B, H) is scratch, the gradient of r * h_{t-1}.
    """
    T, B, G = dax.shape
    H = G // 3
    one = _cast(1.0, dax)
    for s in range(T):
        t = s if reverse else T - 1 - s
        hp, _ = _slots(t, reverse)
        _add_output_grad(dh, dout, t, dcol, valid, hid, b_lo, b_hi)
        x_t, h_t = dax[t], dah[t]
        for b in range(b_lo, b_hi):
            if _carry(valid, t, b):
                _zero(x_t[b])
                if reset_after:
                    _zero(h_t[b])
                continue
            g_r, g_z, g_n = gates[t, b, :H], gates[t, b, H : 2 * H], gates[t, b, 2 * H :]
            d_r, d_z, d_n = x_t[b, :H], x_t[b, H : 2 * H], x_t[b, 2 * H :]
            dh_b, h_b = dh[b], hbuf[hp, b, col : col + H]
            # h = (1 - z) n + z h_prev
            for j in range(H):
                d_z[j] = dh_b[j] * (h_b[j] - g_n[j]) * g_z[j] * (one - g_z[j])
            for j in range(H):
                d_n[j] = dh_b[j] * (one - g_z[j]) * (one - g_n[j] * g_n[j])
            if reset_after:
                # a_n = xn + r * ghn
                x_b = aux[t, b]
                for j in range(H):
                    d_r[j] = d_n[j] * x_b[j] * g_r[j] * (one - g_r[j])
                dgh_n = h_t[b]  # the r, z rows of dah are those of dax: not stored
                for j in range(H):
                    dgh_n[j] = d_n[j] * g_r[j]
        if not reset_after:
            # a_n = xn + W_hn (r * h_prev) + b_hn: drec = da_n W_hn
            _rgemm(blas, x_t[b_lo:b_hi, 2 * H :], w_hh[2 * H :], wp2, np.int64(0),
                   drec[b_lo:b_hi])  # fmt: skip
            for b in range(b_lo, b_hi):
                if _carry(valid, t, b):
                    continue
                g_r, d_r = gates[t, b, :H], x_t[b, :H]
                drec_b, h_b = drec[b], hbuf[hp, b, col : col + H]
                for j in range(H):
                    d_r[j] = drec_b[j] * h_b[j] * g_r[j] * (one - g_r[j])
        # the direct path: dh_prev = dh z [+ drec r]; padding rows pass dh through
        for b in range(b_lo, b_hi):
            if _carry(valid, t, b):
                continue
            dh_b, g_z = dh[b], gates[t, b, H : 2 * H]
            for j in range(H):
                dh_b[j] *= g_z[j]
            if not reset_after:
                drec_b, g_r = drec[b], gates[t, b, :H]
                for j in range(H):
                    dh_b[j] += drec_b[j] * g_r[j]
        for b in range(b_lo, b_hi):
            _add(dbx, x_t[b])
        _rgemm(blas, x_t[b_lo:b_hi, : 2 * H], w_hh[: 2 * H], wp1, np.int64(1), dh[b_lo:b_hi])
        if reset_after:  # dh_prev += dgh_n W_hn
            for b in range(b_lo, b_hi):
                _add(dbh[: 2 * H], x_t[b, : 2 * H])
                _add(dbh[2 * H :], h_t[b])
            _rgemm(blas, h_t[b_lo:b_hi], w_hh[2 * H :], wp2, np.int64(1), dh[b_lo:b_hi])
