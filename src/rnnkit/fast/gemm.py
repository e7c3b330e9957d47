"""A float32 matrix product for the recurrent layers, on weights packed once (numba + LLVM IR).

``C = init + A B`` (init: zero, C itself, or a bias row) for float32 views with any row and
column strides of A, B and unit column stride of C. B is first copied ("packed") into panels of
``NR`` columns, ``(panels, K, NR)``, zero-padded, so that each step of the k loop reads one
contiguous row of the panel; a micro-kernel then keeps an ``MR x NR`` block of C in vector
registers over the whole k range and touches C only at its ends. This is the blocking of Goto
and van de Geijn, "Anatomy of high-performance matrix multiplication" (ACM TOMS 34(3), 2008),
the design of OpenBLAS and BLIS; what rnnkit gains by writing it is the packing: the recurrent
layers call the same weight T times per sequence, and a BLAS packs it again on every call
(how much that costs, per shape and CPU: BENCHMARKS.md).

The micro-kernel is LLVM IR built here (an ``@intrinsic``): numba's loops do not keep an
accumulator block in registers. It is one k loop of ``MR`` broadcasts, ``NV`` vector loads
and ``MR * NV`` fused multiply-adds, and a sum over k runs in order for each element of C,
so results are those of a naive loop with FMAs (within float32 rounding of any BLAS).
Vectors are 16 floats where the processor has AVX-512 (a 6 x 64 block: 24 of its 32
registers), 8 with AVX2 (6 x 16: 12 of 16 registers); :mod:`rnnkit.fast.target` chooses at
import, and ``RNNKIT_KERNEL=avx2`` forces the AVX2 configuration. A last panel of few
columns uses a block of fewer vectors.

Also here, for the float32 LSTM: :func:`gemm_packed2` (a step's b + x_t W_ih^T + h W_hh^T in
one pass), its pointwise steps forward and backward on whole vectors (:func:`lstm_cell`,
:func:`lstm_cell_backward`), and :func:`lstm_step`, the product and the forward pointwise
step together, block by block, where H is a whole number of panels. The layers call these from
:mod:`rnnkit.fast.loops` and :mod:`rnnkit.fast.recurrent`; tests/test_gemm.py checks them
against NumPy and torch.

The products themselves (the bodies of :func:`gemm_packed`, :func:`gemm_packed2`,
:func:`lstm_step` and :func:`pack_into`, and the two-product block they share) are C functions
(``numba.cfunc``), compiled or loaded from numba's cache once, when this module is imported,
and called by name: numba would otherwise compile each into every loop that calls it, and
optimise it again there (a cold first LSTM training step waited 35 s for that).

For whoever edits this file: numba's on-disk cache of a function is invalidated by changes to
its own file only. The bodies are called by name, so the loops need nothing after a change to
one; but the small functions the loops call directly (the wrappers that check arguments, the
pointwise intrinsics such as :func:`lstm_cell`) are compiled into the loops, whose cache is
keyed by loops.py's source alone: so loops.py names this file's sha256 in a comment, which a
test holds to this file; after a change here, put the new sha256 there (which invalidates
the loops' cache, here and in every copy a user installs), or the loops keep running the old
code. Each configuration's code is cached apart (numba keys its cache by CPU features).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnkit.fast import target

_JIT = {"cache": True, "error_model": "numpy", "nogil": True}


CONFIG = target.config()  # chosen for this processor, or forced by RNNKIT_KERNEL
VW = CONFIG.vw  # floats per vector register
NV = CONFIG.nv  # vectors per row of the block
NR = VW * NV  # columns of a panel
MR = CONFIG.mr  # rows of the block: MR * NV accumulators
KC = CONFIG.kc  # k block: a panel's block is KC * NR floats (128 KiB with AVX-512), in L2
MC = CONFIG.mc  # rows of A swept per panel before moving on, so they stay in L2
COPY_COLUMNS = CONFIG.copy_columns  # copy a transposed A (dA^T) into blocks first
MIN_ROWS = 256  # fewer rows than this: a product is not split between threads


def _emit_tile(builder, mr: int, nv: int, args, panels: int = 1, p_stride=None) -> None:  # type: ignore[no-untyped-def]
    """Emit the micro-kernel for mr rows and nv vectors: C[0:mr, 0:nv*VW] = init +
    A[0:mr, 0:k] P[0:k, 0:nv*VW] (P's rows are NR floats apart whatever nv), where init is 0
    (beta 0), C itself (beta 1) or the row vector bias[0:nv*VW] in every row (beta 2).

    args (all int64): a (address of A[0, 0]), a_rs, a_ks (A's strides in elements), p
    (address of the packed panel, k rows of NR floats), k, c (address of C[0, 0]), ldc, beta,
    bias (an address, read whatever beta: pass a valid one).

    With ``panels`` > 1 the block spans that many whole panels side by side (nv vectors
    each, the next panel ``p_stride`` floats further in P, NR columns further in C and the
    bias): a block of few rows then still has enough accumulators to hide the latency of
    the fused multiply-add (see :func:`_wide_panels`).
    """
    f32 = ir.FloatType()
    vty = ir.VectorType(f32, VW)
    i64 = ir.IntType(64)
    a, a_rs, a_ks, p, k, c, ldc, beta, bias = args
    fptr, vptr = f32.as_pointer(), vty.as_pointer()
    pa, pp, pc, pbias = (builder.inttoptr(v, fptr) for v in (a, p, c, bias))
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty, vty, vty]), f"llvm.fma.v{VW}f32"
    )
    zero_v = ir.Constant(vty, [0.0] * VW)
    cols = [j * NR + v * VW for j in range(panels) for v in range(nv)]  # each vector's column
    nv = len(cols)
    use_c = builder.icmp_signed("==", beta, ir.Constant(i64, 1))
    use_bias = builder.icmp_signed("==", beta, ir.Constant(i64, 2))
    # the bias is read (harmlessly) whatever beta: pass a valid address
    bias_v = [
        builder.load(builder.bitcast(builder.gep(pbias, [ir.Constant(i64, cols[v])]),
                                     vptr), align=4)
        for v in range(nv)
    ]  # fmt: skip
    start = [builder.select(use_bias, bias_v[v], zero_v) for v in range(nv)]

    def c_addr(r: int, v: int):  # type: ignore[no-untyped-def]
        off = builder.add(builder.mul(ir.Constant(i64, r), ldc), ir.Constant(i64, cols[v]))
        return builder.bitcast(builder.gep(pc, [off]), vptr)

    init = [
        [builder.select(use_c, builder.load(c_addr(r, v), align=4), start[v])
         for v in range(nv)]
        for r in range(mr)
    ]  # fmt: skip
    entry = builder.block
    loop = builder.append_basic_block("k_loop")
    done = builder.append_basic_block("k_done")
    zero = ir.Constant(i64, 0)
    builder.cbranch(builder.icmp_signed(">", k, zero), loop, done)

    builder.position_at_end(loop)
    kk = builder.phi(i64)
    acc = [[builder.phi(vty) for _ in range(nv)] for _ in range(mr)]
    row = builder.gep(pp, [builder.mul(kk, ir.Constant(i64, NR))])
    rows = [row] + [
        builder.gep(row, [builder.mul(p_stride, ir.Constant(i64, j))]) for j in range(1, panels)
    ]
    bv = [
        builder.load(builder.bitcast(builder.gep(rows[cols[v] // NR],
                                                 [ir.Constant(i64, cols[v] % NR)]), vptr),
                     align=4)
        for v in range(nv)
    ]  # fmt: skip
    a_k = builder.mul(kk, a_ks)
    mask = ir.Constant(ir.VectorType(ir.IntType(32), VW), [0] * VW)
    new = []
    for r in range(mr):
        off = builder.add(builder.mul(ir.Constant(i64, r), a_rs), a_k)
        s = builder.load(builder.gep(pa, [off]), align=4)
        s = builder.insert_element(ir.Constant(vty, ir.Undefined), s,
                                   ir.Constant(ir.IntType(32), 0))  # fmt: skip
        s = builder.shuffle_vector(s, ir.Constant(vty, ir.Undefined), mask)
        new.append([builder.call(fma, [s, bv[v], acc[r][v]]) for v in range(nv)])
    k_next = builder.add(kk, ir.Constant(i64, 1))
    kk.add_incoming(zero, entry)
    kk.add_incoming(k_next, loop)
    for r in range(mr):
        for v in range(nv):
            acc[r][v].add_incoming(init[r][v], entry)
            acc[r][v].add_incoming(new[r][v], loop)
    builder.cbranch(builder.icmp_signed("<", k_next, k), loop, done)

    builder.position_at_end(done)
    out = [[builder.phi(vty) for _ in range(nv)] for _ in range(mr)]
    for r in range(mr):
        for v in range(nv):
            out[r][v].add_incoming(init[r][v], entry)
            out[r][v].add_incoming(new[r][v], loop)
            builder.store(out[r][v], c_addr(r, v), align=4)


@intrinsic
def _tile(typingctx, mr, nv, a, a_rs, a_ks, p, k, c, ldc, beta, bias):  # type: ignore[no-untyped-def]
    """The micro-kernel (see _emit_tile) for mr rows (1..MR) and nv vectors (1..NV), one
    compiled block for each pair behind a switch: a last panel of few columns uses a block
    of 1-3 vectors (with N = 650 a 64-wide one wasted 7.7% of the backward products)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        mr, nv, rest = args[0], args[1], args[2:]
        i64 = ir.IntType(64)
        key = builder.add(builder.mul(mr, ir.Constant(i64, 8)), nv)
        done = builder.append_basic_block("tile_done")
        switch = builder.switch(key, done)
        for m in range(1, MR + 1):
            for v in range(1, NV + 1):
                block = builder.append_basic_block(f"tile_{m}x{v}")
                switch.add_case(ir.Constant(i64, m * 8 + v), block)
                builder.position_at_end(block)
                _emit_tile(builder, m, v, rest)
                builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    i = types.int64
    return types.void(i, i, i, i, i, i, i, i, i, i, i), codegen


def _wide_panels(mr: int) -> int:
    """How many panels a block of mr rows spans: enough for 8 accumulators (a fused
    multiply-add has a latency of 4 cycles and 2 issue per cycle, so 8 independent sums keep
    both units busy), within the registers: the accumulators, a row's B vectors and A's
    broadcast (16 with AVX2, 32 with AVX-512). One row with AVX2: 3 panels of 2 vectors,
    where a single panel's 2 sums left the units idle 3 cycles in 4 (batch 1: inference,
    sampling). Three rows with AVX2 stay on one panel: over two, 12 sums + 4 B vectors + 1
    broadcast need 17 registers, and the spills made 3 rows slower than 4 (3 x 2600 x 650
    in 207 us against 142; one panel: 132 us; BENCHMARKS.md, session 15)."""
    registers = 32 if VW == 16 else 16
    p = 1
    while mr * NV * p < 8 and (mr + 1) * NV * (p + 1) + 1 <= registers:
        p += 1
    return p


# by rows (0 rows: 1); a constant in compiled code
WIDE_PANELS = (1,) + tuple(_wide_panels(m) for m in range(1, MR + 1))
WIDE_ROWS = max([m for m in range(1, MR + 1) if WIDE_PANELS[m] > 1], default=0)


@intrinsic
def _tile_wide(typingctx, mr, panels, a, a_rs, a_ks, p, p_stride, k, c, ldc, beta, bias):  # type: ignore[no-untyped-def]
    """The micro-kernel over ``panels`` whole panels side by side (see _emit_tile), for
    the few-row blocks that :func:`_wide_panels` widens (mr <= WIDE_ROWS, 2 <= panels <=
    _wide_panels(mr)); p_stride: floats from one panel to the next in P."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        mr, npan, a, a_rs, a_ks, p, p_stride, k, c, ldc, beta, bias = args
        rest = (a, a_rs, a_ks, p, k, c, ldc, beta, bias)
        i64 = ir.IntType(64)
        key = builder.add(builder.mul(mr, ir.Constant(i64, 8)), npan)
        done = builder.append_basic_block("wide_done")
        switch = builder.switch(key, done)
        for m in range(1, WIDE_ROWS + 1):
            for q in range(2, WIDE_PANELS[m] + 1):
                block = builder.append_basic_block(f"wide_{m}x{q}")
                switch.add_case(ir.Constant(i64, m * 8 + q), block)
                builder.position_at_end(block)
                _emit_tile(builder, m, NV, rest, panels=q, p_stride=p_stride)
                builder.branch(done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    i = types.int64
    return types.void(i, i, i, i, i, i, i, i, i, i, i, i), codegen


# Eigen's float32 tanh (generic_fast_tanh_float), shared with rnnkit.fast.loops._tanh: x
# clamped to +-7.9053 (where tanh rounds to +-1 in float32), then y * p(y^2) / q(y^2), a
# 13/6-degree odd/even rational minimax fit; coefficients from the highest power down.
TANH_CLAMP = 7.90531110763549805
TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
           5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
           4.89352455891786e-03)  # fmt: skip
TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
           4.89352518554385e-03)  # fmt: skip


_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, VW)
_I64 = ir.IntType(64)


def _vector_at(builder, base, stride=None, gate: int = 0):  # type: ignore[no-untyped-def]
    """A <VW x float> pointer to the address ``base`` (an int64), moved ``gate`` times
    ``stride`` floats (the LSTM's gates lie H floats apart)."""
    ptr = builder.inttoptr(base, _F32.as_pointer())
    if gate:
        ptr = builder.gep(ptr, [builder.mul(stride, ir.Constant(_I64, gate))])
    return builder.bitcast(ptr, _VEC.as_pointer())


def _emit_lstm_cell(builder, a, a_stride, g, g_stride, c_prev, c_new, tc, h, optional):  # type: ignore[no-untyped-def]
    """Emit the LSTM's pointwise step for VW units (see :func:`lstm_cell`). With
    ``optional``, the gate activations (g) and tanh(c) (tc) are stored only where their
    address is not 0 (inference keeps neither)."""
    vty = _VEC

    def const(x: float):  # type: ignore[no-untyped-def]
        return ir.Constant(vty, [float(np.float32(x))] * VW)

    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty, vty, vty]), f"llvm.fma.v{VW}f32"
    )

    def ratio(x, scale: float):  # type: ignore[no-untyped-def]
        """x p(x^2) / q(x^2) with x clamped, for tanh(x / scale) * scale: tanh's fit on
        x / scale, its coefficients rescaled by powers of scale (a power of 2)."""
        hi, lo = const(TANH_CLAMP * scale), const(-TANH_CLAMP * scale)
        y = builder.select(builder.fcmp_ordered(">", x, hi), hi, x)  # NaN passes
        y = builder.select(builder.fcmp_ordered("<", y, lo), lo, y)
        y2 = builder.fmul(y, y)
        out = []
        for coefs in (TANH_P, TANH_Q):
            n = len(coefs) - 1
            acc = const(np.float32(coefs[0]) / scale ** (2 * n))
            for k, coef in enumerate(coefs[1:], 1):
                acc = builder.call(fma, [y2, acc, const(np.float32(coef) / scale ** (2 * (n - k)))])
            out.append(acc)
        return builder.fdiv(builder.fmul(y, out[0]), out[1])

    def tanh(x):  # type: ignore[no-untyped-def]
        return ratio(x, 1.0)

    def sigmoid(x):  # type: ignore[no-untyped-def]
        # (1 + tanh(x / 2)) / 2 = 1/2 + ratio(x, 2) / 4, with the same roundings as halving
        # x first (the coefficients' scales are powers of 2), one multiply fewer
        return builder.call(fma, [const(0.25), ratio(x, 2.0), const(0.5)])

    pre = [builder.load(_vector_at(builder, a, a_stride, k), align=4) for k in range(4)]
    gi, gf, gg, go = sigmoid(pre[0]), sigmoid(pre[1]), tanh(pre[2]), sigmoid(pre[3])
    cp = builder.load(_vector_at(builder, c_prev), align=4)
    c = builder.call(fma, [gf, cp, builder.fmul(gi, gg)])
    t = tanh(c)
    zero = ir.Constant(_I64, 0)

    def store_gates() -> None:
        for k, v in enumerate((gi, gf, gg, go)):
            builder.store(v, _vector_at(builder, g, g_stride, k), align=4)

    def store_tc() -> None:
        builder.store(t, _vector_at(builder, tc), align=4)

    for address, store in ((g, store_gates), (tc, store_tc)):
        if optional:
            with builder.if_then(builder.icmp_signed("!=", address, zero), likely=True):
                store()
        else:
            store()
    builder.store(c, _vector_at(builder, c_new), align=4)
    builder.store(builder.fmul(go, t), _vector_at(builder, h), align=4)


