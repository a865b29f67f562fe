"""The command line: ``downloader fetch``, ``demo``, ``failures``, ``report``, ``bench`` and ``origin``.
Commands only: the options come from the run spec (``cli.options``), the runs from the application layer
(``app``).

The only package that prints or exits; exit codes are the error classes' own (``errors.ExitCode``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..backends import backend_names
from ..errors import ExitCode
from ..locations import local_path
from ..spec import (
    Cluster,
    Content,
    Dataset,
    Images,
    Input,
    Limits,
    Network,
    Output,
    Performance,
    Retries,
    RunSpec,
    Timeouts,
)
from ..version import __version__
from .options import DISPLAY, SUMMARY_LOG, explicit_settings, guarded, spec_options, split_params
from .sections import Group, option
from .state import state, status

if TYPE_CHECKING:  # the application loads only when a command runs: --help stays fast
    from ..app.progress import Reporter
    from ..app.run import Ui
    from ..models import Stats

RUN_GROUPS = (Output, Network, Timeouts, Retries, Content, Images, Limits, Performance)


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


def make_ui(quiet: bool, progress: str = "auto", progress_interval: float = 10.0) -> Ui:
    """How a run shows itself: the progress (a bar, status lines or nothing) and the interrupt notices."""
    from ..app.progress import reporter_for
    from ..app.run import Ui

    def reporter(total: int | None) -> Reporter:
        mode: Any = progress
        return reporter_for(sys.stderr, quiet, total, mode, progress_interval)

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


main.add_command(status)
main.add_command(state)

RETRY_FAILED = option(
    "--retry-failed",
    section="Input",
    is_flag=True,
    help="Fetch only the URLs whose latest row in OUT/manifest.jsonl failed (then LIST is not given).",
)


@main.command()
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
            list_file = str(local_path(list_file, "list"))  # a URL is refused, file:// read locally
        if list_file != "-" and not os.path.isfile(list_file):
            raise click.UsageError(f"no such list file: {list_file}")
        stats = fetch_list(spec, list_file, ui, explicit_settings())
    finish(stats, params["quiet"], spec.output.out)


DEMO_OUT = {
    "default": None,
    "show_default": False,
    "help": "Output folder [default: a temporary folder, kept for the dataset, removed after --files].",
}
DEMO_OWN = [
    option(
        "-n",
        "--count",
        section="Demo",
        type=click.IntRange(min=1),
        default=300,
        show_default=True,
        help="How many URLs to download.",
    ),
    option(
        "--latency",
        section="Demo",
        type=click.FloatRange(min=0),
        default=0.02,
        show_default=True,
        help="Simulated server latency per response, in seconds.",
    ),
    option(
        "--files",
        section="Demo",
        is_flag=True,
        help="Plain files and throughput only: no dataset, no image stage, no report.",
    ),
]


@main.command()
@spec_options(*RUN_GROUPS, extra=[*DEMO_OWN, *DISPLAY], out=DEMO_OUT)
@guarded
def demo(count: int, latency: float, files: bool, **params: Any) -> None:
    """Build a small WebDataset of COUNT resized images from an embedded local origin, and its report.

    The origin serves the images in fixtures/ on 127.0.0.1 (a random port) with a little latency, so no
    internet is needed. The dataset (64x64 jpg, 100 a shard; any image or output option you give wins)
    and OUT/report.html stay in OUT, a new temporary folder without -o; the last lines say where. With
    --files: plain files into a temporary folder removed afterwards, and the throughput.

    \b
    Examples:
      downloader demo
      downloader demo --files -n 2000 -c 128 --backend threads --latency 0.05
    """
    import tempfile

    from ..app.run import demo as run_demo

    settings = split_params(params)
    if not files:
        from ..demo import dataset_demo

        ui = make_ui(params["quiet"], params["progress"], params["progress_interval"])
        made = dataset_demo(settings, explicit_settings(), count, latency, ui)
        finish(made.stats, params["quiet"], made.out, made.closing())  # exits
        return
    with tempfile.TemporaryDirectory(prefix="downloader-demo-") as tmp:
        settings["out"] = settings["out"] or Path(tmp)
        ui = make_ui(params["quiet"], params["progress"], params["progress_interval"])
        stats = run_demo(RunSpec.from_options(**settings), count, latency, ui)
    finish(stats, params["quiet"], None if settings["out"] == Path(tmp) else settings["out"])


@main.command()
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, exists=True, path_type=Path))
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

    from ..manifest import failed_rows
    from ..shards import run_manifests

    manifests = run_manifests(out)
    if not manifests:
        raise click.UsageError(f"no manifest in {out}: is it a run's output folder?")
    for row in failed_rows(manifests, out):
        if kinds and row.get("kind") not in kinds:
            continue
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            click.echo(f"{row['url']}\t{row.get('kind')}\t{row.get('error') or ''}")


@main.command()
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False, exists=True, path_type=Path))
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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8080, show_default=True)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help="Seconds before each answer.",
)
@click.option("--loop", type=click.Choice(["auto", "uvloop", "asyncio"]), default="auto")
@click.option("--debug", is_flag=True)
@guarded
def origin(host: str, port: int, latency: float, loop: str, debug: bool) -> None:
    """Serve the fixture images on HOST:PORT until interrupted (a local origin for trials).

    GET /img/<anything>/<name> answers with the fixture <name> (image-00.jpg ... from fixtures/); the
    <anything> part lets a list hold many distinct URLs of the same few images. Any other path is a 404.

    \b
    Examples:
      downloader origin --port 8080 &
      seq 100 | sed 's|.*|http://127.0.0.1:8080/img/&/image-00.jpg|' > urls.txt
      downloader fetch urls.txt -o out/
    """
    from ..loop import run_loop
    from ..origin import Origin, serve_forever

    served = Origin(latency=latency, host=host, port=port)
    names = ", ".join(sorted(served.images)[:3]) + (", …" if len(served.images) > 3 else "")
    click.echo(
        f"serving {len(served.images)} images ({names}) as http://{host}:{port}/img/<anything>/<name>",
        err=True,
    )
    run_loop(serve_forever(served), loop)


@main.command()
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
    from .. import bench as b

    a = BenchArgs(**options)
    if (a.list_file is None) != a.demo:
        raise click.UsageError("give either a LIST or --demo")
    _check_plot(b, a.plot_path)
    concurrencies, repeat = b.sweep(a.full, a.concurrencies, a.repeat)
    names, levels = b.parse_backends(a.backends), b.parse_concurrencies(concurrencies)
    extra, kinds = _bench_images(b, a.executors, a.fetch_args)
    trials = b.plan(names, levels, repeat, kinds)
    where = _announce(len(trials), a.demo, a.count, a.latency, a.list_file)
    runs = _bench_runs(b, a, trials, extra)
    settings: dict[str, Any] = {"list": where, "backends": names, "concurrencies": levels, "repeat": repeat}
    images = {"image_executors": kinds, "fetch_args": list(extra)} if a.executors or extra else {}
    _bench_outputs(b, runs, settings | images, a)
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


def _bench_images(
    b: Any, executors: str | None, fetch_args: str
) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """The extra fetch options and the image executors to compare (``(None,)``: not compared)."""
    extra = b.parse_fetch_args(fetch_args)
    if executors is None:
        return extra, (None,)
    if not extra:
        raise click.UsageError(
            "--image-executors compares nothing without image options: add them with --fetch-args, "
            'e.g. --fetch-args "--image-size 256 --resize-mode border --encode-format jpg"'
        )
    return extra, b.parse_executors(executors)


def _check_plot(b: Any, plot_path: Path | None) -> None:
    if plot_path is not None:
        try:
            b.check_plot()
        except ImportError as exc:
            raise click.UsageError(str(exc)) from None


def _bench_runs(b: Any, a: BenchArgs, trials: Any, extra: tuple[str, ...]) -> list[Any]:
    """Every trial, in turn, each reported as it ends. SIGTERM unwinds like Ctrl-C, so neither the
    origin nor a fetch child outlives the bench."""
    import signal
    import threading

    runs = []
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        with b.list_source(a.list_file, a.count, a.latency) as urls:
            env = b.local_env() if a.demo else None
            for i, run in enumerate(b.run_all(urls, trials, a.run_timeout or None, env, extra), 1):
                runs.append(run)
                click.echo(b.format_run(i, len(trials), run), err=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return runs


def _bench_outputs(b: Any, runs: list[Any], settings: dict[str, Any], a: BenchArgs) -> None:
    """The table of medians on stdout; the JSON, the chart and the page when asked for."""
    rows = b.summarise(runs)
    click.echo(b.format_table(rows))
    if a.json_path is not None:
        b.write_json(a.json_path, runs, rows, settings | {"python": sys.version, "cpus": os.cpu_count()})
    if a.plot_path is not None:
        b.plot(rows, a.plot_path, f"{settings['list']}; median of {settings['repeat']}")
    if a.html_path is not None:
        b.write_html(a.html_path, rows, settings)
