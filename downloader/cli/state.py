"""``downloader status`` and ``downloader state rebuild``: the commands that read or rebuild a run's state
database (the application does the work: ``dataset.status``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .options import LocalOut, guarded
from .sections import Command, Group

STATE_URL = click.option(
    "--state",
    "state_url",
    metavar="URL",
    help="The state database: sqlite:///PATH, mysql://… or postgresql://… [default: OUT's own SQLite file].",
)
OUT_DIR = LocalOut()


@click.command(cls=Command)
@click.argument("out", metavar="OUT", required=False, type=OUT_DIR)
@STATE_URL
@click.option(
    "--run", "run_id", metavar="ID", help="Which run of the database [default: OUT's, or the latest]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@guarded
def status(out: Path | None, state_url: str | None, run_id: str | None, as_json: bool, debug: bool) -> None:
    """Show a dataset run's progress from its state database, while it runs or after: shards done,
    running (by whom, since when) and left; rows by status and failures by kind; the rate and ETA;
    leases that expired (their shards are taken over by the next free worker).

    \b
    Examples:
      downloader status out/
      downloader status --state postgresql://me@db/runs --json
    """
    from ..dataset.status import as_json as to_json
    from ..dataset.status import read_status, render

    found = read_status(out, state_url, run_id)
    click.echo(json.dumps(to_json(found)) if as_json else render(found))


@click.group(cls=Group)
def state() -> None:
    """The state database of dataset runs (leases, progress and the shared archive)."""


@state.command()
@click.argument("out", metavar="OUT", type=OUT_DIR)
@STATE_URL
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@guarded
def rebuild(out: Path, state_url: str | None, debug: bool) -> None:
    """Record OUT's run in the state database again from OUT itself (its shards' done markers and
    rows): after the database was lost or wiped, or to move to another one. Nothing in OUT changes.

    \b
    Examples:
      downloader state rebuild out/
      downloader state rebuild out/ --state mysql://me@db/runs
    """
    from ..dataset.status import rebuild as rebuilt
    from ..dataset.status import render

    click.echo(render(rebuilt(out, state_url)))
