"""A run's record of test scores: ``RUN/scores.jsonl``, one line per evaluation.

Training reports validation figures only; a test set is scored by an ``eval`` command on
purpose, and each such command appends a record here, so that how many times a file was
scored against a run is counted rather than remembered (RESULTS.md's protocol). A record
holds the time (UTC), rnnkit's version and the git commit of its source (``+dirty`` when the
checkout had uncommitted changes; None outside a checkout), the command line, the data
file's path and SHA-256, the figures, and the other members of an ensemble.

>>> import tempfile, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> data = run / "test.txt"
>>> _ = data.write_text("a b c\\n")
>>> record_score(run, data, {"accuracy": 0.5}, command=["rnnkit", "classify", "eval"])
1
>>> record_score(run, data, {"accuracy": 0.5}, command=["rnnkit", "classify", "eval"])
2
>>> [r["figures"] for r in read_scores(run)]
[{'accuracy': 0.5}, {'accuracy': 0.5}]
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnkit.io import RnnkitError

__all__ = ["SCORES", "read_scores", "record_score", "run_folder", "source_commit"]

SCORES = "scores.jsonl"


@functools.cache
def source_commit() -> str | None:
    """The git commit of the checkout rnnkit is imported from (``+dirty`` with uncommitted
    changes to tracked files), or None when it is not imported from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)  # fmt: skip
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_folder(path: str | Path) -> Path:
    """The run folder of a path given to an ``eval`` command: the folder itself, or the
    parent of its ``best/`` or ``checkpoint/`` sub-folder."""
    p = Path(path)
    if p.name in ("best", "checkpoint") and (p / "checkpoint.json").exists():
        return p.parent
    return p


def _sha256(data: str | Path | bytes | Sequence[str | Path]) -> str:
    """Of bytes, or of one file's content, or of several files' contents in order."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha256()
    for path in [data] if isinstance(data, (str, Path)) else data:
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def read_scores(run: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN/scores.jsonl`` (none: an empty list); a damaged line is one
    :class:`RnnkitError` naming the file and line."""
    path = run_folder(run) / SCORES
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rec = json.loads(line)
        except ValueError:
            raise RnnkitError(f"{path}:{i}: not a JSON record") from None
        if not isinstance(rec, dict):
            raise RnnkitError(f"{path}:{i}: not a JSON record")
        out.append(rec)
    return out


def record_score(
    run: str | Path,
    data: str | Path | Sequence[str | Path],
    figures: dict[str, Any],
    *,
    command: Sequence[str] | None = None,
    members: Sequence[str | Path] = (),
    content: bytes | None = None,
    what: str | None = None,
) -> int:
    """Append one record to ``RUN/scores.jsonl``; return how many records of the run score
    the same data (by SHA-256), this one included.

    ``data`` is the scored file, or several files (hashed together, in order); ``content``
    gives the scored bytes when they are not the whole file (e.g. the held-out part of a
    text), and ``what`` says which part they are.
    """
    folder = run_folder(run)
    digest = _sha256(content if content is not None else data)
    rec = {
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rnnkit": _version(),
        "commit": source_commit(),
        "command": list(command if command is not None else sys.argv),
        "data": str(data) if isinstance(data, (str, Path)) else [str(d) for d in data],
        **({"part": what} if what else {}),
        "sha256": digest,
        "figures": figures,
        **({"ensemble": [str(m) for m in members]} if members else {}),
    }
    before = sum(r.get("sha256") == digest for r in read_scores(folder))
    path = folder / SCORES
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, sort_keys=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise RnnkitError(f"{path}: cannot record the score ({e.strerror or e})") from None
    return before + 1


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rnnkit")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree only
        return "unknown"