@intrinsic
def lstm_cell(typingctx, a, gate_stride, g, c_prev, c_new, tc, h):  # type: ignore[no-untyped-def]
    """The LSTM's pointwise step for VW units of one row, in vector registers (float32):
    i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g), c = f c_prev + i g, h = o tanh(c).

    Arguments are int64: addresses of the units' pre-activation of gate i (the others
    ``gate_stride`` floats apart), where gate i's activation goes (likewise), c_prev, c_new,
    tanh(c) and h. The same arithmetic as the loops of rnnkit.fast.loops (sigmoid(x) =
    (1 + tanh(x / 2)) / 2 with the same rational tanh), without their eight passes over
    memory: measured as the remaining pointwise cost of the LSTM's forward loop.
    """

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        a, stride, g, c_prev, c_new, tc, h = args
        _emit_lstm_cell(builder, a, stride, g, stride, c_prev, c_new, tc, h, False)
        return context.get_dummy_value()

    i = types.int64
    return types.void(i, i, i, i, i, i, i), codegen


@intrinsic
def _lstm_cell_from(typingctx, a, a_stride, g, g_stride, c_prev, c_new, tc, h):  # type: ignore[no-untyped-def]
    """:func:`lstm_cell` with the pre-activations and the gate activations laid out with
    strides of their own (a: a block of C in L1, g: a row of the gates kept for backward),
    and g or tc 0 where they are not kept."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        _emit_lstm_cell(builder, *args, True)
        return context.get_dummy_value()

    i = types.int64
    return types.void(i, i, i, i, i, i, i, i), codegen


@intrinsic
def lstm_cell_backward(typingctx, g, gate_stride, tc, c_prev, dh, dc, da):  # type: ignore[no-untyped-def]
    """The LSTM's pointwise backward step for VW units of one row, in vector registers
    (float32), the arithmetic of rnnkit.fast.loops.lstm_backward without peepholes:
    da_o = dh tanh(c) o (1 - o); dc += dh o (1 - tanh(c)^2); da_i = dc g i (1 - i);
    da_f = dc c_prev f (1 - f); da_g = dc i (1 - g^2); then dc <- dc f (for step t - 1).

    Arguments are int64 addresses: the units' gate i activation (f, g, o ``gate_stride``
    floats apart), tanh(c_t), c_{t-1}, dh, dc (read and written) and da (gate i's slot, the
    others likewise apart).
    """

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        g, stride, tc, c_prev, dh, dc, da = args

        def addr(base, gate=0):  # type: ignore[no-untyped-def]
            return _vector_at(builder, base, stride, gate)

        one = ir.Constant(_VEC, [1.0] * VW)
        gi, gf, gg, go = (builder.load(addr(g, k), align=4) for k in range(4))
        t = builder.load(addr(tc), align=4)
        cp = builder.load(addr(c_prev), align=4)
        dhv = builder.load(addr(dh), align=4)
        dcv = builder.load(addr(dc), align=4)
        mul, sub = builder.fmul, builder.fsub
        d_o = mul(mul(mul(dhv, t), go), sub(one, go))
        dcv = builder.fadd(dcv, mul(mul(dhv, go), sub(one, mul(t, t))))
        d_i = mul(mul(mul(dcv, gg), gi), sub(one, gi))
        d_f = mul(mul(mul(dcv, cp), gf), sub(one, gf))
        d_g = mul(mul(dcv, gi), sub(one, mul(gg, gg)))
        for k, v in enumerate((d_i, d_f, d_g, d_o)):
            builder.store(v, addr(da, k), align=4)
        builder.store(mul(dcv, gf), addr(dc), align=4)
        return context.get_dummy_value()

    i = types.int64
    return types.void(i, i, i, i, i, i, i), codegen


EMPTY = np.empty((0, 0, NR), np.float32)  # "nothing packed"


def packed_shape(b_shape: tuple[int, int]) -> tuple[int, int, int]:
    """The shape :func:`pack` gives B of shape (K, N): (ceil(N / NR), K, NR)."""
    K, N = b_shape
    return ((N + NR - 1) // NR, K, NR)


@intrinsic
def _transpose_block(typingctx, src, src_stride, dst, dst_stride):  # type: ignore[no-untyped-def]
    """dst[c, r] = src[r, c] for a VW x VW block of float32 (int64 addresses, row strides in
    floats), in vector registers: log2(VW) rounds in which rows i and i + b (i & b = 0)
    exchange their b-wide blocks of columns (b = 1, 2, 4, ...), which swaps the
    off-diagonal blocks at every scale, i.e. transposes."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        src, ss, dst, ds = args
        rows = [builder.load(_vector_at(builder, src, ss, r), align=4) for r in range(VW)]
        b = 1
        while b < VW:
            low = [c if not c & b else VW + c - b for c in range(VW)]  # a's, then c's block
            high = [c + b if not c & b else VW + c for c in range(VW)]
            masks = [ir.Constant(ir.VectorType(ir.IntType(32), VW), m) for m in (low, high)]
            for i in range(VW):
                if not i & b:
                    a, c = rows[i], rows[i + b]
                    rows[i] = builder.shuffle_vector(a, c, masks[0])
                    rows[i + b] = builder.shuffle_vector(a, c, masks[1])
            b *= 2
        for r in range(VW):
            builder.store(rows[r], _vector_at(builder, dst, ds, r), align=4)
        return context.get_dummy_value()

    i = types.int64
    return types.void(i, i, i, i), codegen


