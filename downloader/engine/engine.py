"""The engine: bounded concurrency, per-attempt and per-URL time limits, retries with backoff, host
back-off, duplicate and resume checks, and one ``Result`` per input row, fanned out from each task's
done callback to the manifest, the statistics, the reporter and the caller's callbacks (an async one
runs as a task, and the run ends when the last has).

A slot is taken before a task exists and given back in its done callback, and input is pulled only when a
slot is free, so memory is O(concurrency), never O(URLs).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path

from ..backends.base import Backend, PageReader
from ..errors import Cancelled, DownloadError, RateLimited, Timeout, UsageError, WriteError
from ..keys import DigestIndex, PathClaims
from ..manifest import FLUSH_ROWS, MANIFEST, STATS, ManifestWriter, earlier_outcomes, write_stats
from ..models import BUCKETS, Deadline, Fetched, Job, Result, Stats, Status
from ..names import with_digest
from ..spec import RunSpec
from ..writers.files import prepare_out
from .hosts import Hosts
from .robots import RobotsCache
from .timers import Timers

log = logging.getLogger("downloader")
failure_log = logging.getLogger("downloader.failures")
"""Each failed or invalid row as it happens, at INFO (``-v`` and ``--log-file`` show it)."""

OnDone = Callable[[Result], object]
"""Called with each result on the loop's thread; when it returns an awaitable (an ``async def``), that
is awaited as a task before the run returns. Either way an exception is logged, not raised."""
SHOWN_RENAMES = 5
"""Taken names warned about one by one; the rest in one line (each row's ``note`` says it anyway)."""
ATTEMPT_GRACE_S = 1.0
"""Beyond ``--timeout`` before the engine itself cancels an attempt (the backends enforce it first)."""


class Engine:
    """One run over one list of jobs, built by the application layer (``app.run``) from the spec."""

    def __init__(
        self,
        spec: RunSpec,
        backend: Backend,
        *,
        on_done: Sequence[OnDone] = (),
        manifest: str = MANIFEST,
        stats_file: str | None = STATS,
    ) -> None:
        self.limits, self.retries, self.timeouts = spec.limits, spec.retries, spec.timeouts
        self.out, self.overwrite, self.part = spec.output.out, spec.output.overwrite, spec.performance.part
        self._sharded, self._dedup = spec.dataset.sharded, spec.dataset.dedup != "none"
        self._shared_names = spec.output.layout != BUCKETS and spec.output.names == "plain"
        self._claims: PathClaims | None = None
        self._clock_offset = 0.0
        self.backend = backend
        self.on_done = list(on_done)
        self.stats = Stats(backend=self.backend.name, concurrency=self.limits.concurrency)
        self._tasks: dict[asyncio.Task[Result], Job] = {}
        self._callbacks: set[asyncio.Future[object]] = set()
        lim = self.limits
        self._hosts = Hosts(
            lim.concurrency,
            per_host=lim.per_host,
            host_down_after=lim.host_down_after,
            rate=lim.rate,
            rate_per_host=lim.rate_per_host,
        )
        self._robots = self._robots_cache(spec) if spec.content.robots_txt else None
        self._jobs: Iterator[Job] = iter(())
        self._more = True
        self._fed: asyncio.Future[None] | None = None
        self._pumping = False
        self._timer: asyncio.TimerHandle | None = None
        self._seen, self._done, self._resuming = DigestIndex(), DigestIndex(), False  # see _open
        self._stopping = False
        self._manifest: ManifestWriter | None = None
        self._log_failures = False
        self._manifest_name, self._stats_file = manifest, stats_file

    def _robots_cache(self, spec: RunSpec) -> RobotsCache:
        if not isinstance(self.backend, PageReader):
            raise UsageError(
                f"robots_txt needs a backend that can read a page (read()); {self.backend.name} cannot"
            )
        return RobotsCache(spec, self.backend, self._hosts)

    # -- the run ---------------------------------------------------------------------------------------

    async def run(self, jobs: Iterable[Job]) -> Stats:
        """Download every job; returns the statistics. Raises ``RunAborted`` if the output is unusable."""
        out = self.out
        manifest = self._open(out)
        started = time.monotonic()
        try:
            async with self.backend:
                try:
                    await self._feed(iter(jobs))
                    while self._tasks:
                        await asyncio.wait(list(self._tasks))
                finally:
                    if self._robots is not None:
                        await self._robots.close()
            while self._callbacks:
                await asyncio.wait(list(self._callbacks))
        finally:
            for pending in self._callbacks:  # only when the run itself failed or was cancelled
                pending.cancel()
            self.stats.wall_s = time.monotonic() - started
            self._timers.close()
            self._seen.close()
            self._done.close()
            if self._claims is not None:
                self._claims.close()
            manifest.close()
            if manifest.error and not self.stats.aborted:
                self.stats.aborted = manifest.error
            if self._stats_file:
                self._write_stats(out / self._stats_file)
        return self.stats

    def _open(self, out: Path) -> ManifestWriter:
        """What a run holds: the loop's clock and timers, the output, the earlier run's outcomes (and
        whether there are any: without, no row is looked up), the duplicate index, the manifest."""
        self.loop = asyncio.get_running_loop()
        self._clock_offset = self.loop.time() - time.monotonic()
        self._timers = Timers(self.loop, self._clock_offset)
        prepare_out(out)
        self._claims = PathClaims(out) if self._shared_names else None
        if not self.overwrite:
            self._done = earlier_outcomes(out / MANIFEST, out, part=self._earlier_share, claims=self._claims)
        self._resuming = len(self._done) > 0
        self._seen = DigestIndex(out)
        self._manifest = ManifestWriter(out / self._manifest_name, 1 if self._sharded else FLUSH_ROWS)
        self._log_failures = failure_log.isEnabledFor(logging.INFO)
        return self._manifest

    @property
    def _earlier_share(self) -> tuple[int, int] | None:
        """Which earlier rows this process needs: its ``--procs`` share, or every row with plain names,
        which are dealt to the workers by path, not by URL digest (``sources.make_job``)."""
        return None if self._shared_names else self.part

    def _write_stats(self, path: Path) -> None:
        try:
            write_stats(path, self.stats)
        except OSError as exc:
            log.error("cannot write %s: %s", path, exc.strerror or exc)
            self.stats.aborted = self.stats.aborted or f"cannot write {path.name}"

    async def _feed(self, jobs: Iterator[Job]) -> None:
        """Start jobs until the input is exhausted and none is queued, or the run stops."""
        self._jobs, self._more = jobs, True
        self._fed = asyncio.get_running_loop().create_future()
        self._pump()
        try:
            await self._fed
        finally:
            if self._timer is not None:
                self._timer.cancel()
        for job in self._hosts.drain():
            self._finish(self._not_started(job, "the run stopped before this URL started"))

    def _pump(self) -> None:
        """Read ahead up to ``lookahead`` queued jobs and start every one that may start now.

        It runs whenever that may change: at the start, in each task's done callback (so the next
        download starts in the same loop turn as the last one ended, with no feeder task to wake), when
        a host's back-off or rate wait ends (a timer), and on stop."""
        fed = self._fed
        if self._pumping or fed is None or fed.done():
            return
        self._pumping = True
        try:
            while not self._stopping:
                if len(self._callbacks) >= self.limits.concurrency:
                    return  # the caller's async callbacks lag behind: the next of them to end pumps
                self._more = self._more and self._read_ahead(self._jobs)
                if self._hosts.newly_down:
                    for job, err in self._hosts.down_jobs():
                        self._finish(self._failure(job, err, 0, 0.0))
                if not self._more and not self._hosts.queued:
                    break
                chosen = self._hosts.next_job(len(self._tasks))
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
        if len(self._tasks) >= self.limits.concurrency:
            return  # every slot is busy: a task's end comes first
        wait = self._hosts.wake_in()
        if wait is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(wait, self._pump)

    def _read_ahead(self, jobs: Iterator[Job]) -> bool:
        """Queue jobs until ``lookahead`` wait beyond the free slots; False once the input is exhausted."""
        while self._hosts.queued <= self.limits.lookahead:
            job = next(jobs, None)
            if job is None:
                return False
            settled = self._settle(job)
            if settled is not None:
                self._finish(settled)
            else:
                self._hosts.push(job.host, job)
        return True

    def _start(self, job: Job) -> None:
        task = self.loop.create_task(self.fetch_one(job))
        self._tasks[task] = job
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

    def _settle(self, job: Job) -> Result | None:
        """A result without a request: an invalid row, a duplicate, or a URL an earlier run completed."""
        if job.error:
            return Result(
                job.url, job.line, Status.INVALID, kind=job.error_kind, error=job.error, extra=job.extra
            )
        if self._dedup and not self._seen.add(job.digest):
            path, note = (job.path, None) if job.url_named else (None, "same URL as an earlier line")
            return Result(job.url, job.line, Status.DUPLICATE, path=path, error=note, extra=job.extra)
        if self._resuming and job.digest in self._done:
            return Result(job.url, job.line, Status.SKIPPED, path=job.path, extra=job.extra)
        if job.may_collide and self._claims is not None and not self._claims.claim(job.path, job.digest):
            self._rename(job)
        return None

    def _rename(self, job: Job) -> None:
        """Another URL holds this job's path: save it under the path plus its URL's digest, and say so."""
        planned, job.path = job.path, with_digest(job.path, job.digest)
        assert self._claims is not None
        self._claims.claim(job.path, job.digest)
        job.note = f"{planned} is another URL's file; saved as {job.path}"
        self.stats.renamed += 1
        if self.stats.renamed <= SHOWN_RENAMES:
            log.warning("name taken: %s (%s) saved as %s", planned, job.url, job.path)
        if self.stats.renamed == SHOWN_RENAMES + 1:
            log.warning("more names taken: each row's 'note' in the manifest says so")

    def _done_cb(self, task: asyncio.Task[Result]) -> None:
        job = self._tasks.pop(task)
        self._hosts.finished(job.host)
        if task.cancelled() and self.stats.interrupted:
            result = self._not_started(job, "interrupted while downloading; nothing of it was kept")
        elif task.cancelled():
            result = self._failure(job, Cancelled("cancelled: the run was stopped"), 0, 0.0)
        elif (exc := task.exception()) is not None:
            log.error("internal error on %s", job.url, exc_info=exc)
            result = self._failure(job, DownloadError(f"internal error: {exc!r}"), 0, 0.0)
        else:
            result = task.result()
            if result.kind == Cancelled.kind and self.stats.interrupted:
                result = self._not_started(job, "interrupted while downloading; nothing of it was kept")
        self._finish(result)
        self._pump()

    def _finish(self, result: Result) -> None:
        assert self._manifest is not None
        if result.status is not Status.SKIPPED:  # complete already: its earlier row stands
            self._manifest.write(result)
        if self._manifest.error and not self._stopping:
            self.stop(self._manifest.error)
        self.stats.add(result)
        if self._log_failures and result.status in (Status.FAILED, Status.INVALID):
            failure_log.info("failed %s (%s): %s", result.url, result.kind, result.error)
        for callback in self.on_done:
            try:
                value = callback(result)
            except Exception:
                log.exception("on_done callback failed for %s", result.url)
            else:
                if value is not None and inspect.isawaitable(value):
                    self._await_callback(value, result.url)

    def _await_callback(self, value: Awaitable[object], url: str) -> None:
        """Run an async callback as a task, held until it ends (the loop keeps only weak references)."""
        task = asyncio.ensure_future(value)
        self._callbacks.add(task)
        task.add_done_callback(functools.partial(self._callback_done, url=url))

    def _callback_done(self, task: asyncio.Future[object], *, url: str) -> None:
        self._callbacks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("on_done callback failed for %s", url, exc_info=exc)
        self._pump()

    # -- one URL ---------------------------------------------------------------------------------------

    def loop_time(self, monotonic: float) -> float:
        """A ``time.monotonic`` instant on the loop's clock (uvloop keeps a clock of its own, in step with
        ``time.monotonic`` to the millisecond: the offset is taken once, when the run starts)."""
        return monotonic + self._clock_offset

    async def fetch_one(self, job: Job) -> Result:
        """All attempts at one URL within ``--deadline``; never raises for a bad URL."""
        start = time.monotonic()
        if self._robots is not None and (refused := await self._robots.refusal(job)) is not None:
            return self._failure(job, refused, 0, time.monotonic() - start)
        deadline = Deadline(start + self.timeouts.deadline)
        attempts = stalls = 0
        while True:
            attempts += 1
            try:
                fetched = await self._attempt(job, deadline)
            except DownloadError as exc:
                err = exc
            else:
                return self._success(job, fetched, attempts, start)
            stalls += err.stall
            delay, err = self._retry_delay(job, err, (attempts, stalls), deadline)
            if delay is None:
                break
            await asyncio.sleep(delay)
        if isinstance(err, WriteError) and err.fatal:
            self.stop(f"output is not writable: {err}")
            assert self._manifest is not None
            self._manifest.flush()  # while the rows may still fit
        return self._failure(job, err, attempts, time.monotonic() - start)

    async def _attempt(self, job: Job, deadline: Deadline) -> Fetched:
        """One attempt, bounded by ``--timeout`` and by the URL's deadline (one limit on the run's
        ``Timers``, moved later while the body keeps arriving at ``--deadline-speed``)."""
        host = job.host
        wait = self._hosts.gate(host)
        if wait > 0:
            if time.monotonic() + wait > deadline.at:
                raise Timeout(
                    f"URL deadline of {self.timeouts.deadline:g} s would pass while {host} backs off"
                )
            await asyncio.sleep(wait)
        limit = self.timeouts.timeout
        attempt_end = time.monotonic() + limit + ATTEMPT_GRACE_S if limit else math.inf
        try:
            at = min(deadline.at, attempt_end) + self._clock_offset  # on the loop's clock (``loop_time``)
            with self._timers.limit(at, attempt_end) as lim:
                deadline.on_move = lim
                if self._hosts.rated:
                    await self._hosts.admit(host)
                fetched = await self.backend.fetch(job.key, job.path, deadline)
        except TimeoutError:
            if deadline.at < attempt_end:
                raise Timeout(f"URL deadline of {self.timeouts.deadline:g} s exceeded") from None
            err: DownloadError = Timeout(f"attempt exceeded its total timeout of {limit:g} s")
            self._hosts.failed(host, err)
            raise err from None
        except DownloadError as exc:
            self._hosts.failed(host, exc)
            raise
        finally:
            deadline.on_move = None
        self._hosts.succeeded(host)
        return fetched

    def _success(self, job: Job, fetched: Fetched, attempts: int, start: float) -> Result:
        """The row of a stored URL. Positional (in ``Result``'s field order): half the cost of keywords."""
        note, meta = job.note, fetched.meta
        return Result(
            job.url,
            job.line,
            Status.OK,
            fetched.path,
            None,  # kind
            fetched.http_status,
            fetched.bytes,
            fetched.sha256,
            fetched.content_type,
            attempts,
            time.monotonic() - start,  # elapsed_s
            fetched.ttfb_s,
            None,  # error
            job.extra,
            meta if note is None else {**(meta or {}), "note": note},
        )

    def _retry_delay(
        self, job: Job, err: DownloadError, tries: tuple[int, int], deadline: Deadline
    ) -> tuple[float | None, DownloadError]:
        """Seconds to wait before the next attempt, or None to give up; and the error to report.
        ``tries``: the attempts so far, and how many of them stalled."""
        c = self.retries
        attempts, stalls = tries
        if not err.retryable or attempts > c.retries or (err.stall and stalls > c.stall_retries):
            return None, err
        if err.retry_after is not None and err.retry_after > c.retry_after_max:
            return None, RateLimited(
                err.http_status or 429,
                f"Retry-After {err.retry_after:g} s exceeds --retry-after-max {c.retry_after_max:g} s",
            )
        if err.retry_after is not None:
            delay = err.retry_after
        else:
            delay = c.backoff * 2 ** (attempts - 1) * random.uniform(0.5, 1.5)
        if err.http_status == 429 or err.retry_after is not None:
            self._hosts.back_off(job.host, delay)
        if time.monotonic() + delay > deadline.at:
            return None, err
        return delay, err

    def _not_started(self, job: Job, why: str) -> Result:
        return Result(job.url, job.line, Status.NOT_STARTED, error=why, extra=job.extra)

    def _failure(self, job: Job, err: DownloadError, attempts: int, elapsed: float) -> Result:
        return Result(
            job.url,
            job.line,
            Status.FAILED,
            path=None,
            kind=err.kind,
            http_status=err.http_status,
            content_type=err.content_type,
            attempts=attempts,
            elapsed_s=elapsed,
            error=str(err),
            extra=job.extra,
            meta=None if job.note is None else {"note": job.note},
        )
