"""The engine at its seam, with a fake backend: laziness, bounded concurrency, stopping."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from downloader import adownload, download
from downloader.app.assemble import build_engine
from downloader.models import Job, Result
from downloader.sources import jobs_from_urls
from downloader.spec import RunSpec
from tests.helpers import GatedBackend, manifest_rows


async def wait_for(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


@pytest.mark.parametrize("lookahead", [0, 64])
async def test_input_is_pulled_lazily_and_in_flight_is_bounded(tmp_path: Path, lookahead: int) -> None:
    n = 16
    ahead = n + lookahead + 1  # in flight, queued for the scheduler, and the row that filled the queue
    consumed = 0

    def million() -> Iterator[Job]:
        nonlocal consumed
        for job in jobs_from_urls(f"http://127.0.0.1:9/{i}.jpg" for i in range(1_000_000)):
            consumed += 1
            yield job

    backend = GatedBackend()
    engine = build_engine(
        RunSpec.from_options(out=tmp_path, concurrency=n, lookahead=lookahead), backend=backend
    )
    run = asyncio.create_task(engine.run(million()))
    await wait_for(lambda: backend.in_flight == n)
    await asyncio.sleep(0.05)
    assert consumed == ahead and backend.peak == n
    for burst in range(1, 6):  # let a few hundred through, in bursts
        for _ in range(100):
            backend.gate.release()
        await wait_for(lambda b=burst: backend.completed >= 100 * b and backend.in_flight == n)
        assert consumed - backend.completed <= ahead
    assert backend.peak == n
    engine.stop()
    stats = await run
    # the rows in flight and those queued were reached: each gets a "not_started" row, not a failure
    assert stats.ok == 500 and stats.not_started == ahead and stats.failed == 0 and not stats.failures
    assert stats.total == consumed == 500 + ahead
    assert len(manifest_rows(tmp_path)) == stats.total


async def test_sync_download_refuses_a_running_loop(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="adownload"):
        download([], tmp_path)


async def test_adownload_runs_inside_a_running_loop(tmp_path: Path) -> None:
    backend = GatedBackend()
    backend.gate = asyncio.Semaphore(10)
    stats = await adownload([f"http://127.0.0.1:9/{i}.jpg" for i in range(10)], tmp_path, backend=backend)
    assert stats.ok == 10


def test_sync_download_outside_a_loop(tmp_path: Path) -> None:
    seen: list[int] = []
    stats = download(["nope", "ftp://x/y"], tmp_path, on_done=lambda r: seen.append(r.line))
    assert stats.invalid == 2 and sorted(seen) == [1, 2]


def test_unknown_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="concurency"):
        download([], tmp_path, concurency=3)


@pytest.mark.parametrize("names", ["hashed", "plain"])
async def test_a_finished_run_is_freed_without_the_collector(tmp_path: Path, names: str) -> None:
    """No reference cycle outlives a run: its engine, ledger and indexes go as the last reference does,
    not at the collector's next full pass (a process running many shards would hold each one's)."""
    ended: list[str] = []

    async def slow(result: Result) -> None:
        await asyncio.sleep(0)
        ended.append(result.url)

    backend = GatedBackend()
    backend.gate = asyncio.Semaphore(100)
    spec = RunSpec.from_options(out=tmp_path, names=names)
    engine = build_engine(spec, backend=backend, on_done=[slow])
    urls = [f"http://127.0.0.1:9/{i % 7}/{i}.jpg" for i in range(20)]
    stats = await engine.run(jobs_from_urls(urls, spec.naming))
    assert stats.ok == 20 and len(ended) == 20
    gone = weakref.ref(engine)
    del engine
    assert gone() is None
