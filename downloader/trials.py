"""Benchmarks: one URL list over several backends and concurrencies, every run in a subprocess of its own.

A child per run, because then every run starts cold (no pool or import warmed by an earlier run) and the
kernel accounts CPU time and peak memory per process (``os.wait4``), which timing inside one process cannot
separate. The demo origin runs in a child of its own for the same reason: its CPU time is never charged to
a measured run. With ``--image-executors`` the image strategies are a third axis: each run passes the same
image options (``--fetch-args``) and one ``--image-executor``; the CPU time then includes the image
worker processes (the kernel adds a reaped child's to its parent's), while the peak memory stays that of
the largest single process. Runs go round-robin (A B C A B C …) so a drift in machine load spreads over every
combination instead of landing on one. This module returns data and strings; only ``cli.bench`` prints.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import logging
import math
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .backends import backend_names
from .errors import RunAborted, UsageError
from .manifest import STATS
from .origin import Origin
from .report import page
from .report.svg import line_chart

if TYPE_CHECKING:
    from resource import struct_rusage

    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

PLOT_HINT = "--plot needs matplotlib: pip install 'downloader[plot]'"
_RSS_BYTES = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Trial:
    """One planned run."""

    repeat: int
    backend: str
    concurrency: int
    executor: str | None = None
    """The ``--image-executor`` of the run; None: the run does not choose one."""


@dataclass(frozen=True, slots=True)
class Run:
    """What one child measured. The stats fields are None when it left no stats.json (``error`` says why)."""

    backend: str
    concurrency: int
    repeat: int
    exit_code: int
    cpu_s: float
    peak_rss_mb: float
    sys_s: float = 0.0
    """The part of ``cpu_s`` spent in the kernel (sockets, files): where a backend's syscalls show."""
    executor: str | None = None
    ok: int = 0
    failures: int = 0
    wall_s: float | None = None
    files_per_s: float | None = None
    mb_per_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error: str | None = None

    @property
    def completed(self) -> bool:
        """Every URL downloaded and the child exited 0: the bar for the bench's own exit code 0."""
        return self.exit_code == 0 and self.failures == 0 and self.error is None


@dataclass(frozen=True, slots=True)
class Row:
    """One backend × concurrency: medians over its runs, with the files/s range to show the noise;
    ``failures`` and ``broken`` are totals, since a median would hide the one repeat that went wrong."""

    backend: str
    concurrency: int
    runs: int
    files_per_s: float | None
    files_per_s_min: float | None
    files_per_s_max: float | None
    mb_per_s: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cpu_s: float
    peak_rss_mb: float
    failures: int
    broken: int
    vs_best: float | None
    executor: str | None = None


# -- parsing the option lists ----------------------------------------------------------------------------


def parse_backends(text: str) -> tuple[str, ...]:
    """``aiohttp,threads`` → ``("aiohttp", "threads")``, each a registered backend."""
    names = _items(text)
    unknown = [n for n in names if n not in backend_names()]
    if unknown or not names:
        raise UsageError(f"unknown backend {', '.join(unknown) or text!r}; choose from {backend_names()}")
    return names


def parse_concurrencies(text: str) -> tuple[int, ...]:
    """``8,32,128`` → ``(8, 32, 128)``, each at least 1."""
    try:
        values = tuple(int(v) for v in _items(text))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UsageError(f"not a list of concurrencies: {text!r} (try 8,32,128)")
    return values


QUICK = ("32", 1)
"""The default sweep (concurrencies, repeats): each backend once at one concurrency, so the bench answers
in well under a minute on two cores; enough to rank the backends, not to draw curves."""
FULL = ("8,32,128", 3)
"""``--full``: three concurrencies, three repeats each (45 runs with five backends, several minutes)."""


def sweep(full: bool, concurrencies: str | None, repeat: int | None) -> tuple[str, int]:
    """The concurrencies and repeats to run: those given, else ``--full``'s or the quick default's."""
    text, times = FULL if full else QUICK
    return (concurrencies or text, repeat or times)


