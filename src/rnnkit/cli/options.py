"""Options, arguments and run handling shared by several command groups (``rnnkit classify``,
``tag``, ``mt``, ``qa``, ``lm``, ``diagnostics``): click parameter types, the training-loop
options (:func:`loop_options`), the run options (:func:`run_options`), run configs
(:func:`config_option`: ``--config run.toml``), the ``--resume`` check, the Ctrl-C exit
code, and reading command inputs from files or standard input.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click
from click.core import ParameterSource

from rnnkit.io import RnnkitError, read_lines
from rnnkit.train import runconfig
from rnnkit.train.checkpoint import DEFAULT_INTERVAL, parse_interval
from rnnkit.train.distributed import get_world
from rnnkit.train.lock import locks_taken_released
from rnnkit.train.scores import SCORES, record_score, run_folder

# the command line of this call of rnnkit.cli.main (recorded with test scores)
INVOCATION: list[str] = []

__all__ = [
    "NOT_SETTINGS",
    "POSITIVE",
    "POSITIVE_FLOAT",
    "PROB",
    "check_resume",
    "config_option",
    "exit_if_interrupted",
    "loop_options",
    "read_inputs",
    "run_options",
    "Terminated",
    "run_train",
    "sigterm_raises",
]

POSITIVE = click.IntRange(min=1)
PROB = click.FloatRange(0, 1, max_open=True)
POSITIVE_FLOAT = click.FloatRange(min=0, min_open=True)


class _Interval(click.ParamType):
    """``--checkpoint-every``: a number of steps (an integer) or a time (``30s``, ``10m``)."""

    name = "steps|time"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        try:
            steps, _ = parse_interval(value)
        except RnnkitError as e:
            self.fail(str(e).split(": ", 1)[1], param, ctx)
        return steps if steps or str(value).strip().isdigit() else str(value).strip().lower()


INTERVAL = _Interval()
CHECKPOINT_EVERY_HELP = (
    "Mid-epoch checkpoints: every N steps, or every so long (30s, 10m, 1h); 0: at the end of "
    f"epochs only [default: {DEFAULT_INTERVAL}]."
)

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
    click.option("--checkpoint-every", type=INTERVAL, help=CHECKPOINT_EVERY_HELP),
    click.option("--dtype", type=click.Choice(["float32", "float64"]),
                 help="Weights and arithmetic [default: float32]."),
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


def check_resume(given: dict[str, Any], extra: tuple[str, ...] = (), data: type | None = None
                 ) -> None:  # fmt: skip
    """On --resume only --epochs may change (a usage error, exit 2); the fields of the
    dataclass ``data`` (the data files) may be given."""
    if data is not None:
        given = runconfig.split_settings(given, data)[1]
    try:
        runconfig.check_resume(given, extra)
    except RnnkitError as e:
        raise click.UsageError(str(e)) from None


def run_train(
    run: Callable[..., dict[str, Any]], settings: dict[str, Any], data: type, out: str,
    resume: bool, max_steps: int | None, progress: bool, resume_extra: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """The body of a train command: on ``--resume`` only ``--epochs`` and the data files
    (the fields of ``data``, but ``resume_extra``) may be given; then the recipe's
    ``run(settings, out, ...)``; exit 130 if Ctrl-C stopped it, 143 if SIGTERM did (also
    outside the training loop, whose own handler saves first: while reading the data or
    scoring the best epoch, the checkpoint is whole either way). Under ``mpiexec`` every
    process runs it (:mod:`rnnkit.train.distributed`); rank 0 alone prints."""
    if resume:
        check_resume(settings, resume_extra, data=data)
    world = get_world()  # under mpiexec: joins the other processes; only rank 0 prints
    try:
        with locks_taken_released(), sigterm_raises():  # also when the run fails early
            summary = run(settings, out, resume=resume, progress=progress,
                          max_steps=max_steps, echo=world.echo(click.echo))  # fmt: skip
    except Terminated:
        click.echo("rnnkit: stopped by SIGTERM", err=True)
        raise click.exceptions.Exit(128 + signal.SIGTERM) from None
    exit_if_interrupted(summary)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a training loop (which turns it into a saved stop instead)."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the block (the default would end the process
    without a word), where no loop has installed its own handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- run configs ---------------------------------------------------------------------------

# parameters of a train command that say how to run it, not what the run is: never in a file
NOT_SETTINGS = ("config", "out", "resume", "progress", "max_steps")
_NO_DEFAULT = (None, getattr(click.core, "UNSET", None))  # click >= 8.2 marks "no default"


def _file_settings(ctx: click.Context, path: str) -> dict[str, Any]:
    """The settings of the TOML file ``path``, each converted (and checked) by its option's
    click type; an unknown key or a bad value is one line naming the key and the file."""
    params = {p.name: p for p in ctx.command.params if p.name not in NOT_SETTINGS}
    out: dict[str, Any] = {}
    for key, value in runconfig.read_config(path).items():
        p = params.get(key)
        if p is None:
            if key in NOT_SETTINGS:
                raise RnnkitError(f"{path}: {key!r} is not a run setting; give --"
                                  f"{key.replace('_', '-')} on the command line")  # fmt: skip
            raise runconfig.unknown_key(key, params, path, ctx.command_path)
        many = p.nargs != 1 or getattr(p, "multiple", False)
        flag = isinstance(p.type, click.types.BoolParamType)
        if value is False and not flag and not many and p.default in _NO_DEFAULT:
            out[key] = None  # TOML has no null: false stands for "none"
            continue
        if isinstance(value, str) and many:
            value = [value]  # one file where a list is expected
        try:
            out[key] = p.type_cast_value(ctx, value)
        except click.BadParameter as e:
            raise RnnkitError(f"{path}: {key}: {e.message}") from None
        except (TypeError, ValueError):
            raise RnnkitError(f"{path}: {key}: expected {p.type.name}, got {value!r}") from None
    return out


def config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--config FILE`` to a train command: its settings from a TOML file
    (:mod:`rnnkit.train.runconfig`), the command line overriding the file.

    Every parameter of the command but those of :data:`NOT_SETTINGS` is a setting; its key
    is the parameter's name (the option with underscores: ``batch_size``). The command gets
    its named parameters as usual (the file's value where the command line gave none), and
    in ``**options`` only the settings given on the command line or in the file, so that
    ``options`` is what the user asked for and the recipe fills in the rest.
    """
    named = {n for n, p in inspect.signature(f).parameters.items() if p.kind != p.VAR_KEYWORD}
    unset = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)

    @functools.wraps(f)
    def wrapper(config: str | None, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        given = {k for k in kwargs if ctx.get_parameter_source(k) not in unset}
        if config is not None:
            for key, value in _file_settings(ctx, config).items():
                if key not in given:
                    kwargs[key] = value
                    given.add(key)
        return f(**{k: v for k, v in kwargs.items() if k in named or k in given})

    return click.option(
        "--config", type=click.Path(dir_okay=False),
        help="Settings from a TOML file (keys: the option names with underscores, e.g. "
             "batch_size = 32; a run's OUT/config.toml re-runs it); options given here "
             "override it.",
    )(wrapper)  # fmt: skip


def exit_if_interrupted(summary: dict[str, Any]) -> None:
    """A run stopped by Ctrl-C or SIGTERM (its checkpoint saved) exits 128 + the signal's
    number, as the shell reports a process that signal ended: 130 for Ctrl-C, 143 for
    SIGTERM, which also gets a line on stderr (a batch scheduler's log shows why)."""
    if summary.get("interrupted"):
        name = summary.get("signal", "SIGINT")
        if name != "SIGINT":
            click.echo(f"rnnkit: stopped by {name}; the checkpoint is saved, continue with "
                       "--resume", err=True)  # fmt: skip
        raise click.exceptions.Exit(128 + int(getattr(signal.Signals, name, signal.SIGINT)))


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


def record_eval(
    run: str, data: Any, figures: dict[str, Any], members: tuple[str, ...] = (),
    content: bytes | None = None, what: str | None = None,
) -> None:  # fmt: skip
    """Append an ``eval`` command's figures to ``RUN/scores.jsonl`` and say, on stderr, how
    many times this run has now scored the same data (RESULTS.md counts them)."""
    n = record_score(run, data, figures, command=["rnnkit", *INVOCATION], members=members,
                     content=content, what=what)  # fmt: skip
    times = "once" if n == 1 else f"{n} times"
    click.echo(f"recorded in {run_folder(run) / SCORES}: this run has scored this data {times}",
               err=True)  # fmt: skip


def removed_test_option(eval_command: str, multiple: bool = False) -> Callable[[Any], Any]:
    """A hidden ``--test`` that stops with one line: training no longer scores a test set."""

    def refuse(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value:
            raise click.UsageError(
                "--test: training reports validation only; score the test data once, after "
                f"training, with `rnnkit {eval_command}` (recorded in RUN/{SCORES})"
            )

    return click.option("--test", multiple=multiple, hidden=True, expose_value=False,
                        callback=refuse, type=click.Path(dir_okay=False))  # fmt: skip
