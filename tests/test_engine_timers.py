"""The attempts' limits on one timer: expiry, moves, other cancellations, memory."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

import pytest

from downloader.engine.timers import Timers


def timers() -> Timers:
    loop = asyncio.get_running_loop()
    return Timers(loop, loop.time() - time.monotonic())


async def test_a_limit_that_passes_raises_timeout_error() -> None:
    t = timers()
    started = time.monotonic()
    with pytest.raises(TimeoutError), t.limit(t.loop.time() + 0.05, math.inf):
        await asyncio.sleep(5)
    assert 0.04 < time.monotonic() - started < 1.0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_limit_moved_later_from_a_thread_lets_the_attempt_finish() -> None:
    t = timers()
    with t.limit(t.loop.time() + 0.05, time.monotonic() + 5) as lim:
        await asyncio.to_thread(lim, time.monotonic() + 0.3)
        await asyncio.sleep(0.15)

    async def moved_too_far() -> None:
        with t.limit(t.loop.time() + 0.05, time.monotonic() + 0.1) as lim:
            lim(time.monotonic() + 10)
            await asyncio.sleep(1)

    with pytest.raises(TimeoutError):  # never past ``end``
        await moved_too_far()


async def test_another_cancellation_is_not_turned_into_a_timeout() -> None:
    t = timers()

    async def attempt() -> None:
        with t.limit(t.loop.time() + 10, math.inf):
            await asyncio.sleep(5)

    task = asyncio.create_task(attempt())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_swallowed_expiry_leaves_the_task_uncancelled() -> None:
    t = timers()
    # the cancel swallowed, as a writer does that finishes its rename first
    with t.limit(t.loop.time() + 0.02, math.inf), contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(1)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_ended_attempts_do_not_pile_up() -> None:
    t = timers()
    for _ in range(5000):
        with t.limit(t.loop.time() + 100, math.inf):
            pass
    assert len(t._heap) < 200
    t.close()
