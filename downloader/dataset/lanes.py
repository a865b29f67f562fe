"""A process's shards overlapped on one event loop, so the slots never wait for a shard's stragglers.

A shard's last rows include its slowest URLs (a host that trickles holds its slot up to the deadline);
run one after another, the shards would leave the other slots idle at every end. Here each shard's
bookkeeping (its lock and lease, the plan, ``files.finish``) runs on a thread of its own, which blocks,
while its engine runs on the one loop of the process (this module's, on the main thread, where the
signals are), drawing on one ``Slots`` count of ``-c`` with the other open shards' engines and on one
backend (one session and pool, whose samples a ``RoutedOutput`` hands to each shard's spool). The next shard
opens once every open one has started its last row (its engine is *drained*: only running rows are
left), up to ``OPEN_MAX`` open at once. A shard still commits as a unit when its own last row ends, and
its contents depend on nothing of this: its rows, duplicates and keys are its own, in row order.

An interrupt stops every open shard's engine (their running rows end ``not_started``), and a shard
opened after it is stopped before its first row; no shard opens after a shard is interrupted or
aborted.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..app.assemble import Borrowed, OnInterrupt, build_backend
from ..app.progress import Reporter
from ..engine.engine import Engine
from ..engine.slots import Slots
from ..loop import run_loop, with_signals
from ..models import Job, Result, Stats
from ..spec import RunSpec
from ..writers import Output
from ..writers.routed import RoutedOutput
from ..writers.spool import key_of

OPEN_MAX = 8
"""Shards open at once in one process. All but the newest hold only their stragglers (at most the
deadline long, at most their slots), and a shard being made final holds its rows (10,000 small dicts):
eight keep ``-c`` busy through a run of slow hosts at a bounded cost."""

MakeShard = Callable[[int, "Lane"], Stats]
"""Make shard k final with its fetch on the given lane (``shard.process_shard`` bound to a run)."""


@dataclass
class Lane:
    """What one shard borrows from the process's loop: the shared slots, the bar (called on the loop's
    thread whoever calls it), and a way for its thread to run its fetch there."""

    shared: _Open
    drained: bool = False
    engine: Engine | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def slots(self) -> Slots:
        return self.shared.slots

    @property
    def bar(self) -> Reporter:
        return self.shared.bar

    @property
    def backend(self) -> Borrowed:
        """The process's backend, lent: its samples reach this shard's output by key (``routed``)."""
        return self.shared.backend

    def routed(self, jobs: Iterator[Job], output: Output) -> Iterator[Job]:
        """The shard's jobs, each one's key given to the shard's output as it is read."""
        routes = self.shared.routes
        for job in jobs:
            name = key_of(job.path)
            routes.give(name, output)
            self.keys.append(name)
            yield job

    def run(self, fetch: Coroutine[object, None, Stats]) -> Stats:
        """The shard's fetch, run on the loop from the shard's thread, which waits for it."""
        return asyncio.run_coroutine_threadsafe(fetch, self.shared.loop).result()

    def opened(self, engine: Engine) -> None:
        """The shard's engine, about to run (on the loop): stopped at once if the process is stopping."""
        self.engine = engine
        engine.on_drained = self._drained
        if self.shared.stopped:
            engine.stop()

    def closed(self) -> None:
        """The shard's engine has ended: its keys leave the routes."""
        self.engine = None
        for name in self.keys:
            self.shared.routes.drop(name)
        self.keys.clear()
        self._drained()

    def _drained(self) -> None:
        self.drained = True
        self.shared.changed.set()


@dataclass
class _Open:
    """The shards open in this process, the slots they share and whether any more may open."""

    loop: asyncio.AbstractEventLoop
    slots: Slots
    bar: Reporter
    stopping: threading.Event
    backend: Borrowed
    routes: RoutedOutput
    lanes: dict[asyncio.Future[Stats], Lane] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stopped(self) -> bool:
        return self.stopping.is_set()

    def room(self) -> bool:
        """Another shard may open: fewer than ``OPEN_MAX`` are, each with every row started."""
        lanes = self.lanes.values()
        return not self.stopped and len(lanes) < OPEN_MAX and all(lane.drained for lane in lanes)

    def stop(self) -> None:
        """No shard opens any more, and the open ones stop (their running rows end ``not_started``)."""
        self.stopping.set()
        for lane in self.lanes.values():
            if lane.engine is not None:
                lane.engine.stop()


