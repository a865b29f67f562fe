"""``--procs N``: N event loops in worker processes over a sharded list, one manifest, one bar, one summary.

A shard is every row whose URL digest is k modulo N (invalid rows: whose line number is), so duplicates of
a URL always meet in the same worker and no two workers ever write the same file. Each worker reads the
list itself and drops other shards' rows before making a path (the costly part of a row), runs its own
engine with ``-c / N`` slots, and appends to ``OUT/.manifest-K.jsonl``; the parent merges those into
``manifest.jsonl`` afterwards (and before starting, should a crashed run have left any), sums the
statistics, and draws the only progress bar from counts the workers send four times a second.

Signals: the parent owns them. Its first Ctrl-C or SIGTERM asks every worker to stop cleanly (SIGTERM);
a second kills them. Workers ignore SIGINT, so a terminal's Ctrl-C reaches them only through the parent.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .config import Config
from .engine import MANIFEST, STATS, Engine
from .inputs import jobs_from_source
from .models import Job, Reporter, Result, Stats, Status
from .sink import prepare_out, write_stats

PART_GLOB = ".manifest-*.jsonl"
MIN_ROWS_PER_PROC = 10_000
"""A list shorter than this per process is not worth another process's start-up."""

Runner = Callable[[Engine, Iterable[Job]], Stats]
"""Runs an engine over jobs on an event loop, signals handled (the CLI's, injected from above)."""


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


def merge_parts(out: Path) -> None:
    """Append the workers' manifests to ``manifest.jsonl`` and remove them."""
    parts = sorted(out.glob(PART_GLOB))
    if not parts:
        return
    with (out / MANIFEST).open("ab") as whole:
        for part in parts:
            with part.open("rb") as fh:
                shutil.copyfileobj(fh, whole)
            part.unlink()


class Tally(Reporter):
    """A worker's progress, sent to the parent in batches (a message per row would cost more than it)."""

    def __init__(self, channel: Any, every: float = 0.25) -> None:
        self._channel, self._every = channel, every
        self._files = self._bytes = self._failed = 0
        self._next = time.monotonic() + every

    def update(self, result: Result) -> None:
        self._files += 1
        self._bytes += result.bytes if result.status is Status.OK else 0
        self._failed += 0 if result.ok else 1
        if time.monotonic() >= self._next:
            self._send()

    def _send(self) -> None:
        if self._files:
            self._channel.put((self._files, self._bytes, self._failed))
            self._files = self._bytes = self._failed = 0
        self._next = time.monotonic() + self._every

    def close(self) -> None:
        self._send()


@dataclasses.dataclass(frozen=True)
class Shard:
    """What one worker needs: its number, its configuration (with ``shard`` set) and how to read the list."""

    k: int
    config: Config
    source: str
    reading: dict[str, Any]


def _worker(shard: Shard, runner: Runner, progress: Any, results: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards Ctrl-C as SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    config = shard.config
    engine = Engine(config, reporter=Tally(progress), manifest=f".manifest-{shard.k}.jsonl", stats_file=None)
    jobs = jobs_from_source(shard.source, config.naming, **shard.reading)
    try:
        stats = runner(engine, jobs)
    finally:
        jobs.close()
    results.put(stats)


def run_sharded(
    config: Config, source: str, reading: dict[str, Any], *, procs: int, runner: Runner, bar: Reporter
) -> Stats:
    """Download ``source`` with ``procs`` worker processes; returns the summed statistics."""
    prepare_out(config.out)
    merge_parts(config.out)
    import multiprocessing  # only a run with --procs above 1 needs it

    ctx = multiprocessing.get_context("spawn")
    progress, results = ctx.Queue(), ctx.Queue()
    workers = []
    for k, slots in enumerate(split(config.concurrency, procs)):
        shard_config = dataclasses.replace(config, concurrency=slots, shard=(k, procs))
        args = (Shard(k, shard_config, source, reading), runner, progress, results)
        workers.append(ctx.Process(target=_worker, args=args, name=f"downloader-{k}", daemon=True))
    started = time.monotonic()
    stats = Stats(backend=config.backend, concurrency=config.concurrency)
    with SignalsForwarded(workers, stats):
        for w in workers:
            w.start()
        collected = _collect(workers, progress, results, bar, stats)
    stats.wall_s = time.monotonic() - started
    bar.close()
    merge_parts(config.out)
    if collected < procs and not stats.interrupted:
        stats.aborted = stats.aborted or f"{procs - collected} worker process(es) died"
    write_stats(config.out / STATS, stats)
    return stats


def _collect(workers: list[Any], progress: Any, results: Any, bar: Reporter, stats: Stats) -> int:
    """Feed the bar and gather each worker's statistics until all have ended; how many reported."""
    collected = 0
    while collected < len(workers):
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


def _drain_progress(progress: Any, bar: Reporter) -> None:
    advance = getattr(bar, "advance", None)
    while True:
        try:
            files, nbytes, failed = progress.get_nowait()
        except queue.Empty:
            return
        if advance is not None:
            advance(files, nbytes, failed)


class SignalsForwarded:
    """First SIGINT/SIGTERM: ask the workers to stop (SIGTERM); a second: kill them."""

    def __init__(self, workers: list[Any], stats: Stats) -> None:
        self.workers, self.stats = workers, stats
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        sig = signal.SIGKILL if self.stats.interrupted else signal.SIGTERM
        self.stats.interrupted = True
        for w in self.workers:
            if w.pid is not None and w.is_alive():
                os.kill(w.pid, sig)

    def __enter__(self) -> SignalsForwarded:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