@nb.njit(**_JIT)
def pack(b):  # type: ignore[no-untyped-def]
    """B (K, N), any strides, as panels (ceil(N / NR), K, NR), zero-padded."""
    K, N = b.shape
    out = np.empty(((N + NR - 1) // NR, K, NR), np.float32)
    pack_into(b, out)
    return out


@nb.njit(**_JIT)
def pack_into(b, out):  # type: ignore[no-untyped-def]
    """:func:`pack` into ``out`` of shape :func:`packed_shape` (b.shape), C-contiguous."""
    K, N = b.shape
    if out.shape[0] != (N + NR - 1) // NR or out.shape[1] != K:
        raise ValueError("pack_into: out has the wrong shape")
    if out.shape[0] * K > 0 and (out.strides[0] != K * NR * 4 or out.strides[1] != NR * 4):
        raise ValueError("pack_into: out must be C-contiguous")
    _pack_body((b.ctypes.data, b.strides[0] // 4, b.strides[1] // 4, K, N, out.ctypes.data,
                out.shape[0]))  # fmt: skip


@nb.njit(**_JIT)
def pad_bias(b):  # type: ignore[no-untyped-def]
    """A bias vector copied into a zero-padded float32 array of whole panels, for beta 2."""
    out = np.zeros(((b.shape[0] + NR - 1) // NR) * NR, np.float32)
    for j in range(b.shape[0]):
        out[j] = b[j]
    return out


NO_BIAS = np.zeros(NR, np.float32)  # the bias argument where beta is 0 or 1


@nb.njit(**_JIT)
def copy_into(dst, src):  # type: ignore[no-untyped-def]
    """dst[:] = src (1-D), element by element, here and in rnnkit.fast.loops: numba's slice
    assignment compiles a formatted shape-mismatch error with it, seconds of a cold start for
    a check the callers' shapes make true."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@nb.njit(**_JIT)
def _row_blocks(m):  # type: ignore[no-untyped-def]
    """How many blocks of at most MR rows m rows take: ceil(m / MR). With
    :func:`_row_block`, the blocks are as even as possible (64 rows: nine blocks of 6 and
    two of 5, not ten of 6 and one of 4), because a short block computes its rows at a
    lower rate (measured with AVX-512 in one LSTM step, microseconds per row: 10.0 at 6 and
    5 rows, 11.1 at 4, 16.9 at 2). Every element of C is the same sum either way."""
    return (m + MR - 1) // MR


@nb.njit(**_JIT)
def _row_block(i, blocks, m):  # type: ignore[no-untyped-def]
    """The first row and the row count of block i of ``blocks`` over m rows."""
    lo = i * m // blocks
    return lo, (i + 1) * m // blocks - lo


# --- the products' bodies: compiled once, called by name -----------------------------------
#
# numba compiles a callee into every caller and optimises it there again: the kernel's
# unrolled blocks (24 per switch with AVX-512) were compiled anew in each loop that calls a
# product, and a first LSTM training step waited 35 s for it. These bodies are C functions
# instead (numba.cfunc, on int64 addresses and strides), compiled (or loaded from numba's
# cache) once when this module is imported and registered with LLVM under a name of their
# own; the array-taking functions check their arguments and call them by that name, so their
# callers compile a call and not the kernel (BENCHMARKS.md, "Cold start").


@intrinsic
def _f32(typingctx, address):  # type: ignore[no-untyped-def]
    """The float32 pointer at an int64 address (for numba.carray)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], _F32.as_pointer())

    return types.CPointer(types.float32)(types.int64), codegen


@intrinsic
def _u8(typingctx, address):  # type: ignore[no-untyped-def]
    """The uint8 pointer at an int64 address (for numba.carray)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.CPointer(types.uint8)(types.int64), codegen


@nb.njit(**_JIT)
def _floats(address, n):  # type: ignore[no-untyped-def]
    """The n float32 at an int64 address, as an array."""
    return nb.carray(_f32(address), (n,))


@nb.njit(**_JIT)
def _put_strided(dst, address, stride):  # type: ignore[no-untyped-def]
    """dst[:] = the float32 at address, stride floats apart."""
    for j in range(dst.shape[0]):
        dst[j] = _floats(address + j * stride * 4, 1)[0]


@nb.njit(**_JIT)
def _alive(a):  # type: ignore[no-untyped-def]
    """A use of ``a``: called after a body that writes into a's memory by address, so that
    numba frees a (scratch) only after the call."""
    return a.shape[0]


def _calling(symbol: str, nargs: int, returns: bool):  # type: ignore[no-untyped-def]
    """An intrinsic calling the C function ``symbol(int64 x nargs)`` (returning void, or an
    int64 where ``returns``) with a tuple of nargs integers: the function is resolved by name
    when the caller's code is loaded, so the caller caches (numba's cache keeps the name, not
    an address)."""

    @intrinsic
    def call(typingctx, args):  # type: ignore[no-untyped-def]
        if not (isinstance(args, types.BaseTuple) and len(args) == nargs
                and all(isinstance(t, types.Integer) for t in args)):  # fmt: skip
            return None

        def codegen(context, builder, signature, llargs):  # type: ignore[no-untyped-def]
            fnty = ir.FunctionType(_I64 if returns else ir.VoidType(), [_I64] * nargs)
            fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
            values = cgutils.unpack_tuple(builder, llargs[0])
            out = builder.call(fn, [context.cast(builder, v, t, types.int64)
                                    for v, t in zip(values, args, strict=True)])  # fmt: skip
            return out if returns else context.get_dummy_value()

        return (types.int64 if returns else types.void)(args), codegen

    return call


NATIVE: dict[str, object] = {}  # symbol -> its numba.cfunc (tests look at them)


def _native(nargs: int, returns: bool = False):  # type: ignore[no-untyped-def]
    """Decorate a body as a C function of nargs int64 (returning an int64 where ``returns``),
    registered with LLVM under ``rnnkit_<name>`` (one configuration per process:
    RNNKIT_KERNEL is read once). The body is compiled (or loaded from numba's cache) here."""

    def register(body):  # type: ignore[no-untyped-def]
        result = types.int64 if returns else types.void
        compiled = nb.cfunc(result(*[types.int64] * nargs), cache=True,
                            error_model="numpy")(body)  # fmt: skip
        symbol = "rnnkit_" + body.__name__.lstrip("_")
        llvm.add_symbol(symbol, compiled.address)
        NATIVE[symbol] = compiled
        return _calling(symbol, nargs, returns)

    return register


@_native(7)
def _pack_body(pb, rs, cs, K, N, po, panels):  # type: ignore[no-untyped-def]
    """:func:`pack_into` on addresses: B's element (k, j) at pb + (k rs + j cs) floats, the
    panels (panels, K, NR) at po.

    Where B = W^T with W's rows contiguous (rs = 1: the weights), blocks of VW x VW are
    transposed in registers (:func:`_transpose_block`) and only the edges (k past the last
    whole block, the last panel's missing columns) go element by element: reading W^T down
    its columns directly thrashes L1 on power-of-two row strides (BENCHMARKS.md, session 9).
    """
    out = nb.carray(_f32(po), (panels, K, NR))
    transposed = K >= VW and N >= VW and rs == 1 and cs > 0
    kv = K - K % VW if transposed else 0  # k covered by whole blocks
    for q in range(panels):
        j0 = q * NR
        w = min(NR, N - j0)
        wv = w - w % VW if transposed else 0  # columns covered by whole blocks
        for jb in range(0, wv, VW):
            src, dst = pb + (j0 + jb) * cs * 4, po + (q * K * NR + jb) * 4
            for k0 in range(0, kv, VW):
                _transpose_block(src + k0 * 4, cs, dst + k0 * NR * 4, NR)
        for k in range(K):
            row = out[q, k]
            if cs == 1:  # B's rows contiguous (activations): row by row
                copy_into(row[:w], _floats(pb + (k * rs + j0) * 4, w))
            else:  # what the blocks left
                lo = wv if k < kv else 0
                _put_strided(row[lo:w], pb + (k * rs + (j0 + lo) * cs) * 4, cs)
            for j in range(w, NR):
                row[j] = 0


@_native(15)
def _gemm_body(pa0, a_rs, a_ks, K, pp0, panels, n, beta, pc0, ldc, row_lo, row_hi, pb0, pt, pw):  # type: ignore[no-untyped-def]
    """:func:`gemm_packed` for K > 0 on addresses (pt: MR x NR floats of scratch; pw: KC x
    MC floats for the copy of a column-stored A, or 0: A read in place)."""
    rs, ks = a_rs, a_ks
    for k0 in range(0, K, KC):
        kc = min(KC, K - k0)
        bk = beta if k0 == 0 else 1
        for i_blk in range(row_lo, row_hi, MC):
            i_end = min(i_blk + MC, row_hi)
            # A's rows at one k adjacent, each k a row stride away (dA^T): the block's rows,
            # copied once into pw by k, are then read row by row by every panel's tiles
            base = pa0 + (i_blk * a_rs + k0 * a_ks) * 4
            if pw != 0:
                for k in range(kc):
                    copy_into(_floats(pw + k * MC * 4, i_end - i_blk),
                              _floats(base + k * a_ks * 4, i_end - i_blk))  # fmt: skip
                base, rs, ks = pw, 1, MC
            q = 0
            while q < panels:
                j0 = q * NR
                w = min(NR, n - j0)
                pp = pp0 + (q * K + k0) * NR * 4
                pb = pb0 + (j0 * 4 if bk == 2 else 0)
                blocks = _row_blocks(i_end - i_blk)
                # a block of few rows over several whole panels at once (batch 1-3)
                wide = min(WIDE_PANELS[i_end - i_blk], (n - j0) // NR) if blocks == 1 else 1
                if wide > 1:
                    pc = pc0 + (i_blk * ldc + j0) * 4
                    _tile_wide(i_end - i_blk, wide, base, rs, ks, pp, K * NR, kc, pc, ldc, bk, pb)
                    q += wide
                    continue
                q += 1
                for ib in range(blocks):
                    i0, mr = _row_block(ib, blocks, i_end - i_blk)
                    pa = base + i0 * rs * 4
                    i0 += i_blk
                    if w == NR:
                        pc = pc0 + (i0 * ldc + j0) * 4
                        _tile(mr, NV, pa, rs, ks, pp, kc, pc, ldc, bk, pb)
                    else:  # a last, partial panel: through the scratch block
                        for r in range(mr):
                            tmp_r = _floats(pt + r * NR * 4, w)
                            if bk == 1:
                                copy_into(tmp_r, _floats(pc0 + ((i0 + r) * ldc + j0) * 4, w))
                            elif bk == 2:
                                copy_into(tmp_r, _floats(pb0 + j0 * 4, w))
                        nv = (w + VW - 1) // VW
                        _tile(mr, nv, pa, rs, ks, pp, kc, pt, NR, min(bk, 1), pb)
                        for r in range(mr):
                            copy_into(_floats(pc0 + ((i0 + r) * ldc + j0) * 4, w),
                                 _floats(pt + r * NR * 4, w))  # fmt: skip


@nb.njit(**_JIT)
def gemm_packed(a, packed, n, beta, c, row_lo, row_hi, bias):  # type: ignore[no-untyped-def]
    """c[row_lo:row_hi] = init + a[row_lo:row_hi] B, B (K, n) given packed by :func:`pack`;
    init is 0 (beta 0), c itself (beta 1), or bias in every row (beta 2; bias from
    :func:`pad_bias`, else :data:`NO_BIAS`).

    a (M, K) float32 with any strides; c (M, n) float32 with unit column stride.
    """
    K = a.shape[1]
    if row_hi <= row_lo or n == 0:
        return
    if c.shape[1] > 1 and c.strides[1] != 4:
        raise ValueError("gemm_packed: columns of c must be contiguous")
    if beta == 2 and bias.shape[0] < packed.shape[0] * NR:
        raise ValueError("gemm_packed: bias must be padded to whole panels (pad_bias)")
    if K == 0:
        for i in range(row_lo, row_hi):
            if beta == 0:
                c[i, :n] = 0
            elif beta == 2:
                copy_into(c[i, :n], bias[:n])
        return
    tmp = np.empty((MR if n % NR else 0, NR), np.float32)  # for a last, partial panel
    a_rs, a_ks = a.strides[0] // 4, a.strides[1] // 4
    copy_a = (COPY_COLUMNS and a_rs == 1 and a_ks > MC and row_hi - row_lo > MR
              and packed.shape[0] > 1)  # fmt: skip
    work = np.empty((KC, MC) if copy_a else (0, 0), np.float32)
    _gemm_body((np.int64(a.ctypes.data), np.int64(a_rs), np.int64(a_ks), np.int64(K),
                np.int64(packed.ctypes.data), np.int64(packed.shape[0]), np.int64(n),
                np.int64(beta), np.int64(c.ctypes.data), np.int64(c.strides[0] // 4),
                np.int64(row_lo), np.int64(row_hi), np.int64(bias.ctypes.data),
                np.int64(tmp.ctypes.data),
                np.int64(work.ctypes.data if copy_a else 0)))  # fmt: skip
    _alive(tmp)
    _alive(work)


@_native(15, returns=True)
def _tiles2(mr, nv, pa1, rs1, ks1, pp1, k1, pa2, rs2, ks2, pp2, k2, pc, ldc, pb):  # type: ignore[no-untyped-def]
    """One block of C (mr rows, nv vectors, row stride ldc, at pc) = the bias at pb + A1 B1
    + A2 B2, the sums over k1 and then k2 taken KC at a time (:func:`_tile`): A's rows at
    pa (row stride rs, k stride ks, in floats), B's panel at pp. Returns 1, or 0 where k1 =
    k2 = 0: then nothing is written, and the caller fills in the bias."""
    beta = 2
    for k0 in range(0, k1, KC):
        _tile(mr, nv, pa1 + k0 * ks1 * 4, rs1, ks1, pp1 + k0 * NR * 4, min(KC, k1 - k0), pc, ldc,
              beta, pb)  # fmt: skip
        beta = 1
    for k0 in range(0, k2, KC):
        _tile(mr, nv, pa2 + k0 * ks2 * 4, rs2, ks2, pp2 + k0 * NR * 4, min(KC, k2 - k0), pc, ldc,
              beta, pb)  # fmt: skip
        beta = 1
    return 1 if beta == 1 else 0


@_native(17)
def _gemm2_body(pa1, rs1, ks1, K1, pp1, pa2, rs2, ks2, K2, pp2, panels, n, M, pc0, ldc, pb0, pt):  # type: ignore[no-untyped-def]
    """:func:`gemm_packed2` on addresses (pt: MR x NR floats of scratch)."""
    for q in range(panels):
        j0 = q * NR
        w = min(NR, n - j0)
        nv = (w + VW - 1) // VW
        blocks = _row_blocks(M)
        for ib in range(blocks):
            i0, mr = _row_block(ib, blocks, M)
            pc, lc = (pc0 + (i0 * ldc + j0) * 4, ldc) if w == NR else (pt, np.int64(NR))
            done = _tiles2((mr, nv, pa1 + i0 * rs1 * 4, rs1, ks1, pp1 + q * K1 * NR * 4, K1,
                            pa2 + i0 * rs2 * 4, rs2, ks2, pp2 + q * K2 * NR * 4, K2, pc, lc,
                            pb0 + j0 * 4))  # fmt: skip
            for r in range(mr if not done or w < NR else 0):
                src = pb0 + j0 * 4 if not done else pt + r * NR * 4  # K1 = K2 = 0: the bias
                copy_into(_floats(pc0 + ((i0 + r) * ldc + j0) * 4, w), _floats(src, w))


@nb.njit(**_JIT)
def gemm_packed2(a1, p1, a2, p2, n, c, bias):  # type: ignore[no-untyped-def]
    """c = bias + a1 B1 + a2 B2 for all rows of c, with B1 (K1, n) and B2 (K2, n) packed and
    bias from :func:`pad_bias`; block by block of c, which stays in L1 between the products.

    The LSTM's step: x_t W_ih^T + h_{t-1} W_hh^T + b in one pass, so that the input
    projection never goes through memory (rnnkit.fast.loops.lstm_forward).
    """
    M = c.shape[0]
    if M == 0 or n == 0:
        return
    if c.shape[1] > 1 and c.strides[1] != 4:
        raise ValueError("gemm_packed2: columns of c must be contiguous")
    if bias.shape[0] < p1.shape[0] * NR or p1.shape[0] != p2.shape[0]:
        raise ValueError("gemm_packed2: bias or panels do not match")
    tmp = np.empty((MR, NR), np.float32)
    _gemm2_body((np.int64(a1.ctypes.data), np.int64(a1.strides[0] // 4),
                 np.int64(a1.strides[1] // 4), np.int64(a1.shape[1]), np.int64(p1.ctypes.data),
                 np.int64(a2.ctypes.data), np.int64(a2.strides[0] // 4),
                 np.int64(a2.strides[1] // 4), np.int64(a2.shape[1]), np.int64(p2.ctypes.data),
                 np.int64(p1.shape[0]), np.int64(n), np.int64(M), np.int64(c.ctypes.data),
                 np.int64(c.strides[0] // 4), np.int64(bias.ctypes.data),
                 np.int64(tmp.ctypes.data)))  # fmt: skip
    _alive(tmp)


@nb.njit(**_JIT)
def _unit_cols(a):  # type: ignore[no-untyped-def]
    return a.shape[0] == 0 or a.shape[1] <= 1 or a.strides[1] == 4


@_native(26)
def _lstm_body(px, rs1, ks1, K1, pp1, ph0, rs2, ks2, k2, pp2, pbias, M, H, pcp0, lcp, pcn0, lcn,
               phn0, lhn, pg0, lg, ptc0, ltc, preal, nreal, pblk):  # type: ignore[no-untyped-def]  # fmt: skip
    """:func:`lstm_step` on addresses and row strides in floats (pg0, ptc0: 0 where the gates
    or tanh(c) are not kept; pblk: 4 x MR x NR floats of scratch)."""
    units = H // NR  # panels per gate
    real = nb.carray(_u8(preal), (nreal,))
    blocks = _row_blocks(M)
    for u in range(units):
        j = u * NR  # the block's first unit
        for ib in range(blocks):
            i0, mr = _row_block(ib, blocks, M)
            for gate in range(4):
                q = gate * units + u
                pc = pblk + gate * MR * NR * 4
                done = _tiles2((mr, NV, px + i0 * rs1 * 4, rs1, ks1, pp1 + q * K1 * NR * 4, K1,
                                ph0 + i0 * rs2 * 4, rs2, ks2, pp2 + q * H * NR * 4, k2, pc, NR,
                                pbias + q * NR * 4))  # fmt: skip
                if not done:  # K1 = k2 = 0: the bias alone
                    for r in range(mr):
                        copy_into(_floats(pc + r * NR * 4, NR), _floats(pbias + q * NR * 4, NR))
            for r in range(mr):
                b = i0 + r
                pcp, pcn, ph = pcp0 + b * lcp * 4, pcn0 + b * lcn * 4, phn0 + b * lhn * 4
                if nreal > 0 and real[b] == 0:  # padding: h and c carried unchanged
                    copy_into(_floats(pcn + j * 4, NR), _floats(pcp + j * 4, NR))
                    _put_strided(_floats(ph + j * 4, NR), ph0 + (b * rs2 + j * ks2) * 4, ks2)
                    continue
                for v in range(0, NR, VW):
                    o = (j + v) * 4
                    pg = pg0 + b * lg * 4 + o if pg0 != 0 else 0  # 0: not kept
                    ptc = ptc0 + b * ltc * 4 + o if ptc0 != 0 else 0
                    _lstm_cell_from(pblk + (r * NR + v) * 4, MR * NR, pg, H, pcp + o, pcn + o, ptc,
                                    ph + o)  # fmt: skip


@nb.njit(**_JIT)
def lstm_step(x, p1, h_prev, k2, p2, bias, c_prev, c_new, h_new, g, tc, real):  # type: ignore[no-untyped-def]
    """One float32 LSTM step without peepholes, for H a whole number of panels: the
    pre-activations b + x W_ih^T + h_prev W_hh^T of a block of MR rows and NR units, gate by
    gate (the tiles of :func:`gemm_packed2`, into a block of 4 x MR x NR floats that stays in
    L1), then the block's pointwise step (:func:`lstm_cell`), so that the pre-activations
    never go through memory.

    x (M, K1) and h_prev (M, H) with any strides (only h_prev's first k2 columns enter the
    product: k2 = 0 skips a zero initial state's); p1, p2 W_ih^T and W_hh^T packed; bias from
    :func:`pad_bias`. c_prev (M, H) in, c_new and h_new (M, H) out; g (M, 4H) receives the
    gate activations and tc (M, H) tanh(c), each only where it has M rows (kept for
    backward). real (M,) uint8: 0 where the step is padding (h and c carried unchanged), or
    empty (no padding).
    """
    M, K1, H = x.shape[0], x.shape[1], c_new.shape[1]
    units = H // NR  # panels per gate
    if M == 0:
        return
    if H % NR or p1.shape[0] != 4 * units or p2.shape[0] != 4 * units or k2 > h_prev.shape[1]:
        raise ValueError("lstm_step: H must be a whole number of panels, the weights 4H wide")
    if not (_unit_cols(c_prev) and _unit_cols(c_new) and _unit_cols(h_new) and _unit_cols(g)
            and _unit_cols(tc)):  # fmt: skip
        raise ValueError("lstm_step: columns of the state and gates must be contiguous")
    block = np.empty((4, MR, NR), np.float32)  # scratch: a block of each gate's rows
    _lstm_body((np.int64(x.ctypes.data), np.int64(x.strides[0] // 4),
                np.int64(x.strides[1] // 4), np.int64(K1), np.int64(p1.ctypes.data),
                np.int64(h_prev.ctypes.data), np.int64(h_prev.strides[0] // 4),
                np.int64(h_prev.strides[1] // 4), np.int64(k2), np.int64(p2.ctypes.data),
                np.int64(bias.ctypes.data), np.int64(M), np.int64(H),
                np.int64(c_prev.ctypes.data), np.int64(c_prev.strides[0] // 4),
                np.int64(c_new.ctypes.data), np.int64(c_new.strides[0] // 4),
                np.int64(h_new.ctypes.data), np.int64(h_new.strides[0] // 4),
                np.int64(g.ctypes.data if g.shape[0] == M else 0), np.int64(g.strides[0] // 4),
                np.int64(tc.ctypes.data if tc.shape[0] == M else 0), np.int64(tc.strides[0] // 4),
                np.int64(real.ctypes.data), np.int64(real.shape[0]),
                np.int64(block.ctypes.data)))  # fmt: skip
    _alive(block)