IMAGE_EXECUTORS = ("process", "thread", "inline")
_BENCH_SETS = frozenset(("-o", "--out", "-c", "--concurrency", "--backend", "--image-executor", "-q"))
"""Options each run gets from the bench itself, refused in ``--fetch-args``."""


def parse_executors(text: str) -> tuple[str, ...]:
    """``process,inline`` → ``("process", "inline")``, each an ``--image-executor``."""
    names = _items(text)
    unknown = [n for n in names if n not in IMAGE_EXECUTORS]
    if unknown or not names:
        raise UsageError(
            f"unknown image executor {', '.join(unknown) or text!r}; choose from {IMAGE_EXECUTORS}"
        )
    return names


def parse_fetch_args(text: str) -> tuple[str, ...]:
    """``'--image-size 256 --encode-format jpg'`` → its words, for every run's ``fetch``; the options the
    bench sets itself (output, concurrency, backend, image executor) are refused, not silently doubled."""
    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:
        raise UsageError(f"--fetch-args: {exc}") from None
    taken = sorted({w.partition("=")[0] for w in words} & _BENCH_SETS)
    if taken:
        raise UsageError(f"--fetch-args cannot set {', '.join(taken)}: the bench sets it for each run")
    return words


def _items(text: str) -> tuple[str, ...]:
    """Comma-separated, blanks dropped, duplicates dropped (a combination runs once per repeat)."""
    return tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))


# -- running -----------------------------------------------------------------------------------------------


def plan(
    backends: Sequence[str],
    concurrencies: Sequence[int],
    repeat: int,
    executors: Sequence[str | None] = (None,),
) -> list[Trial]:
    """Repeats outermost, so each combination's runs spread over the whole bench; within a repeat the
    backends (and image executors) run back to back at each concurrency, where they are compared."""
    return [
        Trial(r, b, c, e)
        for r in range(1, repeat + 1)
        for c in concurrencies
        for b in backends
        for e in executors
    ]


