"""The ``rnnkit`` command line: thin commands that parse, call one library function, print.

Each task has its own module here (``lm``, ``ngram``, ``embed``) defining one click group;
this module gathers them and turns every user error into one line on stderr and exit 1.
"""

from __future__ import annotations

import sys

import click

from rnnkit.cli import classify, diagnostics, embed, lm, mt, ngram, qa, tag
from rnnkit.io import RnnkitError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnkit")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    envvar="RNNKIT_THREADS",
    help="Threads of the BLAS library (NumPy's matrix products) for this command "
    "[env RNNKIT_THREADS; default: the library's own, usually one per core]. "
    "On a shared machine 1 is often faster.",
)
@click.pass_context
def cli(ctx: click.Context, threads: int | None) -> None:
    """rnnkit: recurrent neural networks with every gradient written out."""
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
for _command in diagnostics.commands:
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command line, map errors to one line and an exit status.

    >>> main(["--version"])  # doctest: +ELLIPSIS
    rnnkit, version ...
    0
    """
    try:
        rv = cli.main(args=argv, prog_name="rnnkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("rnnkit: interrupted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"rnnkit: error: {e.format_message()}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("rnnkit: interrupted", err=True)
        return 130
    except (RnnkitError, ValueError, OSError) as e:
        click.echo(f"rnnkit: error: {e}", err=True)
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
