"""Checkpoint directories: written atomically, validated on load, no pickle.

A checkpoint is a directory::

    DIR/model.safetensors       the model's parameters, PyTorch-style names
    DIR/optimizer.safetensors   optimizer buffers (momentum, Adam moments...)
    DIR/optimizer.json          optimizer scalars (type, lr, step, hyperparameters)
    DIR/state.safetensors       other arrays of the training state (e.g. the carried hidden state)
    DIR/checkpoint.json         kind, config, vocabulary, trainer state (epoch, step, data
                                position, RNG states), and the size + sha256 of every file above

``model.safetensors`` loads straight into PyTorch (``safetensors.torch.load_file``).

Atomic replacement: everything is written into ``DIR.tmp-XXXX`` beside ``DIR`` (checkpoint.json
last), each file flushed and fsynced, the folder fsynced, then swapped in by two renames,
``DIR -> DIR.old-XXXX`` and ``DIR.tmp-XXXX -> DIR`` (the parent folder fsynced after them),
during which Ctrl-C and SIGTERM are held back; the backup is deleted afterwards. An
interruption at any point leaves the old or the new checkpoint complete: at ``DIR``, or, after
a hard kill between the two renames, in ``DIR.old-XXXX`` (the previous one, complete) beside
the complete ``DIR.tmp-XXXX`` (the new one). :func:`load_checkpoint` of a missing ``DIR`` loads
the newest complete one of those, and the next save puts it back in place. A save that fails
(disk full, read-only folder, a file in the way) is one :class:`RnnkitError` line and leaves
the previous checkpoint as it was.

Loading checks every file against checkpoint.json (missing, truncated, corrupted), the model
kind, and, when the parameters are copied into a model, every tensor's name and shape; each
failure is one :class:`RnnkitError` line naming the file. checkpoint.json names only the
four files above (no path can point outside ``DIR``), and a file whose size differs from the
recorded one is refused before it is read. Nothing is unpickled: arrays are safetensors,
the rest JSON.

Example:

>>> import tempfile, numpy as np
>>> d = tempfile.mkdtemp()
>>> params = {"weight_ih_l0": np.ones((8, 3)), "bias_ih_l0": np.zeros(8)}
>>> save_checkpoint(d + "/ckpt", kind="lm", params=params, config={"hidden": 2},
...                 trainer={"epoch": 3, "rng": rng_state(np.random.default_rng(0))})
PosixPath('.../ckpt')
>>> ck = load_checkpoint(d + "/ckpt", kind="lm")
>>> ck.config, ck.trainer["epoch"], ck.params["weight_ih_l0"].shape
({'hidden': 2}, 3, (8, 3))
>>> load_checkpoint(d + "/ckpt", kind="classifier")
Traceback (most recent call last):
rnnkit.io.RnnkitError: .../ckpt/checkpoint.json: this checkpoint holds a 'lm' model, \
expected 'classifier'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy

from rnnkit.io import RnnkitError, read_text

__all__ = [
    "DEFAULT_INTERVAL",
    "Checkpoint",
    "CheckpointSchedule",
    "checkpoint_exists",
    "parse_interval",
    "load_checkpoint",
    "rng_from_state",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

FORMAT = "rnnkit-checkpoint"
VERSION = 1
META_FILE = "checkpoint.json"
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
OPTIM_JSON = "optimizer.json"
STATE_FILE = "state.safetensors"
DATA_FILES = (MODEL_FILE, OPTIM_FILE, OPTIM_JSON, STATE_FILE)


# --- RNG state as JSON ----------------------------------------------------------------------


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """The state of a NumPy Generator as a JSON-able dict (``bit_generator.state``).

    Arrays inside some bit generators' states (MT19937, Philox, SFC64) become
    ``{"ndarray": [...], "dtype": ...}``; Python ints of any size are valid JSON.

    >>> rng = np.random.default_rng(7); _ = rng.random(3)
    >>> state = json.loads(json.dumps(rng_state(rng)))
    >>> float(rng.random()) == float(rng_from_state(state).random())
    True
    """
    return _to_jsonable(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    """Restore a state from :func:`rng_state` into an existing Generator of the same kind."""
    kind = state.get("bit_generator")
    if kind != type(rng.bit_generator).__name__:
        raise RnnkitError(
            f"RNG state is for {kind!r}, the generator is {type(rng.bit_generator).__name__}"
        )
    rng.bit_generator.state = _from_jsonable(state)


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """A new Generator continuing exactly where the one saved by :func:`rng_state` was."""
    kind = state.get("bit_generator")
    bit_generator_cls = getattr(np.random, str(kind), None)
    known = isinstance(bit_generator_cls, type) and issubclass(
        bit_generator_cls, np.random.BitGenerator
    )
    if not known:
        raise RnnkitError(f"unknown RNG kind {kind!r} in saved state")
    rng = np.random.Generator(bit_generator_cls())
    set_rng_state(rng, state)
    return rng


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"ndarray": obj.tolist(), "dtype": obj.dtype.str}
    if isinstance(obj, Mapping):
        return {k: _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _from_jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        if set(obj) == {"ndarray", "dtype"}:
            return np.array(obj["ndarray"], dtype=np.dtype(obj["dtype"]))
        return {k: _from_jsonable(v) for k, v in obj.items()}
    return obj


# --- when to save ---------------------------------------------------------------------------

DEFAULT_INTERVAL = "10m"  # --checkpoint-every's default: a hard kill loses minutes, not an epoch
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(spec: int | str) -> tuple[int, float]:
    """``--checkpoint-every`` as ``(steps, seconds)``, one of them 0: an integer is a number
    of steps, a number with ``s``, ``m`` or ``h`` a time; 0 saves at the end of epochs only.

    >>> parse_interval(200), parse_interval("30s"), parse_interval("1.5m"), parse_interval("0")
    ((200, 0.0), (0, 30.0), (0, 90.0), (0, 0.0))
    >>> parse_interval("10 minutes")
    Traceback (most recent call last):
    rnnkit.io.RnnkitError: --checkpoint-every: expected a number of steps or a time such as \
