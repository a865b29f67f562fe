"""All the attempts at one URL: its robots.txt verdict, its ``--deadline``, each attempt's time limit,
retries with back-off (``Retry-After`` honoured up to ``--retry-after-max``) and what each outcome
tells the host's health. It returns the URL's row and never raises for a bad URL; which URL runs when
is the engine's business, not this module's.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable

from ..backends.base import Backend, PageReader, closing
from ..errors import DownloadError, RateLimited, Timeout, UsageError, WriteError
from ..models import Deadline, Fetched, Job, Result
from ..spec import RunSpec
from .hosts import Hosts
from .robots import RobotsCache
from .rows import failure, success
from .timers import Timers

ATTEMPT_GRACE_S = 1.0
"""Beyond ``--timeout`` before the engine itself cancels an attempt (the backends enforce it first)."""

OutputLost = Callable[[str], None]
"""Told why the output cannot take any more (disk full, read-only): the run stops."""


def _output_kept(reason: str) -> None:
    """No run to stop: none is going on."""


def robots_cache(spec: RunSpec, backend: Backend, hosts: Hosts) -> RobotsCache | None:
    """The run's robots.txt cache with ``--robots-txt``; refused for a backend that cannot read a page."""
    if not spec.content.robots_txt:
        return None
    if not isinstance(backend, PageReader):
        raise UsageError(f"robots_txt needs a backend that can read a page (read()); {backend.name} cannot")
    return RobotsCache(spec, backend, hosts)


class Attempts:
    """One run's way of fetching a URL; ``open`` with the run's timers, ``fetch`` per URL, ``close``."""

    def __init__(self, spec: RunSpec, backend: Backend, hosts: Hosts) -> None:
        self.timeouts = spec.timeouts
        self.retries = spec.retries
        self.backend = backend
        self._closing = closing(backend)  # None: a caller's own backend that takes no keep_alive
        self._hosts = hosts
        self._robots = robots_cache(spec, backend, hosts)
        self._timers: Timers | None = None
        self._lost: OutputLost = _output_kept

    def open(self, timers: Timers, lost: OutputLost) -> None:
        """The run's timers (on its loop), and whom to tell that the output is lost, until ``close``
        lets go of it (no reference cycle outlives the run)."""
        self._timers = timers
        self._lost = lost

    async def aclose(self) -> None:
        """End the robots.txt fetches still running (before the backend closes)."""
        if self._robots is not None:
            await self._robots.close()

    def close(self) -> None:
        self._lost = _output_kept  # let go of the engine: no cycle outlives the run
        if self._timers is not None:
            self._timers.close()

    async def fetch(self, job: Job) -> Result:
        """All attempts at one URL within ``--deadline``; never raises for a bad URL."""
        start = time.monotonic()
        if self._robots is not None and (refused := await self._robots.refusal(job)) is not None:
            return failure(job, refused, 0, time.monotonic() - start)
        deadline = Deadline(start + self.timeouts.deadline)
        attempts = stalls = 0
        while True:
            attempts += 1
            try:
                fetched = await self._attempt(job, deadline)
            except DownloadError as exc:
                err = exc
            else:
                return success(job, fetched, attempts, start)
            stalls += err.stall
            delay, err = self._retry_delay(job, err, (attempts, stalls), deadline)
            if delay is None:
                break
            await asyncio.sleep(delay)
        if isinstance(err, WriteError) and err.fatal:
            self._lost(f"output is not writable: {err}")  # from inside this task: see Engine.stop
        return failure(job, err, attempts, time.monotonic() - start)

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
        timers = self._timers
        assert timers is not None  # opened with the run
        try:
            at = min(deadline.at, attempt_end) + timers.offset  # on the loop's clock
            with timers.limit(at, attempt_end) as lim:
                deadline.on_move = lim
                if self._hosts.rated:
                    await self._hosts.admit(host)
                fetched = await self._send(job, deadline)
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

    def _send(self, job: Job, deadline: Deadline) -> Awaitable[Fetched]:
        """The backend's fetch, told when nothing else of the host is queued or in flight and the host
        did not come back lately, so that its connection is closed rather than left idle (memory flat in
        the hosts seen). Asked as the attempt starts, when the pump has read ahead past the slot it took."""
        if self._closing is None or self._hosts.keep_connection(job.host):
            return self.backend.fetch(job.key, job.path, deadline)
        return self._closing.fetch(job.key, job.path, deadline, keep_alive=False)

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
