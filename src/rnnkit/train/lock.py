"""One training run per output folder: a lock file that names its holder.

``OUT/.lock`` holds the PID of the process training into ``OUT``, and that process holds an
exclusive ``flock`` on it for as long as it runs. A second run into the same folder finds the
lock taken and stops with one line naming the PID. The operating system drops the ``flock``
when its process ends in any way (``kill -9`` included), so a lock left by a killed run is
recognised as stale and taken over. Where ``flock`` is not supported (some network file
systems) the PID alone decides: a lock whose process no longer exists is stale.

Within one process the lock is re-entrant (a resumed run in the same Python session takes it
again); :func:`release_run_lock` gives it up at the end of a run and deletes the lock file
(while still holding it, so that no other process can be holding the deleted file's lock),
and the folder too if taking the lock created it and it is still empty (a run that failed on
its input leaves nothing behind).

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> lock_run(out)
>>> (out / LOCK_FILE).read_text().split()[0] == str(os.getpid())
True
>>> release_run_lock(out)
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from rnnkit.io import RnnkitError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_FILE",
    "lock_holder",
    "lock_run",
    "locks_taken_released",
    "release_run_lock",
    "run_lock_released",
]

LOCK_FILE = ".lock"
_held: dict[Path, tuple[int, bool]] = {}  # folder -> (descriptor holding the flock, created)
_scopes: list[int] = [0]  # open locks_taken_released blocks: they give the locks up, not loops


def lock_holder(out: str | os.PathLike[str]) -> int | None:
    """The PID written in ``OUT/.lock`` (None: no lock file or no PID in it)."""
    try:
        text = (Path(out) / LOCK_FILE).read_text(errors="replace")
    except OSError:
        return None
    first = text.split()[0] if text.split() else ""
    return int(first) if first.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def lock_run(out: str | os.PathLike[str]) -> None:
    """Take the lock of the run folder ``out`` (created if missing) for this process.

    Raises:
        RnnkitError: another live process holds it (the line names its PID), or the folder
            cannot be created or written (a file in the way, read-only, no space).
    """
    folder = Path(out).resolve()
    if folder in _held:
        return
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RnnkitError(f"{out}: exists and is not a folder") from None
    except OSError as e:
        raise RnnkitError(f"{out}: cannot create the output folder ({e.strerror})") from None
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RnnkitError(f"{out}: cannot write to the output folder ({e.strerror})") from None
    try:
        if not _flock(fd):
            pid = lock_holder(folder)
            raise RnnkitError(
                f"{out}: another rnnkit run (PID {pid}) is writing to this folder; wait for "
                "it to end or choose another --out"
            )
        # ours now: whoever wrote the PID before us has ended (a stale lock)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
    except RnnkitError:
        os.close(fd)
        raise
    except OSError as e:
        os.close(fd)
        raise RnnkitError(f"{path}: cannot write the lock ({e.strerror})") from None
    _held[folder] = (fd, created)


def _flock(fd: int) -> bool:
    """Try the exclusive flock; False if another process holds it. Without flock support,
    the PID in the file decides."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
    data = os.pread(fd, 32, 0).split()
    pid = int(data[0]) if data and data[0].isdigit() else None
    return pid is None or pid == os.getpid() or not _alive(pid)


def release_run_lock(out: str | os.PathLike[str]) -> None:
    """Give up this process's lock of ``out`` (nothing if it holds none): delete the lock
    file, then drop the flock; remove the folder if the lock created it and it is empty."""
    folder = Path(out).resolve()
    held = _held.pop(folder, None)
    if held is None:
        return
    fd, created = held
    with contextlib.suppress(OSError):
        os.unlink(folder / LOCK_FILE)
    with contextlib.suppress(OSError):
        os.close(fd)
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty


@contextlib.contextmanager
def locks_taken_released() -> Iterator[None]:
    """A block (a whole train command) at whose end every run lock it took is given up,
    whether the command ended normally, failed before its loop, or after it."""
    before = set(_held)
    _scopes[0] += 1
    try:
        yield
    finally:
        _scopes[0] -= 1
        for folder in set(_held) - before:
            release_run_lock(folder)


@contextlib.contextmanager
def run_lock_released(out: str | os.PathLike[str]) -> Iterator[None]:
    """A block at whose end (normal or not) this process's lock of ``out`` is given up;
    inside :func:`locks_taken_released` (a whole command) that block's end does it, so that
    the folder stays locked while the command scores and writes after its loop."""
    try:
        yield
    finally:
        if not _scopes[0]:
            release_run_lock(out)
