"""Reading user files and writing outputs safely.

Every file a user hands rnnkit goes through :func:`read_text`, so bad input always ends in
one ``ValueError`` that names the file and what is wrong with it; every output goes through
:func:`atomic_write`, so an interrupted run never leaves a half-written file behind.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> p = os.path.join(d, "a.txt")
>>> with atomic_write(p) as f:
...     _ = f.write("hello\\n")
>>> read_text(p)
'hello\\n'
>>> open(p, "wb").write(b"ok \\xff")
4
>>> read_text(p)
Traceback (most recent call last):
rnnkit.io.RnnkitError: ...a.txt: not valid utf-8 at byte offset 3 (try --encoding latin-1)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


class RnnkitError(ValueError):
    """A user-facing error: the command line prints its message as one line and exits 1."""


def max_input_bytes() -> int:
    """The most bytes an input file may hold in memory (after gunzip): ``RNNKIT_MAX_INPUT_BYTES``
    if set, else half the machine's physical memory. Readers read whole files, so a larger
    one (or a small gzip file that inflates beyond it) is refused with one line rather than
    ending in a MemoryError or the machine swapping."""
    env = os.environ.get("RNNKIT_MAX_INPUT_BYTES")
    if env:
        try:
            return int(env)
        except ValueError:
            raise RnnkitError(f"RNNKIT_MAX_INPUT_BYTES: expected a number of bytes, got {env!r}"
                              ) from None  # fmt: skip
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 2**62


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a file (gunzipped if gzip), with one-line errors naming the file; at most
    :func:`max_input_bytes` of them."""
    p = Path(path)
    if not p.exists():
        raise RnnkitError(f"{p}: no such file")
    if p.is_dir():
        raise RnnkitError(f"{p}: is a directory, expected a file")
    limit = max_input_bytes()
    try:
        size = p.stat().st_size
        if size > limit:
            raise RnnkitError(f"{p}: {size:,} bytes, more than the {limit:,} an input may "
                              "hold in memory (RNNKIT_MAX_INPUT_BYTES)")  # fmt: skip
        data = p.read_bytes()
    except OSError as e:
        raise RnnkitError(f"{p}: cannot read ({e.strerror})") from None
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(p, data, limit)
    return data


def _gunzip(p: Path, data: bytes, limit: int) -> bytes:
    """Every member of a gzip file, decompressed in pieces so that a file inflating beyond
    ``limit`` bytes is refused before it fills the memory."""
    parts: list[bytes] = []
    total = 0
    try:
        while data:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member
            chunk = d.decompress(data, min(1 << 24, limit - total + 1))
            while True:
                total += len(chunk)
                if total > limit:
                    raise RnnkitError(
                        f"{p}: decompresses to more than the {limit:,} bytes an input may "
                        "hold in memory (RNNKIT_MAX_INPUT_BYTES)"
                    )
                parts.append(chunk)
                if d.eof:
                    break
                tail = d.unconsumed_tail
                # with no input left: what zlib still holds
                chunk = d.decompress(tail, min(1 << 24, limit - total + 1))
                if not chunk and not tail:
                    break
            if not d.eof:
                raise RnnkitError(f"{p}: corrupt gzip file (it ends early)")
            data = d.unused_data
            if not data.strip(b"\x00"):  # zero padding after the last member
                break
    except zlib.error as e:
        raise RnnkitError(f"{p}: corrupt gzip file ({e})") from None
    return b"".join(parts)


def read_text(
    path: str | os.PathLike[str], encoding: str = "utf-8", allow_empty: bool = False
) -> str:
    """Read a whole text file (gzip accepted), with errors that name the file and byte offset.

    Raises :class:`RnnkitError` (a ``ValueError``) for a missing, empty, binary (NUL bytes)
    or wrongly encoded file.
    """
    p = Path(path)
    data = read_bytes(p)
    if not data.strip() and not allow_empty:
        raise RnnkitError(f"{p}: file is empty")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise RnnkitError(f"{p}: looks binary (NUL byte at byte offset {nul}), expected text")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise RnnkitError(
            f"{p}: not valid {encoding} at byte offset {e.start} (try --encoding latin-1)"
        ) from None
    except LookupError:
        raise RnnkitError(f"unknown encoding {encoding!r}") from None


def read_lines(
    path: str | os.PathLike[str], encoding: str = "utf-8", allow_empty: bool = False
) -> list[str]:
    """The lines of a text file (gzip accepted) without their line endings."""
    return read_text(path, encoding, allow_empty).splitlines()


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        kwargs = {"encoding": encoding} if "b" not in mode else {}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_write(path, "wb") as f:
        f.write(data)
