"""Per-host bookkeeping: which queued job goes next, and what the engine remembers about each host.

The engine reads a bounded window of jobs ahead of its free slots (``lookahead``) and queues them by
host:port. When a slot frees, ``next_job`` hands out a job from the next host, in turn, that may start now:
under ``--per-host``, under its fair share of the slots (so one slow host cannot hold them all while other
hosts wait), not backing off after a 429/503, and with request-rate capacity. A host that failed to connect
too often in a row is marked down and its queued jobs come back as ``host_down`` at once.

State for a host exists only while it has queued or running jobs, or misbehaved, so memory follows the
window, not the list; the hosts whose attempts started within the last ``recent`` seconds are remembered
too (``Returning``), so a host that comes back often keeps its connection between visits. aiolimiter
supplies the request-rate buckets (a leaky bucket with ``has_capacity``, so the scheduler can look without
waiting).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import DownloadError, HostDown
from ..models import Job

if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter


def limiter(rate: float) -> AsyncLimiter:
    """``rate`` requests per second, allowing a burst of at most one second's worth (at least one)."""
    from aiolimiter import AsyncLimiter  # imported when a rate is set (7 ms of start-up otherwise)

    return AsyncLimiter(max(rate, 1.0), max(rate, 1.0) / rate)


@dataclass(slots=True)
class Host:
    queue: deque[Job] = field(default_factory=deque)
    running: int = 0
    not_before: float = 0.0
    conn_failures: int = 0
    down: bool = False
    rate: AsyncLimiter | None = None

    @property
    def idle(self) -> bool:
        """Nothing to remember: no jobs, no back-off, no failure streak."""
        return not (self.queue or self.running or self.conn_failures or self.down) and (
            self.not_before <= time.monotonic()
        )