30s, 10m or 1h, got '10 minutes'
    """
    text = str(spec).strip().lower()
    bad = RnnkitError(f"--checkpoint-every: expected a number of steps or a time such as 30s, "
                      f"10m or 1h, got {spec!r}")  # fmt: skip
    if isinstance(spec, bool):
        raise bad
    if text.isdigit():
        return int(text), 0.0
    if len(text) < 2 or text[-1] not in _UNITS:
        raise bad
    try:
        seconds = float(text[:-1]) * _UNITS[text[-1]]
    except ValueError:
        raise bad from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise bad
    return 0, seconds


class CheckpointSchedule:
    """When a training loop saves between epochs: every ``steps`` steps or every ``seconds``
    of wall time (:func:`parse_interval`); the loop calls :meth:`due` after each step and
    :meth:`saved` after each save (end-of-epoch ones included: they restart the clock).

    >>> s = CheckpointSchedule(3)
    >>> [s.due(step) for step in range(1, 7)]
    [False, False, True, False, False, True]
    """

    def __init__(self, spec: int | str) -> None:
        self.steps, self.seconds = parse_interval(spec)
        self.last = time.monotonic()

    def due(self, step: int, share: Callable[[bool], bool] | None = None) -> bool:
        """Whether to save after ``step``. ``share`` makes one process's answer everyone's
        (under MPI the clocks differ and a save is a collective: rank 0 decides)."""
        if self.steps:
            return step % self.steps == 0
        if not self.seconds:
            return False
        now = time.monotonic() - self.last >= self.seconds
        return bool(share(now)) if share is not None else now

    def saved(self) -> None:
        self.last = time.monotonic()


# --- saving ---------------------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    kind: str,
    params: Mapping[str, np.ndarray],
    config: Mapping[str, Any] | None = None,
    vocab: Mapping[str, Any] | None = None,
    trainer: Mapping[str, Any] | None = None,
    optimizer: Mapping[str, Any] | None = None,
    arrays: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically, replacing any previous one.

    Args:
        path: the checkpoint directory. An existing directory is replaced only if it is an
            rnnkit checkpoint (or empty), so an output folder is never wiped by mistake.
        kind: the model kind (``"lm"``, ``"classifier"``...), checked on load.
        params: name -> array, saved under these (PyTorch-style) names.
        config, vocab, trainer: JSON-able dicts (the model config, ``Vocab.to_json()``, and
            the training position: epoch, step, ``TBPTTStream.state_dict()``,
            :func:`rng_state` of each Generator, schedule state...).
        optimizer: ``Optimizer.state_dict()``: arrays go to optimizer.safetensors, the rest
            to optimizer.json.
        arrays: other arrays to keep (e.g. the hidden state carried between windows).

    Returns:
        The checkpoint directory.
    """
    target = Path(path)
    _check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _save_error(target, e) from None
    _remove_leftovers(target)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": dict(config or {}),
        "vocab": dict(vocab) if vocab is not None else None,
        "trainer": dict(trainer or {}),
    }
    _dumps(meta, "checkpoint metadata")  # fail early, before writing anything, if not JSON-able
    opt_arrays = {k: v for k, v in (optimizer or {}).items() if isinstance(v, np.ndarray)}
    opt_scalars = {k: v for k, v in (optimizer or {}).items() if not isinstance(v, np.ndarray)}
    opt_text = _dumps(opt_scalars, "optimizer state") if optimizer is not None else None

    tmp = _unused_name(target, "tmp")
    try:
        tmp.mkdir()
    except OSError as e:
        raise _save_error(target, e) from None
    try:
        files: dict[str, dict[str, Any]] = {}
        files[MODEL_FILE] = _write(tmp / MODEL_FILE, _safetensors_bytes(params, kind))
        if optimizer is not None:
            files[OPTIM_FILE] = _write(tmp / OPTIM_FILE, _safetensors_bytes(opt_arrays, kind))
            files[OPTIM_JSON] = _write(tmp / OPTIM_JSON, opt_text.encode())
        if arrays:
            files[STATE_FILE] = _write(tmp / STATE_FILE, _safetensors_bytes(arrays, kind))
        meta["files"] = files
        meta["sha256"] = _meta_digest(meta)
        _write(tmp / META_FILE, _dumps(meta, "checkpoint metadata").encode())  # written last
        _fsync_dir(tmp)
        _swap_into_place(tmp, target)
    except OSError as e:  # disk full, file too large, read-only, permissions...
        shutil.rmtree(tmp, ignore_errors=True)
        raise _save_error(target, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _save_error(target: Path, e: OSError) -> RnnkitError:
    """The one line for a save that failed: what the system said, and that the previous
    checkpoint (if any) is untouched."""
    why = e.strerror or str(e)
    kept = "the previous checkpoint is unchanged" if (target / META_FILE).exists() else (
        "no checkpoint was written")  # fmt: skip
    return RnnkitError(f"{target}: cannot save the checkpoint ({why}); {kept}")


def _dumps(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} is not JSON-able: {e}") from None


def _meta_digest(meta: Mapping[str, Any]) -> str:
    """sha256 of checkpoint.json's content without its own ``sha256`` (keys sorted, compact),
    so that a flipped byte in checkpoint.json itself is noticed too."""
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    # allow_nan: a loaded file may hold 1e999 (inf), which then just fails the comparison
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _safetensors_bytes(tensors: Mapping[str, np.ndarray], kind: str) -> bytes:
    contiguous = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    return safetensors.numpy.save(contiguous, metadata={"rnnkit_kind": kind})


def _write(path: Path, data: bytes) -> dict[str, Any]:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _unused_name(target: Path, tag: str) -> Path:
    while True:
        candidate = target.with_name(f"{target.name}.{tag}-{secrets.token_hex(4)}")
        if not candidate.exists():
            return candidate


def _check_replaceable(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise RnnkitError(f"{target}: exists and is not a checkpoint directory")
    if target.is_dir() and not (target / META_FILE).exists() and any(target.iterdir()):
        raise RnnkitError(
            f"{target}: exists and is not an rnnkit checkpoint; refusing to replace it"
        )


def _leftovers(target: Path, tag: str) -> list[Path]:
    if not target.parent.is_dir():
        return []
    prefix = f"{target.name}.{tag}-"
    return sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.is_dir())


def _remove_leftovers(target: Path) -> None:
    """Delete debris of interrupted saves: temporary dirs, and backups once DIR is complete.
    Without DIR (a hard kill between the two renames) the newest complete one is renamed
    back into place first, so that a failure of this save cannot lose it."""
    if not target.exists():
        found = _complete_leftover(target)
        if found is not None:
            os.rename(found, target)
            _fsync_dir(target.parent)
    stale = _leftovers(target, "tmp")
    if (target / META_FILE).exists():
        stale += _leftovers(target, "old")
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)


