"""The command line: ``downloader fetch``, ``demo``, ``origin``, ``failures``, ``report``, ``bench``,
``status`` and ``state``. This module is the group; each command lives in a module of its own (``fetch``,
``demo``, ``report``, ``bench``, ``state``), its options from the run spec (``cli.options``), its runs
from the application layer (``app``).

The only package that prints or exits; exit codes are the error classes' own (``errors.ExitCode``).
"""

from __future__ import annotations

import click

from ..version import __version__
from . import bench, demo, fetch, report, state  # the modules: a command's name is its module's
from .sections import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="downloader")
def main() -> None:
    """Download large lists of image URLs concurrently, fast, politely and without losing anything.

    \b
    Examples:
      downloader demo                                   # a WebDataset of resized images, its report
      downloader fetch urls.txt -o out/                 # one URL per line
      cat urls.txt | downloader fetch - -o out/ -c 128 --backend threads
      downloader fetch urls.parquet -o ds/ --output-format webdataset --dask local:2
      downloader status ds/                             # shards done, running, left
      downloader bench --demo                           # compare the backends
    """


main.add_command(fetch.fetch)
main.add_command(demo.demo)
main.add_command(demo.origin)
main.add_command(report.report)
main.add_command(report.failures)
main.add_command(bench.bench)
main.add_command(state.status)
main.add_command(state.state)
