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
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ...models import Stats
from ...runfile import read, run_id
from ...spec import NO_STATE, RunSpec
from ...state import StateError
from ...state.local import default_url
from ..lanes import Lane, Overlap, overlapped
from ..shard import ShardRun, process_shard
from ..shardfiles import exclusive
from ..statedb import StateThread, gone, worker_id
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
    ``shards``), claiming the next as the open ones drain (``lanes.overlapped``); this worker's statistics."""
    t = run.tracking
    assert t is not None
    me = worker_id()
    spec = run.spec
    stats = Stats(backend=spec.network.backend, concurrency=spec.limits.concurrency)
    mine = dataclasses.replace(run, tracking=dataclasses.replace(t, claimed=True))
    how = Overlap(spec, ctx.bar, ctx.on_interrupt)

    def make(k: int, lane: Lane) -> Stats:
        log.info("shard %05d claimed by %s", k, me)
        return process_shard(mine, k, lane=lane)

    try:
        with StateThread(t.url) as db:
            overlapped(make, _claims(db, run, me, how.stopping), how, stats)
    except StateError as exc:
        stats.aborted = stats.aborted or str(exc)
    return stats


def _claims(db: StateThread, run: ShardRun, me: str, stopping: threading.Event) -> Iterator[int]:
    """Each next shard claimed, waiting while others hold the rest (ready to take over any whose lease
    expires, or at once any whose holder is provably gone); ends once every shard is done, or the worker
    stops (not claiming what it would not run)."""
    t = run.tracking
    assert t is not None
    while not stopping.is_set():
        k = db.claim(t.run, me, t.lease)
        if k is None and db.left(t.run) == 0:
            return
        if k is None:
            k = _taken_back(db, run, me)
        if k is not None:
            yield k
        else:
            stopping.wait(min(POLL_MAX_S, t.lease / 3))


def _taken_back(db: StateThread, run: ShardRun, me: str) -> int | None:
    """A shard whose lease names a process of this machine that is gone (killed: a worker restarted with
    its rank, say), claimed at once rather than after its lease. Its lock is taken first, without
    waiting: free, it proves no live process writes the shard (a dead one holds no ``flock``), and
    holding it while claiming keeps two workers of this machine from taking the shard back together."""
    t = run.tracking
    assert t is not None
    for lease in db.running(t.run):
        if not gone(lease.worker):
            continue
        with exclusive(run.files(lease.shard), wait=0.0) as locked:
            if locked:
                log.info("shard %05d taken back from %s, which is gone", lease.shard, lease.worker)
                return db.claim(t.run, me, t.lease, lease.shard)
    return None
