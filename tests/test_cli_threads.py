"""``rnnkit --threads N`` limits the BLAS thread pool for the duration of the command."""

from __future__ import annotations

import click
from threadpoolctl import threadpool_info

from rnnkit.cli import cli, main


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_threads_option_limits_blas_during_the_command(capsys, monkeypatch):
    seen: list[list[int]] = []

    @click.command("probe-threads")
    def probe() -> None:
        seen.append(_blas_threads())

    before = _blas_threads()
    cli.add_command(probe)
    try:
        assert main(["--threads", "1", "probe-threads"]) == 0
        assert seen[-1] and all(n == 1 for n in seen[-1])
        assert _blas_threads() == before  # restored afterwards
        monkeypatch.setenv("RNNKIT_THREADS", "1")
        assert main(["probe-threads"]) == 0
        assert all(n == 1 for n in seen[-1])
        assert main(["--threads", "0", "probe-threads"]) == 2
        assert "--threads" in capsys.readouterr().err
    finally:
        cli.commands.pop("probe-threads")
