"""Recurrent layers: the BPTT loop over time, padding masks, stacking and bidirectionality.

``RNN``, ``LSTM`` and ``GRU`` share the stacking, directions, masks and the matmuls outside the
time loop (:class:`Recurrent`); each has its own compiled time loop in :mod:`rnnkit.fast.loops`,
which does the arithmetic of its cell in :mod:`rnnkit.engine.cells` (the one-step NumPy reference,
finite-difference checked) for all steps without returning to Python. Parameters carry
PyTorch's names, shapes and gate order, so ``state_dict()`` loads into ``torch.nn.LSTM`` and
back.

Contract (batch-first)::

    out, state, cache = layer.forward(x, state=None, lengths=None, training=True)
    dx, dstate = layer.backward(dout, cache, dstate=None)   # adds into layer.grads
    out, state = layer(x, state=None, lengths=None)          # inference, no cache kept

x (B, T, D) -> out (B, T, dirs*H); state h (L*dirs, B, H), for the LSTM the pair (h, c).
With ``lengths`` (B,), steps t >= lengths[b] give zero output and leave b's state unchanged,
so the final state is the state at each sequence's last valid step and the reverse
direction starts there (PyTorch's packed-sequence semantics, without sorting).

How backpropagation through time is organised, per layer and direction:
  before the loop:  XW = X W_ih^T + b_ih (+ b_hh)          one (T*B, D) x (D, G*H) matmul
                    (the float32 LSTM instead adds x_t W_ih^T inside each step's product)
  in the loop:      the recurrent matmul (on W_hh packed once per call) and the pointwise
                    gate math of each step, compiled; backward also sums the bias gradients
  after the loop:   dW_ih = dA^T X, dW_hh = dA^T H_prev, dX = dA W_ih   one matmul each
The layer's states live in one buffer per layer, (T + 2, B, dirs*H) with the initial states
at both ends (see :mod:`rnnkit.fast.loops`), so the output is a slice of it and H_prev of all
steps is one strided matrix.

Speed (issue 4, BENCHMARKS.md): float32 products run on rnnkit's own kernel
(:mod:`rnnkit.fast.gemm`), float64 ones through NumPy's BLAS. In float32 the work uses as many
threads as NumPy's BLAS may (``threadpoolctl``, ``OPENBLAS_NUM_THREADS``,
``rnnkit --threads``): the time loops split the batch (rows are independent, so each thread
runs its rows' whole recurrence with no synchronisation), and the large products split their
output rows. Outputs do not depend on the thread count; bias gradients, which add per-thread
partial sums, agree to rounding. Large per-call arrays (states, gates, their gradients,
packed weights) come from :mod:`rnnkit.fast.workspace`, memory reused between calls, so that a
training step does not page-fault its way through fresh memory each time;
``rnnkit.release_memory()`` hands the unused part back to the system.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial, reduce
from typing import Any

import numpy as np

from rnnkit.fast import workspace as ws
from rnnkit.engine.cells import gru_step_forward, lstm_step_forward, rnn_step_forward
from rnnkit.engine.module import Module
from rnnkit.engine.ops import ACTIVATIONS, dropout_backward, dropout_forward

Array = np.ndarray
State = Array | tuple[Array, Array]


def _as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _kernels() -> Any:
    """The compiled loops; numba is imported (and the loops compiled or loaded from its
    on-disk cache) on the first forward pass, so ``import rnnkit`` stays light."""
    from rnnkit.fast import loops as K

    return K


def _packed(K: Any, *mats: Array) -> Array:
    """The matrices side by side (their columns concatenated; all but the last a whole
    number of panels wide) packed for the float32 kernel (rnnkit.fast.gemm), once per call; an
    empty array (the loops then call BLAS) in float64. Large ones are packed by all threads,
    a range of panels each (the weights come from memory: W_ih^T and W_hh^T at D = H = 512
    took 3 ms per call in one thread)."""
    if mats[0].dtype != np.float32:
        return K._g.EMPTY
    nr = K._g.NR
    widths = [K._g.packed_shape(m.shape)[0] for m in mats]
    out = ws.empty((sum(widths), mats[0].shape[0], nr), np.float32)
    jobs: list[list[Callable[[], object]]] = [[] for _ in range(K.blas_threads())]
    first = 0
    for m, panels in zip(mats, widths, strict=True):
        big = m.size >= 1 << 18
        for i, s in enumerate(_parts(K, panels, m.dtype) if big else [slice(0, panels)]):
            cols = m[:, s.start * nr : s.stop * nr]
            jobs[i].append(partial(K._g.pack_into, cols, out[first + s.start : first + s.stop]))
        first += panels
    _in_parallel([partial(_call_all, j) for j in jobs if j])
    return out


def _call_all(calls: list[Callable[[], object]]) -> None:
    for c in calls:
        c()


def _w_hh_t(K: Any, w_hh: Array) -> Array:
    """W_hh^T, contiguous, for the loops' BLAS products (float64); in float32 the loops use
    W_hh packed (rnnkit.fast.gemm) and get an empty array instead of a transposed copy."""
    if w_hh.dtype == np.float32:
        return np.empty((0, 0), np.float32)
    return K.transpose(K.BLAS, np.ascontiguousarray(w_hh))


def _copy(K: Any, a: Array, dtype: Any = None) -> Array:
    """A C-contiguous copy of a (cast to ``dtype`` if given), in reused memory
    (rnnkit.fast.workspace) when large; in float32, large ones are copied by all threads
    (NumPy's copy releases the GIL)."""
    out = ws.empty(a.shape, dtype or a.dtype)
    parts = _parts(K, a.shape[0], out.dtype) if a.size >= 1 << 20 else [slice(0, a.shape[0])]
    _in_parallel([partial(np.copyto, out[s], a[s], casting="unsafe") for s in parts])
    return out


def _total(arrays: list[Array]) -> Array:
    """The sum of per-thread partial sums."""
    return reduce(np.add, arrays)


_WORKERS: list[ThreadPoolExecutor] = []


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _in_parallel(calls: list[Callable[[], object]]) -> None:
    """Run the calls at the same time (they call compiled code that releases the GIL).

    Each runs in a worker thread of its own, pinned to its own CPU where the system allows
    (Linux), while this thread waits: measured on the 2-core machine, a worker woken after
    a pause of 50 ms or more was often placed on the CPU of the thread that woke it, so the
    two halves of the work shared one core for milliseconds (BENCHMARKS.md).
    """
    if len(calls) == 1:
        calls[0]()
        return
    if len(_WORKERS) < len(calls):
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
        for i in range(len(_WORKERS), len(calls)):
            cpu = cpus[i % len(cpus)]
            _WORKERS.append(
                ThreadPoolExecutor(1, thread_name_prefix=f"rnnkit-{i}", initializer=_pin,
                                   initargs=(cpu,))
            )  # fmt: skip
    futures = [w.submit(c) for w, c in zip(_WORKERS, calls, strict=False)]
    wait(futures)  # all of them, even when one fails: they share arrays
    for f in futures:
        f.result()


def _parts(K: Any, n: int, dtype: Any, align: int = 1) -> list[slice]:
    """range(n) cut into one contiguous slice per thread (multiples of ``align`` but the
    last): as many threads as NumPy's BLAS may use, in float32 (the float64 loops call BLAS
    at each step and stay in one thread)."""
    k = min(K.blas_threads(), max(n // align, 1)) if dtype == np.float32 else 1
    bounds = [round(i * n / k / align) * align for i in range(k)] + [n]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _product(
    K: Any, a: Array, b: Array, beta: int, c: Array, trans_a: bool = False,
    trans_b: bool = False, bias: Array | float = 0.0,
) -> None:  # fmt: skip
    """c = beta c + op(a) @ op(b) (beta 0 or 1), plus ``bias`` (a row vector) when beta is 0:
    rnnkit's float32 kernel (rnnkit.fast.gemm; over row blocks in parallel when large), BLAS
    for float64."""
    has_bias = not (np.isscalar(bias) and bias == 0)
    if c.dtype == np.float32 and c.strides[1] == c.itemsize and c.size > 0:
        _product_packed(K, a.T if trans_a else a, _packed(K, b.T if trans_b else b), beta, c,
                        bias if has_bias else None)  # fmt: skip
    else:
        if has_bias:
            c[...] = bias
            beta = 1
        K.gemm(K.BLAS, trans_a, trans_b, 1.0, a, b, float(beta), c)


def _product_packed(
    K: Any, a: Array, packed: Array, beta: int, c: Array, bias: Array | None = None
) -> None:
    """c = beta c + a @ B (float32), B packed by :func:`_packed`, plus ``bias`` when given
    (then beta is ignored: the kernel starts from the bias, no pass to fill c first)."""
    M, n = c.shape
    if bias is not None:
        padded = K._g.pad_bias(np.broadcast_to(np.asarray(bias, c.dtype), (n,)))
        beta = 2
    else:
        padded = K._g.NO_BIAS
    # in parallel over row blocks when there is enough work (rows of the size of the
    # products over all steps); never through BLAS, whose own threads would compete
    parts = (
        _parts(K, M, c.dtype, K._g.MR)
        if M >= K._g.MIN_ROWS and M * n * a.shape[1] >= 1 << 22
        else [slice(0, M)]
    )
    _in_parallel([
        partial(K._g.gemm_packed, a, packed, n, beta, c, s.start, s.stop, padded) for s in parts
    ])  # fmt: skip


def _gemm_into(K: Any, out: Array, a: Array, b: Array, trans_a: bool = False) -> None:
    """out += op(a) @ b, accumulating in place (out is a gradient array)."""
    if out.flags.c_contiguous:
        _product(K, a, b, 1, out, trans_a=trans_a)
    else:
        out += (a.T if trans_a else a) @ b


class Recurrent(Module):
    """Base class of the recurrent layers: parameters, validation, stacking, directions.

    Subclasses set ``mode`` and ``gates`` and implement ``_loop_forward`` /
    ``_loop_backward`` (one direction of one layer, through the compiled loops) and
    ``_step_forward`` (one step with the NumPy cell, for diagnostics).
    """

    mode = ""
    gates = 1
    n_states = 1  # 2 for the LSTM (h, c)
    gate_slot = 0  # 1 where the compiled loop keeps gates in an extra slot (LSTM, GRU)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        bias: bool = True,
        dtype: Any = np.float32,
        seed: int | np.random.Generator | None = None,
        init_range: float | None = None,
        recurrent_init: str = "uniform",
    ) -> None:
        for name, v in (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: expected float32 or float64, got {self.dtype}")
        if recurrent_init not in ("uniform", "orthogonal"):
            raise ValueError(
                f"recurrent_init: expected 'uniform' or 'orthogonal', got {recurrent_init!r}"
            )
        self.input_size = int(input_size)
        self.hidden_size = H = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.bias = bool(bias)
        self.rng = _as_generator(seed)

        # PyTorch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), drawn in its
        # order (per layer, per direction: weight_ih, weight_hh, bias_ih, bias_hh).
        k = 1.0 / np.sqrt(H) if init_range is None else float(init_range)
        GH = self.gates * H
        self.params: dict[str, Array] = {}
        for layer in range(self.num_layers):
            d_in = self.input_size if layer == 0 else H * self.num_directions
            for direction in range(self.num_directions):
                sfx = self._suffix(layer, direction)
                shapes = [("weight_ih", (GH, d_in)), ("weight_hh", (GH, H))]
                if self.bias:
                    shapes += [("bias_ih", (GH,)), ("bias_hh", (GH,))]
                shapes += [(n, (H,)) for n in self._extra_params()]
                for name, shape in shapes:
                    w = self.rng.uniform(-k, k, size=shape)
                    if name == "weight_hh" and recurrent_init == "orthogonal":
                        w = np.concatenate([self._orthogonal(H) for _ in range(self.gates)])
                    self.params[name + sfx] = w.astype(self.dtype)
        self._bases = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", *self._extra_params()]
        self.grads: dict[str, Array] = {n: np.zeros_like(p) for n, p in self.params.items()}

    # --- parameters ------------------------------------------------------------------------

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _extra_params(self) -> list[str]:
        return []

    def _orthogonal(self, n: int) -> Array:
        q, r = np.linalg.qr(self.rng.standard_normal((n, n)))
        return q * np.sign(np.diag(r))  # sign fix makes the distribution uniform (Haar)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
            f"num_layers={self.num_layers}, bidirectional={self.bidirectional}, "
            f"dropout={self.dropout}, bias={self.bias}, dtype={self.dtype.name})"
        )

    # --- validation ------------------------------------------------------------------------

    def _check_input(self, x: Any) -> Array:
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"x: expected 3 dimensions (B, T, D), got shape {x.shape}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"x: expected feature size D={self.input_size}, got shape {x.shape}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x: batch and time must be non-empty, got shape {x.shape}")
        if x.dtype != self.dtype:
            raise ValueError(f"x: dtype {x.dtype} does not match the layer's dtype {self.dtype}")
        return x

    def _check_lengths(self, lengths: Any, B: int, T: int) -> Array | None:
        if lengths is None:
            return None
        lengths = np.asarray(lengths)
        if lengths.shape != (B,):
            raise ValueError(f"lengths: expected shape ({B},), got {lengths.shape}")
        if not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths: expected integers, got dtype {lengths.dtype}")
        bad = (lengths < 1) | (lengths > T)
        if bad.any():
            b = int(np.argmax(bad))
            raise ValueError(f"lengths: each must lie in [1, T={T}], got lengths[{b}]={lengths[b]}")
        return lengths

    def _state_shape(self, B: int) -> tuple[int, int, int]:
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _check_state(self, state: Any, B: int) -> list[Array]:
        """Returns the state as a list of n_states arrays (L*dirs, B, H)."""
        shape = self._state_shape(B)
        if state is None:
            return [np.zeros(shape, self.dtype) for _ in range(self.n_states)]
        if self.n_states == 2:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError("state: the LSTM's state is a pair (h, c)")
            parts, names = [np.asarray(s) for s in state], ["state h", "state c"]
        else:
            if isinstance(state, (tuple, list)):
                raise ValueError(f"state: {self.mode} takes one array h, not a tuple")
            parts, names = [np.asarray(state)], ["state"]
        for s, name in zip(parts, names, strict=True):
            if s.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {s.shape}")
            if s.dtype != self.dtype:
                raise ValueError(
                    f"{name}: dtype {s.dtype} does not match the layer's dtype {self.dtype}"
                )
        return parts

    def _pack_state(self, parts: list[Array]) -> State:
        return (parts[0], parts[1]) if self.n_states == 2 else parts[0]

    # --- per-direction hooks (cells) ---------------------------------------------------------

    def _input_bias(self, p: dict[str, Array]) -> Array | float:
        """The bias folded into the input projection before the loop."""
        if not self.bias:
            return 0.0
        return p["bias_ih"] + p["bias_hh"]

    def _loop_input_bias(self, p: dict[str, Array]) -> Array | float:
        """The bias the compiled loop expects folded into the input projection."""
        return self._input_bias(p)

    def _step_forward(
        self, xw: Array, prev: list[Array], p: dict[str, Array], w_hh_t: Array
    ) -> tuple[list[Array], Any]:
        """One step with the NumPy cell of :mod:`rnnkit.engine.cells` (diagnostics use it)."""
        raise NotImplementedError

    def _loop_forward(
        self, K: Any, xw: Array, hbuf: Array, col: int, init: list[Array],
        p: dict[str, Array], valid: Array, reverse: bool, keep: bool,
    ) -> tuple[list[Array], tuple[Any, ...]]:  # fmt: skip
        """Runs the compiled forward loop; returns the final state and the cell's cache."""
        raise NotImplementedError

    def _loop_backward(
        self, K: Any, dout: Array, dcol: int, dfinal: list[Array], cache: Any,
        p: dict[str, Array], g: dict[str, Array], hid: Array,
    ) -> tuple[Array, Array, list[Array], tuple[Array, Array]]:  # fmt: skip
        """Runs the compiled backward loop; returns dax, dah (T, B, G), dinit and the
        bias gradients (sums of dax and dah over steps and rows)."""
        raise NotImplementedError

    def _fuses_projection(self, batch: int) -> bool:
        """Whether the compiled loop computes each step's input projection itself (the
        float32 LSTM at batch >= 3) instead of one matmul over all steps before it."""
        return False

    def _joins_weight_grads(self, K: Any, dax: Array, dah: Array, D: int) -> bool:
        """Whether dW_ih and dW_hh are one product: float32, one gradient of the
        pre-activations for both, X a whole number of the kernel's panels wide, and at most
        8 panels in all (measured: faster at D = H = 128 and 256, even at 512, where holding
        X and H_prev packed at once raised the RNN's training memory by 15 MiB)."""
        nr = K._g.NR
        return (
            dax is dah and dax.dtype == np.float32 and D % nr == 0
            and D + self.hidden_size <= 8 * nr
        )  # fmt: skip

    def _weight_hh_grad(self, K: Any, dah2: Array, h_prev2: Array, cache: Any, gw: Array) -> None:
        """dW_hh += sum_t dah_t^T h_{t-1}: one matmul over all T*B rows."""
        _gemm_into(K, gw, dah2, h_prev2, trans_a=True)

    # --- one direction of one layer ------------------------------------------------------------

    def _direction_forward(
        self,
        K: Any,
        xs: Array,
        hbuf: Array,
        direction: int,
        init: list[Array],
        p: dict[str, Array],
        valid: Array,
        keep: bool,
    ) -> tuple[list[Array], Any]:
        """xs (T, B, D) time-major; the states go to hbuf (see :mod:`rnnkit.fast.loops`)."""
        T, B, D = xs.shape
        H = self.hidden_size
        reverse, col = bool(direction), direction * H
        hbuf[T + 1 if reverse else 0, :, col : col + H] = init[0]
        if self._fuses_projection(B):  # the loop projects each step's input itself
            xw = ws.empty((T + 1 if keep else 0, B, self.gates * H), self.dtype)
            own_input: tuple[Array, ...] = (xs,)
        else:
            # the input projection of all T steps: one matmul before the loop
            # the LSTM and GRU loops write gates one slot away from their pre-activations
            xw = ws.empty((T + self.gate_slot, B, self.gates * H), self.dtype)
            proj = xw[:T] if reverse or not self.gate_slot else xw[1:]
            w_ih = np.ascontiguousarray(p["weight_ih"])
            _product(K, xs.reshape(T * B, D), w_ih, 0, proj.reshape(T * B, -1), trans_b=True,
                     bias=self._loop_input_bias(p))  # fmt: skip
            own_input = ()
        final, cell_cache = self._loop_forward(K, xw, hbuf, col, init, p, valid, reverse, keep,
                                               *own_input)  # fmt: skip
        final = [hbuf[1 if reverse else T, :, col : col + H], *final]
        return final, ((xs, hbuf, col, valid, reverse, cell_cache) if keep else None)

    def _direction_backward(
        self,
        K: Any,
        dout: Array,
        dfinal: list[Array],
        cache: Any,
        p: dict[str, Array],
        g: dict[str, Array],
        dxs: Array,
        accumulate: bool,
        hid: Array,
    ) -> list[Array]:
        """dout (T, B, dirs*H): gradient of the layer's output. Adds dL/dxs into dxs."""
        xs, hbuf, col, valid, reverse, cell_cache = cache
        T, B, D = xs.shape
        H = self.hidden_size
        dax, dah, dinit, (dbx, dbh) = self._loop_backward(
            K, dout, col, dfinal, (hbuf, col, valid, reverse, cell_cache), p, g, hid
        )
        # weight gradients of all T steps: one matmul each after the loop
        G = dax.shape[-1]
        x2, dax2, dah2 = xs.reshape(T * B, D), dax.reshape(T * B, G), dah.reshape(T * B, G)
        # the previous state of every step: slots 0..T-1 (forward) or 2..T+1 (reverse)
        h_prev = hbuf[2:] if reverse else hbuf[:T]
        h_prev2 = h_prev.reshape(T * B, -1)[:, col : col + H]
        if self._joins_weight_grads(K, dax, dah, D):
            # [dW_ih | dW_hh] = dA^T [X | H_prev]: one product, which reads dA^T (a
            # transposed operand, the slow side of the kernel) once for both; measured,
            # (3200 x 512)^T @ (3200 x [128 | 128]): 9.0 ms against 9.8-10.1 as two
            both = ws.empty((G, D + H), self.dtype)
            _product_packed(K, dax2.T, _packed(K, x2, h_prev2), 0, both)
            g["weight_ih"] += both[:, :D]
            g["weight_hh"] += both[:, D:]
        else:
            _gemm_into(K, g["weight_ih"], dax2, x2, trans_a=True)
            self._weight_hh_grad(K, dah2, h_prev2, cell_cache, g["weight_hh"])
        if self.bias:  # summed over steps and rows inside the loop
            g["bias_ih"] += dbx
            g["bias_hh"] += dbh
        w_ih = np.ascontiguousarray(p["weight_ih"])
        _product(K, dax2, w_ih, int(accumulate), dxs.reshape(T * B, D))
        return dinit

    # --- the whole stack -----------------------------------------------------------------------

    def _views(self, layer: int, direction: int) -> tuple[dict[str, Array], dict[str, Array]]:
        """The parameters and gradients of one layer and direction, under their base names."""
        sfx = self._suffix(layer, direction)
        p = {b: self.params[b + sfx] for b in self._bases if b + sfx in self.params}
        g = {b: self.grads[b + sfx] for b in p}
        return p, g

    def forward(
        self,
        x: Any,
        state: Any = None,
        lengths: Any = None,
        training: bool = True,
    ) -> tuple[Array, State, Any]:
        """Run the layer over a batch, keeping what backward needs.

        Args:
            x: (B, T, D) input of the layer's dtype.
            state: initial state, h (L*dirs, B, H) or for the LSTM (h, c); zeros if None.
            lengths: optional integers (B,) in [1, T], in any order.
            training: apply dropout between stacked layers.

        Returns:
            out (B, T, dirs*H), final state (same layout as ``state``), cache for backward.
        """
        return self._forward(x, state, lengths, training, keep=True)

    def __call__(self, x: Any, state: Any = None, lengths: Any = None) -> tuple[Array, State]:
        """Inference: ``out, state = layer(x)``; no dropout, no cache kept."""
        out, st, _ = self._forward(x, state, lengths, training=False, keep=False)
        return out, st

    def _forward(
        self, x: Any, state: Any, lengths: Any, training: bool, keep: bool
    ) -> tuple[Array, State, Any]:
        K = _kernels()
        x = self._check_input(x)
        B, T, _ = x.shape
        lengths = self._check_lengths(lengths, B, T)
        init = self._check_state(state, B)
        mask = None
        valid = np.zeros((0, 0), np.uint8)  # no padding
        if lengths is not None:
            valid = (np.arange(T)[:, None] < lengths[None, :]).astype(np.uint8)  # (T, B)
            mask = valid[:, :, None].astype(self.dtype)  # (T, B, 1): 1 valid, 0 padding
        dirs, H = self.num_directions, self.hidden_size
        finals = [np.empty(self._state_shape(B), self.dtype) for _ in range(self.n_states)]
        if not keep and x.flags.c_contiguous and self._fuses_projection(B):
            # inference with the loop projecting each step's input: it reads x_t in place, a
            # (T, B, D) view (measured: the copy took 1.1 ms of the 65 of (64,100,256,256));
            # the LSTM's loop gets x itself (one compiled loop for both layouts)
            layer_in = x.transpose(1, 0, 2)
        else:
            layer_in = _copy(K, x.transpose(1, 0, 2))  # (T, B, D) time-major
        layer_caches = []
        for layer in range(self.num_layers):
            drop_cache = None
            if layer > 0 and self.dropout > 0:
                layer_in, drop_cache = dropout_forward(layer_in, self.dropout, self.rng, training)
            # slot 0: forward initial state, 1..T: outputs, T+1: reverse initial state
            hbuf = ws.empty((T + dirs, B, dirs * H), self.dtype)
            dir_caches = []
            for d in range(dirs):
                p, _ = self._views(layer, d)
                idx = layer * dirs + d
                final, c = self._direction_forward(
                    K, layer_in, hbuf, d, [s[idx] for s in init], p, valid, keep
                )
                for f, s in zip(finals, final, strict=True):
                    f[idx] = s
                dir_caches.append(c)
            out = hbuf[1 : T + 1]  # (T, B, dirs*H), contiguous
            if mask is not None:
                out = out * mask  # steps past a sequence's end output zeros (hbuf keeps states)
            layer_caches.append((drop_cache, dir_caches))
            layer_in = out
        out_b = layer_in.transpose(1, 0, 2)  # (B, T, dirs*H), a view
        if keep:  # a copy, so that changing the output in place cannot corrupt the cache
            out_b = _copy(K, out_b)
        cache = (layer_caches, x.shape) if keep else None
        return out_b, self._pack_state(finals), cache

    def backward(
        self,
        dout: Any,
        cache: Any,
        dstate: Any = None,
        return_hidden_grads: bool = False,
    ) -> tuple[Array, State] | tuple[Array, State, Array]:
        """Backpropagation through time.

        Args:
            dout: (B, T, dirs*H) gradient of the loss w.r.t. ``out``.
            cache: what ``forward`` returned.
            dstate: gradient w.r.t. the final state (same layout as the state), or None.
            return_hidden_grads: also return dL/dh_t for every layer, direction and step.

        Returns:
            dx (B, T, D) and d(initial state); with ``return_hidden_grads`` also an array
            (L*dirs, B, T, H) holding the total gradient reaching each step's hidden state.
            Parameter gradients are added into ``self.grads``.
        """
        if cache is None:
            raise ValueError(
                "cache: None (was the forward pass run with layer(...) for inference?)"
            )
        K = _kernels()
        layer_caches, (B, T, D) = cache
        dirs, H = self.num_directions, self.hidden_size
        dout = np.asarray(dout)
        if dout.shape != (B, T, dirs * H):
            raise ValueError(f"dout: expected shape {(B, T, dirs * H)}, got {dout.shape}")
        dfinal = self._check_state(dstate, B)
        # (T, B, dirs*H); the loops ignore the gradient of padded outputs (constants)
        d_out_tm = _copy(K, dout.transpose(1, 0, 2), self.dtype)
        dinit = [np.empty(self._state_shape(B), self.dtype) for _ in range(self.n_states)]
        hidden = (
            np.empty((self.num_layers * dirs, B, T, H), self.dtype) if return_hidden_grads else None
        )
        no_hidden = np.empty((0, B, H), self.dtype)
        for layer in range(self.num_layers - 1, -1, -1):
            drop_cache, dir_caches = layer_caches[layer]
            d_in = None
            for d in range(dirs):
                p, g = self._views(layer, d)
                idx = layer * dirs + d
                if d_in is None:
                    xs = dir_caches[d][0]
                    d_in = ws.empty(xs.shape, self.dtype)
                hid = ws.empty((T, B, H), self.dtype) if hidden is not None else no_hidden
                d0 = self._direction_backward(
                    K, d_out_tm, [s[idx] for s in dfinal], dir_caches[d], p, g, d_in, d > 0, hid
                )
                for di, s in zip(dinit, d0, strict=True):
                    di[idx] = s
                if hidden is not None:
                    hidden[idx] = hid.transpose(1, 0, 2)
            d_out_tm = dropout_backward(d_in, drop_cache)
        dx = d_out_tm.transpose(1, 0, 2)
        if hidden is not None:
            return dx, self._pack_state(dinit), hidden
        return dx, self._pack_state(dinit)


class RNN(Recurrent):
    r"""Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act in tanh, relu, sigmoid.

    Args:
        input_size: D. hidden_size: H. num_layers: L stacked layers.
        nonlinearity: 'tanh' (default), 'relu' or 'sigmoid' (the last has no PyTorch twin).
        bidirectional: run a second, reversed pass per layer and concatenate the outputs.
        dropout: dropout on the outputs of each layer but the last, in training.
        bias: learn b_ih and b_hh. dtype: float32 or float64.
        seed: int or ``np.random.Generator`` for initialisation and dropout.
        init_range: weights ~ U(-a, a); default a = 1/sqrt(H) as PyTorch.
        recurrent_init: 'uniform' or 'orthogonal' (each gate block of W_hh orthogonal).

    Inputs/outputs: see :class:`Recurrent` (``forward``, ``backward``, ``__call__``).
    Parameters: ``weight_ih_l{k}`` (H, D or dirs*H), ``weight_hh_l{k}`` (H, H),
    ``bias_ih_l{k}`` (H,), ``bias_hh_l{k}`` (H,), ``_reverse`` suffix for the reverse direction.

    Example:
        >>> rnn = RNN(4, 5, num_layers=2, seed=0)
        >>> x = np.ones((2, 3, 4), np.float32)
        >>> out, h = rnn(x)
        >>> out.shape, h.shape
        ((2, 3, 5), (2, 2, 5))
    """

    mode = "RNN"
    gates = 1

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1,
        nonlinearity: str = "tanh", **kwargs: Any,
    ) -> None:  # fmt: skip
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(
                f"nonlinearity: expected one of {sorted(ACTIVATIONS)}, got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def _step_forward(self, xw, prev, p, w_hh_t):  # type: ignore[no-untyped-def]
        h, c = rnn_step_forward(xw, prev[0], w_hh_t, self.nonlinearity)
        return [h], c

    def _loop_forward(self, K, xw, hbuf, col, init, p, valid, reverse, keep):  # type: ignore[no-untyped-def]
        w_hh_t = _w_hh_t(K, p["weight_hh"])  # (H, H)
        code = K.ACT_CODES[self.nonlinearity]
        wp = _packed(K, p["weight_hh"].T)
        _in_parallel([
            partial(K.rnn_forward, K.BLAS, xw, w_hh_t, wp, hbuf, col, reverse, valid, code,
                    s.start, s.stop)
            for s in _parts(K, xw.shape[1], self.dtype)
        ])  # fmt: skip
        return [], ()

    def _loop_backward(self, K, dout, dcol, dfinal, cache, p, g, hid):  # type: ignore[no-untyped-def]
        hbuf, col, valid, reverse, _ = cache
        T, B, _ = dout.shape
        dh = dfinal[0].copy()  # (B, H), becomes dL/dh_init
        da = ws.empty((T, B, self.hidden_size), self.dtype)
        w_hh = np.ascontiguousarray(p["weight_hh"])
        wp = _packed(K, w_hh)
        code = K.ACT_CODES[self.nonlinearity]
        parts = _parts(K, B, self.dtype)
        dbs = [np.zeros(self.hidden_size, self.dtype) for _ in parts]  # one per thread
        _in_parallel([
            partial(K.rnn_backward, K.BLAS, hbuf, col, w_hh, wp, dout, dcol, dh, da, db, valid,
                    reverse, code, hid, s.start, s.stop)
            for s, db in zip(parts, dbs, strict=True)
        ])  # fmt: skip
        db = _total(dbs)
        return da, da, [dh], (db, db)


class LSTM(Recurrent):
    r"""Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000).

    i, f, g, o = sigma, sigma, tanh, sigma (W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

    Args: as :class:`RNN` (without nonlinearity), plus
        peepholes: add diagonal peephole weights ``weight_ci_l{k}``, ``weight_cf_l{k}``,
            ``weight_co_l{k}`` (H,): the i and f gates see c_{t-1}, the o gate sees c_t
            (Gers & Schmidhuber 2000; Graves 2013 eq. 7-11). PyTorch has no peepholes, so
            such a state_dict does not load into ``torch.nn.LSTM``.
        forget_bias: if given, the forget-gate part of b_ih is set to it and that of b_hh
            to 0 (Jozefowicz et al. 2015 recommend 1.0).

    State: the pair (h, c), each (L*dirs, B, H). Parameters: ``weight_ih_l{k}`` (4H, D),
    ``weight_hh_l{k}`` (4H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (4H,), gates i, f, g, o.

    Example:
        >>> lstm = LSTM(4, 5, bidirectional=True, seed=0)
        >>> x = np.ones((2, 3, 4), np.float32)
        >>> out, (h, c) = lstm(x, lengths=np.array([3, 1]))
        >>> out.shape, h.shape, float(abs(out[1, 1:]).max())
        ((2, 3, 10), (2, 2, 5), 0.0)
    """

    mode = "LSTM"
    gates = 4
    gate_slot = 1
    n_states = 2

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1,
        peepholes: bool = False, forget_bias: float | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.peepholes = bool(peepholes)
        super().__init__(input_size, hidden_size, num_layers, **kwargs)
        if forget_bias is not None:
            if not self.bias:
                raise ValueError("forget_bias: needs bias=True")
            H = self.hidden_size
            for name, p in self.params.items():
                if name.startswith("bias_ih"):
                    p[H : 2 * H] = forget_bias
                elif name.startswith("bias_hh"):
                    p[H : 2 * H] = 0.0

    def _extra_params(self) -> list[str]:
        return ["weight_ci", "weight_cf", "weight_co"] if self.peepholes else []

    def _peep(self, p: dict[str, Array]) -> tuple[Array, Array, Array] | None:
        return (p["weight_ci"], p["weight_cf"], p["weight_co"]) if self.peepholes else None

    def _step_forward(self, xw, prev, p, w_hh_t):  # type: ignore[no-untyped-def]
        h, c, cache = lstm_step_forward(xw, prev[0], prev[1], w_hh_t, self._peep(p))
        return [h, c], cache

    def _peep_rows(self, p: dict[str, Array]) -> Array:
        """(3, H) rows w_ci, w_cf, w_co, or (0, H) without peepholes."""
        if not self.peepholes:
            return np.empty((0, self.hidden_size), self.dtype)
        return np.stack([p["weight_ci"], p["weight_cf"], p["weight_co"]])

    def _fuses_projection(self, batch: int) -> bool:
        # measured: the projection's output (T*B*4H floats) no longer goes through memory;
        # but each step then reads W_ih as well as W_hh, for few rows: at batch 1 the hoisted
        # projection is faster ((1,1000,64,64) inference 1.37 vs 1.66 ms, (1,300,256,256)
        # 5.8 vs 8.3), at batch 2-3 they are even, from 4 the fused one wins (BENCHMARKS.md)
        return self.dtype == np.float32 and batch >= 3

    def _loop_forward(self, K, xw, hbuf, col, init, p, valid, reverse, keep, xs=None):  # type: ignore[no-untyped-def]
        T = xs.shape[0] if xs is not None else xw.shape[0] - 1
        B = hbuf.shape[1]
        H = self.hidden_size
        w_hh_t = _w_hh_t(K, p["weight_hh"])  # (H, 4H)
        if xs is not None:  # float32: the loop projects x_t itself
            w_ih = np.ascontiguousarray(p["weight_ih"])
            wp_ih = _packed(K, w_ih.T)  # (D, 4H)
            bias = np.broadcast_to(np.asarray(self._loop_input_bias(p), self.dtype), (4 * H,))
            pre = np.empty((B, 4 * H), self.dtype)
            # inference hands the loop x (B, T, D) itself (see _forward): the loop reads
            # x_t from it, with the same compiled code as the time-major copy
            batch_first = not xs.flags.c_contiguous and xs.transpose(1, 0, 2).flags.c_contiguous
            xs_arg = xs.transpose(1, 0, 2) if batch_first else xs
            fused = (xs_arg, wp_ih, K._g.pad_bias(bias), pre, not init[0].any(), batch_first)
        else:
            empty = np.empty((0, 0, 0), self.dtype)
            fused = (empty, K._g.EMPTY, K._g.NO_BIAS, np.empty((0, 4 * H), self.dtype), False,
                     False)  # fmt: skip
        # c_t; slot 0 (T reversed): c_init; in inference two slots in turn (slot s % 2)
        slots = T + 1 if keep else 2
        cbuf = ws.empty((slots, B, H), self.dtype)
        cbuf[(T if reverse else 0) % slots] = init[1]
        tcbuf = ws.empty((T if keep else 1, B, H), self.dtype)  # tanh(c_t), for backward
        wp, peep = _packed(K, p["weight_hh"].T), self._peep_rows(p)
        _in_parallel([
            partial(K.lstm_forward, K.BLAS, xw, w_hh_t, wp, hbuf, col, cbuf, tcbuf, reverse,
                    valid, peep, s.start, s.stop, *fused)
            for s in _parts(K, B, self.dtype)
        ])  # fmt: skip
        gates = xw[1:] if reverse else xw[:T]  # (T, B, 4H): step t's gates at [t]
        return [cbuf[(0 if reverse else T) % slots]], (gates, cbuf, tcbuf)

    def _loop_backward(self, K, dout, dcol, dfinal, cache, p, g, hid):  # type: ignore[no-untyped-def]
        hbuf, col, valid, reverse, (gates, cbuf, tcbuf) = cache
        dh, dc = dfinal[0].copy(), dfinal[1].copy()  # (B, H), become the initial state's grads
        da = ws.empty(gates.shape, self.dtype)  # (T, B, 4H)
        peep = self._peep_rows(p)
        w_hh = np.ascontiguousarray(p["weight_hh"])
        wp = _packed(K, w_hh)
        parts = _parts(K, dh.shape[0], self.dtype)
        dbs = [np.zeros(gates.shape[-1], self.dtype) for _ in parts]  # one per thread
        dpeeps = [np.zeros_like(peep) for _ in parts]
        _in_parallel([
            partial(K.lstm_backward, K.BLAS, gates, cbuf, tcbuf, w_hh, wp, dout, dcol, dh, dc, da,
                    db, valid, reverse, peep, dpeep, hid, s.start, s.stop)
            for s, db, dpeep in zip(parts, dbs, dpeeps, strict=True)
        ])  # fmt: skip
        db, dpeep = _total(dbs), _total(dpeeps)
        if self.peepholes:
            g["weight_ci"] += dpeep[0]
            g["weight_cf"] += dpeep[1]
            g["weight_co"] += dpeep[2]
        return da, da, [dh, dc], (db, db)


class GRU(Recurrent):
    r"""Gated recurrent unit (Cho et al. 2014), gates r, z, n.

    r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    reset_after=True:  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   (PyTorch, cuDNN)
    reset_after=False: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)   (Cho et al. 2014)
    h_t = (1 - z) * n + z * h_{t-1}

    Args: as :class:`RNN` (without nonlinearity), plus ``reset_after``. Both forms have the
    same parameters as ``torch.nn.GRU``: ``weight_ih_l{k}`` (3H, D), ``weight_hh_l{k}``
    (3H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (3H,). The textbook form needs two dependent
    matmuls per step instead of one.

    Example:
        >>> gru = GRU(4, 5, reset_after=False, seed=0)
        >>> out, h = gru(np.ones((2, 3, 4), np.float32))
        >>> out.shape, h.shape
        ((2, 3, 5), (1, 2, 5))
    """

    mode = "GRU"
    gates = 3
    gate_slot = 1

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1,
        reset_after: bool = True, **kwargs: Any,
    ) -> None:  # fmt: skip
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def _input_bias(self, p: dict[str, Array]) -> Array | float:
        return p["bias_ih"] if self.bias else 0.0

    def _b_hh(self, p: dict[str, Array]) -> Array:
        if self.bias:
            return p["bias_hh"]
        return np.zeros(self.gates * self.hidden_size, self.dtype)

    def _loop_input_bias(self, p: dict[str, Array]) -> Array | float:
        # reset_after: b_hn stays inside r * (W_hn h + b_hn); textbook: all of b_hh folds
        if not self.bias:
            return 0.0
        if not self.reset_after:
            return p["bias_ih"] + p["bias_hh"]
        b = p["bias_ih"].copy()
        b[: 2 * self.hidden_size] += p["bias_hh"][: 2 * self.hidden_size]
        return b

    def _step_forward(self, xw, prev, p, w_hh_t):  # type: ignore[no-untyped-def]
        h, cache = gru_step_forward(xw, prev[0], w_hh_t, self._b_hh(p), self.reset_after)
        return [h], cache

    def _loop_forward(self, K, xw, hbuf, col, init, p, valid, reverse, keep):  # type: ignore[no-untyped-def]
        T, B = xw.shape[0] - 1, xw.shape[1]
        H = self.hidden_size
        w_hh_t = _w_hh_t(K, p["weight_hh"])  # (H, 3H)
        # reset_after: W_hn h_{t-1} + b_hn; textbook: r * h_{t-1}; kept for backward
        aux = ws.empty((T if keep else 1, B, H), self.dtype)
        gh = np.empty((B, 3 * H), self.dtype)  # scratch
        b_hn = np.ascontiguousarray(self._b_hh(p)[2 * H :])
        wp1, wp2 = self._packed_hh(K, p["weight_hh"])
        _in_parallel([
            partial(K.gru_forward, K.BLAS, xw, w_hh_t, wp1, wp2, b_hn, hbuf, col, aux, gh,
                    reverse, valid, self.reset_after, s.start, s.stop)
            for s in _parts(K, B, self.dtype)
        ])  # fmt: skip
        return [], (xw[1:] if reverse else xw[:T], aux)

    def _loop_backward(self, K, dout, dcol, dfinal, cache, p, g, hid):  # type: ignore[no-untyped-def]
        hbuf, col, valid, reverse, (gates, aux) = cache
        B, H = dfinal[0].shape
        dh = dfinal[0].copy()  # (B, H), becomes dL/dh_init
        dax = ws.empty(gates.shape, self.dtype)  # (T, B, 3H)
        dah = ws.empty(gates.shape, self.dtype) if self.reset_after else dax
        drec = np.empty((B, H), self.dtype)  # scratch
        w_hh = np.ascontiguousarray(p["weight_hh"])
        wp1, wp2 = self._packed_hh(K, w_hh, backward=True)
        parts = _parts(K, B, self.dtype)
        dbxs = [np.zeros(3 * H, self.dtype) for _ in parts]  # one per thread
        dbhs = [np.zeros(3 * H, self.dtype) for _ in parts] if self.reset_after else dbxs
        _in_parallel([
            partial(K.gru_backward, K.BLAS, gates, hbuf, col, aux, w_hh, wp1, wp2, dout, dcol,
                    dh, dax, dah, dbx, dbh, drec, valid, reverse, self.reset_after, hid, s.start,
                    s.stop)
            for s, dbx, dbh in zip(parts, dbxs, dbhs, strict=True)
        ])  # fmt: skip
        dbx = _total(dbxs)
        dbh = _total(dbhs) if self.reset_after else dbx
        return dax, dah, [dh], (dbx, dbh)

    def _packed_hh(self, K: Any, w_hh: Array, backward: bool = False) -> tuple[Array, Array]:
        """W_hh (3H, H) packed for the loops: whole (reset_after), or its r, z rows and its
        n rows apart (textbook); transposed for the forward loop."""
        H = self.hidden_size
        parts = [w_hh] if self.reset_after else [w_hh[: 2 * H], w_hh[2 * H :]]
        packed = [_packed(K, w if backward else w.T) for w in parts]
        return packed[0], packed[1] if len(packed) > 1 else K._g.EMPTY

    def _joins_weight_grads(self, K: Any, dax: Array, dah: Array, D: int) -> bool:
        return False  # the textbook form's W_hn multiplies r * h_{t-1}, not h_{t-1}

    def _weight_hh_grad(self, K: Any, dah2: Array, h_prev2: Array, cache: Any, gw: Array) -> None:
        if self.reset_after:
            super()._weight_hh_grad(K, dah2, h_prev2, cache, gw)
            return
        # textbook form: the n rows of W_hh multiply r * h_{t-1}, not h_{t-1}
        H = self.hidden_size
        rec_in = cache[1].reshape(-1, H)  # (T*B, H)
        _gemm_into(K, gw[: 2 * H], dah2[:, : 2 * H], h_prev2, trans_a=True)
        _gemm_into(K, gw[2 * H :], dah2[:, 2 * H :], rec_in, trans_a=True)
