"""The compiled engine's side of the recurrent layers: one direction of one layer at a time.

:mod:`rnnkit.engine.layers` owns the parameters, the checks, stacking, dropout and masks, and
hands each direction of each layer to an engine through five functions (the contract of
:mod:`rnnkit.engine.backend`): :func:`empty`, :func:`copy`, :func:`layer_input`,
:func:`direction_forward` and :func:`direction_backward`. This module is that engine for
compiled code; the NumPy engine beside the layers is the reference it is tested against.

Per layer and direction it does what the NumPy engine does, in the same order:

  before the loop:  XW = X W_ih^T + biases              one (T*B, D) x (D, G*H) product
                    (the float32 LSTM at batch >= 3, where its weights allow, instead adds
                    x_t W_ih^T inside each step's product: see :func:`fuses_projection`; the
                    plain RNN writes XW into the slots of its states)
  in the loop:      each step's recurrent product and its pointwise gate arithmetic, in one
                    compiled function per cell (:mod:`rnnkit.fast.loops`); backward also
                    sums the bias gradients
  after the loop:   dW_ih = dA^T X, dW_hh = dA^T H_prev, dX = dA W_ih, one product each
                    (the RNN and GRU: after each chunk of steps, so that dA is never held
                    for all T steps: see :func:`direction_backward`)

float32 products run on rnnkit's own kernel (:mod:`rnnkit.fast.gemm`, on weights packed once
per call), float64 ones through NumPy's BLAS. In float32 the work uses as many threads as
NumPy's BLAS may (``threadpoolctl``, ``OPENBLAS_NUM_THREADS``, ``rnnkit --threads``): the time
loops split the batch (rows are independent, so each thread runs its rows' whole recurrence
with no synchronisation), the large products split their output rows, and the weight
gradients of the RNN's and GRU's chunks run side by side, each on one thread, beside dX's
rows (:func:`_balanced`). The calling thread runs one part itself and hands each other to a
worker pinned to another CPU (:func:`_in_parallel`). Outputs do not depend
on the thread count; bias gradients, which add per-thread partial sums, agree to rounding.
Large per-call arrays come from :mod:`rnnkit.fast.workspace`, memory reused between calls.
Why each of these choices was made, with measurements: BENCHMARKS.md.

The layer is read through its public attributes only (``mode``, ``hidden_size``, ``dtype``,
``bias``, ``gates``, ``nonlinearity``, ``peepholes``, ``reset_after``); nothing here imports
the engine above it.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable
from functools import partial, reduce
from typing import Any

import numpy as np

from rnnkit.fast import gemm as _g
from rnnkit.fast import loops as K
from rnnkit.fast import workspace as ws

Array = np.ndarray
name = "compiled"
empty = ws.empty

# --- threads and products ------------------------------------------------------------------


def _packed(*mats: Array) -> Array:
    """The matrices side by side (their columns concatenated; all but the last a whole
    number of panels wide) packed for the float32 kernel (rnnkit.fast.gemm), once per call;
    an empty array (the loops then call BLAS) in float64. Large ones are packed by all
    threads, a range of panels each (the weights come from memory)."""
    if mats[0].dtype != np.float32:
        return _g.EMPTY
    nr = _g.NR
    widths = [_g.packed_shape(m.shape)[0] for m in mats]
    out = ws.empty((sum(widths), mats[0].shape[0], nr), np.float32)
    jobs: list[list[Callable[[], object]]] = [[] for _ in range(K.blas_threads())]
    first = 0
    for m, panels in zip(mats, widths, strict=True):
        big = m.size >= 1 << 18
        for i, s in enumerate(_parts(panels, m.dtype) if big else [slice(0, panels)]):
            cols = m[:, s.start * nr : s.stop * nr]
            jobs[i].append(partial(_g.pack_into, cols, out[first + s.start : first + s.stop]))
        first += panels
    _in_parallel([partial(_call_all, j) for j in jobs if j])
    return out


def _call_all(calls: list[Callable[[], object]]) -> None:
    for c in calls:
        c()


def _w_hh_t(w_hh: Array) -> Array:
    """W_hh^T, contiguous, for the loops' BLAS products (float64); in float32 the loops use
    W_hh packed (rnnkit.fast.gemm) and get an empty array instead of a transposed copy."""
    if w_hh.dtype == np.float32:
        return np.empty((0, 0), np.float32)
    return K.transpose(K.BLAS, np.ascontiguousarray(w_hh))


def copy(a: Array, dtype: Any = None) -> Array:
    """A C-contiguous copy of a (cast to ``dtype`` if given), in reused memory
    (rnnkit.fast.workspace) when large; in float32, large ones are copied by all threads
    (NumPy's copy releases the GIL)."""
    out = ws.empty(a.shape, dtype or a.dtype)
    parts = _parts(a.shape[0], out.dtype) if a.size >= 1 << 20 else [slice(0, a.shape[0])]
    _in_parallel([partial(np.copyto, out[s], a[s], casting="unsafe") for s in parts])
    return out


def _total(arrays: list[Array]) -> Array:
    """The sum of per-thread partial sums."""
    return reduce(np.add, arrays)


class _Worker:
    """A thread pinned to one CPU that runs one call at a time, handed to it through two
    locks. Two empty calls in parallel took 160 us through a thread pool's queue and
    futures (two workers, the caller waiting), 64 us this way (the caller running one);
    BENCHMARKS.md, issue 21, session 16."""

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.call: Callable[[], object] | None = None  # the one it runs; None: idle
        self.error: BaseException | None = None
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        threading.Thread(target=self._serve, name=f"rnnkit-cpu{cpu}", daemon=True).start()

    def _serve(self) -> None:
        try:
            _pin(self.cpu)
        except OSError:  # a CPU no longer allowed (cpuset changed): run unpinned
            pass
        while True:
            self.go.acquire()
            try:
                self.call()  # type: ignore[misc]
            except BaseException as e:  # handed back to the caller in finish()
                self.error = e
            self.done.release()

    def start(self) -> None:
        """Run the call set in ``call`` (which marks the worker as taken)."""
        self.go.release()

    def finish(self) -> None:
        """Wait for the call to return; raise what it raised."""
        self.done.acquire()
        self.call = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


_WORKERS: list[_Worker] = []
_WORKERS_LOCK = threading.Lock()  # choosing workers: callers in several threads
_sched_getcpu = (
    getattr(ctypes.CDLL(None), "sched_getcpu", None) if sys.platform == "linux" else None
)


def _forget_workers() -> None:
    """In a forked child: the workers' threads were not copied, so start new ones."""
    global _WORKERS_LOCK
    _WORKERS.clear()
    _WORKERS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _this_cpu() -> int:
    """The CPU this thread runs on now (Linux), else -1."""
    return int(_sched_getcpu()) if _sched_getcpu is not None else -1


def _in_parallel(calls: list[Callable[[], object]]) -> None:
    """Run the calls at the same time (they call compiled code that releases the GIL).

    This thread runs the first; each other one runs in a worker thread pinned to a CPU
    other than the one this thread is on now (Linux; elsewhere, the CPUs in turn): a worker
    woken after a pause was often placed on the CPU of the thread that woke it, so the two
    halves of the work shared one core (BENCHMARKS.md, session 6).
    """
    if len(calls) == 1:
        calls[0]()
        return
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    here = _this_cpu()
    others = [c for c in cpus if c != here] or cpus
    workers: list[_Worker] = []
    with _WORKERS_LOCK:
        for i, call in enumerate(calls[1:]):
            cpu = others[i % len(others)]
            idle = [w for w in _WORKERS if w.cpu == cpu and w.call is None]
            worker = idle[0] if idle else _Worker(cpu)
            if not idle:
                _WORKERS.append(worker)
            worker.call = call  # taken
            workers.append(worker)
    started: list[_Worker] = []
    errors: list[BaseException] = []
    try:
        for w in workers:
            w.start()
            started.append(w)
        calls[0]()
    except BaseException as e:
        errors.append(e)
    finally:  # all of them, even when one fails: they share arrays
        for w in workers:
            if w in started:
                try:
                    w.finish()
                except BaseException as e:
                    errors.append(e)
            else:
                w.call = None
    if errors:
        raise errors[0]


def _parts(n: int, dtype: Any, align: int = 1) -> list[slice]:
    """range(n) cut into one contiguous slice per thread (multiples of ``align`` but the
    last): as many threads as NumPy's BLAS may use, in float32 (the float64 loops call BLAS
    at each step and stay in one thread)."""
    k = min(K.blas_threads(), max(n // align, 1)) if dtype == np.float32 else 1
    bounds = [round(i * n / k / align) * align for i in range(k)] + [n]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _transposed_a_on_blas() -> bool:
    """Whether a product of a transposed A (the weight gradients' dA^T) goes to BLAS: where
    the configuration says BLAS is faster on it (AVX2: OpenBLAS 105 GFLOP/s, the kernel 66
    on the strided A; rnnkit.fast.target), in one thread only. With two threads the RNN's
    and GRU's training steps ran 9-55% faster on the kernel split between rnnkit's own
    threads (their backward pass calls these products chunk by chunk, between steps of the
    loop; BENCHMARKS.md, issue 21, session 13)."""
    return _g.CONFIG.transposed_a_on_blas and K.blas_threads() == 1


def _product(
    a: Array, b: Array, beta: int, c: Array, trans_a: bool = False, trans_b: bool = False,
    bias: Array | float = 0.0,
) -> None:  # fmt: skip
    """c = beta c + op(a) @ op(b) (beta 0 or 1), plus ``bias`` (a row vector) when beta is 0:
    rnnkit's float32 kernel (rnnkit.fast.gemm; over row blocks in parallel when large), BLAS
    for float64 (and for a transposed A in the AVX2 configuration, in one thread)."""
    has_bias = not (np.isscalar(bias) and bias == 0)
    blas = trans_a and _transposed_a_on_blas()  # dA^T
    if c.dtype == np.float32 and c.strides[1] == c.itemsize and c.size > 0 and not blas:
        _product_packed(a.T if trans_a else a, _packed(b.T if trans_b else b), beta, c,
                        bias if has_bias else None)  # fmt: skip
    else:
        if has_bias:
            c[...] = bias
            beta = 1
        K.gemm(K.BLAS, trans_a, trans_b, 1.0, a, b, float(beta), c)


def _product_packed(
    a: Array, packed: Array, beta: int, c: Array, bias: Array | None = None
) -> None:
    """c = beta c + a @ B (float32), B packed by :func:`_packed`, plus ``bias`` when given
    (then beta is ignored: the kernel starts from the bias, no pass to fill c first)."""
    M, n = c.shape
    if bias is not None:
        padded = _g.pad_bias(np.broadcast_to(np.asarray(bias, c.dtype), (n,)))
        beta = 2
    else:
        padded = _g.NO_BIAS
    # in parallel over row blocks when there is enough work (rows of the size of the
    # products over all steps); never through BLAS, whose own threads would compete
    parts = (
        _parts(M, c.dtype, _g.MR)
        if M >= _g.MIN_ROWS and M * n * a.shape[1] >= 1 << 22
        else [slice(0, M)]
    )
    _in_parallel([
        partial(_g.gemm_packed, a, packed, n, beta, c, s.start, s.stop, padded) for s in parts
    ])  # fmt: skip


def _weight_grads(das: list[Array], b: Array, outs: list[Array]) -> None:
    """out += da^T b for each da, out (gradient arrays, accumulated in place), with b
    packed once for all of them (float32; BLAS in float64, and for this transposed A where
    the configuration says so: see :func:`_product`)."""
    packed = _g.EMPTY if _transposed_a_on_blas() else _packed(b)  # empty in float64
    for da, out in zip(das, outs, strict=True):
        if packed.shape[0] > 0 and out.flags.c_contiguous and out.size > 0:
            _product_packed(da.T, packed, 1, out)
        elif out.flags.c_contiguous:
            _product(da, b, 1, out, trans_a=True)
        else:
            out += da.T @ b


# --- what differs between the cells ------------------------------------------------------------


def _loop_input_bias(layer: Any, p: dict[str, Array]) -> Array | float:
    """The bias folded into the input projection before the loop: b_ih + b_hh, except the
    GRU's b_hn, which stays inside r * (W_hn h + b_hn) in the PyTorch form."""
    if not layer.bias:
        return 0.0
    if layer.mode != "GRU" or not layer.reset_after:
        return p["bias_ih"] + p["bias_hh"]
    b = p["bias_ih"].copy()
    b[: 2 * layer.hidden_size] += p["bias_hh"][: 2 * layer.hidden_size]
    return b


def _gate_slot(layer: Any) -> int:
    """1 where the loop writes each step's gates one slot away from its pre-activations
    (LSTM, GRU: see rnnkit.fast.loops._gate_slots), else 0."""
    return 0 if layer.mode == "RNN" else 1


# the fused step reads W_ih as well as W_hh at every step: past this many bytes of the two
# (packed) it streams them from memory where the hoisted projection reads W_ih once
FUSE_MAX_BYTES = 16 << 20
# where H is not a whole number of panels (no fused block step) and the weights take more
# than FUSE_SMALL_BYTES, the rows per thread from which fusing pays
FUSE_SMALL_BYTES = 2 << 20
FUSE_MIN_ROWS = 32


def fuses_projection(layer: Any, batch: int, d_in: int) -> bool:
    """Whether the loop computes each step's input projection itself instead of one product
    over all steps before it (float32 LSTM, batch >= 3). The projection's output then never
    goes through memory, but each step reads W_ih as well as W_hh for few rows. So: only
    where the two weights together take at most :data:`FUSE_MAX_BYTES`, and either H is a
    whole number of the kernel's panels (the block step keeps the pre-activations in L1),
    the weights are small (:data:`FUSE_SMALL_BYTES`), or each thread has at least
    :data:`FUSE_MIN_ROWS` rows. At batch 1-2 the hoisted projection is as fast or faster
    (BENCHMARKS.md, session 7); the limits were measured with both ISAs in 1 and 2 threads
    (BENCHMARKS.md, issue 21, session 15: e.g. LSTM (16,35,1000,1000) inference in 2
    threads, AVX2, 92 ms fused, 51 hoisted; zaremba-small's (20,20,200,200) 3-11% faster
    fused)."""
    if layer.mode != "LSTM" or layer.dtype != np.float32 or batch < 3:
        return False
    H = layer.hidden_size
    size = (d_in + H) * layer.gates * H * np.dtype(np.float32).itemsize  # W_ih and W_hh
    if size > FUSE_MAX_BYTES:
        return False
    whole_panels = H % _g.NR == 0
    return whole_panels or size <= FUSE_SMALL_BYTES or batch // K.blas_threads() >= FUSE_MIN_ROWS


def _joins_weight_grads(layer: Any, dax: Array, dah: Array, D: int) -> bool:
    """Whether dW_ih and dW_hh are one product: float32, one gradient of the
    pre-activations for both (not the GRU's two), X a whole number of the kernel's panels
    wide, and at most 8 panels in all (BENCHMARKS.md, session 7). Never the GRU: in its
    textbook form W_hn multiplies r * h_{t-1}, not h_{t-1}. Nor where a transposed A goes
    to BLAS (AVX2, one thread: :func:`_transposed_a_on_blas`): the joined product is one of
    the kernel's."""
    nr = _g.NR
    return (
        layer.mode != "GRU" and dax is dah and dax.dtype == np.float32 and D % nr == 0
        and D + layer.hidden_size <= 8 * nr and not _transposed_a_on_blas()
    )  # fmt: skip


def _peep_rows(layer: Any, p: dict[str, Array]) -> Array:
    """(3, H) rows w_ci, w_cf, w_co, or (0, H) without peepholes."""
    if not getattr(layer, "peepholes", False):
        return np.empty((0, layer.hidden_size), layer.dtype)
    return np.stack([p["weight_ci"], p["weight_cf"], p["weight_co"]])


def _gru_b_hh(layer: Any, p: dict[str, Array]) -> Array:
    if layer.bias:
        return p["bias_hh"]
    return np.zeros(3 * layer.hidden_size, layer.dtype)


def _gru_packed_hh(layer: Any, w_hh: Array, backward: bool = False) -> tuple[Array, Array]:
    """W_hh (3H, H) packed for the loops: whole (the forward loop of the reset_after
    form), or its r, z rows and its n rows apart; transposed for the forward loop."""
    H = layer.hidden_size
    parts = [w_hh] if layer.reset_after and not backward else [w_hh[: 2 * H], w_hh[2 * H :]]
    packed = [_packed(w if backward else w.T) for w in parts]
    return packed[0], packed[1] if len(packed) > 1 else _g.EMPTY


# --- the loops of each cell ------------------------------------------------------------------


def _rnn_loop_forward(layer, xw, hbuf, col, init, p, valid, reverse, keep):  # type: ignore[no-untyped-def]
    T, _, H = xw.shape  # xw: this direction's slots 1..T of hbuf (see direction_forward)
    w_hh_t = _w_hh_t(p["weight_hh"])  # (H, H)
    code = K.ACT_CODES[layer.nonlinearity]
    wp = _packed(p["weight_hh"].T)
    _in_parallel([
        partial(K.rnn_forward, K.BLAS, T, H, w_hh_t, wp, hbuf, col, reverse, valid, code,
                s.start, s.stop)
        for s in _parts(hbuf.shape[1], layer.dtype)
    ])  # fmt: skip
    return [], ()


def _rnn_loop_backward(layer, dout, dcol, dfinal, cache, p, g, hid, steps, consume):  # type: ignore[no-untyped-def]
    hbuf, col, valid, reverse, _ = cache
    T, B, _ = dout.shape
    dh = dfinal[0].copy()  # (B, H), becomes dL/dh_init
    da = ws.empty((steps, B, layer.hidden_size), layer.dtype)
    w_hh = np.ascontiguousarray(p["weight_hh"])
    wp = _packed(w_hh)
    code = K.ACT_CODES[layer.nonlinearity]
    parts = _parts(B, layer.dtype)
    dbs = [np.zeros(layer.hidden_size, layer.dtype) for _ in parts]  # one per thread
    buf = _chunk_buffer(dout, steps, layer.hidden_size)
    for t0, t1 in _chunks(T, steps, reverse):
        d = da[: t1 - t0]
        dout_t, c = _own_columns(dout, dcol, layer.hidden_size, t0, t1, buf)
        _in_parallel([
            partial(K.rnn_backward, K.BLAS, hbuf[t0 : t1 + 2], col, w_hh, wp, dout_t, c, dh,
                    d, db, _cut(valid, t0, t1), reverse, code, _cut(hid, t0, t1), s.start,
                    s.stop)
            for s, db in zip(parts, dbs, strict=True)
        ])  # fmt: skip
        consume(t0, t1, d, d)
    db = _total(dbs)
    return [dh], (db, db)


def _lstm_loop_forward(layer, xw, hbuf, col, init, p, valid, reverse, keep, xs=None):  # type: ignore[no-untyped-def]
    T = xs.shape[0] if xs is not None else xw.shape[0] - 1
    B = hbuf.shape[1]
    H = layer.hidden_size
    w_hh_t = _w_hh_t(p["weight_hh"])  # (H, 4H)
    if xs is not None:  # float32: the loop projects x_t itself
        w_ih = np.ascontiguousarray(p["weight_ih"])
        wp_ih = _packed(w_ih.T)  # (D, 4H)
        bias = np.broadcast_to(np.asarray(_loop_input_bias(layer, p), layer.dtype), (4 * H,))
        pre = np.empty((B, 4 * H), layer.dtype)
        # inference hands the loop x (B, T, D) itself (see layer_input): the loop reads
        # x_t from it, with the same compiled code as the time-major copy
        batch_first = not xs.flags.c_contiguous and xs.transpose(1, 0, 2).flags.c_contiguous
        xs_arg = xs.transpose(1, 0, 2) if batch_first else xs
        fused = (xs_arg, wp_ih, _g.pad_bias(bias), pre, not init[0].any(), batch_first)
    else:
        empty3 = np.empty((0, 0, 0), layer.dtype)
        fused = (empty3, _g.EMPTY, _g.NO_BIAS, np.empty((0, 4 * H), layer.dtype), False,
                 False)  # fmt: skip
    # c_t; slot 0 (T reversed): c_init; in inference two slots in turn (slot s % 2)
    slots = T + 1 if keep else 2
    cbuf = ws.empty((slots, B, H), layer.dtype)
    cbuf[(T if reverse else 0) % slots] = init[1]
    tcbuf = ws.empty((T if keep else 1, B, H), layer.dtype)  # tanh(c_t), for backward
    wp, peep = _packed(p["weight_hh"].T), _peep_rows(layer, p)
    _in_parallel([
        partial(K.lstm_forward, K.BLAS, xw, w_hh_t, wp, hbuf, col, cbuf, tcbuf, reverse,
                valid, peep, s.start, s.stop, *fused)
        for s in _parts(B, layer.dtype)
    ])  # fmt: skip
    gates = xw[1:] if reverse else xw[:T]  # (T, B, 4H): step t's gates at [t]
    return [cbuf[(0 if reverse else T) % slots]], (gates, cbuf, tcbuf)


def _lstm_loop_backward(layer, dout, dcol, dfinal, cache, p, g, hid):  # type: ignore[no-untyped-def]
    hbuf, col, valid, reverse, (gates, cbuf, tcbuf) = cache
    dh, dc = dfinal[0].copy(), dfinal[1].copy()  # (B, H), become the initial state's grads
    # this direction's columns, contiguous: copied once for all T steps where dout is the
    # caller's array (a batch-major view)
    T, H = gates.shape[0], layer.hidden_size
    dout, dcol = _own_columns(dout, dcol, H, 0, T, _chunk_buffer(dout, T, H))
    da = ws.empty(gates.shape, layer.dtype)  # (T, B, 4H)
    peep = _peep_rows(layer, p)
    w_hh = np.ascontiguousarray(p["weight_hh"])
    wp = _packed(w_hh)
    parts = _parts(dh.shape[0], layer.dtype)
    dbs = [np.zeros(gates.shape[-1], layer.dtype) for _ in parts]  # one per thread
    dpeeps = [np.zeros_like(peep) for _ in parts]
    _in_parallel([
        partial(K.lstm_backward, K.BLAS, gates, cbuf, tcbuf, w_hh, wp, dout, dcol, dh, dc, da,
                db, valid, reverse, peep, dpeep, hid, s.start, s.stop)
        for s, db, dpeep in zip(parts, dbs, dpeeps, strict=True)
    ])  # fmt: skip
    db, dpeep = _total(dbs), _total(dpeeps)
    if layer.peepholes:
        g["weight_ci"] += dpeep[0]
        g["weight_cf"] += dpeep[1]
        g["weight_co"] += dpeep[2]
    return da, da, [dh, dc], (db, db)


def _gru_loop_forward(layer, xw, hbuf, col, init, p, valid, reverse, keep):  # type: ignore[no-untyped-def]
    T, B = xw.shape[0] - 1, xw.shape[1]
    H = layer.hidden_size
    w_hh_t = _w_hh_t(p["weight_hh"])  # (H, 3H)
    # reset_after: W_hn h_{t-1} + b_hn; textbook: r * h_{t-1}; kept for backward
    aux = ws.empty((T if keep else 1, B, H), layer.dtype)
    gh = np.empty((B, 3 * H), layer.dtype)  # scratch
    b_hn = np.ascontiguousarray(_gru_b_hh(layer, p)[2 * H :])
    wp1, wp2 = _gru_packed_hh(layer, p["weight_hh"])
    _in_parallel([
        partial(K.gru_forward, K.BLAS, xw, w_hh_t, wp1, wp2, b_hn, hbuf, col, aux, gh,
                reverse, valid, layer.reset_after, s.start, s.stop)
        for s in _parts(B, layer.dtype)
    ])  # fmt: skip
    return [], (xw[1:] if reverse else xw[:T], aux)


def _gru_loop_backward(layer, dout, dcol, dfinal, cache, p, g, hid, steps, consume):  # type: ignore[no-untyped-def]
    hbuf, col, valid, reverse, (gates, aux) = cache
    B, H = dfinal[0].shape
    dh = dfinal[0].copy()  # (B, H), becomes dL/dh_init
    dax = ws.empty((steps, B, 3 * H), layer.dtype)
    dah = ws.empty((steps, B, H), layer.dtype) if layer.reset_after else dax
    drec = np.empty((B, H), layer.dtype)  # scratch
    w_hh = np.ascontiguousarray(p["weight_hh"])
    wp1, wp2 = _gru_packed_hh(layer, w_hh, backward=True)
    parts = _parts(B, layer.dtype)
    dbxs = [np.zeros(3 * H, layer.dtype) for _ in parts]  # one per thread
    dbhs = [np.zeros(3 * H, layer.dtype) for _ in parts] if layer.reset_after else dbxs
    buf = _chunk_buffer(dout, steps, H)
    for t0, t1 in _chunks(gates.shape[0], steps, reverse):
        dx_, dh_ = dax[: t1 - t0], dah[: t1 - t0]
        dout_t, c = _own_columns(dout, dcol, H, t0, t1, buf)
        _in_parallel([
            partial(K.gru_backward, K.BLAS, gates[t0:t1], hbuf[t0 : t1 + 2], col, aux[t0:t1],
                    w_hh, wp1, wp2, dout_t, c, dh, dx_, dh_, dbx, dbh, drec,
                    _cut(valid, t0, t1), reverse, layer.reset_after, _cut(hid, t0, t1),
                    s.start, s.stop)
            for s, dbx, dbh in zip(parts, dbxs, dbhs, strict=True)
        ])  # fmt: skip
        consume(t0, t1, dx_, dh_)
    dbx = _total(dbxs)
    dbh = _total(dbhs) if layer.reset_after else dbx
    return [dh], (dbx, dbh)


_LOOPS = {
    "RNN": (_rnn_loop_forward, _rnn_loop_backward),
    "LSTM": (_lstm_loop_forward, _lstm_loop_backward),
    "GRU": (_gru_loop_forward, _gru_loop_backward),
}


# --- the engine's contract (rnnkit.engine.backend) -----------------------------------------------


def layer_input(layer: Any, x: Array, keep: bool) -> Array:
    """The first layer's input, time-major (T, B, D): a copy, except in inference where the
    loop projects each step's input itself, which reads x_t in place from a view."""
    if not keep and x.flags.c_contiguous and fuses_projection(layer, x.shape[0], x.shape[2]):
        return x.transpose(1, 0, 2)
    return copy(x.transpose(1, 0, 2))


def direction_forward(
    layer: Any, p: dict[str, Array], xs: Array, hbuf: Array, direction: int,
    init: list[Array], valid: Array, keep: bool,
) -> tuple[list[Array], Any]:  # fmt: skip
    """xs (T, B, D) time-major; the states go to hbuf (see rnnkit.engine.layers)."""
    T, B, D = xs.shape
    H = layer.hidden_size
    reverse, col = bool(direction), direction * H
    hbuf[T + 1 if reverse else 0, :, col : col + H] = init[0]
    gate_slot = _gate_slot(layer)
    if fuses_projection(layer, B, D):  # the loop projects each step's input itself
        xw = ws.empty((T + 1 if keep else 0, B, layer.gates * H), layer.dtype)
        own_input: tuple[Array, ...] = (xs,)
    else:
        # the input projection of all T steps: one product before the loop; the LSTM and
        # GRU loops write gates one slot away from their pre-activations, the plain RNN's
        # replaces each step's projection by its state, in hbuf (a view: hbuf's first two
        # axes merge)
        if layer.mode == "RNN":
            xw = hbuf[1 : T + 1, :, col : col + H]
        else:
            xw = ws.empty((T + gate_slot, B, layer.gates * H), layer.dtype)
        proj = xw[:T] if reverse or not gate_slot else xw[1:]
        w_ih = np.ascontiguousarray(p["weight_ih"])
        _product(xs.reshape(T * B, D), w_ih, 0, proj.reshape(T * B, -1), trans_b=True,
                 bias=_loop_input_bias(layer, p))  # fmt: skip
        own_input = ()
    loop_forward = _LOOPS[layer.mode][0]
    final, cell_cache = loop_forward(layer, xw, hbuf, col, init, p, valid, reverse, keep,
                                     *own_input)  # fmt: skip
    final = [hbuf[1 if reverse else T, :, col : col + H], *final]
    return final, ((xs, hbuf, col, valid, reverse, cell_cache) if keep else None)


def direction_backward(
    layer: Any, p: dict[str, Array], g: dict[str, Array], dout: Array, dfinal: list[Array],
    cache: Any, dxs: Array, accumulate: bool, hid: Array,
) -> list[Array]:  # fmt: skip
    """dout (T, B, dirs*H): gradient of the layer's output, read only (for the first
    layer a view of the caller's batch-major array: the LSTM copies its own columns once,
    the RNN and GRU a chunk of steps at a time). Writes (or with ``accumulate`` adds) dL/dxs
    into dxs, which may be the cache's xs (each chunk's rows of xs are read before its rows
    of dxs are written); adds the parameter gradients into g; returns d(initial state).

    The LSTM's loop runs over all T steps, then the products over all of them. The RNN's
    and GRU's run :func:`_chunk_steps` steps at a time, each chunk's products right after
    it: their gradients of the pre-activations and the packed rows of X and H_prev are
    those of one chunk (BENCHMARKS.md, "Peak memory of a training step")."""
    xs, hbuf, col, valid, reverse, cell_cache = cache
    T, B, D = xs.shape
    loop_backward = _LOOPS[layer.mode][1]
    w_ih = np.ascontiguousarray(p["weight_ih"])
    # the products of steps t0..t1-1 after the loop has been through them
    consume = partial(_input_side_grads, layer, g, xs, hbuf, col, reverse, cell_cache, dxs,
                      accumulate, w_ih)  # fmt: skip
    loop_cache = (hbuf, col, valid, reverse, cell_cache)
    if layer.mode == "LSTM":  # all T steps at once (W_ih packed when dX needs it)
        dax, dah, dinit, (dbx, dbh) = loop_backward(layer, dout, col, dfinal, loop_cache, p,
                                                    g, hid)  # fmt: skip
        consume(_g.EMPTY, 0, T, dax, dah)
    else:  # a few steps at a time: the gradients of the pre-activations never for all T
        consume = partial(consume, _packed(w_ih))  # packed once for all the steps
        dinit, (dbx, dbh) = loop_backward(layer, dout, col, dfinal, loop_cache, p, g, hid,
                                          _chunk_steps(T, B), consume)  # fmt: skip
    if layer.bias:  # summed over steps and rows inside the loop
        g["bias_ih"] += dbx
        g["bias_hh"] += dbh
    return dinit


def _chunk_steps(T: int, B: int) -> int:
    """How many steps the RNN's and GRU's backward pass takes at a time:
    :data:`CHUNK_ROWS` rows of the weight-gradient products (fewer rows per product read
    and write the gradient more often; more hold more memory: BENCHMARKS.md, "Peak memory
    of a training step")."""
    return max(1, min(T, -(-CHUNK_ROWS // B)))


CHUNK_ROWS = 512


def _chunks(T: int, steps: int, reverse: bool) -> list[tuple[int, int]]:
    """[t0, t1) ranges of at most ``steps`` steps covering 0..T-1, in the order backward
    visits them: from the last step (forward direction) or the first (reverse). A shorter
    chunk comes last, so that its arrays reuse the memory of the others (workspace)."""
    if reverse:
        return [(t0, min(t0 + steps, T)) for t0 in range(0, T, steps)]
    return [(max(t1 - steps, 0), t1) for t1 in range(T, 0, -steps)]


def _cut(a: Array, t0: int, t1: int) -> Array:
    """Steps t0..t1-1 of a per-step array (valid, hid), or the empty array that stands for
    none."""
    return a[t0:t1] if a.shape[0] > 0 else a


def _own_columns(dout: Array, dcol: int, H: int, t0: int, t1: int, buf: Array) -> tuple[Array, int]:
    """Steps t0..t1-1 of the output gradient, C-contiguous, and where this direction's
    columns start in it: a view where ``dout`` is contiguous (the gradient of a layer above,
    the engine's own), else this direction's columns copied into ``buf`` (the caller's
    array, a batch-major view: rnnkit.engine.layers reads it in place)."""
    if dout.flags.c_contiguous:
        return dout[t0:t1], dcol
    out = buf[: t1 - t0]
    np.copyto(out, dout[t0:t1, :, dcol : dcol + H])
    return out, 0


def _chunk_buffer(dout: Array, steps: int, H: int) -> Array:
    """Memory for :func:`_own_columns` (none where ``dout`` is contiguous)."""
    if dout.flags.c_contiguous:
        return dout[:0, :, :0]
    return ws.empty((steps, dout.shape[1], H), dout.dtype)


def _input_side_grads(
    layer: Any, g: dict[str, Array], xs: Array, hbuf: Array, col: int, reverse: bool,
    cell_cache: Any, dxs: Array, accumulate: bool, w_ih: Array, wp_ih: Array, t0: int,
    t1: int, dax: Array, dah: Array,
) -> None:  # fmt: skip
    """For steps t0..t1-1, from dax and dah (t1 - t0, B, G or H, see
    rnnkit.fast.loops.gru_backward), the gradients of their pre-activations:
    dW_ih += dA^T X, dW_hh += dA_h^T H_prev and dX = (or +=) dA W_ih (on W_ih packed as
    wp_ih; empty: packed here, or BLAS in float64)."""
    n, B, G = dax.shape
    D, H = xs.shape[2], layer.hidden_size
    x2, dax2 = xs[t0:t1].reshape(n * B, D), dax.reshape(n * B, G)
    dah2 = dah.reshape(n * B, -1)
    # the previous state of every step: slots t0..t1-1 (forward) or t0+2..t1+1 (reverse)
    h_prev = hbuf[t0 + 2 : t1 + 2] if reverse else hbuf[t0:t1]
    h_prev2 = h_prev.reshape(n * B, -1)[:, col : col + H]
    if _joins_weight_grads(layer, dax, dah, D):
        # [dW_ih | dW_hh] = dA^T [X | H_prev]: one product, which reads dA^T (a transposed
        # operand, the slow side of the kernel) once for both
        both = ws.empty((G, D + H), layer.dtype)
        _product_packed(dax2.T, _packed(x2, h_prev2), 0, both)
        g["weight_ih"] += both[:, :D]
        g["weight_hh"] += both[:, D:]
        _input_grad(dax2, w_ih, wp_ih, accumulate, dxs[t0:t1])
        return
    # out += da^T B for each (da, out) of a group, B packed once for the group
    groups: list[tuple[Array, list[Array], list[Array]]] = [(x2, [dax2], [g["weight_ih"]])]
    rz, n_rows = g["weight_hh"][: 2 * H], g["weight_hh"][2 * H :]
    if layer.mode != "GRU":
        groups.append((h_prev2, [dah2], [g["weight_hh"]]))
    elif layer.reset_after:  # r, z rows from dax, n rows from dah: H_prev packed once
        groups.append((h_prev2, [dax2[:, : 2 * H], dah2], [rz, n_rows]))
    else:  # the textbook GRU: W_hn multiplies r * h_{t-1}, not h_{t-1}
        rec_in = cell_cache[1][t0:t1].reshape(-1, H)  # (n*B, H)
        groups.append((h_prev2, [dah2[:, : 2 * H]], [rz]))
        groups.append((rec_in, [dah2[:, 2 * H :]], [n_rows]))
    dx2 = dxs[t0:t1].reshape(n * B, -1)
    if _balanced(groups, dax2, w_ih, wp_ih, int(accumulate), dx2):
        return
    for b, das, outs in groups:
        _weight_grads(das, b, outs)
    _input_grad(dax2, w_ih, wp_ih, accumulate, dxs[t0:t1])


# the B operands of the weight gradients run together by _balanced take at most this much:
# each is packed, all at once (one after the other, only the largest is held at a time).
# At 4 MiB, RNN (64,50,512,512) and (128,35,650,650) training steps in 2 threads took 1-2 MiB
# more than torch's (bench_memory.py --threads 2); balancing them had saved 1-11% of the time
BALANCE_MAX_BYTES = 1 << 20


def _balanced(
    groups: list[tuple[Array, list[Array], list[Array]]], a: Array, w: Array, wp: Array,
    beta: int, c: Array,
) -> bool:  # fmt: skip
    """In two or more threads (float32): the weight gradients of ``groups`` and
    c = beta c + a W (dX = dA W_ih, on W packed as wp, or packed here where wp is empty) in
    one hand-off to the threads, balanced by multiply-adds: each group whole on one thread
    (it packs its B and runs its products: out += da^T B), and the rows of c shared out so
    that every thread gets the same work. False (nothing done) in one thread, in float64,
    where the groups' B operands take more than :data:`BALANCE_MAX_BYTES`, or where one group
    alone is more than a thread's share; the caller then runs each product in turn, the
    large ones split by rows.

    Weight-gradient products have the output rows of a weight (G x D): from 256 rows they
    were split between the threads, each split one more hand-off; below that they ran in one
    thread while the other waited (RNN (256,20,200,200) training in 2 threads, AVX2: the
    backward pass took 26 ms, 21 in one thread; BENCHMARKS.md, issue 21, session 16)."""
    k = K.blas_threads()
    if k == 1 or c.dtype != np.float32 or not c.flags.c_contiguous:
        return False
    if sum(b.size for b, _, _ in groups) * c.itemsize > BALANCE_MAX_BYTES:
        return False  # the groups' packed B would all be held at once
    if not all(o.flags.c_contiguous and o.size > 0 for _, _, outs in groups for o in outs):
        return False
    costs = [sum(o.size * da.shape[0] for o, da in zip(outs, das, strict=True))
             + PACK_COST * b.size for b, das, outs in groups]  # fmt: skip
    row_cost = a.shape[1] * c.shape[1]
    share = (sum(costs) + c.shape[0] * row_cost) / k
    if max(costs) > 1.1 * share:
        return False
    load = [0] * k
    jobs: list[list[Callable[[], object]]] = [[] for _ in range(k)]
    ready: list[threading.Event] = []  # X packed, where dX is written over it
    for i in sorted(range(len(groups)), key=lambda i: -costs[i]):
        t = load.index(min(load))
        b, das, outs = groups[i]
        packed = ws.empty(_g.packed_shape(b.shape), np.float32)
        if np.may_share_memory(b, c):  # dX over X (the cache's xs): X read first
            ready.append(threading.Event())
            jobs[t].insert(0, partial(_pack_then_set, b, packed, ready[-1]))
        else:
            jobs[t].append(partial(_g.pack_into, b, packed))
        for da, out in zip(das, outs, strict=True):
            jobs[t].append(partial(_g.gemm_packed, da.T, packed, out.shape[1], 1, out, 0,
                                   out.shape[0], _g.NO_BIAS))  # fmt: skip
        load[t] += costs[i]
    wp = wp if wp.shape[0] > 0 else _packed(w)
    lo = 0
    for t in range(k):  # the rows of c that fill each thread up to its share
        rows = max(share - load[t], 0) / row_cost
        hi = c.shape[0] if t == k - 1 else min(lo + round(rows / _g.MR) * _g.MR, c.shape[0])
        if hi > lo:
            jobs[t] += [e.wait for e in ready]
            jobs[t].append(partial(_g.gemm_packed, a, wp, c.shape[1], beta, c, lo, hi,
                                   _g.NO_BIAS))  # fmt: skip
        lo = hi
    _in_parallel([partial(_call_all, j) for j in jobs if j])
    return True


# the cost of packing one element of B in _balanced, in multiply-adds of a product: packing
# H_prev (512 x 200) took 0.09 ms where a product of 200 x 512 x 200 took 0.40 (AVX2; 45)
PACK_COST = 48


def _pack_then_set(b: Array, packed: Array, ready: threading.Event) -> None:
    """Pack b into ``packed``, then set ``ready`` (also when packing fails: the threads
    waiting on it must not hang)."""
    try:
        _g.pack_into(b, packed)
    finally:
        ready.set()


def _input_grad(da2: Array, w_ih: Array, wp_ih: Array, accumulate: bool, dxs: Array) -> None:
    """dxs = (or +=) dA W_ih for some steps: on W_ih packed as wp_ih (float32), else BLAS."""
    dx2 = dxs.reshape(da2.shape[0], -1)
    if wp_ih.shape[0] > 0 and dx2.size > 0:
        _product_packed(da2, wp_ih, int(accumulate), dx2)
    else:
        _product(da2, w_ih, int(accumulate), dx2)
