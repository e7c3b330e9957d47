"""``rnnkit precompile``: compile the compiled engine's loops for this machine ahead of use."""

from __future__ import annotations

import click

from rnnkit.engine.precompile import DTYPES, precompile
from rnnkit.io import RnnkitError


@click.command("precompile")
@click.option(
    "--dtype",
    "dtypes",
    type=click.Choice(DTYPES),
    multiple=True,
    help="Precision of the loops to compile: float32 (what the commands train in; the "
    "default) and/or float64 (gradient checks); repeat for both.",
)
def command(dtypes: tuple[str, ...]) -> None:
    """Compile the compiled engine (rnnkit.fast) for this machine into numba's cache.

    Every loop the recurrent layers and Adam can call, so that a first training step
    starts at once instead of waiting about 15 s for numba. 'pip install -e .' runs it;
    run it after 'pip install rnnkit' from a wheel, after upgrading numba, or on a new
    CPU. Already compiled loops are only loaded (about a second).
    """
    try:
        for line in precompile(dtypes or ("float32",)):
            click.echo(line)
    except RuntimeError as e:  # numba or llvmlite missing
        raise RnnkitError(str(e)) from None