def _complete_leftover(target: Path) -> Path | None:
    """After a hard kill between the two renames of a save: the new checkpoint (a temporary
    folder that validates) if complete, else the previous one (a backup that validates)."""
    for tag in ("tmp", "old"):
        for p in reversed(_leftovers(target, tag)):
            try:
                load_checkpoint(p)
            except RnnkitError:
                continue
            return p
    return None


def checkpoint_exists(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a checkpoint, or an interrupted save left a complete one beside
    it (which :func:`load_checkpoint` of ``path`` would load)."""
    target = Path(path)
    return target.exists() or _complete_leftover(target) is not None


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back for the duration of the block; deliver them afterwards
    to the handlers that were in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda signum, frame: received.append(signum))
        for signum in HELD_SIGNALS
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL and signum == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)  # the default action: end the process


def _swap_into_place(tmp: Path, target: Path) -> None:
    backup = None
    with _signals_held():
        if target.exists():
            backup = _unused_name(target, "old")
            os.rename(target, backup)
            _fsync_dir(target.parent)
        try:
            os.rename(tmp, target)
        except OSError:
            if backup is not None:  # put the previous checkpoint back
                os.rename(backup, target)
            raise
        _fsync_dir(target.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


# --- loading --------------------------------------------------------------------------------


@dataclass
class Checkpoint:
    """A loaded, validated checkpoint (see :func:`load_checkpoint`)."""

    path: Path
    kind: str
    params: dict[str, np.ndarray]
    config: dict[str, Any]
    vocab: dict[str, Any] | None
    trainer: dict[str, Any]
    optimizer: dict[str, Any] | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def copy_params_into(self, params: Mapping[str, np.ndarray]) -> None:
        """Copy the saved weights into a model's arrays in place, checking names and shapes."""
        where = self.path / MODEL_FILE
        for name in params:
            if name not in self.params:
                raise RnnkitError(f"{where}: lacks tensor {name!r} that the model needs")
        for name, saved in self.params.items():
            if name not in params:
                raise RnnkitError(f"{where}: has tensor {name!r} that the model does not")
            if saved.shape != params[name].shape:
                raise RnnkitError(
                    f"{where}: tensor {name!r} has shape {saved.shape}, "
                    f"the model expects {params[name].shape}"
                )
        for name, saved in self.params.items():
            np.copyto(params[name], saved, casting="same_kind")

    def load_optimizer_into(self, optimizer: Any) -> None:
        """``optimizer.load_state_dict`` with errors that name the optimizer files."""
        if self.optimizer is None:
            raise RnnkitError(f"{self.path}: checkpoint has no optimizer state")
        try:
            optimizer.load_state_dict(self.optimizer)
        except RnnkitError as e:
            raise RnnkitError(f"{self.path / OPTIM_FILE}: {e}") from None


def load_checkpoint(path: str | os.PathLike[str], kind: str | None = None) -> Checkpoint:
    """Read and validate a checkpoint directory written by :func:`save_checkpoint`.

    Args:
        path: the checkpoint directory.
        kind: the model kind expected; a checkpoint of another kind is refused.

    Raises:
        RnnkitError: one line naming the file at fault (missing, truncated, corrupted,
            another kind, an unknown format version).
    """
    root = Path(path)
    if not root.exists():
        found = _complete_leftover(root)
        if found is not None:  # a hard kill between the two renames of a save
            return load_checkpoint(found, kind)
    if not root.is_dir():
        what = "not a directory" if root.exists() else "no such checkpoint directory"
        raise RnnkitError(f"{root}: {what}")
    meta_path = root / META_FILE
    if not meta_path.exists():
        raise RnnkitError(f"{meta_path}: missing (not an rnnkit checkpoint?)")
    meta = _load_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RnnkitError(f"{meta_path}: not an rnnkit checkpoint")
    # absent in checkpoints written before it was added
    if "sha256" in meta and meta["sha256"] != _meta_digest(meta):
        raise RnnkitError(f"{meta_path}: corrupted (its sha256 differs from its content; "
                          'after a deliberate edit, delete its "sha256" entry)')  # fmt: skip
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise RnnkitError(
            f"{meta_path}: checkpoint format version {meta.get('version')} is newer than "
            f"this rnnkit reads ({VERSION})"
        )
    if kind is not None and meta.get("kind") != kind:
        raise RnnkitError(
            f"{meta_path}: this checkpoint holds a {meta.get('kind')!r} model, expected {kind!r}"
        )
    files = meta.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files:
        raise RnnkitError(f"{meta_path}: lacks the list of files")
    for name in files:
        if name not in DATA_FILES:  # e.g. "../../x": nothing outside the folder is read
            raise RnnkitError(f"{meta_path}: names an unknown file {name!r}")
    blobs = {name: _read_checked(root / name, info) for name, info in files.items()}
    params = _load_safetensors(root / MODEL_FILE, blobs[MODEL_FILE])
    optimizer = None
    if OPTIM_JSON in blobs:
        optimizer = _parse_json(root / OPTIM_JSON, blobs[OPTIM_JSON])
        if not isinstance(optimizer, dict):
            raise RnnkitError(f"{root / OPTIM_JSON}: expected a JSON object")
        if OPTIM_FILE in blobs:
            optimizer.update(_load_safetensors(root / OPTIM_FILE, blobs[OPTIM_FILE]))
    arrays = _load_safetensors(root / STATE_FILE, blobs[STATE_FILE]) if STATE_FILE in blobs else {}
    return Checkpoint(
        path=root,
        kind=meta.get("kind"),
        params=params,
        config=meta.get("config") or {},
        vocab=meta.get("vocab"),
        trainer=meta.get("trainer") or {},
        optimizer=optimizer,
        arrays=arrays,
    )


def _read_checked(path: Path, info: Any) -> bytes:
    if not path.is_file():
        raise RnnkitError(f"{path}: missing from the checkpoint")
    if not isinstance(info, dict):
        raise RnnkitError(f"{path.parent / META_FILE}: bad entry for {path.name}")
    size = path.stat().st_size
    if size != info.get("bytes"):  # refused before reading: a lying record allocates nothing
        raise RnnkitError(
            f"{path}: truncated or altered ({size} bytes, expected {info.get('bytes')})"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RnnkitError(f"{path}: cannot read ({e.strerror})") from None
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise RnnkitError(f"{path}: corrupted (sha256 differs from the one recorded at save)")
    return data


MAX_JSON_BYTES = 256 * 2**20  # checkpoint.json and optimizer.json are read whole


def _load_json(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise RnnkitError(f"{path}: {size:,} bytes, more than the {MAX_JSON_BYTES:,} a "
                          "checkpoint's JSON may hold (corrupt checkpoint)")  # fmt: skip
    try:
        text = read_text(path)
    except RnnkitError as e:
        raise RnnkitError(f"{e} (corrupt checkpoint)") from None
    return _parse_json(path, text.encode())


def _parse_json(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RnnkitError(f"{path}: corrupt (not UTF-8 at byte offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise RnnkitError(
            f"{path}: corrupt JSON at line {e.lineno} column {e.colno} ({e.msg})"
        ) from None
    except (ValueError, RecursionError) as e:  # an integer of 10^4 digits, [[[[...
        raise RnnkitError(f"{path}: corrupt JSON ({type(e).__name__}: {e})") from None


def _load_safetensors(path: Path, data: bytes) -> dict[str, np.ndarray]:
    try:
        tensors = safetensors.numpy.load(data)
    except Exception as e:  # the Rust parser raises its own error type
        raise RnnkitError(f"{path}: corrupt safetensors file ({e})") from None
    return {name: np.array(a) for name, a in tensors.items()}  # writable copies
