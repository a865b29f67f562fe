"""How a downloading command (``fetch``, ``demo``) shows its run on the terminal and ends: the progress,
the interrupt notices, the summary, and the exit code that the run's totals decide."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ExitCode
from .options import SUMMARY_LOG

if TYPE_CHECKING:  # the application loads only when a command runs: --help stays fast
    from ..app.progress import ProgressMode, Reporter
    from ..app.run import Ui
    from ..models import Stats


def exit_code(stats: Stats) -> int:
    if stats.interrupted:
        return ExitCode.INTERRUPTED
    if stats.aborted:
        return ExitCode.ABORTED
    return ExitCode.OK if stats.all_ok else ExitCode.FAILED


def on_interrupt(n: int) -> None:
    """The first Ctrl-C stops the run cleanly (the application has already asked it to); a second
    ends the process at once."""
    if n == 1:
        click.echo("\ninterrupted: finishing cleanly (Ctrl-C again to quit at once)", err=True)
        return
    click.echo("interrupted again: exiting now", err=True)
    os._exit(ExitCode.INTERRUPTED)


def make_ui(quiet: bool, progress: ProgressMode = "auto", progress_interval: float = 10.0) -> Ui:
    """How a run shows itself: the progress (a bar, status lines or nothing) and the interrupt notices."""
    from ..app.progress import reporter_for
    from ..app.run import Ui

    def reporter(total: int | None) -> Reporter:
        return reporter_for(sys.stderr, quiet, total, progress, progress_interval)

    def announce(text: str) -> None:
        if not quiet:
            click.echo(text)

    return Ui(progress=reporter, on_interrupt=on_interrupt, announce=announce)


def finish(stats: Stats, quiet: bool, out: Path | None = None, epilogue: str = "") -> None:
    """The summary (with the first failures and how to list them all), ``epilogue``, then the exit code."""
    import logging
    import shlex

    from ..app.summary import summary

    text = summary(stats, None if out is None else shlex.quote(str(out)))
    if not quiet:
        click.echo(text + (f"\n{epilogue}" if epilogue else ""))
    elif stats.aborted:  # quiet shows errors only: an aborted run is one
        click.echo(f"error: run aborted: {stats.aborted}", err=True)
    logging.getLogger(SUMMARY_LOG).info("%s", text)
    sys.exit(exit_code(stats))
