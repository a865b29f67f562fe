"""``--procs N``: N event loops in worker processes over parts of a list, one manifest, one bar, one summary.

A part is every row whose URL digest is k modulo N (invalid rows: whose line number is), so duplicates of
a URL always meet in the same worker and no two workers ever write the same file. Each worker reads the
list itself and drops other parts' rows before making a path (the costly part of a row), runs its own
engine with ``-c / N`` slots, and appends to its own part of the manifest (``manifest.part_name``);
the parent merges those into ``manifest.jsonl`` afterwards (and before starting, should a crashed run
have left any), sums the statistics, and draws the only progress bar from counts the workers send
four times a second.

Signals: the parent owns them. Its first Ctrl-C or SIGTERM asks every worker to stop cleanly (SIGTERM);
a second kills them. Workers ignore SIGINT, so a terminal's Ctrl-C reaches them only through the parent.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

from ..loop import run_loop
from ..manifest import STATS, merge_parts, part_name, write_stats
from ..memory import peak_rss_mb
from ..models import Result, Stats
from ..spec import RunSpec
from ..writers.files import prepare_out
from .assemble import OnInterrupt, arun, build_engine, list_jobs
from .progress import Reporter, counts

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import Queue

MIN_ROWS_PER_PROC = 10_000
"""A list shorter than this per process is not worth another process's start-up."""


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_procs(rows: int | None, source: str) -> int:
    """One process per usable CPU, fewer for short lists, one for stdin (it cannot be read twice)."""
    if source == "-":
        return 1
    cpus = usable_cpus()
    if rows is None:
        return cpus
    return max(1, min(cpus, rows // MIN_ROWS_PER_PROC))


def split(total: int, parts: int) -> list[int]:
    """``total`` slots over ``parts`` workers, as evenly as whole numbers allow, at least one each."""
    return [max(1, total // parts + (i < total % parts)) for i in range(parts)]


@dataclasses.dataclass(frozen=True, slots=True)
class Advance:
    """A worker's progress since its last message, for the parent's bar."""

    files: int
    nbytes: int
    failed: int
    skipped: int = 0


Logs = tuple[int, str | None]
"""The parent's logging (level, log file), repeated in a worker: a spawned process starts with none."""


class Tally:
    """A worker's progress, sent to the parent in batches (a message per row would cost more than it)."""

    def __init__(self, channel: Queue[Advance], every: float = 0.25) -> None:
        self._channel = channel
        self._every = every
        self._counts = [0, 0, 0, 0]
        self._next = time.monotonic() + every

    def update(self, result: Result) -> None:
        c = counts(result)
        if c is not None:
            self.advance(*c)

    def advance(self, files: int, nbytes: int, failed: int, skipped: int = 0) -> None:
        for i, n in enumerate((files, nbytes, failed, skipped)):
            self._counts[i] += n
        self.tick()

    def tick(self) -> None:
        if time.monotonic() >= self._next:
            self._send()

    def _send(self) -> None:
        if any(self._counts):
            self._channel.put(Advance(*self._counts))
            self._counts = [0, 0, 0, 0]
        self._next = time.monotonic() + self._every

    def close(self) -> None:
        self._send()


@dataclasses.dataclass(frozen=True)
class Part:
    """What one worker needs: its number, its spec (with ``part`` set) and the list to read."""

    k: int
    spec: RunSpec
    source: str
    log_level: int = logging.WARNING
    log_file: str | None = None
    """The parent's logging, repeated in the worker (a spawned process starts with none)."""


def parent_logging() -> Logs:
    """The level and log file the parent's ``downloader`` logger uses, for the workers to copy."""
    logger = logging.getLogger("downloader")
    files = [h.baseFilename for h in logger.handlers if isinstance(h, logging.FileHandler)]
    stream_levels = [h.level for h in logger.handlers if not isinstance(h, logging.FileHandler)]
    return min(stream_levels, default=logging.WARNING), files[0] if files else None


def worker_logging(logs: Logs) -> None:
    """A worker process logs as its parent does."""
    level, log_file = logs
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    handlers[0].setLevel(level)
    if log_file is not None:
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(to_file)
    logger = logging.getLogger("downloader")
    logger.handlers = handlers
    logger.propagate = False
    logger.setLevel(logging.INFO if log_file else level)


def _worker(part: Part, progress: Queue[Advance], results: Queue[Stats]) -> None:
    """A worker process: its parent forwards Ctrl-C as SIGTERM, which stops it cleanly; a second one
    is the parent's to escalate (SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent answers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker_logging((part.log_level, part.log_file))
    spec = part.spec
    engine = build_engine(spec, manifest=part_name(part.k), stats_file=None)
    jobs = list_jobs(spec, part.source)
    try:
        running = arun(
            engine, jobs, progress=Tally(progress), on_interrupt=ignore_interrupt, signals=("SIGTERM",)
        )
        stats = run_loop(running, spec.performance.loop)
    finally:
        jobs.close()
    stats.note_memory(peak_rss_mb())  # the parent sees the workers' memory only through their stats
    results.put(stats)


def ignore_interrupt(n: int) -> None:
    """A worker's interrupts are its parent's to answer."""
    return None


def run_parts(
    spec: RunSpec, source: str, *, procs: int, bar: Reporter, on_interrupt: OnInterrupt | None = None
) -> Stats:
    """Download ``source`` with ``procs`` worker processes; returns the summed statistics."""
    out = spec.output.out
    prepare_out(out)
    merge_parts(out)
    import multiprocessing  # only a run with --procs above 1 needs it

    ctx = multiprocessing.get_context("spawn")
    progress: Queue[Advance] = ctx.Queue()
    results: Queue[Stats] = ctx.Queue()
    workers: list[BaseProcess] = []
    level, log_file = parent_logging()
    for k, slots in enumerate(split(spec.limits.concurrency, procs)):
        part = Part(k, spec.replace(concurrency=slots, part=(k, procs)), source, level, log_file)
        args = (part, progress, results)
        workers.append(ctx.Process(target=_worker, args=args, name=f"downloader-{k}", daemon=True))
    started = time.monotonic()
    stats = Stats(backend=spec.network.backend, concurrency=spec.limits.concurrency)
    with SignalsForwarded(workers, stats, on_interrupt):
        for w in workers:
            w.start()
        collected = collect(workers, progress, results, bar, stats, expected=len(workers))
    stats.wall_s = time.monotonic() - started
    bar.close()
    merge_parts(out)
    if collected < procs and not stats.interrupted:
        stats.aborted = stats.aborted or f"{procs - collected} worker process(es) died"
    write_stats(out / STATS, stats)
    return stats


def collect(
    workers: Sequence[BaseProcess],
    progress: Queue[Advance],
    results: Queue[Stats],
    bar: Reporter,
    stats: Stats,
    *,
    expected: int | None,
) -> int:
    """Feed the bar and sum the statistics that come back (one per worker, or one per dataset shard:
    ``expected`` None) until ``expected`` came or every worker has ended; how many came."""
    collected = 0
    while expected is None or collected < expected:
        _drain_progress(progress, bar)
        try:
            stats.absorb(results.get(timeout=0.1))
            collected += 1
        except queue.Empty:
            if not any(w.is_alive() for w in workers) and results.empty():
                break
    for w in workers:
        w.join()
    _drain_progress(progress, bar)
    return collected


def _drain_progress(progress: Queue[Advance], bar: Reporter) -> None:
    while True:
        try:
            got = progress.get_nowait()
        except queue.Empty:
            bar.tick()
            return
        bar.advance(got.files, got.nbytes, got.failed, got.skipped)


class SignalScope:
    """SIGINT and SIGTERM go to ``_handle`` while the scope is open (on the main thread; elsewhere the
    caller's own handlers stay), and the previous handlers come back when it closes."""

    def __init__(self) -> None:
        self.previous: dict[int, signal._HANDLER] = {}

    def _handle(self, signum: int, frame: object) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class SignalsForwarded(SignalScope):
    """First SIGINT/SIGTERM: ask the workers to stop (SIGTERM); a second: kill them."""

    def __init__(
        self, workers: Sequence[BaseProcess], stats: Stats, on_interrupt: OnInterrupt | None
    ) -> None:
        super().__init__()
        self.workers = workers
        self.stats = stats
        self.on_interrupt = on_interrupt

    def _handle(self, signum: int, frame: object) -> None:
        sig = signal.SIGKILL if self.stats.interrupted else signal.SIGTERM  # read before it is set below
        if not self.stats.interrupted and self.on_interrupt is not None:
            self.on_interrupt(1)  # a second one is answered here, by killing the workers
        self.stats.interrupted = True
        for w in self.workers:
            if w.pid is not None and w.is_alive():  # a reaped worker's pid may be another process's now
                os.kill(w.pid, sig)
