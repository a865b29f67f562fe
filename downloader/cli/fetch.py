"""``downloader fetch``: one URL list (or the failures of the last run) downloaded into OUT."""

from __future__ import annotations

import os
from typing import Any

import click

from ..locations import locate
from ..spec import Cluster, Dataset, Input, RunSpec
from .options import DISPLAY, RUN_GROUPS, explicit_settings, guarded, spec_options, split_params
from .sections import Command, option
from .ui import finish, make_ui

RETRY_FAILED = option(
    "--retry-failed",
    section="Input",
    is_flag=True,
    help="Fetch only the URLs whose latest row in OUT/manifest.jsonl failed (then LIST is not given).",
)


@click.command(cls=Command)
@click.argument("list_file", metavar="LIST", required=False)
@spec_options(Input, *RUN_GROUPS, Dataset, Cluster, extra=[RETRY_FAILED, *DISPLAY])
@guarded
def fetch(list_file: str | None, *, retry_failed: bool, **params: Any) -> None:
    """Download every URL in LIST (a file, or - for stdin) into OUT.

    LIST is plain text (one URL per line; blank lines and # comments skipped), CSV, TSV, JSON Lines or
    Parquet, each also gzip'd; the format comes from the file name (or --input-format). Files are written as
    NAME.part and renamed when complete; OUT/manifest.jsonl gets one row per input row and OUT/stats.json
    the totals. Rerunning the same command skips what is already complete.

    \b
    Examples:
      downloader fetch urls.txt -o out/
      downloader fetch urls.txt -o out/ -c 128 --backend threads --timeout 30
      downloader fetch - -o out/ -q < urls.txt
      downloader fetch images.csv.gz --url-column image_url --keep-columns caption,id --name-column id
      downloader fetch --retry-failed -o out/          # only what failed last time
    """
    from ..app.run import fetch_list
    from ..app.run import retry_failed as retry

    spec = RunSpec.from_options(**split_params(params))
    ui = make_ui(params["quiet"], params["progress"], params["progress_interval"])
    if retry_failed:
        if list_file is not None:
            raise click.UsageError("give LIST or --retry-failed (which reads OUT/manifest.jsonl), not both")
        stats = retry(spec, ui, explicit_settings())
    else:
        if list_file is None:
            raise click.UsageError("Missing argument 'LIST' (a file of URLs, or - for stdin).")
        if list_file != "-":
            list_file = str(locate(list_file, "list"))  # s3:// kept, file:// read locally, others refused
        if list_file != "-" and "://" not in list_file and not os.path.isfile(list_file):
            raise click.UsageError(f"no such list file: {list_file}")
        stats = fetch_list(spec, list_file, ui, explicit_settings())
    finish(stats, params["quiet"], spec.output.out)
