"""The shards one after another in this process, on the run's bar: a run without ``--procs``."""

from __future__ import annotations

from collections.abc import Sequence

from ...models import Stats
from ..shard import ShardRun, process_shard
from . import RunnerContext


def run_local(run: ShardRun, shards: Sequence[int], ctx: RunnerContext) -> Stats:
    """Each shard in order; the first one interrupted or aborted ends the run."""
    stats = Stats(backend=run.spec.network.backend, concurrency=run.spec.limits.concurrency)
    for k in shards:
        stats.absorb(process_shard(run, k, progress=ctx.bar, on_interrupt=ctx.on_interrupt))
        if stats.interrupted or stats.aborted:
            break
    return stats
