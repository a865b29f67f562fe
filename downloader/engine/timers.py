"""Every attempt's time limit on one loop timer.

``asyncio.timeout_at`` gives each attempt a timer handle of its own, which costs 4.3 µs of CPU to make,
reschedule and cancel under uvloop: a tenth of the engine's whole cost per URL. Here the limits live in
one heap and one handle wakes the loop for the earliest; an attempt that ends leaves its entry behind,
skipped when its time comes (the heap is rebuilt from the live entries when the dead ones are most of
it, so memory follows the attempts in flight). The expiry itself is ``asyncio.Timeout``'s: cancel the
task, and turn that one cancellation (and no other) into ``TimeoutError`` when the attempt unwinds.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from types import TracebackType

CLOCK_SLACK = 0.001
"""A loop may wake a timer up to a millisecond early (uvloop rounds delays to milliseconds); a limit
that near is due, as asyncio's own loop treats its timers."""


class Limit:
    """One attempt's limit on the loop's clock; ``with`` around the attempt (a plain context manager:
    no coroutines to make, and ``__exit__`` may still raise ``TimeoutError``). Callable with a later
    ``time.monotonic`` instant to move it, from any thread (``models.Deadline.on_move``), never past
    ``end`` (``time.monotonic`` too)."""

    __slots__ = ("_timers", "at", "cancelling", "end", "expired", "live", "task")

    def __init__(self, timers: Timers, task: asyncio.Task[object], at: float, end: float) -> None:
        self._timers = timers
        self.task = task
        self.at = at
        self.end = end
        self.cancelling = task.cancelling()
        self.expired = False
        self.live = True

    def __enter__(self) -> Limit:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.live = False
        self._timers.dead += 1
        if self.expired and self.task.uncancel() <= self.cancelling and et is asyncio.CancelledError:
            raise TimeoutError from ev

    def __call__(self, at: float) -> None:
        timers = self._timers
        timers.loop.call_soon_threadsafe(self._move, min(at, self.end) + timers.offset)

    def _move(self, at: float) -> None:
        if self.live and not self.expired and at > self.at:
            self.at = at
            self._timers.push(self)


class Timers:
    """The heap of attempt limits of one run, on ``loop``; ``offset`` turns a ``time.monotonic``
    instant into the loop's clock (a number, not the engine's method: no reference cycle that would keep
    a finished run's engine and its indexes alive until the collector's next full pass)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, offset: float) -> None:
        self.loop = loop
        self.offset = offset
        self._heap: list[tuple[float, int, Limit]] = []
        self._seq = 0
        self._wake_at = math.inf
        self._handle: asyncio.TimerHandle | None = None
        self.dead = 0

    def limit(self, at: float, end: float) -> Limit:
        """A limit at loop time ``at`` for the running task; ``end`` bounds its moves."""
        task = asyncio.current_task(self.loop)
        assert task is not None
        entry = Limit(self, task, at, end)
        self.push(entry)
        return entry

    def push(self, entry: Limit) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (entry.at, self._seq, entry))
        if self.dead > 64 and self.dead * 2 > len(self._heap):
            self._compact()
        if entry.at < self._wake_at:
            self._schedule(entry.at)

    def _schedule(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._wake_at = at
        self._handle = self.loop.call_at(at, self._fire)

    def _compact(self) -> None:
        """Keep the live entries only (each at its latest time)."""
        self._heap = [e for e in self._heap if e[2].live and e[0] == e[2].at]
        heapq.heapify(self._heap)
        self.dead = 0

    def _fire(self) -> None:
        self._handle = None
        self._wake_at = math.inf
        heap = self._heap
        now = self.loop.time() + CLOCK_SLACK
        while heap and heap[0][0] <= now:
            at, _, entry = heapq.heappop(heap)
            if not entry.live or at != entry.at:
                continue
            entry.expired = True
            entry.live = False
            entry.task.cancel()
        if heap:
            self._schedule(heap[0][0])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()