@dataclass(frozen=True)
class Overlap:
    """How a process runs its shards: the spec (its ``-c``, loop and backend), the bar, and what a
    signal does (none: ``on_interrupt`` None installs no handler; a pool worker's SIGTERM only, say)."""

    spec: RunSpec
    bar: Reporter
    on_interrupt: OnInterrupt | None = None
    signals: tuple[str, ...] = ("SIGINT", "SIGTERM")
    on_shard: Callable[[Stats], None] | None = None
    """Each shard's statistics as it ends (a pool worker sends them to its parent)."""
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set once no shard may open: a puller that waits for shards (``leased``) gives up on it."""


def overlapped(make: MakeShard, shards: Iterator[int], how: Overlap, stats: Stats) -> Stats:
    """Make ``shards`` (pulled as each may open) with overlapping ends; ``stats`` summed over them."""
    return run_loop(_signalled(make, shards, how, stats), how.spec.performance.loop)


async def _signalled(make: MakeShard, shards: Iterator[int], how: Overlap, stats: Stats) -> Stats:
    """The shards under the signal handlers: the first signal stops every open shard."""
    routes = RoutedOutput()
    backend = build_backend(how.spec, routes)
    slots = Slots(how.spec.limits.concurrency)
    state = _Open(
        asyncio.get_running_loop(), slots, _OnLoop(how.bar), how.stopping, Borrowed(backend), routes
    )
    on_interrupt = how.on_interrupt

    def interrupted(n: int) -> None:
        if n == 1:
            stats.interrupted = True  # also when no engine runs (a shard being made final goes on)
            state.stop()
        if on_interrupt is not None:
            on_interrupt(n)

    async with backend:  # one session, one pool for every open shard
        if on_interrupt is None:
            return await _drive(make, shards, how, state, stats)
        return await with_signals(_drive(make, shards, how, state, stats), interrupted, how.signals)


async def _drive(make: MakeShard, shards: Iterator[int], how: Overlap, state: _Open, stats: Stats) -> Stats:
    """Open shards while there is room, absorb each as it ends, until none is left open."""
    more = True
    threads = ThreadPoolExecutor(OPEN_MAX + 1, thread_name_prefix="shard")  # + 1: the puller
    try:
        while True:
            while more and state.room():
                k = await state.loop.run_in_executor(threads, next, shards, None)  # a pool's queue blocks
                more = k is not None and not state.stopped
                if k is not None:  # stopped meanwhile: it opens and stops before its first row
                    _open(make, k, state, threads)
            if not state.lanes:
                return stats
            await state.changed.wait()
            state.changed.clear()
            for future in [f for f in state.lanes if f.done()]:
                _absorb(future, state, how, stats)
    finally:
        if state.lanes:  # a shard raised: the others stop, and their threads wait on this loop
            state.stop()
            await asyncio.wait(list(state.lanes))
        threads.shutdown()


def _open(make: MakeShard, k: int, state: _Open, threads: ThreadPoolExecutor) -> None:
    """Shard ``k`` started on a thread of its own; its end wakes the driver."""
    lane = Lane(state)
    future = state.loop.run_in_executor(threads, make, k, lane)
    state.lanes[future] = lane
    future.add_done_callback(lambda _: state.changed.set())


def _absorb(future: asyncio.Future[Stats], state: _Open, how: Overlap, stats: Stats) -> None:
    """An ended shard's statistics into the process's; an interrupted or aborted one opens no more."""
    state.lanes.pop(future)
    got = future.result()
    stats.absorb(got)
    if how.on_shard is not None:
        how.on_shard(got)
    if stats.interrupted or stats.aborted:
        state.stopping.set()


class _OnLoop:
    """A reporter whose calls run on the loop's thread, whichever thread makes them (a shard's thread
    counts the rows it reuses while the loop counts those it fetches: tqdm and ``Tally`` are not
    thread-safe)."""

    def __init__(self, bar: Reporter) -> None:
        self._bar = bar
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def update(self, result: Result) -> None:
        self._call(self._bar.update, result)

    def advance(self, files: int, nbytes: int, failed: int, skipped: int = 0) -> None:
        self._call(self._bar.advance, files, nbytes, failed, skipped)

    def tick(self) -> None:
        self._call(self._bar.tick)

    def close(self) -> None:
        return None  # a shard's end does not close the process's bar

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        if threading.get_ident() == self._thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)