def run_all(
    list_file: Path,
    trials: Iterable[Trial],
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> Iterator[Run]:
    """Runs one by one, yielded as they finish so the caller can show progress; ``extra``: further
    ``fetch`` options for every run."""
    for trial in trials:
        yield run_one(list_file, trial, timeout, env, extra)


def run_one(
    list_file: Path,
    trial: Trial,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> Run:
    """``fetch`` LIST once in a fresh child into a fresh folder, measure it, then remove the folder."""
    work = Path(tempfile.mkdtemp(prefix="downloader-bench-"))
    try:
        out = work / "out"
        errors = work / "stderr.txt"
        with errors.open("wb") as err:
            argv = fetch_command(list_file, trial, out, extra)
            code, usage, timed_out = _spawn_and_reap(argv, err, timeout, env)
        cpu_s = usage.ru_utime + usage.ru_stime
        rss_mb = usage.ru_maxrss * _RSS_BYTES / 1e6
        base = Run(
            *(trial.backend, trial.concurrency, trial.repeat, code),
            cpu_s=round(cpu_s, 3),
            peak_rss_mb=round(rss_mb, 1),
            sys_s=round(usage.ru_stime, 3),
            executor=trial.executor,
        )
        problem = f"killed after {timeout:g} s" if timed_out else _problem(code, errors)
        return _with_stats(base, out / STATS, problem)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch_command(list_file: Path, trial: Trial, out: Path, extra: Sequence[str] = ()) -> list[str]:
    """The child's command line; ``--overwrite`` so no run is shortened by files an earlier one left."""
    executor = ("--image-executor", trial.executor) if trial.executor else ()
    return [
        *(sys.executable, "-m", "downloader", "fetch", str(list_file), "-o", str(out)),
        *("-c", str(trial.concurrency), "--backend", trial.backend, "-q", "--overwrite"),
        *executor,
        *extra,
    ]


def _spawn_and_reap(
    argv: list[str], err: IO[bytes], timeout: float | None, env: Mapping[str, str] | None
) -> tuple[int, struct_rusage, bool]:
    """Start ``argv`` and reap it with ``os.wait4``, which gives this child's own rusage (CPU, peak RSS);
    ``Popen.wait`` would throw it away. Past ``timeout`` the child is killed, by its pid."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = None if not timeout else time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, 0 if deadline is None else os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
                return proc.returncode, usage, timed_out
            if deadline is not None and time.monotonic() > deadline:
                proc.kill()
                timed_out = True
                deadline = None
            else:
                time.sleep(_POLL_S)
    finally:
        if proc.returncode is None:  # interrupted while waiting: do not leave the child behind
            proc.kill()
            proc.wait()


def _problem(code: int, stderr_file: Path) -> str | None:
    """Exit 0 and 1 are normal ends (1: some URLs failed, counted from stats.json); others are breakage."""
    if code in (0, 1):
        return None
    lines = stderr_file.read_text(errors="replace").strip().splitlines()
    return f"exit {code}" + (f": {lines[-1]}" if lines else "")


def _with_stats(base: Run, stats_file: Path, problem: str | None) -> Run:
    try:
        stats: dict[str, Any] = json.loads(stats_file.read_text())
    except (OSError, ValueError):
        return replace(base, error=problem or "no stats.json")
    latency = stats.get("latency_s") or {}
    return replace(
        base,
        ok=int(stats["ok"]),
        failures=int(stats["failed"]) + int(stats["invalid"]),
        wall_s=float(stats["wall_s"]),
        files_per_s=float(stats["files_per_s"]),
        mb_per_s=float(stats["mb_per_s"]),
        p50_ms=_ms(latency.get("p50")),
        p95_ms=_ms(latency.get("p95")),
        p99_ms=_ms(latency.get("p99")),
        error=problem or stats.get("aborted"),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


# -- the demo origin ---------------------------------------------------------------------------------------


def list_source(list_file: Path | None, count: int, latency: float) -> AbstractContextManager[Path]:
    """The given list as it is, or (without one) a demo origin's list for as long as the bench runs."""
    return contextlib.nullcontext(list_file) if list_file is not None else demo_list(count, latency)


@contextlib.contextmanager
def demo_list(count: int, latency: float, start_timeout: float = 15.0) -> Iterator[Path]:
    """Serve the fixtures from a child process and yield a list file of ``count`` URLs on it.

    The origin is stopped, by its pid, and the list removed on the way out, also after Ctrl-C.
    """
    with tempfile.TemporaryDirectory(prefix="downloader-bench-") as tmp:
        port = free_port()
        logfile = Path(tmp) / "origin.log"
        with logfile.open("wb") as err:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "downloader", "origin", "--host", "127.0.0.1"),
                    *("--port", str(port), "--latency", str(latency)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            urls = Origin(latency=latency, port=port).urls(count)
            wait_until_serving(proc, port, urls[0], logfile, start_timeout)
            listing = Path(tmp) / "urls.txt"
            listing.write_text("\n".join(urls) + "\n", encoding="utf-8")
            yield listing
        finally:
            _stop(proc)


def free_port() -> int:
    """A port the kernel just handed out, for the origin to bind a moment later; the small race is not
    retried, a clash shows as "did not start"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(proc: subprocess.Popen[bytes], port: int, url: str, log: Path, timeout: float) -> None:
    """Poll one image until it comes back 200, so the first measured run never meets a cold origin.

    ``http.client`` talks to 127.0.0.1 directly: no proxy from the environment can get in between.
    """
    path = urlsplit(url).path
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError, http.client.HTTPException):  # not listening yet: ask again
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        time.sleep(0.05)
    lines = log.read_text(errors="replace").strip().splitlines()
    raise RunAborted(f"the demo origin did not start on port {port}" + (f": {lines[-1]}" if lines else ""))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def local_env() -> dict[str, str]:
    """This environment with 127.0.0.1 exempt from proxies, so demo runs never leave the machine."""
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = ",".join(v for v in (env.get(name, ""), "127.0.0.1", "localhost") if v)
    return env


# -- summarising and showing -------------------------------------------------------------------------------


def summarise(runs: Sequence[Run]) -> list[Row]:
    """Medians per backend × image executor × concurrency (ordered by backend and executor as first seen,
    then concurrency), each row's files/s as a ratio to the best row's."""
    groups: dict[tuple[str, str | None, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.backend, run.executor, run.concurrency), []).append(run)
    order = list(dict.fromkeys((run.backend, run.executor) for run in runs))
    keys = sorted(groups, key=lambda k: (order.index(k[:2]), k[2]))
    rows = [replace(_row(b, c, groups[(b, e, c)]), executor=e) for b, e, c in keys]
    best = max((r.files_per_s for r in rows if r.files_per_s), default=None)
    return [
        replace(r, vs_best=r.files_per_s / best if best and r.files_per_s is not None else None) for r in rows
    ]


def _row(backend: str, concurrency: int, runs: list[Run]) -> Row:
    rates = [r.files_per_s for r in runs if r.files_per_s is not None]
    return Row(
        backend=backend,
        concurrency=concurrency,
        runs=len(runs),
        files_per_s=_median(r.files_per_s for r in runs),
        files_per_s_min=min(rates, default=None),
        files_per_s_max=max(rates, default=None),
        mb_per_s=_median(r.mb_per_s for r in runs),
        p50_ms=_median(r.p50_ms for r in runs),
        p95_ms=_median(r.p95_ms for r in runs),
        p99_ms=_median(r.p99_ms for r in runs),
        cpu_s=statistics.median(r.cpu_s for r in runs),
        peak_rss_mb=statistics.median(r.peak_rss_mb for r in runs),
        failures=sum(r.failures for r in runs),
        broken=sum(r.error is not None for r in runs),
        vs_best=None,
    )


def _median(values: Iterable[float | None]) -> float | None:
    """The median of the values a run measured; a broken run has none and is left out, not counted as 0."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


COLUMNS = (
    "backend", "-c", "files/s", "MB/s", "p50 ms", "p95 ms", "p99 ms", "CPU s", "peak RSS MB", "failures",
    "vs best",
)  # fmt: skip


def format_table(rows: Sequence[Row]) -> str:
    """A markdown table whose columns are also aligned, so it reads in a terminal and pastes into an issue.
    With image executors a column names each row's, and files/s are images/s."""
    images = any(r.executor for r in rows)
    head = ("backend", "images", "-c", "images/s", *COLUMNS[3:]) if images else COLUMNS
    cells = [head, *(_cells(r, images) for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(head))]

    def line(values: Sequence[str], left: int = 1) -> str:
        padded = (
            v.ljust(w) if i < left else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(head, left=len(head)), rule, *(line(c) for c in cells[1:])])


def _cells(row: Row, images: bool = False) -> tuple[str, ...]:
    failures = str(row.failures) + (f" ({row.broken} broken)" if row.broken else "")
    return (
        row.backend,
        *((row.executor or "–",) if images else ()),
        str(row.concurrency),
        _fmt(row.files_per_s, ".0f"),
        _fmt(row.mb_per_s, ".2f"),
        _fmt(row.p50_ms, ".1f"),
        _fmt(row.p95_ms, ".1f"),
        _fmt(row.p99_ms, ".1f"),
        _fmt(row.cpu_s, ".2f"),
        _fmt(row.peak_rss_mb, ".0f"),
        failures,
        _fmt(row.vs_best, ".2f") + ("×" if row.vs_best is not None else ""),
    )


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def format_run(index: int, total: int, run: Run) -> str:
    """One progress line per finished run."""
    what = f"{run.backend} {run.executor}" if run.executor else run.backend
    head = f"[{index}/{total}] {what} -c {run.concurrency} (repeat {run.repeat}): "
    if run.files_per_s is None:
        return head + f"broken: {run.error}"
    tail = f", {run.failures} failed" if run.failures else ""
    tail += f" ({run.error})" if run.error else ""
    return head + f"{run.files_per_s:.0f} files/s, CPU {run.cpu_s:.2f} s, {run.peak_rss_mb:.0f} MB{tail}"


def write_json(path: Path, runs: Sequence[Run], rows: Sequence[Row], settings: Mapping[str, object]) -> None:
    """Every raw run plus the medians, so a later look can recompute anything the table rounds away."""
    doc = {
        "settings": dict(settings),
        "runs": [asdict(r) for r in runs],
        "medians": [asdict(r) for r in rows],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def write_html(path: Path, rows: Sequence[Row], settings: Mapping[str, object]) -> None:
    """The comparison as a page like ``downloader report``'s: files/s and p95 latency against ``-c``
    (log-2 axis), one line per backend, then the table of medians and the settings."""
    levels = sorted({r.concurrency for r in rows})
    ticks = [(math.log2(c), str(c)) for c in levels]
    charts = [
        line_chart(title, _series(rows, field), "concurrency (downloads in flight, -c)", unit, x_ticks=ticks)
        for title, field, unit in (
            ("median files/s by backend", "files_per_s", "files/s"),
            ("median p95 latency by backend", "p95_ms", "p95 ms"),
        )
    ]
    table = format_table(rows).splitlines()
    head = [c.strip() for c in table[0].strip("|").split("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    sections = [
        page.section("Throughput and latency", *charts, id_="charts"),
        page.section("Medians", page.table(head, cells, numeric=range(2, len(head))), id_="medians"),
        page.section("Settings", page.table(("setting", "value"), _setting_rows(settings)), id_="settings"),
    ]
    path.write_text(page.document("downloader bench", sections), encoding="utf-8")


def _series(rows: Sequence[Row], field: str) -> list[tuple[str, list[tuple[float, float]]]]:
    """One line per backend (and image executor): (log2 of -c, the median) where the median exists."""
    lines: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        name = f"{r.backend}/{r.executor}" if r.executor else r.backend
        value = getattr(r, field)
        points = lines.setdefault(name, [])
        if value is not None:
            points.append((math.log2(r.concurrency), float(value)))
    return list(lines.items())


def _setting_rows(settings: Mapping[str, object]) -> list[tuple[str, str]]:
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in settings.items()]


# -- the chart ---------------------------------------------------------------------------------------------


def check_plot() -> None:
    """Fail before a long bench rather than after it when the chart cannot be drawn."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError(PLOT_HINT)


def plot(rows: Sequence[Row], path: Path, subtitle: str = "") -> None:
    """Median files/s against concurrency (log-2 axis), one line per backend, written as a PNG; with
    repeats a shaded band spans each point's slowest to fastest run, so noise is not read as a win."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(PLOT_HINT) from None
    matplotlib.use("Agg")  # no display needed; must precede pyplot
    import matplotlib.pyplot as plt

    banded = max((r.runs for r in rows), default=0) > 1
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    try:
        for backend, executor in dict.fromkeys((r.backend, r.executor) for r in rows):
            mine = [r for r in rows if (r.backend, r.executor) == (backend, executor)]
            mine = [r for r in mine if r.files_per_s is not None]
            xs = [r.concurrency for r in mine]
            ys = [r.files_per_s or 0.0 for r in mine]
            label = f"{backend}/{executor}" if executor else backend
            line = ax.plot(xs, ys, marker="o", linewidth=2, label=label)[0]
            if banded:
                lo = [r.files_per_s_min or 0.0 for r in mine]
                hi = [r.files_per_s_max or 0.0 for r in mine]
                ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        _decorate(ax, sorted({r.concurrency for r in rows}), subtitle, banded)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def _decorate(ax: Axes, concurrencies: list[int], subtitle: str, banded: bool) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(concurrencies, [str(c) for c in concurrencies])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrency (downloads in flight, -c)")
    ax.set_ylabel("files/s" + (" (line: median, shaded: min–max)" if banded else ""))
    ax.set_title(
        "downloader bench: throughput by backend" + (f"\n{subtitle}" if subtitle else ""), fontsize=11
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(title="backend")
