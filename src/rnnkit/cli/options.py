"""Options, arguments and run handling shared by several command groups (``rnnkit classify``,
``tag``, ``mt``, ``qa``, ``lm``, ``diagnostics``): click parameter types, the training-loop
options (:func:`loop_options`), the run options (:func:`run_options`), the ``--resume``
check, the Ctrl-C exit code, and reading command inputs from files or standard input.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from rnnkit.io import RnnkitError, read_lines

__all__ = [
    "POSITIVE",
    "POSITIVE_FLOAT",
    "PROB",
    "check_resume",
    "exit_if_interrupted",
    "loop_options",
    "read_inputs",
    "run_options",
]

POSITIVE = click.IntRange(min=1)
PROB = click.FloatRange(0, 1, max_open=True)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)

_LOOP_OPTIONS = [
    click.option("--epochs", type=POSITIVE),
    click.option("--batch-size", type=POSITIVE),
    click.option("--optimizer", type=click.Choice(["sgd", "adagrad", "rmsprop", "adam"])),
    click.option("--lr", type=POSITIVE_FLOAT, help="Learning rate."),
    click.option("--momentum", type=PROB),
    click.option("--clip-norm", type=POSITIVE_FLOAT, help="Global gradient L2 norm limit."),
    click.option("--l2", type=click.FloatRange(min=0), help="L2 penalty on weights."),
    click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True),
                 help="Multiply the learning rate by this after each epoch."),
    click.option("--decay-after", type=POSITIVE, help="Epoch at whose end decay starts."),
    click.option("--min-count", type=POSITIVE, help="Rarer training words become <unk>."),
    click.option("--max-vocab", type=POSITIVE, help="Vocabulary size cap."),
    click.option("--unk-replace", type=PROB,
                 help="Replace words seen once by <unk> with this probability (training)."),
    click.option("--lower/--no-lower", default=None, help="Lowercase words."),
    click.option("--seed", type=int),
    click.option("--log-every", type=POSITIVE),
    click.option("--checkpoint-every", type=click.IntRange(min=0), help="Steps; 0: per epoch."),
]  # fmt: skip


def loop_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The training-loop options (all default to None: 'not given')."""
    for option in reversed(_LOOP_OPTIONS):
        f = option(f)
    return f


def run_options(default_out: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--out, --resume, --progress and the hidden --max-steps."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("--progress/--no-progress", default=True, show_default=True)(f)
        f = click.option("--max-steps", type=POSITIVE, hidden=True)(f)
        f = click.option("--resume", is_flag=True, help="Continue the run in --out exactly.")(f)
        f = click.option("--out", default=default_out, show_default=True, type=click.Path(),
                         help="Output folder.")(f)  # fmt: skip
        return f

    return wrap


def check_resume(given: dict[str, Any], extra: tuple[str, ...] = ()) -> None:
    """On --resume only --epochs may change."""
    changed = sorted(set(given) - {"epochs"}) + list(extra)
    if changed:
        names = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise click.UsageError(
            f"--resume continues with the checkpoint's settings; only --epochs may change "
            f"(got {names})"
        )


def exit_if_interrupted(summary: dict[str, Any]) -> None:
    if summary.get("interrupted"):
        raise click.exceptions.Exit(130)  # the shell's code for Ctrl-C; checkpoint is saved


def read_inputs(inputs: tuple[str, ...], encoding: str) -> list[tuple[str, list[str]]]:
    """(name, lines) of each input file; '-' or no file: standard input."""
    if not inputs:
        inputs = ("-",)
    out = []
    for name in inputs:
        if name == "-":
            out.append(("<stdin>", _read_stdin(encoding).splitlines()))
        else:
            out.append((name, read_lines(name, encoding, allow_empty=True)))
    return out


def _read_stdin(encoding: str) -> str:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # already text (e.g. replaced in tests)
        return sys.stdin.read()
    data = buffer.read()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise RnnkitError(f"<stdin>: not valid {encoding} at byte offset {e.start} "
                          "(try --encoding latin-1)") from None  # fmt: skip
    except LookupError:
        raise RnnkitError(f"unknown encoding {encoding!r}") from None
