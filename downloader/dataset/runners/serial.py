"""The shards of a run without ``--procs`` in this process, on the run's bar, the next shard's rows
starting while the last one's slowest finish (``lanes.overlapped``)."""

from __future__ import annotations

from collections.abc import Sequence

from ...models import Stats
from ..lanes import Lane, Overlap, overlapped
from ..shard import ShardRun, process_shard
from . import RunnerContext


def run_local(run: ShardRun, shards: Sequence[int], ctx: RunnerContext) -> Stats:
    """Each shard in order, their ends overlapped; the first one interrupted or aborted opens no more."""
    spec = run.spec
    stats = Stats(backend=spec.network.backend, concurrency=spec.limits.concurrency)
    how = Overlap(spec, ctx.bar, ctx.on_interrupt)

    def make(k: int, lane: Lane) -> Stats:
        return process_shard(run, k, lane=lane)

    return overlapped(make, iter(shards), how, stats)
