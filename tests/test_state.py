"""The ``State`` protocol, the same suite on every database: SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from downloader.errors import UsageError
from downloader.keys import archive_digest
from downloader.state import Archived, RunStatus, State, StateError, parse_url
from downloader.state.drivers import open_state
from tests.dbs import server_url, state_url

__all__ = ["server_url", "state_url"]
RUN = "run-a"


async def opened(url: str) -> State:
    db = await open_state(url).__aenter__()
    await db.setup()
    return db


async def test_setup_twice_is_harmless_and_keeps_data(state_url: str) -> None:
    async with open_state(state_url) as db:
        await db.setup()
        await db.start_run(RUN, {"a": 1}, 3)
        await db.setup()
        assert await db.left(RUN) == 3
        assert await db.runs() == [RUN]


async def test_setup_from_many_connections_at_once(state_url: str) -> None:
    dbs = [open_state(state_url) for _ in range(4)]
    for db in dbs:
        await db.__aenter__()
    try:
        await asyncio.gather(*(db.setup() for db in dbs))
    finally:
        for db in dbs:
            await db.__aexit__(None, None, None)


async def test_claim_in_order_then_none_while_held(state_url: str) -> None:
    db = await opened(state_url)
    try:
        await db.start_run(RUN, {}, 2)
        await db.start_run(RUN, {}, 2)  # a second worker's start: nothing changes
        assert [await db.claim(RUN, "w1", 30), await db.claim(RUN, "w2", 30)] == [0, 1]
        assert await db.claim(RUN, "w3", 30) is None
        status = await db.status(RUN)
        assert (status.shards, status.done, sorted(x.worker for x in status.running)) == (2, 0, ["w1", "w2"])
        assert all(x.since is not None and x.until > x.since for x in status.running)
    finally:
        await db.__aexit__(None, None, None)


async def test_an_expired_lease_is_claimed_again_and_the_old_holder_loses_it(state_url: str) -> None:
    db = await opened(state_url)
    try:
        await db.start_run(RUN, {}, 1)
        assert await db.claim(RUN, "w1", 0.3) == 0
        assert await db.renew(RUN, 0, "w1", 0.3)
        assert await db.claim(RUN, "w2", 30) is None
        await asyncio.sleep(0.5)
        assert [x.worker for x in (await db.status(RUN)).expired] == ["w1"]
        assert await db.claim(RUN, "w2", 30) == 0
        assert not await db.renew(RUN, 0, "w1", 30)
        assert await db.renew(RUN, 0, "w2", 30)
        (lease,) = (await db.status(RUN)).running
        assert (lease.worker, lease.attempts) == ("w2", 2)
    finally:
        await db.__aexit__(None, None, None)


async def test_finish_counts_and_release(state_url: str) -> None:
    db = await opened(state_url)
    try:
        await db.start_run(RUN, {"rows": 30}, 3)
        k = await db.claim(RUN, "w1", 30)
        counts = {"rows": 10, "ok": 8, "failed": 2, "kind:http_4xx": 2}
        assert await db.finish(RUN, 0, "w1", counts)
        assert not await db.finish(RUN, 0, "w1", counts)  # already done: left as it was
        assert not await db.renew(RUN, 0, "w1", 30)
        assert (await db.claim(RUN, "w2", 30), await db.claim(RUN, "w3", 30)) == (1, 2)
        await db.release(RUN, 1, "w2")
        assert await db.claim(RUN, "w4", 30) == 1
        status = await db.status(RUN)
        assert (k, status.done, status.left, await db.left(RUN)) == (0, 1, 2, 2)
        assert status.rows == {"rows": 10, "ok": 8, "failed": 2} and status.kinds == {"http_4xx": 2}
        assert status.rate is not None and status.eta is not None and status.eta > 0
    finally:
        await db.__aexit__(None, None, None)


async def test_claim_a_given_shard(state_url: str) -> None:
    db = await opened(state_url)
    try:
        await db.start_run(RUN, {}, 2)
        assert await db.claim(RUN, "w1", 30, shard=1) == 1
        assert await db.claim(RUN, "w1", 30, shard=1) == 1  # its own again
        assert await db.claim(RUN, "w2", 30, shard=1) == 1  # taken over: the caller holds its lock file
        assert not await db.renew(RUN, 1, "w1", 30)
        assert await db.claim(RUN, "w3", 30) == 0  # the next claim goes on past it
        assert await db.finish(RUN, 1, "w2", {"rows": 1})
        assert await db.claim(RUN, "w2", 30, shard=1) == 1  # a done one reopened on request
        assert await db.claim(RUN, "w2", 30, shard=7) == 7  # a shard beyond the plan is added
    finally:
        await db.__aexit__(None, None, None)


async def test_a_grown_list_adds_shards(state_url: str) -> None:
    db = await opened(state_url)
    try:
        await db.start_run(RUN, {}, 2)
        await db.start_run(RUN, {}, 2500)
        assert (await db.status(RUN)).shards == 2500
    finally:
        await db.__aexit__(None, None, None)


def entry(n: int, status: str = "ok", run: str = RUN) -> Archived:
    url = f"http://127.0.0.1/{n}.jpg"
    return Archived(archive_digest(url), url, status, "ab" * 32, f"/out/00000.tar#{n:09d}", run)


async def test_archive_many_per_call_keeps_the_first_ok(state_url: str) -> None:
    db = await opened(state_url)
    try:
        await db.archive([entry(n, "ok" if n % 2 else "failed") for n in range(2500)])
        await db.archive([entry(n, "ok", run="run-b") for n in range(4)] + [entry(0, "failed", "run-c")])
        wanted = [entry(n).digest for n in range(2600)]
        got = await db.archived(wanted)
        assert len(got) == 2500
        assert (got[entry(0).digest].status, got[entry(0).digest].run) == ("ok", "run-b")  # failed replaced
        assert (got[entry(1).digest].status, got[entry(1).digest].run) == ("ok", RUN)  # ok kept
        assert got[entry(2).digest].where == "/out/00000.tar#000000002"
        assert await db.archived([]) == {}
    finally:
        await db.__aexit__(None, None, None)


async def test_many_claimers_never_get_the_same_shard(state_url: str) -> None:
    shards, workers = 40, 8
    first = await opened(state_url)
    await first.start_run(RUN, {}, shards)
    await first.__aexit__(None, None, None)

    async def worker(name: str) -> list[int]:
        got = []
        async with open_state(state_url) as db:
            while (k := await db.claim(RUN, name, 60)) is not None:
                got.append(k)
                assert await db.finish(RUN, k, name, {"rows": 1})
        return got

    taken = await asyncio.wait_for(asyncio.gather(*(worker(f"w{i}") for i in range(workers))), 60)
    flat = [k for got in taken for k in got]
    assert sorted(flat) == list(range(shards))


async def test_a_database_that_is_gone_is_a_state_error(tmp_path: object) -> None:
    with pytest.raises(StateError, match="connecting failed"):
        async with open_state("postgresql://postgres@127.0.0.1:1/none"):
            pass
    with pytest.raises(StateError, match="connecting failed"):
        async with open_state("mysql://root@127.0.0.1:1/none"):
            pass


@pytest.mark.parametrize(
    "url", ["nope://x/y", "mysql://host-only", "sqlite://", "postgresql:///db", "mysql://u@h:99999/db"]
)
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        parse_url(url)


def test_urls_are_taken_apart_and_passwords_hidden() -> None:
    w = parse_url("mysql://me:s%40cret@db.example:3307/runs")
    assert (w.dialect, w.host, w.port, w.user, w.password, w.database) == (
        "mysql",
        "db.example",
        3307,
        "me",
        "s@cret",
        "runs",
    )
    assert "s%40cret" not in w.shown
    assert parse_url("sqlite:///rel/state.db").path == "rel/state.db"
    assert parse_url(f"sqlite:///{os.sep}abs/state.db").path == "/abs/state.db"


def test_a_finished_runs_rate_ends_with_its_last_shard() -> None:
    done = RunStatus(RUN, shards=2, done=2, rows={"rows": 100}, started=0.0, updated=100.0, last_finish=10.0)
    going = RunStatus(RUN, shards=3, done=2, rows={"rows": 100}, started=0.0, updated=20.0, last_finish=10.0)
    assert (done.rate, done.eta, going.rate) == (10.0, 0.0, 5.0)


def test_the_rate_is_over_the_union_of_the_times_shards_ran() -> None:
    # two workers at once for 10 s, a pause of 100 s, then one shard for 5 s: busy 15 s, not 115 or 25
    ran = [(0.0, 10.0), (0.0, 10.0), (110.0, 115.0)]
    s = RunStatus(RUN, shards=4, done=3, rows={"rows": 30}, started=0.0, updated=200.0, ran=ran, ran_rows=30)
    assert (s.busy, s.rate) == (15.0, 2.0)
    s.settings = {"rows": 50}
    assert s.eta == 10.0  # the 20 rows left at 2 rows/s


def _open_together(url: str, barrier: Any, failed: Any) -> None:
    """One of several processes opening a new SQLite state at the same moment (``fork``: no import)."""
    state = open_state(url)
    barrier.wait()
    try:
        state._open()  # type: ignore[attr-defined]  # the driver's own connect, no loop needed
    except sqlite3.OperationalError:
        failed.value += 1


def test_workers_that_open_a_new_sqlite_state_at_once_all_connect(tmp_path: Path) -> None:
    """Static ranks start together and each opens the default SQLite state, new: SQLite refuses the
    change to write-ahead logging to all but one without calling the busy handler, so it is asked again.
    (Before, about one open in ten failed here with "database is locked".)"""
    ctx = multiprocessing.get_context("fork")
    failed = ctx.Value("i", 0)
    for attempt in range(25):
        url = f"sqlite:///{tmp_path / f'state-{attempt}.sqlite'}"
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open_together, args=(url, barrier, failed)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 4
    assert failed.value == 0
