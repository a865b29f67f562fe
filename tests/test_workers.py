"""Dataset runs with a state database: static workers (real processes) that claim shards, one killed
mid-shard and restarted; the archive shared by two runs; a database that goes away mid-run; ``status``
and ``state rebuild``; no default database on a network filesystem."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from downloader.state.local import default_url, filesystem
from tests.conftest import hits
from tests.dbs import server_url, state_url
from tests.test_datasets import (
    complete_rows,
    complete_tar,
    fetch,
    invoke,
    shard_rows,
    spooled,
    tar_samples,
    write_csv,
)

__all__ = ["server_url", "state_url"]
LEASE = "2"


def slow_list(origin: TestServer, tmp_path: Path, n: int, ms: int = 40, name: str = "list.csv") -> Path:
    return write_csv(
        tmp_path / name, [(str(origin.make_url(f"/slow/{ms}/{i}.jpg")), f"c{i}") for i in range(n)]
    )


async def worker(
    lst: Path, out: Path, state: str, rank: int, world: int, *args: str
) -> asyncio.subprocess.Process:
    cmd = [sys.executable, "-m", "downloader", "fetch", str(lst), "-o", str(out), "-q", "--output-format"]
    cmd += [
        "webdataset",
        "--shard-size",
        "4",
        "-c",
        "2",
        "--backoff",
        "0.01",
        "--state",
        state,
        "--lease",
        LEASE,
    ]
    cmd += ["--rank", str(rank), "--world", str(world), *args]
    return await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.PIPE)


async def until(ready: Any, seconds: float = 30) -> None:
    async with asyncio.timeout(seconds):
        while not ready():
            await asyncio.sleep(0.005)


async def ended(proc: asyncio.subprocess.Process, seconds: float = 60) -> tuple[int, str]:
    async with asyncio.timeout(seconds):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


def status_json(out: Path, state: str) -> dict[str, Any]:
    res = invoke("status", str(out), "--state", state, "--json")
    assert res.exit_code == 0, res.output
    found: dict[str, Any] = json.loads(res.output)
    return found


def assert_one_complete_output(out: Path, rows: int) -> None:
    """Every input row exactly once, every shard whole, no temporaries left."""
    found = shard_rows(out)
    assert sorted(r["line"] for r in found) == list(range(2, rows + 2))
    assert all(complete_tar(p) for p in out.glob("*.tar"))
    keys = [s["__key__"] for s in tar_samples(out)]
    assert keys == [r["key"] for r in found if r["status"] == "ok"]
    assert not list(out.glob(".0*")) and not list((out / "_shards").glob("*part*"))
    assert not list((out / "_shards").glob("*.spool.tar"))


@pytest.mark.parametrize("world", [2, 3])
async def test_static_workers_converge_after_one_is_killed_mid_shard(
    origin: TestServer, tmp_path: Path, server_url: str, world: int
) -> None:
    lst, out = slow_list(origin, tmp_path, 24), tmp_path / "out"
    first = await worker(lst, out, server_url, 0, world)
    try:
        await until(spooled(out, 2))
    finally:
        first.kill()
        await first.wait()
    killed = status_json(out, server_url)
    assert killed["done"] < killed["shards"] == 6
    assert [x["worker"].rsplit(":", 1)[1] for x in killed["running"] + killed["expired"]] == [str(first.pid)]
    kept = {"/" + u.split("/", 3)[3] for u in complete_rows(out)}  # complete when killed
    assert kept
    procs = [await worker(lst, out, server_url, rank, world) for rank in range(world)]
    results = [await ended(p) for p in procs]
    assert [code for code, _ in results] == [0] * world, results
    assert_one_complete_output(out, 24)
    assert {p: hits(origin, p) for p in kept} == dict.fromkeys(kept, 1)  # reused, not fetched again
    done = status_json(out, server_url)
    assert (done["done"], done["left"], done["running"], done["rows"]["ok"]) == (6, 0, [], 24)
    assert sorted(out.glob("stats.rank-*.json")) == [out / f"stats.rank-{r}.json" for r in range(world)]
