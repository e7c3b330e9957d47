"""The ``rnnkit`` command line: thin commands that parse, call one library function, print.

Each task has its own module here (``lm``, ``ngram``, ``embed``) defining one click group;
this module gathers them and turns every user error into one line on stderr and exit 1.
"""

from __future__ import annotations

import sys

import click

from rnnkit.cli import (
    caption,
    classify,
    diagnostics,
    embed,
    export,
    lm,
    mt,
    music,
    ngram,
    options,
    precompile,
    qa,
    tag,
)
from rnnkit.engine.backend import BACKENDS, get_backend, set_backend
from rnnkit.io import RnnkitError
from rnnkit.train.distributed import (
    CollectiveError,
    active_world,
    fail,
    get_world,
    launched_size,
    settle,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnkit")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="RNNKIT_THREADS",
    help="Threads for this command: NumPy's BLAS (every matrix product of the NumPy engine "
    "and of the models) and, as many, the compiled engine's recurrent layers (batch rows "
    "split over threads) [env RNNKIT_THREADS; default: the BLAS library's own, usually one "
    "per core]. The embedding trainers take their own --threads. On a shared machine 1 is "
    "often faster.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Engine of the recurrent layers' loops over time: 'numpy' (the readable reference; "
    "loads no compiled code), 'compiled' (rnnkit.fast: numba) or 'auto' (compiled where it "
    "can run) [env RNNKIT_BACKEND; default: auto].",
)
@click.pass_context
def cli(ctx: click.Context, threads: int | None, backend: str | None) -> None:
    """rnnkit: recurrent neural networks with every gradient written out."""
    if backend is not None:
        previous = set_backend(backend)
        ctx.call_on_close(lambda: set_backend(previous))  # main() may be called in-process
    else:
        get_backend()  # a bad RNNKIT_BACKEND is one line now, not a traceback later
    if threads is not None:
        from threadpoolctl import threadpool_limits

        ctx.with_resource(threadpool_limits(limits=threads, user_api="blas"))


cli.add_command(lm.group)
cli.add_command(ngram.group)
cli.add_command(embed.group)
cli.add_command(classify.group)
cli.add_command(tag.group)
cli.add_command(mt.group)
cli.add_command(mt.bleu_command)
cli.add_command(qa.group)
cli.add_command(caption.group)
cli.add_command(music.group)
cli.add_command(export.command)
cli.add_command(precompile.command)
for _command in diagnostics.commands:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command line, map errors to one line and an exit status.

    >>> main(["--version"])  # doctest: +ELLIPSIS
    rnnkit, version ...
    0
    """
    options.INVOCATION[:] = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        rv = cli.main(args=argv, prog_name="rnnkit", standalone_mode=False)
    except click.exceptions.Abort:
        return _fail("rnnkit: interrupted", 130)
    except click.ClickException as e:
        return _fail(f"rnnkit: error: {e.format_message()}", e.exit_code)
    except KeyboardInterrupt:
        return _fail("rnnkit: interrupted", 130)
    except CollectiveError as e:  # under mpiexec every process has it: rank 0 prints it
        if e.report:
            click.echo(f"rnnkit: error: {e}", err=True)
        settle(e)
        return 1
    except (RnnkitError, ValueError, OSError) as e:
        return _fail(f"rnnkit: error: {e}", 1)
    return rv if isinstance(rv, int) else 0


def _fail(line: str, code: int) -> int:
    """Print ``line`` on stderr and return ``code``; under mpiexec end every process of the
    run instead, as the others may be waiting for this one (rnnkit.train.distributed.fail)."""
    world = active_world()
    if world is None and launched_size() not in (None, 1):  # before the command joined it
        try:
            world = get_world()
        except RnnkitError:  # no mpi4py: every process prints
            world = None
    if world is not None and world.size > 1:
        fail(world, line, code)
    click.echo(line, err=True)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
