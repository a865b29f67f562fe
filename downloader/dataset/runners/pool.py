"""``--procs N`` for a dataset run: the shards on a pool of N worker processes, the next shard id to the
next free one, ``-c`` split among them, one bar fed by their progress. Signals and logging are the plain
``--procs`` pool's (``app.procs``)."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...app.procs import (
    Advance,
    Logs,
    SignalsForwarded,
    Tally,
    collect,
    ignore_interrupt,
    parent_logging,
    split,
    worker_logging,
)
from ...memory import peak_rss_mb
from ...models import Stats
from ..lanes import Lane, Overlap, overlapped
from ..shard import ShardRun, process_shard
from . import RunnerContext

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext, SpawnProcess
    from multiprocessing.queues import Queue


@dataclasses.dataclass(frozen=True)
class Channels:
    """A pool's queues: shard ids to make (None: stop), progress for the bar, each shard's totals."""

    tasks: Queue[int | None]
    progress: Queue[Advance]
    results: Queue[Stats]


def _shard_worker(run: ShardRun, logs: Logs, channels: Channels) -> None:
    """A pool process: the next shard id from ``tasks`` until there is none (or the run stops), its
    shards' ends overlapped on its loop (``lanes.overlapped``); each shard's totals sent as it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker_logging(logs)
    tally = Tally(channels.progress)
    spec = run.spec

    def make(k: int, lane: Lane) -> Stats:
        return process_shard(run, k, lane=lane)

    def ended(stats: Stats) -> None:
        tally.close()
        # the largest process's peak only: a worker's shards would count its memory once a shard in a sum
        stats.peak_rss_mb = max(stats.peak_rss_mb, peak_rss_mb())
        channels.results.put(stats)

    how = Overlap(spec, tally, ignore_interrupt, ("SIGTERM",), ended)
    overlapped(make, iter(channels.tasks.get, None), how, Stats())


def _workers(ctx: SpawnContext, run: ShardRun, procs: int, channels: Channels) -> list[SpawnProcess]:
    """``procs`` worker processes (not started), each with its share of ``-c``."""
    spec = run.spec
    logs = parent_logging()
    return [
        ctx.Process(
            target=_shard_worker,
            args=(dataclasses.replace(run, spec=spec.replace(concurrency=slots)), logs, channels),
            name=f"downloader-{i}",
            daemon=True,
        )
        for i, slots in enumerate(split(spec.limits.concurrency, procs))
    ]


def run_pool(run: ShardRun, shards: Sequence[int], ctx: RunnerContext) -> Stats:
    """``shards`` on ``ctx.procs`` processes; the summed statistics."""
    import multiprocessing  # only a run with --procs above 1 needs it

    mp = multiprocessing.get_context("spawn")
    channels = Channels(mp.Queue(), mp.Queue(), mp.Queue())
    for k in [*shards, *([None] * ctx.procs)]:
        channels.tasks.put(k)
    workers = _workers(mp, run, ctx.procs, channels)
    spec = run.spec
    stats = Stats(backend=spec.network.backend, concurrency=spec.limits.concurrency)
    with SignalsForwarded(workers, stats, ctx.on_interrupt):
        for w in workers:
            w.start()
        got = collect(workers, channels.progress, channels.results, ctx.bar, stats, expected=None)
    if got < len(shards) and not (stats.interrupted or stats.aborted):
        stats.aborted = f"{len(shards) - got} shard(s) not done: a worker process died"
    return stats
