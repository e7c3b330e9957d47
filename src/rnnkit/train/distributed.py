"""Data-parallel training on MPI: N processes, one copy of the model each, every process a
share of each global batch, the gradients summed over the processes before every update.

``mpiexec -n N rnnkit lm train ...`` (also ``classify``, ``tag``, ``mt``, ``qa train``)
starts N copies of the command. Each finds the others through mpi4py (:func:`get_world`),
which is imported only when an MPI launcher started the process (its environment says so:
``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``, ``MV2_COMM_WORLD_SIZE``, ``PMIX_RANK``), so a plain
run never loads MPI; a launched run without mpi4py stops with one line saying how to get it.

Why a run on N processes is the run on one process:

- ``--batch-size`` is the global batch B. Process r takes the contiguous rows
  :meth:`World.share` gives it (B // N of them, one more for the first B % N processes).
- Every process builds the model from the same seed and then copies rank 0's weights
  (:meth:`World.bcast_arrays`), so they start equal even where initialisation is not
  reproducible across machines.
- After backward, process r holds the gradient of the mean of its own n_r loss terms.
  :class:`GradientSync` multiplies it by n_r / n (n: the global batch's terms), copies every
  gradient into one contiguous buffer per dtype and sums the buffers over the processes with
  one ``Allreduce`` each. What comes back is the gradient of the loss averaged over the
  global batch, the same on every process, before the L2 penalty, clipping and the optimizer
  step; those then run identically everywhere, so the weights never need a second broadcast.
  The loss (for the logs) and a stop flag (Ctrl-C on any process) travel in the same buffer,
  so every process stops after the same step.
- Dropout: see :class:`ShardedRandom` (the language model: the 1-process run's masks, to
  the bit) and :func:`rank_stream` (the task models: one stream per process).

Only rank 0 writes: checkpoints, ``metrics.jsonl``/``.csv``, TensorBoard events, plots,
progress bars and messages. What the checkpoint needs from the others (their carried
hidden states, their random streams) is gathered to it first; what rank 0 reads (a
checkpoint to resume, validation figures) is broadcast, without pickle: arrays as MPI
buffers, everything else as JSON.

Faults, so that no process is left waiting for one that will never come:

- an exception in a process's part of a step (batch, forward, backward) is caught; a flag in
  the step's ``Allreduce`` tells every process, the messages are gathered, and every process
  raises a :class:`CollectiveError`: rank 0 prints the first failing process's line
  (``rank 1 of 2 failed in step 8: ...``), the others stay silent, all exit with status 1;
- so do errors of what rank 0 does alone (:meth:`World.on_root`: reading the checkpoint,
  validating) and a diverged loss (the same on every process);
- any other exception ends every process (``MPI_Abort``): the command line's one-line error
  through :func:`fail` (rank 0 at once; another rank after a grace period, with its rank in
  the line), an uncaught exception with its traceback (the hook :func:`get_world`
  installs);
- a process that dies (killed, out of memory) is the launcher's to report: mpiexec ends the
  others and says which process died.

Checkpoints are replaced atomically (:mod:`rnnkit.train.checkpoint`), so the last complete
one survives any of these. ``RNNKIT_FAULT=RANK:STEP:MODE`` makes a process fail on purpose
(:func:`inject_fault`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from rnnkit.io import RnnkitError
from rnnkit.train.checkpoint import Checkpoint, load_checkpoint

__all__ = [
    "FAULT_ENV",
    "GradientSync",
    "CollectiveError",
    "ShardedRandom",
    "World",
    "active_world",
    "fail",
    "failure",
    "get_world",
    "inject_fault",
    "launched_size",
    "rank_stream",
    "settle",
]

Array = np.ndarray
# the launchers' variables: MPICH/Intel MPI (Hydra), Open MPI, MVAPICH
SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")
FAULT_ENV = "RNNKIT_FAULT"
GRACE_S = 2.0  # how long a rank other than 0 waits before reporting its own error
USER_ERRORS = (RnnkitError, ValueError, OSError)  # one line, no traceback (as the CLI prints them)
MPI_EXTRA = "pip install 'rnnkit[mpi]' (mpi4py and MPICH), or mpi4py built for your MPI"


class CollectiveError(RnnkitError):
    """An error that every process of a run raises at the same point (a bad checkpoint read
    by rank 0, a failed step, a diverged loss, no mpi4py), so that no process is left
    waiting for another: rank 0 reports it (``report``), the others stay silent
    (:func:`settle`)."""

    def __init__(self, message: str, report: bool = True) -> None:
        super().__init__(message)
        self.report = report


def launched_size() -> int | None:
    """The process count an MPI launcher announced in the environment; -1 when a launcher
    started this process without saying how many (PMIx); None when none did.

    >>> launched_size() is None or launched_size() >= 1
    True
    """
    for var in SIZE_VARS:
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                raise RnnkitError(f"{var}={os.environ[var]!r}: not a process count") from None
    return -1 if "PMIX_RANK" in os.environ else None


def _launched_rank() -> int:
    for var in RANK_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


# --- the world ---------------------------------------------------------------------------------


class World:
    """The processes of one run: ``rank``, ``size`` and the collectives the training loops
    use. ``World()`` is the world of a plain run (one process, every method a no-op or the
    identity); :func:`get_world` gives the MPI one.

    >>> w = World()
    >>> w.rank, w.size, w.root, w.share(5), w.bcast_json({"a": 1}), w.on_root(lambda: 2)
    (0, 1, True, slice(0, 5, None), {'a': 1}, 2)
    """

    def __init__(self, comm: Any = None) -> None:
        self.comm = comm
        self.rank = 0 if comm is None else int(comm.Get_rank())
        self.size = 1 if comm is None else int(comm.Get_size())
        self.mpi: Any = None
        if comm is not None:
            from mpi4py import MPI

            self.mpi = MPI

    @property
    def root(self) -> bool:
        """Whether this process is rank 0 (the one that writes)."""
        return self.rank == 0

    def share(self, n: int, rank: int | None = None) -> slice:
        """The rows of ``n`` that process ``rank`` (default: this one) takes: contiguous,
        ``n // size`` each and one more for the first ``n % size`` processes.

        >>> w = World(); w.size = 3
        >>> [w.share(8, r) for r in range(3)]
        [slice(0, 3, None), slice(3, 6, None), slice(6, 8, None)]
        """
        r = self.rank if rank is None else rank
        base, extra = divmod(n, self.size)
        lo = r * base + min(r, extra)
        return slice(lo, lo + base + (1 if r < extra else 0))

    def echo(self, echo: Callable[[str], None]) -> Callable[[str], None]:
        """``echo`` on rank 0, a function printing nothing on the others."""
        return echo if self.root else _silent

    # --- collectives (every process must call them, in the same order) -----------------------

    def _wait(self, request: Any) -> None:
        """Wait for a nonblocking collective without spinning a core: the others may be
        computing (rank 0 validating) on a machine with one core per process."""
        while not request.Test():
            time.sleep(0.001)

    def bcast_json(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (JSON-able) on every process."""
        if self.size == 1:
            return obj
        data = json.dumps(obj).encode() if self.root else b""
        n = np.array([len(data)], np.int64)
        self._wait(self.comm.Ibcast(n, root=0))
        buf = np.frombuffer(data, np.uint8).copy() if self.root else np.empty(int(n[0]), np.uint8)
        self._wait(self.comm.Ibcast(buf, root=0))
        return json.loads(buf.tobytes().decode())

    def on_root(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` run by rank 0 alone, its JSON-able result returned on every process. Its
        error (:data:`USER_ERRORS`) is a :class:`CollectiveError` on every process; any other
        exception (a bug) is re-raised on rank 0 and ends the run there."""
        if self.size == 1:
            return fn()
        if not self.root:
            got = self.bcast_json(None)
            if "error" in got and got["collective"]:
                raise CollectiveError(got["error"], report=False)
            if "error" in got:  # rank 0 ends the run with its traceback
                raise RnnkitError(got["error"])
            return got["value"]
        try:
            value = fn()
        except USER_ERRORS as e:
            self.bcast_json({"error": str(e), "collective": True})
            raise CollectiveError(str(e)) from e
        except Exception as e:
            self.bcast_json({"error": f"rank 0 failed: {type(e).__name__}: {e}",
                             "collective": False})  # fmt: skip
            raise
        return self.bcast_json({"value": value})["value"]

    def check_step(self, failed: float, error: str | None, step: int) -> None:
        """After a step's ``Allreduce`` in which ``failed`` counted the processes whose part
        of the step raised (``error``: this one's, from :func:`failure`): nothing if none
        did, else a :class:`CollectiveError` on every process, with the message of the
        first process that failed (named when it is not rank 0)."""
        if not failed:
            return
        errors = self.gather_json(error)
        if not self.root:
            raise CollectiveError(error or "another process failed", report=False)
        assert errors is not None
        r = next(i for i, e in enumerate(errors) if e is not None)
        who = "" if r == 0 else f"rank {r} of {self.size} failed in step {step}: "
        raise CollectiveError(who + errors[r])

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.size > 1:
            self._wait(self.comm.Ibarrier())

    def bcast_arrays(self, arrays: Mapping[str, Array]) -> None:
        """Copy rank 0's arrays into every process's arrays of the same names, in place."""
        if self.size == 1:
            return
        for name in sorted(arrays):
            a = arrays[name]
            buf = a if a.flags.c_contiguous else np.ascontiguousarray(a)
            self._wait(self.comm.Ibcast(buf, root=0))
            if buf is not a:
                np.copyto(a, buf)

    def gather_rows(self, a: Array, n: int, axis: int) -> Array | None:
        """On rank 0 the whole array whose rows ``share(n)`` along ``axis`` each process holds
        (``a``); None on the others."""
        if self.size == 1:
            return a
        part = np.ascontiguousarray(np.moveaxis(a, axis, 0))  # (rows, ...)
        rest = int(np.prod(part.shape[1:]))
        counts = [(self.share(n, r).stop - self.share(n, r).start) * rest
                  for r in range(self.size)]  # fmt: skip
        whole = np.empty((n, *part.shape[1:]), part.dtype) if self.root else None
        recv = [whole, counts] if self.root else None
        self.comm.Gatherv(part, recv, root=0)
        return None if whole is None else np.moveaxis(whole, 0, axis)

    def gather_json(self, obj: Any) -> list[Any] | None:
        """On rank 0 the list of every process's ``obj`` (JSON-able), in rank order; None on
        the others."""
        if self.size == 1:
            return [obj]
        data = np.frombuffer(json.dumps(obj).encode(), np.uint8).copy()
        sizes = np.zeros(self.size, np.int64) if self.root else None
        self.comm.Gather(np.array([len(data)], np.int64), sizes, root=0)
        whole = np.empty(int(sizes.sum()), np.uint8) if self.root else None
        self.comm.Gatherv(data, [whole, sizes.tolist()] if self.root else None, root=0)
        if not self.root:
            return None
        ends = np.cumsum(sizes)
        return [
            json.loads(whole[e - n : e].tobytes().decode())
            for n, e in zip(sizes, ends, strict=True)
        ]

    def load_checkpoint(self, path: str | Path, kind: str) -> Checkpoint:
        """:func:`~rnnkit.train.checkpoint.load_checkpoint` on rank 0, its result broadcast
        (a run folder need not be shared between machines, and every process resumes from
        the same bytes); a bad checkpoint is rank 0's error on every process."""
        if self.size == 1:
            return load_checkpoint(path, kind=kind)
        ck = None

        def meta() -> dict[str, Any]:
            nonlocal ck
            ck = load_checkpoint(path, kind=kind)
            opt = ck.optimizer
            return {
                "path": str(ck.path), "kind": ck.kind, "config": ck.config, "vocab": ck.vocab,
                "trainer": ck.trainer,
                "optimizer": None if opt is None else
                {k: v for k, v in opt.items() if not isinstance(v, np.ndarray)},
                "arrays": [[group, name, a.dtype.str, list(a.shape)]
                           for group, d in _checkpoint_arrays(ck) for name, a in d.items()],
            }  # fmt: skip

        m = self.on_root(meta)
        if ck is None:
            opt = None if m["optimizer"] is None else dict(m["optimizer"])
            ck = Checkpoint(path=Path(m["path"]), kind=m["kind"], params={}, config=m["config"],
                            vocab=m["vocab"], trainer=m["trainer"], optimizer=opt)  # fmt: skip
            for group, name, dtype, shape in m["arrays"]:
                target = {"params": ck.params, "arrays": ck.arrays, "optimizer": ck.optimizer}
                target[group][name] = np.empty(shape, np.dtype(dtype))  # type: ignore[index]
        for _, d in _checkpoint_arrays(ck):
            self.bcast_arrays(d)
        return ck

    def abort(self, code: int) -> NoReturn:
        """End every process of the run at once (``MPI_Abort``) with exit status ``code``."""
        sys.stdout.flush()
        sys.stderr.flush()
        if self.comm is not None:
            self.comm.Abort(code)
        os._exit(code)  # pragma: no cover - Abort does not return


def _silent(line: str) -> None:
    return None


def _checkpoint_arrays(ck: Checkpoint) -> list[tuple[str, dict[str, Array]]]:
    """The arrays of a checkpoint by group, each group's in name order."""
    groups = [("params", ck.params), ("arrays", ck.arrays)]
    if ck.optimizer is not None:
        groups.append(("optimizer", {k: v for k, v in ck.optimizer.items()
                                     if isinstance(v, np.ndarray)}))  # fmt: skip
    return [(g, {k: d[k] for k in sorted(d)}) for g, d in groups]


_WORLD: World | None = None


def active_world() -> World | None:
    """The world :func:`get_world` made, if it has been called in this process."""
    return _WORLD


def get_world() -> World:
    """This process's world: the MPI one when an MPI launcher started two or more processes
    (mpi4py imported here, and only then), else the one-process :class:`World`. The first
    call on a launched process also makes an uncaught exception end every process."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    n = launched_size()
    if n is None or n == 1:
        _WORLD = World()
        return _WORLD
    try:
        from mpi4py import MPI
    except ImportError:
        where = next((f"{v}={os.environ[v]}" for v in (*SIZE_VARS, "PMIX_RANK")
                      if v in os.environ), "")  # fmt: skip
        raise CollectiveError(
            f"started by an MPI launcher ({where}) but mpi4py is not installed: {MPI_EXTRA}",
            report=_launched_rank() == 0,
        ) from None
    comm = MPI.COMM_WORLD
    _WORLD = World(comm) if comm.Get_size() > 1 else World()
    if _WORLD.size > 1:
        _abort_on_uncaught(_WORLD)
    return _WORLD


def _abort_on_uncaught(world: World) -> None:
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        previous(kind, value, tb)
        print(f"rnnkit: rank {world.rank} of {world.size} failed; stopping every process",
              file=sys.stderr)  # fmt: skip
        world.abort(1)

    sys.excepthook = hook


def failure(e: Exception) -> str:
    """The one line for a process's failed step: a user error's message; for anything else
    (a bug) its type and message, with the traceback printed on this process's stderr."""
    if isinstance(e, USER_ERRORS):
        return str(e)
    traceback.print_exc()
    return f"{type(e).__name__}: {e}"


def settle(e: CollectiveError) -> None:
    """Before a process exits on a :class:`CollectiveError`: wait until every process has
    got there, so that rank 0 has printed the error before any exit can make the launcher
    end the others."""
    world = active_world()
    if world is not None and world.size > 1:
        world.barrier()
    elif not e.report:  # no MPI (mpi4py missing): give rank 0 time to print
        time.sleep(GRACE_S)


def fail(world: World, line: str, code: int) -> NoReturn:
    """Print ``line`` (``"rnnkit: error: ..."``) and end every process with status ``code``.

    Rank 0 prints at once. Another rank first waits :data:`GRACE_S` seconds: an error that
    every process meets (a bad option, a missing file) is then reported once, by rank 0,
    whose abort ends the wait; an error of its own is printed with its rank:
    ``rnnkit (rank 1 of 2): error: ...``.
    """
    if not world.root:
        time.sleep(GRACE_S)
        if line.startswith("rnnkit:"):
            line = f"rnnkit (rank {world.rank} of {world.size}):" + line[len("rnnkit:") :]
    print(line, file=sys.stderr, flush=True)
    world.abort(code)


# --- gradients ---------------------------------------------------------------------------------


class GradientSync:
    """Sum every process's gradients, weighted, in one contiguous buffer per dtype.

    Args:
        world: the processes.
        grads: the model's gradient arrays (updated in place by each call).
        scalars: how many numbers travel with the gradients (summed too).

    ``sync(weight, values)``: every gradient times ``weight`` (this process's share of the
    global batch's loss terms, n_r / n) is copied into the buffer, followed by ``values``;
    one ``Allreduce`` (sum) per buffer; the sums are copied back into ``grads`` and the
    summed ``values`` returned. :meth:`take_seconds` tells the time spent in ``Allreduce``
    (waiting for the slowest process included) and in the two copies.

    >>> g = {"w": np.array([2.0, 4.0])}
    >>> GradientSync(World(), g, scalars=1)(0.5, [3.0]), g["w"]
    ([3.0], array([1., 2.]))
    """

    def __init__(self, world: World, grads: Mapping[str, Array], scalars: int = 0) -> None:
        self.world = world
        self.grads = grads
        self.scalars = scalars
        self.seconds = {"allreduce": 0.0, "gradient_copy": 0.0}
        by_dtype: dict[np.dtype[Any], list[str]] = {}
        for name, g in grads.items():
            by_dtype.setdefault(g.dtype, []).append(name)
        self.buckets: list[tuple[Array, list[tuple[str, int, int]]]] = []
        for i, (dtype, names) in enumerate(by_dtype.items()):
            layout, at = [], 0
            for name in names:
                layout.append((name, at, at + grads[name].size))
                at += grads[name].size
            extra = scalars if i == 0 else 0
            self.buckets.append((np.zeros(at + extra, dtype), layout))
        if not self.buckets and scalars:
            self.buckets.append((np.zeros(scalars), []))

    @property
    def nbytes(self) -> int:
        """Bytes summed per step (all buffers)."""
        return sum(buf.nbytes for buf, _ in self.buckets)

    def __call__(self, weight: float, values: Sequence[float] = ()) -> list[float]:
        if len(values) != self.scalars:
            raise ValueError(f"expected {self.scalars} values, got {len(values)}")
        t0 = time.perf_counter()
        for buf, layout in self.buckets:
            for name, lo, hi in layout:
                g = self.grads[name]
                np.multiply(g, weight, out=buf[lo:hi].reshape(g.shape))
        if self.scalars:
            self.buckets[0][0][-self.scalars :] = values
        t1 = time.perf_counter()
        if self.world.size > 1:
            mpi = self.world.mpi
            for buf, _ in self.buckets:
                self.world.comm.Allreduce(mpi.IN_PLACE, buf, op=mpi.SUM)
        t2 = time.perf_counter()
        for buf, layout in self.buckets:
            for name, lo, hi in layout:
                g = self.grads[name]
                np.copyto(g, buf[lo:hi].reshape(g.shape))
        self.seconds["allreduce"] += t2 - t1
        self.seconds["gradient_copy"] += (t1 - t0) + (time.perf_counter() - t2)
        return [float(v) for v in self.buckets[0][0][-self.scalars :]] if self.scalars else []

    def take_seconds(self) -> dict[str, float]:
        """Seconds spent since the last call: ``allreduce`` and ``gradient_copy`` (into the
        buffer and back)."""
        out = dict(self.seconds)
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        return out


# --- random numbers ----------------------------------------------------------------------------


class ShardedRandom:
    """A process's view of the random stream of a one-process run whose batch is split.

    ``random(size)`` with this process's rows along ``axis`` draws the whole batch's numbers
    (``total`` rows, as the one-process run does, in the same order) and returns this
    process's ``rows``: every process advances the same stream identically, the masks are
    those of the one-process run, and the stream's state is the same on every process (one
    state to checkpoint, valid for any number of processes). The extra cost is drawing the
    whole batch's numbers on every process. Only ``random`` is provided: any other draw
    during training would not be sharded, so it fails instead of diverging.

    >>> base = np.random.default_rng(0)
    >>> whole = np.random.default_rng(0).random((4, 3))
    >>> np.array_equal(ShardedRandom(base, 0, slice(2, 4), 4).random((2, 3)), whole[2:])
    True
    """

    def __init__(self, rng: np.random.Generator, axis: int, rows: slice, total: int) -> None:
        self.rng, self.axis, self.rows, self.total = rng, axis, rows, total

    @property
    def bit_generator(self) -> Any:
        return self.rng.bit_generator

    def random(self, size: Sequence[int], dtype: Any = np.float64) -> Array:
        shape = list(size)
        if shape[self.axis] != self.rows.stop - self.rows.start:
            raise ValueError(f"ShardedRandom: expected {self.rows.stop - self.rows.start} rows "
                             f"on axis {self.axis}, got shape {tuple(size)}")  # fmt: skip
        shape[self.axis] = self.total
        whole = self.rng.random(tuple(shape), dtype)
        return whole[(slice(None),) * self.axis + (self.rows,)]


def rank_stream(seed: int, rank: int) -> np.random.Generator:
    """The random stream of process ``rank`` > 0 in the task loops (rank 0 keeps the model's
    own, the one a one-process run uses). Their masks cannot be the one-process run's: a
    process pads its share of a batch to its own longest sentence, so the shapes drawn
    differ; the run is the same in distribution, not to the bit.

    >>> float(rank_stream(0, 1).random()) != float(rank_stream(0, 2).random())
    True
    """
    return np.random.default_rng([seed, 3, rank])


# --- fault injection ---------------------------------------------------------------------------


def inject_fault(world: World, step: int) -> None:
    """For tests of the fault handling: ``RNNKIT_FAULT=RANK:STEP:MODE`` makes process RANK
    fail in step STEP (counted from 1, before its update; the loops call this as a step
    begins): ``error`` raises an RnnkitError (a user error: one line), ``raise`` a
    RuntimeError (a bug: a traceback too), ``kill`` sends itself SIGKILL (the process dies)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    parts = spec.split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or \
            parts[2] not in ("error", "raise", "kill"):  # fmt: skip
        raise RnnkitError(f"{FAULT_ENV}={spec!r}: expected RANK:STEP:error|raise|kill")
    if int(parts[0]) != world.rank or int(parts[1]) != step:
        return
    what = f"fault injected by {FAULT_ENV} in step {step}"
    if parts[2] == "kill":
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if parts[2] == "raise":
        raise RuntimeError(what)
    raise RnnkitError(what)
