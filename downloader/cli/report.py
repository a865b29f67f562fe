"""``downloader report`` and ``downloader failures``: a run's output folder read back, as one HTML page
or as the list of what failed."""

from __future__ import annotations

from pathlib import Path

import click

from .options import LocalOut, guarded
from .sections import Command

OUT_DIR = LocalOut()


@click.command(cls=Command)
@click.argument("out", metavar="OUT", type=OUT_DIR)
@click.option("--kind", "kinds", multiple=True, help="Only failures of this kind (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print each failure's manifest row as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@guarded
def failures(out: Path, kinds: tuple[str, ...], as_json: bool, debug: bool) -> None:
    """List the failures of the runs in OUT: each URL whose latest row failed, and each invalid row.

    \b
    Examples:
      downloader failures out/
      downloader failures out/ --kind http_4xx --kind not_image
      downloader failures out/ --json > failed.jsonl
    """
    import json

    from ..dataset.shardfiles import run_manifests
    from ..manifest import failed_rows
    from ..models import one_line

    manifests = run_manifests(out)
    if not manifests:
        raise click.UsageError(f"no manifest in {out}: is it a run's output folder?")
    for row in failed_rows(manifests, out):
        if kinds and row.get("kind") not in kinds:
            continue
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{one_line(row['url'])}\t{row.get('kind')}\t{one_line(row.get('error') or '')}")


@click.command(cls=Command)
@click.argument("out", metavar="OUT", type=OUT_DIR)
@click.option(
    "-o",
    "--output",
    "dest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the page [default: OUT/report.html].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@guarded
def report(out: Path, dest: Path | None, debug: bool) -> None:
    """Write the run in OUT as one self-contained HTML page: the summary, files/s and MB/s over time,
    latency, failures by kind and by host, sizes, a contact sheet of sampled images and the settings.

    The manifest is streamed in bounded memory, and a run still going on is read as far as it has written.

    \b
    Examples:
      downloader report out/
      downloader report out/ -o /tmp/run.html
    """
    from ..report import build

    click.echo(build(out, dest))
