"""Static workers that share a state database (``--rank I --world N --state URL``): each claims the next
shard nobody holds, runs it under a heartbeat, records it done, and claims again. No coordinator: a
worker that dies stops renewing, its lease expires, and whoever is free takes the shard over (its
complete samples are reused, not fetched again). A worker ends when every shard is done; while others
still hold shards it waits for them, ready to take over any whose lease expires.

Also here: how a dataset run finds its state (``--state``, or the default SQLite file in OUT) and records
the run and its plan there once, before any shard runs, whatever the runner.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from ...models import Stats
from ...runfile import read, run_id
from ...spec import NO_STATE, RunSpec
from ...state import StateError
from ...state.local import default_url
from ..shard import ShardRun, process_shard
from ..statedb import StateThread, worker_id
from ..tracking import Tracking
from . import RunnerContext

log = logging.getLogger(__name__)
POLL_MAX_S = 2.0


def state_url(spec: RunSpec) -> str | None:
    """``--state``, or the default: SQLite in OUT unless OUT is on a network filesystem; ``none``: no
    database at all."""
    if spec.cluster.state == NO_STATE:
        return None
    return spec.cluster.state or default_url(spec.output.out)


def start_tracking(spec: RunSpec, source: str, rows: int, count: int) -> Tracking | None:
    """The run and its plan recorded in its state database (schema made on first use); None without one."""
    url = state_url(spec)
    if url is None:
        return None
    out = spec.output.out
    settings: dict[str, Any] = {
        **(read(out) or {}),
        "out": spec.output.store or str(out.resolve()),
        "source": source,
        "rows": rows,
    }
    run = run_id(out)
    with StateThread(url) as db:
        db.setup()
        db.start_run(run, settings, count)
        status = db.status(run)
    return Tracking(url, run, spec.cluster.lease, done=frozenset(status.done_shards))


def run_leased(run: ShardRun, shards: Sequence[int], ctx: RunnerContext) -> Stats:
    """Claim, run and finish shards until every shard of the run is done (whichever is free, not
    ``shards``); this worker's statistics."""
    t = run.tracking
    assert t is not None
    me, spec = worker_id(), run.spec
    stats = Stats(backend=spec.network.backend, concurrency=spec.limits.concurrency)
    mine = dataclasses.replace(run, tracking=dataclasses.replace(t, claimed=True))
    try:
        with StateThread(t.url) as db:
            while (k := _next(db, t, me)) is not None:
                log.info("shard %05d claimed by %s", k, me)
                got = process_shard(mine, k, progress=ctx.bar, on_interrupt=ctx.on_interrupt)
                stats.absorb(got)
                if got.interrupted or got.aborted:
                    break
    except StateError as exc:
        stats.aborted = stats.aborted or str(exc)
    return stats


def _next(db: StateThread, t: Tracking, me: str) -> int | None:
    """The next shard claimed, waiting while others hold the rest (ready to take over any whose lease
    expires); None once every shard is done."""
    while (k := db.claim(t.run, me, t.lease)) is None:
        if db.left(t.run) == 0:
            return None
        time.sleep(min(POLL_MAX_S, t.lease / 3))
    return k
