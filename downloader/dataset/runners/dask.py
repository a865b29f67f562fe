"""``--dask``: a dataset run's shards as tasks on a Dask cluster, an existing scheduler (``tcp://HOST:8786``)
or a ``LocalCluster`` of N worker processes on this machine (``local:N``: loopback only, no dashboard).
The only module that imports Dask, and only when a run asks for it.

Each shard is a plain synchronous task, ``shard_task(run, k)``: Dask runs it on a thread of the worker's
pool, where ``process_shard`` starts an event loop of its own, so the worker's loop stays free for its
heartbeats. The client keeps a bounded number of shards submitted ahead of completion (twice the cluster's
threads), never the whole list, and as each shard finishes it adds the shard's totals to the run's and
advances the bar by them. A worker that dies mid-shard is Dask's to notice: it runs the task again on
another worker, where the shard resumes from its spool (nothing complete is fetched twice), and the shard's
lock keeps a task started twice from writing one shard twice at once.

Workers read the list and write OUT at the paths the client sees (made absolute here): on several
machines both must be on a shared filesystem, and each worker needs the same version of the tool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ...app.assemble import OnInterrupt
from ...app.procs import SignalScope
from ...app.progress import Reporter
from ...errors import UsageError
from ...models import Stats
from ...spec import DASK_ADDRESS
from ..shard import ShardRun, process_shard
from . import RunnerContext

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)

HINT = "--dask needs Dask: pip install 'downloader[dask]'"
AHEAD_PER_THREAD = 2
"""Shards submitted ahead of completion, per worker thread of the cluster."""
POLL = 0.25
"""Seconds between looks at the submitted shards (an interrupt is noticed within this)."""


def distributed() -> ModuleType:
    """``dask.distributed``, or a usage error that says how to install it."""
    try:
        import distributed as found
    except ImportError:
        raise UsageError(HINT) from None
    return found


def shard_task(run: ShardRun, k: int) -> Stats:
    """One shard on a Dask worker: no signal handlers (the worker process is Dask's)."""
    return process_shard(run, k)


def local_workers(address: str) -> int | None:
    """N for ``local:N``; None for a scheduler's address."""
    found = DASK_ADDRESS.fullmatch(address)
    workers = found.group("workers") if found else None
    return int(workers) if workers else None


def run_dask(run: ShardRun, shards: Sequence[int], ctx: RunnerContext) -> Stats:
    """Make ``shards`` of ``run`` final on the cluster ``--dask`` names; the summed statistics."""
    address = run.spec.cluster.dask or "local:1"
    dd = distributed()
    stats = Stats(backend=run.spec.network.backend, concurrency=run.spec.limits.concurrency)
    local = local_workers(address)
    with contextlib.ExitStack() as stack:
        client = _connect(dd, address, local, stack)
        stack.enter_context(_Interrupts(stats, ctx.on_interrupt))
        _drive(dd, client, _portable(run, local), shards, bar=ctx.bar, stats=stats)
    return stats


def _connect(dd: ModuleType, address: str, local: int | None, stack: contextlib.ExitStack) -> Client:
    """A client of a new ``LocalCluster`` (closed with ``stack``), or of the scheduler at ``address``."""
    if local is not None:
        cluster = dd.LocalCluster(
            n_workers=local,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # the scheduler's HTTP routes (health, metrics) would take port 8787 otherwise
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        )
        stack.enter_context(cluster)
        return stack.enter_context(dd.Client(cluster))  # type: ignore[no-any-return]
    try:  # waits distributed.comm.timeouts.connect (30 s; DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
        client = dd.Client(address)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"no Dask scheduler answers at {address} ({exc})") from None
    return stack.enter_context(client)  # type: ignore[no-any-return]


def _portable(run: ShardRun, local: int | None) -> ShardRun:
    """The run as a worker elsewhere needs it: absolute paths; on ``local:N``, ``-c`` split among the N
    (they share this machine, as ``--procs`` workers do); on a cluster, ``-c`` for each worker."""
    spec = run.spec.replace(out=Path(os.path.abspath(run.spec.output.out)))
    if local is not None:
        spec = spec.replace(concurrency=max(1, spec.limits.concurrency // local))
    return dataclasses.replace(run, spec=spec, source=os.path.abspath(run.source))


def _drive(
    dd: ModuleType, client: Client, run: ShardRun, shards: Sequence[int], *, bar: Reporter, stats: Stats
) -> None:
    """Keep a bounded number of shards submitted until every one has finished or the run stops."""
    token = uuid.uuid4().hex[:8]
    todo = iter(shards)
    pending: dict[Future[Stats], int] = {}
    try:
        while not stats.interrupted:
            room = _ahead(client) - len(pending)
            while room > 0 and not stats.aborted and (k := next(todo, None)) is not None:
                key = f"downloader-shard-{k:05d}-{token}"
                pending[client.submit(shard_task, run, k, key=key, pure=False, priority=-k)] = k
                room -= 1
            if not pending:
                return
            for future in _finished(dd, pending, bar):
                _absorb(future, pending.pop(future), stats, bar)
        stopped = [f for f in pending if f.done()]  # type: ignore[no-untyped-call]
        for future in stopped:  # finished as the run was stopped: counted too
            _absorb(future, pending.pop(future), stats, bar)
    finally:
        if pending:
            client.cancel(list(pending))  # type: ignore[no-untyped-call]


def _ahead(client: Client) -> int:
    """How many shards to keep submitted: twice the cluster's threads now (it may grow or shrink)."""
    return AHEAD_PER_THREAD * max(1, sum(client.nthreads().values()))  # type: ignore[no-untyped-call]


def _finished(dd: ModuleType, pending: dict[Future[Stats], int], bar: Reporter) -> list[Future[Stats]]:
    """The submitted shards that have finished, waiting at most ``POLL`` seconds for one."""
    try:
        done = dd.wait(list(pending), timeout=POLL, return_when="FIRST_COMPLETED").done
    except TimeoutError:
        bar.tick()
        return []
    return list(done)


def _absorb(future: Future[Stats], k: int, stats: Stats, bar: Reporter) -> None:
    """A finished shard's totals into the run's, and into the bar; a shard that failed stops the run."""
    try:
        got: Stats = future.result()
    except Exception as exc:  # the task raised, or its workers kept dying (KilledWorker)
        stats.aborted = stats.aborted or f"shard {k:05d} did not finish: {type(exc).__name__}: {exc}"
        return
    stats.absorb(got)
    files = got.total - got.skipped - got.not_started
    bar.advance(files, got.bytes, got.failed + got.invalid, got.skipped)


class _Interrupts(SignalScope):
    """Ctrl-C or SIGTERM on the client: the first stops submitting and ends the run (shards under way
    are left to resume; on ``local:N`` their workers end with the cluster); every one is reported."""

    def __init__(self, stats: Stats, on_interrupt: OnInterrupt | None) -> None:
        super().__init__()
        self.stats = stats
        self.on_interrupt = on_interrupt
        self.count = 0

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        self.stats.interrupted = True
        if self.on_interrupt is not None:
            self.on_interrupt(self.count)