class Returning:
    """When each host's latest attempt started, for those within the last ``window`` seconds, oldest first
    (a dict keeps insertion order, so the expired ones are cut from its front): at most the hosts started
    in one window, however many the list names."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._started: dict[str, float] = {}

    def came_back(self, name: str, now: float) -> bool:
        """Note an attempt of ``name`` starting ``now``; whether its previous one started within the
        window (a host that came back that soon is likely to again before its connection ages out)."""
        if self.window <= 0:
            return False
        started = self._started
        previous = started.pop(name, None)
        started[name] = now
        horizon = now - self.window
        while started:  # the expired ones, from the front: a step or two a call
            oldest = next(iter(started))  # ``name`` too, under a window below the clock's resolution
            if started[oldest] > horizon:
                break
            del started[oldest]
        return previous is not None and previous > horizon

    def __len__(self) -> int:
        return len(self._started)


class Hosts:
    def __init__(
        self,
        concurrency: int,
        *,
        per_host: int = 0,
        host_down_after: int = 0,
        rate: float = 0.0,
        rate_per_host: float = 0.0,
        recent: float = 0.0,
        running: dict[str, int] | None = None,
    ) -> None:
        self.concurrency = concurrency
        self._running = running
        """Running tasks per host over every engine sharing the slots (``Slots.by_host``): the caps count
        them; None: this engine's own."""
        self.per_host = per_host
        self.host_down_after = host_down_after
        self.rate_per_host = rate_per_host
        self.rate = limiter(rate) if rate else None
        self.rated = bool(rate or rate_per_host)
        """Whether ``admit`` can wait at all (without rates an attempt need not call it)."""
        self._hosts: dict[str, Host] = {}
        self._turn: deque[str] = deque()  # hosts with queued jobs, in the order they get their turn
        self.newly_down: list[str] = []
        """Down hosts whose queued jobs are still to be failed (``down_jobs``); empty nearly always."""
        self.queued = 0
        self.returning = Returning(recent)

    def _host(self, name: str) -> Host:
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = Host()
            if self.rate_per_host:
                host.rate = limiter(self.rate_per_host)
        return host

    def _forget_if_idle(self, name: str) -> None:
        host = self._hosts.get(name)
        if host is not None and host.idle:
            del self._hosts[name]

    def __len__(self) -> int:
        """Hosts currently remembered (for tests of bounded memory)."""
        return len(self._hosts)

    # -- scheduling ------------------------------------------------------------------------------------

    def push(self, name: str, job: Job) -> None:
        host = self._host(name)
        if host.down and not host.queue:
            self.newly_down.append(name)  # its queue goes straight back as host_down
        elif not host.queue:
            self._turn.append(name)
        host.queue.append(job)
        self.queued += 1

    def next_job(self, running_total: int) -> tuple[str, Job] | None:
        """The next job that may start now, taking turns across hosts; None if every queued host must
        wait. Jobs of a host that is down are not returned here (see ``down_jobs``)."""
        if running_total >= self.concurrency or not self._turn:
            return None
        share = -(-self.concurrency // len(self._turn))  # ceil: at least one, since concurrency is
        now = time.monotonic()
        for _ in range(len(self._turn)):
            name = self._turn[0]
            self._turn.rotate(-1)
            host = self._hosts[name]
            if self._may_start(name, host, share, now):
                return name, self._take(name, host)
        return None

    def _may_start(self, name: str, host: Host, share: int, now: float) -> bool:
        running = host.running if self._running is None else self._running.get(name, 0)
        if host.down or host.not_before > now or running >= share:
            return False
        if self.per_host and running >= self.per_host:
            return False
        return host.rate is None or host.rate.has_capacity()

    def _take(self, name: str, host: Host) -> Job:
        """Start ``name``'s next job; ``name`` has just been rotated to the end of the turn."""
        job = host.queue.popleft()
        self.queued -= 1
        if not host.queue:
            self._turn.pop()
        host.running += 1
        return job

    def down_jobs(self) -> Iterator[tuple[Job, HostDown]]:
        """Queued jobs of hosts that are down, each with the error to record; they leave the queue."""
        while self.newly_down:
            name = self.newly_down.pop()
            host = self._hosts[name]
            if name in self._turn:  # it went down with jobs queued (rare: a scan is fine)
                self._turn.remove(name)
            err = HostDown(f"{name} failed to connect {host.conn_failures} times in a row; not tried")
            while host.queue:
                self.queued -= 1
                yield host.queue.popleft(), err

    def drain(self) -> Iterator[Job]:
        """Every queued job, emptying the queue (the run is stopping)."""
        names = [*self._turn, *self.newly_down]
        self._turn.clear()
        self.newly_down.clear()
        for name in names:
            host = self._hosts[name]
            while host.queue:
                self.queued -= 1
                yield host.queue.popleft()
            self._forget_if_idle(name)

    def keep_connection(self, name: str) -> bool:
        """Asked as an attempt of ``name`` starts: whether its connection is worth keeping afterwards,
        as ``name`` has another job queued in the read-ahead window or running beside this one, or came
        back within ``recent`` seconds. If not, its connection is closed rather than left idle."""
        came_back = self.returning.came_back(name, time.monotonic())
        host = self._hosts.get(name)
        return came_back or (host is not None and (bool(host.queue) or host.running > 1))

    def finished(self, name: str) -> None:
        host = self._host(name)
        host.running -= 1
        if host.idle:
            del self._hosts[name]

    def wake_in(self) -> float | None:
        """Seconds until a queued host that waits for time (back-off, rate) may start; None if none."""
        now = time.monotonic()
        waits = []
        for name in self._turn:
            host = self._hosts[name]
            if host.not_before > now:
                waits.append(host.not_before - now)
            elif host.rate is not None and not host.rate.has_capacity():
                waits.append(1.0 / self.rate_per_host)
        return min(waits) if waits else None

    # -- health ----------------------------------------------------------------------------------------

    def gate(self, name: str) -> float:
        """Seconds the next attempt at this host must wait; raises ``HostDown`` if it is down."""
        host = self._hosts.get(name)
        if host is None:
            return 0.0
        if host.down:
            raise HostDown(f"{name} failed to connect {host.conn_failures} times in a row; not tried")
        return max(0.0, host.not_before - time.monotonic()) if host.not_before else 0.0

    async def admit(self, name: str) -> None:
        """Wait for request-rate capacity, overall and for this host."""
        if self.rate is not None:
            await self.rate.acquire()
        host = self._hosts.get(name)
        if host is not None and host.rate is not None:
            await host.rate.acquire()

    def failed(self, name: str, err: DownloadError) -> None:
        """Count a connect/DNS failure; enough in a row mark the host down."""
        if not err.host_level:
            return
        host = self._host(name)
        host.conn_failures += 1
        if self.host_down_after and host.conn_failures >= self.host_down_after and not host.down:
            host.down = True
            self.newly_down.append(name)

    def succeeded(self, name: str) -> None:
        host = self._hosts.get(name)
        if host is not None:
            host.conn_failures = 0

    def back_off(self, name: str, seconds: float) -> None:
        """No new request to this host for ``seconds`` (after a 429 or a Retry-After)."""
        host = self._host(name)
        host.not_before = max(host.not_before, time.monotonic() + seconds)
