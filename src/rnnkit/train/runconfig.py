"""Run configurations: a training command's settings as a flat TOML file.

A run config holds one ``key = value`` line per setting, the keys being the command's
option names with underscores (``batch_size = 32`` for ``--batch-size 32``), among them the
data files (``train = "data/train.tsv"``). Every run folder gets ``config.toml``, its
*resolved* settings (every value, defaults included), so that ``--config
runs/x/config.toml`` trains the same run again. TOML has no null: ``false`` stands for
"none" in a setting that is not a yes/no one (``clip_norm = false``: no clipping,
``valid = false``: no validation file).

:func:`read_config` reads a file (tomllib), :func:`check_settings` checks the keys and types
of a mapping against the dataclasses that describe a command's settings, and
:func:`write_config` writes ``OUT/config.toml`` (a small writer of flat tables: strings,
numbers, booleans and lists of them).

>>> from dataclasses import dataclass
>>> @dataclass
... class Settings:
...     hidden: int = 32
...     clip_norm: float | None = 5.0
...     train: list[str] | None = None
>>> text = dumps({"hidden": 64, "clip_norm": None, "train": ["a.txt"]})
>>> print(text)
hidden = 64
clip_norm = false
train = ["a.txt"]
<BLANKLINE>
>>> check_settings(tomllib.loads(text), [Settings], "run.toml")
{'hidden': 64, 'clip_norm': None, 'train': ['a.txt']}
>>> check_settings({"hiden": 64}, [Settings], "run.toml")
Traceback (most recent call last):
  ...
rnnkit.io.RnnkitError: run.toml: unknown key 'hiden' (did you mean 'hidden'?)
"""

from __future__ import annotations

import difflib
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from rnnkit.io import RnnkitError, atomic_write, read_bytes
from rnnkit.train.checkpoint import load_checkpoint
from rnnkit.train.distributed import get_world

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "CONFIG_FILE",
    "check_resume",
    "check_settings",
    "dumps",
    "read_config",
    "resume_inputs",
    "setting_types",
    "split_settings",
    "unknown_key",
    "write_config",
]

CONFIG_FILE = "config.toml"


# --- reading ---------------------------------------------------------------------------------


