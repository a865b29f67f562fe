"""The engine: one event loop over one list's jobs. It reads a bounded window of jobs ahead, hands a free
slot to the next host in turn that may start (``hosts``), runs each URL as a task (``attempts``) and ends
every task in its done callback, which frees the slot, hands the row on (``results``) and pumps again.
Which rows need no request at all is the ledger's (``ledger``).

A slot is taken before a task exists and given back in its done callback, and input is pulled only when a
slot is free, so memory is O(concurrency), never O(URLs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from ..backends.base import Backend
from ..errors import Cancelled, DownloadError
from ..manifest import MANIFEST, STATS
from ..models import Job, Result, Stats
from ..spec import RunSpec
from ..writers.files import prepare_out
from .attempts import Attempts
from .hosts import Hosts
from .ledger import Ledger
from .results import OnDone, Results
from .rows import failure, not_started
from .slots import Slots
from .timers import Timers

__all__ = ["Engine", "OnDone"]

log = logging.getLogger("downloader")

RETURN_SHARE = 0.2
"""The share of ``--idle-timeout`` within which a host's attempts must follow each other for its connection
to be kept when nothing of it is queued (1 s of the default 5: on web-shaped lists it keeps the hosts that
carry most URLs, and closes those seen once or rarely; docs/performance.md, "A host that comes back")."""
INTERRUPTED = "interrupted while downloading; nothing of it was kept"


class Engine:
    """One run over one list of jobs, built by the application layer (``app.run``) from the spec: the
    pump and each task's life. ``on_done`` (the callbacks) and ``stats`` are the caller's to read."""

    def __init__(
        self,
        spec: RunSpec,
        backend: Backend,
        *,
        on_done: Sequence[OnDone] = (),
        manifest: str = MANIFEST,
        stats_file: str | None = STATS,
        slots: Slots | None = None,
    ) -> None:
        self.limits = spec.limits
        self.slots = slots or Slots(self.limits.concurrency)  # shared: other engines on this loop use it too
        self.on_drained: Callable[[], None] | None = None
        """Called once no job is left to start (only those running remain), or the run stopped."""
        self.out = spec.output.out
        self.backend = backend
        self.on_done = list(on_done)  # shared with ``_results``: the bar inserted before the run is heard
        self.stats = Stats(backend=backend.name, concurrency=self.limits.concurrency)
        self._hosts = Hosts(
            self.limits.concurrency,
            running=self.slots.by_host,
            per_host=self.limits.per_host,
            host_down_after=self.limits.host_down_after,
            rate=self.limits.rate,
            rate_per_host=self.limits.rate_per_host,
            recent=spec.timeouts.idle_timeout * RETURN_SHARE,
        )
        self._ledger = Ledger(spec, self.stats)
        self._results = Results(spec, self.stats, self.on_done, manifest=manifest, stats_file=stats_file)
        self._attempts = Attempts(spec, backend, self._hosts)
        self._tasks: dict[asyncio.Task[Result], Job] = {}
        self._jobs: Iterator[Job] = iter(())
        self._more = True
        self._fed: asyncio.Future[None] | None = None
        self._pumping = False
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = False

    # -- the run ---------------------------------------------------------------------------------------

    async def run(self, jobs: Iterable[Job]) -> Stats:
        """Download every job; returns the statistics. Raises ``RunAborted`` if the output is unusable."""
        out = self.out
        self._open(out)
        started = time.monotonic()
        try:
            async with self.backend:
                try:
                    await self._feed(iter(jobs))
                    while self._tasks:
                        await asyncio.wait(list(self._tasks))
                finally:
                    await self._attempts.aclose()
            await self._results.drain()
        finally:
            self.stats.wall_s = time.monotonic() - started
            self._attempts.close()
            self._ledger.close()
            self._results.close(out)
        return self.stats

    def _open(self, out: Path) -> None:
        """What a run holds: the output, the ledger (the earlier run's outcomes, the duplicate index), the
        manifest, and the loop's timers (uvloop keeps a clock of its own, in step with ``time.monotonic``
        to the millisecond: the offset is taken once, here)."""
        prepare_out(out)  # before any hook is lent to a helper: an output that fails leaves no cycle
        self._ledger.open(out)
        self._results.open(out, self._pump)
        loop = asyncio.get_running_loop()
        self._attempts.open(Timers(loop, loop.time() - time.monotonic()), self._output_lost)

    async def _feed(self, jobs: Iterator[Job]) -> None:
        """Start jobs until the input is exhausted and none is queued, or the run stops."""
        self._jobs = jobs
        self._more = True
        self._fed = asyncio.get_running_loop().create_future()
        self.slots.join(self._pump)
        try:
            self._pump()
            await self._fed
            for job in self._hosts.drain():
                self._finish(not_started(job, "the run stopped before this URL started"))
        finally:
            self.slots.leave(self._pump)
            if self._timer is not None:
                self._timer.cancel()
            if self.on_drained is not None:
                self.on_drained()

    def _pump(self) -> None:
        """Read ahead up to ``lookahead`` queued jobs and start every one that may start now.

        It runs whenever that may change: at the start, in each task's done callback (so the next
        download starts in the same loop turn as the last one ended, with no feeder task to wake), when
        a host's back-off or rate wait ends (a timer), when an async callback ends, and on stop."""
        fed = self._fed
        if self._pumping or fed is None or fed.done():
            return  # re-entered (a row it hands on may stop the run), or no feed going on
        self._pumping = True
        try:
            while not self._stopping:
                if len(self._results.pending) >= self.limits.concurrency:
                    return  # the caller's async callbacks lag behind: the next of them to end pumps
                self._more = self._more and self._read_ahead(self._jobs)
                if self._hosts.newly_down:
                    for job, err in self._hosts.down_jobs():
                        self._finish(failure(job, err, 0, 0.0))
                if not self._more and not self._hosts.queued:
                    break
                chosen = self._hosts.next_job(self.slots.used)
                if chosen is None:
                    self._pump_later()
                    return
                self._start(chosen[1])
            fed.set_result(None)
        except BaseException as exc:  # reading the list failed: the run ends with that error
            if not fed.done():
                fed.set_exception(exc)
        finally:
            self._pumping = False

    def _pump_later(self) -> None:
        """If queued jobs wait for time (a back-off, a request rate), pump again when it has passed;
        otherwise the next task to end will."""
        if self.slots.full:
            return  # every slot is busy: a task's end comes first
        wait = self._hosts.wake_in()
        if wait is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(wait, self._pump)

    def _read_ahead(self, jobs: Iterator[Job]) -> bool:
        """Queue jobs until ``lookahead`` wait beyond the free slots; False once the input is exhausted.
        A job the ledger settles (invalid, duplicate, done before) gets its row at once, and no slot."""
        ledger = self._ledger
        while self._hosts.queued <= self.limits.lookahead:
            job = next(jobs, None)
            if job is None:
                return False
            settled = ledger.settle(job)
            if settled is not None:
                self._finish(settled)
            else:
                self._hosts.push(job.host, job)
        return True

    def _start(self, job: Job) -> None:
        """A task for the job: its slot is taken now and given back in ``_done_cb``."""
        task = asyncio.get_running_loop().create_task(self._attempts.fetch(job))
        self._tasks[task] = job
        self.slots.take(job.host)  # the slot is taken here: ``next_job`` counts it
        task.add_done_callback(self._done_cb)

    def stop(self, reason: str | None = None) -> None:
        """Take no new URLs and cancel those in flight (their ``.part`` files are removed)."""
        if reason:
            self.stats.aborted = self.stats.aborted or reason
        else:
            self.stats.interrupted = True
        self._stopping = True
        self._pump()
        me = asyncio.current_task()
        for task in list(self._tasks):
            if task is not me:  # a task that stops the run still reports its own outcome
                task.cancel()

    def _output_lost(self, reason: str) -> None:
        """Every further write would fail (disk full, read-only): stop, and flush the rows written so far
        while they may still fit. Called from inside the task that met it, so it is not cancelled."""
        self.stop(reason)
        self._results.flush()

    # -- one task's end --------------------------------------------------------------------------------

    def _done_cb(self, task: asyncio.Task[Result]) -> None:
        """The task's slot freed, its row handed on, and the pump run: in this same loop turn."""
        job = self._tasks.pop(task)
        self.slots.give(job.host)
        self._hosts.finished(job.host)
        self._finish(self._outcome(task, job))
        self._pump()  # in this loop turn, not the next: no feeder task to wake
        self.slots.wake()  # the engines sharing the count, when this one had nothing to start

    def _outcome(self, task: asyncio.Task[Result], job: Job) -> Result:
        """The row of an ended task: its own, or what its cancellation or internal error means."""
        if task.cancelled() and self.stats.interrupted:
            return not_started(job, INTERRUPTED)
        if task.cancelled():
            return failure(job, Cancelled("cancelled: the run was stopped"), 0, 0.0)
        if (exc := task.exception()) is not None:
            log.error("internal error on %s", job.url, exc_info=exc)
            return failure(job, DownloadError(f"internal error: {exc!r}"), 0, 0.0)
        result = task.result()
        if result.kind == Cancelled.kind and self.stats.interrupted:
            return not_started(job, INTERRUPTED)
        return result

    def _finish(self, result: Result) -> None:
        """One row out: written first, so a manifest that failed stops the run before it is fanned out."""
        error = self._results.write(result)
        if error and not self._stopping:
            self.stop(error)
        self._results.fan_out(result)
