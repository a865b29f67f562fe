"""The command line: ``downloader fetch``, ``demo``, ``bench`` and ``origin``.

The only module that prints or exits. Exit codes: 0 all ok, 1 some URLs failed, 2 usage error,
3 run aborted, 130 interrupted.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .backends import backend_names
from .config import DEFAULT_USER_AGENT, Config, parse_header, parse_min_speed, parse_size

if TYPE_CHECKING:  # asyncio and the engine load only when a command runs: --help stays fast
    import asyncio

    from .engine import Engine
    from .models import Job, Stats

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# -- running a coroutine on the chosen loop --------------------------------------------------------------


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop for ``uvloop`` (and for ``auto`` when installed); None means asyncio's default."""
    if name == "asyncio" or (name == "auto" and sys.platform == "win32"):
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise click.UsageError("uvloop is not installed: pip install 'downloader[fast]'") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


YOUNG_THRESHOLD = 20_000
"""Net container allocations between two young-generation collections during a run (CPython: 700)."""


def run_loop(coro: Coroutine[Any, Any, T], loop: str) -> T:
    import asyncio

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(collector_tuned(coro))


async def collector_tuned(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` with the cyclic garbage collector tuned for many short-lived requests.

    A request allocates hundreds of objects that reference counting frees, yet CPython's collector
    visits the young ones every 700 net allocations and the whole heap (every module, aiohttp's
    classes) now and then: 630 ms of a 10 s run of 50,000 URLs, timed with ``gc.callbacks``. So the
    objects alive at the start are frozen out of collections and young collections come every 20,000
    net allocations: that run collects once (0 ms). Collection stays automatic, so failures, whose
    tracebacks make cycles, cannot pile garbage up: 50,000 404s spend 542 ms collecting (732 ms
    before) at a 50 MB peak, where a timer that collected once a second instead spent 1.5 s and
    reached 90 MB."""
    import gc

    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, threshold[1], threshold[2])
    try:
        return await coro
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def run_engine(
    engine: Engine, jobs: Iterable[Job], names: tuple[str, ...] = ("SIGINT", "SIGTERM")
) -> Stats:
    """Run with Ctrl-C/SIGTERM handled: the first stops cleanly, a second exits at once."""
    import asyncio
    import signal
    import threading

    loop = asyncio.get_running_loop()
    signals = [getattr(signal, name) for name in names]
    installed = []

    def on_signal() -> None:
        if engine.stats.interrupted:
            click.echo("interrupted again: exiting now", err=True)
            os._exit(EXIT_INTERRUPTED)
        click.echo("\ninterrupted: finishing cleanly (Ctrl-C again to quit at once)", err=True)
        engine.stop()

    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
                pass
    try:
        return await engine.run(jobs)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def exit_code(stats: Stats) -> int:
    if stats.interrupted:
        return EXIT_INTERRUPTED
    if stats.aborted:
        return EXIT_ABORTED
    return EXIT_OK if stats.all_ok else EXIT_FAILED


def guarded(func: F) -> F:
    """Errors become one line and an exit code; ``--debug`` shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import RunAborted

        debug = bool(kwargs.get("debug"))
        logging.basicConfig(
            level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(message)s"
        )
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ValueError as exc:
            if debug:
                raise
            raise click.UsageError(str(exc)) from None
        except RunAborted as exc:
            if debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ABORTED)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if debug:
                raise
            click.echo(f"error: {type(exc).__name__}: {exc} (--debug shows where)", err=True)
            sys.exit(EXIT_ABORTED)

    return wrapper  # type: ignore[return-value]


# -- options ----------------------------------------------------------------------------------------------


def _parse(parser: Callable[[str], T]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, tuple):
                return tuple(parser(v) for v in value)
            return parser(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def run_options(func: F) -> F:
    """Options every command that downloads shares (names and defaults: DESIGN.md's flag table)."""
    options = [
        click.option(
            "-o",
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("downloads"),
            show_default=True,
            help="Output folder.",
        ),
        click.option(
            "-c",
            "--concurrency",
            type=click.IntRange(min=1),
            default=64,
            show_default=True,
            help="Downloads in flight.",
        ),
        click.option(
            "--backend",
            type=click.Choice(backend_names()),
            default="aiohttp",
            show_default=True,
            help="Download strategy.",
        ),
        click.option(
            "--connect-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=10.0,
            show_default=True,
            help="Seconds to connect.",
        ),
        click.option(
            "--read-timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=30.0,
            show_default=True,
            help="Seconds of silence allowed within a body.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=120.0,
            show_default=True,
            help="Seconds for one attempt, whole.",
        ),
        click.option(
            "--deadline",
            type=click.FloatRange(min=0, min_open=True),
            default=600.0,
            show_default=True,
            help="Seconds for one URL, all attempts and waits.",
        ),
        click.option(
            "--retries",
            type=click.IntRange(min=0),
            default=3,
            show_default=True,
            help="Retries after a retryable failure (connection, timeout, 408, 429, 5xx).",
        ),
        click.option(
            "--backoff",
            type=click.FloatRange(min=0),
            default=0.5,
            show_default=True,
            help="Base of the exponential backoff (seconds, jittered).",
        ),
        click.option(
            "--retry-after-max",
            type=click.FloatRange(min=0),
            default=120.0,
            show_default=True,
            help="A longer Retry-After fails the URL as rate_limited.",
        ),
        click.option(
            "--min-speed",
            default="1024:30",
            show_default=True,
            callback=_parse(parse_min_speed),
            help="BYTES:SECONDS; slower bodies fail as too_slow (0: off).",
        ),
        click.option(
            "--max-size",
            default="100MB",
            show_default=True,
            callback=_parse(parse_size),
            help="Larger bodies fail as too_large (0: no limit).",
        ),
        click.option("--max-redirects", type=click.IntRange(min=0), default=10, show_default=True),
        click.option(
            "--per-host",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Connections per host:port (0: no cap).",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0),
            default=0.0,
            show_default=True,
            help="Requests per second, overall (0: no limit).",
        ),
        click.option(
            "--rate-per-host",
            type=click.FloatRange(min=0),
            default=0.0,
            show_default=True,
            help="Requests per second to each host:port (0: no limit).",
        ),
        click.option(
            "--lookahead",
            type=click.IntRange(min=0),
            default=1024,
            show_default=True,
            help="Rows read ahead of the free slots, so one slow host cannot hold every slot.",
        ),
        click.option(
            "--host-down-after",
            type=click.IntRange(min=0),
            default=5,
            show_default=True,
            help="Consecutive connect failures before a host's other URLs fail fast (0: never).",
        ),
        click.option(
            "--accept",
            type=click.Choice(["images", "any"]),
            default="images",
            show_default=True,
            help="images: the first bytes must be an image; any: keep every body.",
        ),
        click.option("--fix-ext", is_flag=True, help="Give each file the extension of its real type."),
        click.option(
            "--names",
            type=click.Choice(["hashed", "plain"]),
            default="hashed",
            show_default=True,
            help="hashed: name.<url-digest>.ext, never colliding; plain: the URL's basename.",
        ),
        click.option(
            "--layout",
            type=click.Choice(["flat", "host", "shards"]),
            default="flat",
            show_default=True,
            help="flat: OUT/NAME; host: OUT/HOST/NAME; shards: OUT/00000/000000123.jpg, 10,000 a folder.",
        ),
        click.option("--overwrite", is_flag=True, help="Download again what an earlier run completed."),
        click.option("--user-agent", default=DEFAULT_USER_AGENT, show_default=True),
        click.option(
            "-H",
            "--header",
            "headers",
            multiple=True,
            callback=_parse(parse_header),
            help="Extra request header 'Name: value' (repeatable).",
        ),
        click.option("--proxy", default=None, help="Proxy URL (else HTTP(S)_PROXY from the environment)."),
        click.option("--insecure", is_flag=True, help="Do not verify TLS certificates."),
        click.option(
            "--ca-bundle",
            type=click.Path(dir_okay=False, exists=True),
            default=None,
            help="PEM file of trusted certificate authorities.",
        ),
        click.option(
            "--loop",
            type=click.Choice(["auto", "uvloop", "asyncio"]),
            default="auto",
            show_default=True,
            help="Event loop (auto: uvloop when installed).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary; only errors."),
        click.option("--debug", is_flag=True, help="Show tracebacks and debug logs."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


_NOT_CONFIG = {"quiet", "debug", "loop", "list_file", "count", "latency", "procs"}


def build_config(params: dict[str, Any]) -> Config:
    return Config(**{k: v for k, v in params.items() if k not in _NOT_CONFIG})


def finish(stats: Stats, quiet: bool) -> None:
    from .report import summary

    if not quiet:
        click.echo(summary(stats))
    sys.exit(exit_code(stats))


# -- commands ---------------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="downloader")
def main() -> None:
    """Download large lists of image URLs concurrently, fast, politely and without losing anything.

    \b
    Examples:
      downloader demo                                   # a local origin, a few hundred images
      downloader fetch urls.txt -o out/                 # one URL per line
      cat urls.txt | downloader fetch - -o out/ -c 128 --backend threads
      downloader bench --demo                           # compare the backends
    """


@main.command()
@click.argument("list_file", metavar="LIST", required=False)
@click.option(
    "--input-format",
    type=click.Choice(["txt", "csv", "tsv", "jsonl", "parquet"]),
    default=None,
    help="Format of LIST (default: from its name; stdin is txt).",
)
@click.option("--url-column", default="url", show_default=True, help="CSV/TSV/JSONL/Parquet column of URLs.")
@click.option(
    "--keep-columns", default="", help="Columns to carry into the manifest, comma-separated (* for all)."
)
@click.option("--name-column", default=None, help="Column whose value names each file (sanitised).")
@click.option(
    "--procs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes, each an event loop over a shard of the list; -c is split among them "
    "[default: the usable CPUs, fewer for lists under 10,000 rows per process, 1 for stdin].",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Fetch only the URLs whose latest row in OUT/manifest.jsonl failed (then LIST is not given).",
)
@run_options
@guarded
def fetch(
    list_file: str | None,
    *,
    retry_failed: bool,
    input_format: str | None,
    url_column: str,
    keep_columns: str,
    name_column: str | None,
    **params: Any,
) -> None:
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
    config = build_config(params)
    if retry_failed:
        if list_file is not None:
            raise click.UsageError("give LIST or --retry-failed (which reads OUT/manifest.jsonl), not both")
        stats = _retry_failed(config, params)
    else:
        if list_file is None:
            raise click.UsageError("Missing argument 'LIST' (a file of URLs, or - for stdin).")
        if list_file != "-" and not os.path.isfile(list_file):
            raise click.UsageError(f"no such list file: {list_file}")
        columns = {
            "url_column": url_column,
            "name_column": name_column,
            "keep_columns": tuple(c.strip() for c in keep_columns.split(",") if c.strip()),
        }
        stats = _fetch_list(config, params, list_file, input_format, columns)
    finish(stats, params["quiet"])


def _fetch_list(
    config: Config, params: dict[str, Any], source: str, input_format: str | None, columns: dict[str, Any]
) -> Stats:
    from .engine import Engine
    from .inputs import count_rows, jobs_from_source
    from .procs import default_procs, run_sharded
    from .report import reporter_for

    reading = {"input_format": input_format, **columns}
    jobs = jobs_from_source(source, config.naming, **reading)
    first = next(jobs, None)  # a missing column or an unreadable file is a usage error, before any work
    rows = count_rows(source, input_format)
    bar = reporter_for(sys.stderr, params["quiet"], rows)
    procs = params["procs"] or default_procs(rows, source)
    if procs > 1:
        jobs.close()
        runner = functools.partial(_worker_runner, loop=params["loop"])
        return run_sharded(config, source, reading, procs=procs, runner=runner, bar=bar)
    engine = Engine(config, reporter=bar)
    try:
        return run_loop(run_engine(engine, itertools.chain([first] if first else [], jobs)), params["loop"])
    finally:
        jobs.close()


def _worker_runner(engine: Engine, jobs: Iterable[Job], *, loop: str) -> Stats:
    """A --procs worker's run: its parent forwards Ctrl-C as SIGTERM, so only SIGTERM is handled here."""
    return run_loop(run_engine(engine, jobs, ("SIGTERM",)), loop)


def _retry_failed(config: Config, params: dict[str, Any]) -> Stats:
    from .engine import MANIFEST, Engine
    from .report import reporter_for
    from .sources import jobs_from_manifest

    manifest = config.out / MANIFEST
    if not manifest.is_file():
        raise click.UsageError(f"--retry-failed: no manifest at {manifest}")
    engine = Engine(config, reporter=reporter_for(sys.stderr, params["quiet"]))
    jobs = jobs_from_manifest(manifest, config.out, config.naming)
    return run_loop(run_engine(engine, jobs), params["loop"])


@main.command()
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="How many URLs to download.",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help="Simulated server latency per response, in seconds.",
)
@run_options
@guarded
def demo(count: int, latency: float, **params: Any) -> None:
    """Download COUNT images from an embedded local origin and report throughput.

    The origin serves the images in fixtures/ on 127.0.0.1 (a random port) with a little latency, so no
    internet is needed. Without -o the files go to a temporary folder that is removed afterwards.

    \b
    Examples:
      downloader demo
      downloader demo -n 2000 -c 128 --backend threads --latency 0.05
    """
    import tempfile

    from .engine import Engine
    from .origin import Origin
    from .report import reporter_for
    from .sources import jobs_from_urls

    keep = params["out"] != Path("downloads")
    with tempfile.TemporaryDirectory(prefix="downloader-demo-") as tmp:
        params["out"] = params["out"] if keep else Path(tmp)
        config = build_config(params)

        async def go() -> Stats:
            async with Origin(latency=latency) as origin:
                if not params["quiet"]:
                    click.echo(
                        f"origin: {origin.base} serving {len(origin.images)} images, "
                        f"{latency * 1000:.0f} ms latency; {count} URLs → {config.out}"
                    )
                engine = Engine(config, reporter=reporter_for(sys.stderr, params["quiet"], count))
                return await run_engine(engine, jobs_from_urls(origin.urls(count), config.naming))

        stats = run_loop(go(), params["loop"])
    finish(stats, params["quiet"])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8080, show_default=True)
@click.option("--latency", type=click.FloatRange(min=0), default=0.02, show_default=True)
@click.option("--loop", type=click.Choice(["auto", "uvloop", "asyncio"]), default="auto")
@click.option("--debug", is_flag=True)
@guarded
def origin(host: str, port: int, latency: float, loop: str, debug: bool) -> None:
    """Serve the fixture images on HOST:PORT until interrupted (a local origin for trials).

    Any path /img/<anything>/<fixture name> serves that fixture.
    """
    from .origin import Origin, serve_forever

    served = Origin(latency=latency, host=host, port=port)
    click.echo(f"serving {len(served.images)} images on http://{host}:{port}/img/<n>/<name>", err=True)
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
    default="8,32,128",
    show_default=True,
    help="Comma-separated concurrencies to try.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Runs per combination; the table shows medians.",
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
    "--run-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Kill a run after this many seconds (0: never).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@guarded
def bench(
    *,
    list_file: Path | None,
    demo: bool,
    count: int,
    latency: float,
    backends: str,
    concurrencies: str,
    repeat: int,
    json_path: Path | None,
    plot_path: Path | None,
    run_timeout: float,
    debug: bool,
) -> None:
    """Compare backends and concurrencies on LIST (or --demo): files/s, MB/s, latency, CPU, memory.

    Every combination runs `downloader fetch` in a fresh process into a fresh temporary folder (removed
    afterwards), round-robin over the repeats, so CPU time and peak memory are the kernel's figures for
    that run alone. Prints a table of medians, each row's files/s relative to the best; failures are
    totals over the repeats. Exit 0 when every run downloaded every URL, else 1.

    \b
    Examples:
      downloader bench --demo
      downloader bench --demo -n 500 --backends aiohttp,threads -c 16,64 --repeat 1
      downloader bench urls.txt --repeat 5 --json bench.json --plot bench.png
    """
    import signal
    import threading

    from . import bench as b

    if (list_file is None) != demo:
        raise click.UsageError("give either a LIST or --demo")
    if plot_path is not None:
        try:
            b.check_plot()
        except ImportError as exc:
            raise click.UsageError(str(exc)) from None
    names, levels = b.parse_backends(backends), b.parse_concurrencies(concurrencies)
    trials = b.plan(names, levels, repeat)
    where = f"{count} URLs, embedded origin, {latency * 1000:g} ms latency" if demo else str(list_file)
    click.echo(f"bench: {len(trials)} runs over {where}", err=True)
    runs = []
    # SIGTERM unwinds like Ctrl-C, so neither the origin nor a fetch child outlives the bench
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        with b.list_source(list_file, count, latency) as urls:
            env = b.local_env() if demo else None
            for i, run in enumerate(b.run_all(urls, trials, run_timeout or None, env), 1):
                runs.append(run)
                click.echo(b.format_run(i, len(trials), run), err=True)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    rows = b.summarise(runs)
    click.echo(b.format_table(rows))
    if json_path is not None:
        settings = {"list": where, "backends": names, "concurrencies": levels, "repeat": repeat}
        b.write_json(json_path, runs, rows, settings | {"python": sys.version, "cpus": os.cpu_count()})
    if plot_path is not None:
        b.plot(rows, plot_path, f"{where}; median of {repeat}")
    sys.exit(EXIT_OK if all(r.completed for r in runs) else EXIT_FAILED)
