"""``downloader bench``: backends, concurrencies (and image executors) compared, each run a fresh
``downloader fetch`` process; the work is ``downloader.trials``'s, loaded only when the command runs (it
starts the demo origin), and this module prints what it returns."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..backends import backend_names
from ..errors import ExitCode
from .options import guarded
from .sections import Command

if TYPE_CHECKING:  # the bench loads only when the command runs: --help and fetch stay fast
    from ..trials import Run, Trial


@click.command(cls=Command)
@click.argument(
    "list_file",
    metavar="[LIST]",
    required=False,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--demo", is_flag=True, help="Bench against the embedded origin (in a process of its own).")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="With --demo: how many URLs.",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help="With --demo: simulated server latency per response, in seconds.",
)
@click.option(
    "--backends",
    default=",".join(backend_names()),
    show_default=True,
    help="Comma-separated backends to compare.",
)
@click.option(
    "-c",
    "--concurrency",
    "concurrencies",
    default=None,
    help="Comma-separated concurrencies to try [default: 32; with --full: 8,32,128].",
)
@click.option(
    "--image-executors",
    "executors",
    default=None,
    help="Comma-separated image executors to compare (process, thread, inline), on the image options "
    "that --fetch-args gives [default: not compared].",
)
@click.option(
    "--fetch-args",
    default="",
    help="Further options for every run's fetch, quoted as one argument "
    '("--image-size 256 --encode-format jpg").',
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=None,
    help="Runs per combination; the table shows medians [default: 1; with --full: 3].",
)
@click.option(
    "--full",
    is_flag=True,
    help="The whole sweep: -c 8,32,128 and --repeat 3 (45 runs over five backends; minutes, not seconds).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every run and the medians to this JSON file.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Draw files/s against -c as a PNG (needs downloader[plot]).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the comparison as a self-contained HTML page (charts and table).",
)
@click.option(
    "--run-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Kill a run after this many seconds (0: never).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@guarded
def bench(**options: Any) -> None:
    """Compare backends and concurrencies on LIST (or --demo): files/s, MB/s, latency, CPU, memory.

    Every combination runs `downloader fetch` in a fresh process into a fresh temporary folder (removed
    afterwards), round-robin over the repeats, so CPU time and peak memory are the kernel's figures for
    that run alone. Prints a table of medians, each row's files/s relative to the best; failures are
    totals over the repeats. Exit 0 when every run downloaded every URL, else 1.

    \b
    Examples:
      downloader bench --demo                          # each backend once at -c 32
      downloader bench --demo --full                   # -c 8,32,128, three repeats
      downloader bench --demo -n 500 --backends aiohttp,threads -c 16,64 --repeat 1
      downloader bench urls.txt --repeat 5 --json bench.json --plot bench.png --html bench.html
      downloader bench --demo -n 200 --backends aiohttp -c 32 --image-executors process,thread,inline \\
          --fetch-args "--image-size 256 --resize-mode border --encode-format jpg"
    """
    from ..trials import parse_backends, parse_concurrencies, plan, sweep

    a = BenchArgs(**options)
    if (a.list_file is None) != a.demo:
        raise click.UsageError("give either a LIST or --demo")
    _check_plot(a.plot_path)
    concurrencies, repeat = sweep(a.full, a.concurrencies, a.repeat)
    names = parse_backends(a.backends)
    levels = parse_concurrencies(concurrencies)
    extra, kinds = _bench_images(a.executors, a.fetch_args)
    trials = plan(names, levels, repeat, kinds)
    where = _announce(len(trials), a.demo, a.count, a.latency, a.list_file)
    runs = _bench_runs(a, trials, extra)
    settings: dict[str, object] = {
        "list": where,
        "backends": names,
        "concurrencies": levels,
        "repeat": repeat,
    }
    images = {"image_executors": kinds, "fetch_args": list(extra)} if a.executors or extra else {}
    _bench_outputs(runs, settings | images, a)
    sys.exit(ExitCode.OK if all(r.completed for r in runs) else ExitCode.FAILED)


@dataclass(frozen=True)
class BenchArgs:
    """The bench command's options, as click hands them over."""

    list_file: Path | None
    demo: bool
    count: int
    latency: float
    backends: str
    concurrencies: str | None
    executors: str | None
    fetch_args: str
    repeat: int | None
    full: bool
    json_path: Path | None
    plot_path: Path | None
    html_path: Path | None
    run_timeout: float
    debug: bool


def _announce(runs: int, demo: bool, count: int, latency: float, list_file: Path | None) -> str:
    """Say what the bench is about to do; return the list's description for the outputs."""
    where = f"{count} URLs, embedded origin, {latency * 1000:g} ms latency" if demo else str(list_file)
    click.echo(f"bench: {runs} runs over {where}", err=True)
    return where


def _bench_images(executors: str | None, fetch_args: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """The extra fetch options and the image executors to compare (``(None,)``: not compared)."""
    from ..trials import parse_executors, parse_fetch_args

    extra = parse_fetch_args(fetch_args)
    if executors is None:
        return extra, (None,)
    if not extra:
        raise click.UsageError(
            "--image-executors compares nothing without image options: add them with --fetch-args, "
            'e.g. --fetch-args "--image-size 256 --resize-mode border --encode-format jpg"'
        )
    return extra, parse_executors(executors)


def _check_plot(plot_path: Path | None) -> None:
    from ..trials import check_plot

    if plot_path is not None:
        try:
            check_plot()
        except ImportError as exc:
            raise click.UsageError(str(exc)) from None


def _bench_runs(a: BenchArgs, trials: Sequence[Trial], extra: tuple[str, ...]) -> list[Run]:
    """Every trial, in turn, each reported as it ends. SIGTERM unwinds like Ctrl-C, so neither the
    origin nor a fetch child outlives the bench."""
    import signal
    import threading

    from ..trials import format_run, list_source, local_env, run_all

    runs = []
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        with list_source(a.list_file, a.count, a.latency) as urls:
            env = local_env() if a.demo else None
            for i, run in enumerate(run_all(urls, trials, a.run_timeout or None, env, extra), 1):
                runs.append(run)
                click.echo(format_run(i, len(trials), run), err=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return runs


def _bench_outputs(runs: list[Run], settings: dict[str, object], a: BenchArgs) -> None:
    """The table of medians on stdout; the JSON, the chart and the page when asked for."""
    from ..trials import format_table, plot, summarise, write_html, write_json

    rows = summarise(runs)
    click.echo(format_table(rows))
    if a.json_path is not None:
        write_json(a.json_path, runs, rows, settings | {"python": sys.version, "cpus": os.cpu_count()})
    if a.plot_path is not None:
        plot(rows, a.plot_path, f"{settings['list']}; median of {settings['repeat']}")
    if a.html_path is not None:
        write_html(a.html_path, rows, settings)