def read_config(path: str | Path) -> dict[str, Any]:
    """The table of a TOML file; a missing or malformed file is one line naming it."""
    p = Path(path)
    data = read_bytes(p)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RnnkitError(f"{p}: not UTF-8 text (byte offset {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise RnnkitError(f"{p}: not valid TOML: {e}") from None
    except RecursionError:  # arrays nested thousands deep
        raise RnnkitError(f"{p}: not valid TOML: nested too deep") from None
    except ValueError as e:  # an integer of thousands of digits
        raise RnnkitError(f"{p}: not valid TOML: {e}") from None


def setting_types(schemas: Sequence[type]) -> dict[str, str]:
    """Setting name -> its annotation (``"int"``, ``"float | None"``, ``"list[str]"``...)
    for the fields of the given dataclasses, the first one naming a field winning."""
    types: dict[str, str] = {}
    for cls in schemas:
        for f in fields(cls):
            types.setdefault(f.name, f.type if isinstance(f.type, str) else f.type.__name__)
    return types


def _convert(value: Any, annotation: str, key: str, where: str) -> Any:
    parts = [p.strip() for p in annotation.split("|")]
    optional = "None" in parts
    parts = [p for p in parts if p != "None"]
    if value is None or (value is False and optional and parts != ["bool"]):
        if optional:
            return None
        raise RnnkitError(f"{where}: {key}: must be set (expected {' or '.join(parts)})")
    for p in parts:
        if p == "bool" and isinstance(value, bool):
            return value
        if p == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if p == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if p == "str" and isinstance(value, str):
            return value
        if p.startswith(("list[", "tuple[")) and isinstance(value, (list, tuple)):
            if all(isinstance(v, str) for v in value):
                return [str(v) for v in value]
    want = " or ".join("a list of strings" if p.startswith(("list", "tuple")) else p
                       for p in parts) + (" (false: none)" if optional else "")  # fmt: skip
    raise RnnkitError(f"{where}: {key}: expected {want}, got {value!r}")


def unknown_key(key: str, known: Iterable[str], where: str, command: str | None = None
                ) -> RnnkitError:  # fmt: skip
    """The error for a key that is no setting: it names the key and ``where`` it was found,
    and the closest setting's name."""
    close = difflib.get_close_matches(key.replace("-", "_"), list(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else (
        f"not a setting of {command}" if command else "")  # fmt: skip
    return RnnkitError(f"{where}: unknown key {key!r}" + (f" ({hint})" if hint else ""))


def check_settings(
    settings: Mapping[str, Any],
    schemas: Sequence[type],
    where: str,
    extra: Mapping[str, str] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """``settings`` with every key checked against the fields of ``schemas`` (dataclasses)
    and ``extra`` (name -> annotation), every value against its annotation (an int is a
    float; ``false`` or None is None where None is allowed). Raises one
    :class:`RnnkitError` naming ``where`` and the first bad key."""
    types = {**setting_types(schemas), **(extra or {})}
    out = {}
    for key, value in settings.items():
        if key not in types:
            raise unknown_key(key, types, where, command)
        out[key] = _convert(value, types[key], key, where)
    return out


def split_settings(
    settings: Mapping[str, Any], data: type
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(data settings, the rest)``: the settings that are fields of the dataclass ``data``
    (its defaults filled in), and the others as given."""
    names = {f.name for f in fields(data)}
    ours = {**asdict(data()), **{k: v for k, v in settings.items() if k in names}}
    return ours, {k: v for k, v in settings.items() if k not in names}


def resume_inputs(out: str | Path, kind: str, inputs: Mapping[str, Any], files: Sequence[str]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """On resume: the data settings (the ``files`` given, else the checkpoint's; the other
    data settings the checkpoint's) and the checkpoint's training settings, read from the
    checkpoint of the run folder ``out`` (of model ``kind``; under MPI, by rank 0)."""
    config = get_world().on_root(
        lambda: load_checkpoint(Path(out) / "checkpoint", kind=kind).config
    )
    desc = config.get("data") or {}
    merged = {k: (v or desc.get(k)) if k in files else desc.get(k, v) for k, v in inputs.items()}
    return merged, dict(config.get("train") or {})


def check_resume(given: Mapping[str, Any], extra: Sequence[str] = ()) -> None:
    """A resumed run keeps its checkpoint's settings: only ``epochs`` (a new total) may be
    given; anything else (or ``extra``: more names given) is one :class:`RnnkitError`."""
    changed = sorted(set(given) - {"epochs"}) + list(extra)
    if changed:
        names = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise RnnkitError(f"--resume continues with the checkpoint's settings; only --epochs "
                          f"may change (got {names})")  # fmt: skip


# --- writing ---------------------------------------------------------------------------------


def _value(v: Any) -> str:
    if v is None:
        return "false"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):  # a JSON string is a TOML basic string once DEL is escaped too
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} {v!r} as a TOML value")


def dumps(settings: Mapping[str, Any], header: str = "") -> str:
    """A flat TOML table, ``header`` as comment lines above it; None is written ``false``."""
    lines = [f"# {h}".rstrip() for h in header.splitlines()]
    for k, v in settings.items():
        if not k.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"not a bare TOML key: {k!r}")
        lines.append(f"{k} = {_value(v)}")
    return "\n".join(lines) + "\n"


def write_config(out: str | Path, command: str, settings: Mapping[str, Any]) -> Path:
    """Write ``OUT/config.toml``: the resolved ``settings`` of a run of ``rnnkit COMMAND``."""
    path = Path(out) / CONFIG_FILE
    header = (
        f"The resolved settings of this run of `rnnkit {command}` (defaults included).\n"
        f"Train it again: rnnkit {command} --config {path} --out NEW_FOLDER\n"
        "Options given on the command line override this file; false stands for none."
    )
    with atomic_write(path) as f:
        f.write(dumps(settings, header))
    return path
