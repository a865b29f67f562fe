"""Dataset runs with a state database: static workers (real processes) that claim shards, one killed
mid-shard and restarted; the archive shared by two runs; a database that goes away mid-run; ``status``
and ``state rebuild``; no default database on a network filesystem."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from downloader import runfile
from downloader.dataset.statedb import Heartbeat, worker_id
from downloader.state.local import default_url, filesystem
from tests.dbs import call, server_url, state_url
from tests.helpers import (
    complete_rows,
    complete_tar,
    fetch,
    hits,
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


def recorded_done(out: Path, state: str) -> int:
    """How many shards the state database records done (0 while it has no run yet)."""
    res = invoke("status", str(out), "--state", state, "--json")
    done = json.loads(res.output).get("done", 0) if res.exit_code == 0 else 0
    return int(done)


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
    assert not list((out / "_shards").glob("*.spool"))


@pytest.mark.parametrize("world", [2, 3])
async def test_static_workers_converge_after_one_is_killed_mid_shard(
    origin: TestServer, tmp_path: Path, server_url: str, world: int
) -> None:
    lst, out = slow_list(origin, tmp_path, 24), tmp_path / "out"
    first = await worker(lst, out, server_url, 0, world)
    try:
        await until(lambda: len(complete_rows(out)) >= 2)  # two rows complete, mid-shard
    finally:
        first.kill()
        await first.wait()
    killed = status_json(out, server_url)
    assert killed["done"] < killed["shards"] == 6
    held = [x["worker"].rsplit(":", 1)[1] for x in killed["running"] + killed["expired"]]
    assert held and set(held) == {str(first.pid)}  # a lease per shard it had open (they overlap)
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


async def test_the_archive_shared_by_two_runs_skips_what_the_first_stored(
    origin: TestServer, tmp_path: Path, state_url: str
) -> None:
    urls = [str(origin.make_url(f"/img/1/image-0{i}.jpg")) for i in range(6)]
    first, second = tmp_path / "first", tmp_path / "second"
    args = ("--output-format", "webdataset", "--shard-size", "2", "--state", state_url)
    res = await fetch(write_csv(tmp_path / "a.csv", [(u, "") for u in urls[:4]]), first, *args)
    assert res.exit_code == 0, res.output
    res = await fetch(write_csv(tmp_path / "b.csv", [(u, "") for u in urls[2:]]), second, *args)
    assert res.exit_code == 0, res.output
    rows = {r["url"]: r for r in shard_rows(second)}
    for url in urls[2:4]:  # stored by the first run: not fetched again, pointed at
        assert rows[url]["status"] == "duplicate"
        assert rows[url]["duplicate_of"].startswith(f"{first.resolve()}/0000")
        assert rows[url]["duplicate_of"].split("#")[1] == shard_rows(first)[urls.index(url)]["key"]
    assert [rows[u]["status"] for u in urls[4:]] == ["ok", "ok"]
    assert [hits(origin, "/" + u.split("/", 3)[3]) for u in urls] == [1] * 6
    assert len(tar_samples(second)) == 2


class Forwarder:
    """A TCP forwarder on loopback between the workers and a database server, closed to make the
    database go away (the shared server itself is never stopped)."""

    def __init__(self, port: int) -> None:
        self.port, self.writers = port, []  # type: ignore[var-annotated]
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, up_w]
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()


async def test_a_database_that_goes_away_stops_the_run_with_exit_3_and_loses_nothing(
    origin: TestServer, tmp_path: Path, server_url: str
) -> None:
    port = 3306 if server_url.startswith("mysql") else 5432
    forwarder = Forwarder(port)
    via = server_url.replace(f":{port}/", f":{await forwarder.start()}/")
    lst, out = slow_list(origin, tmp_path, 24, ms=80), tmp_path / "out"
    proc = await worker(lst, out, via, 0, 1)
    try:
        await until(lambda: (out / "_shards" / "00000.done.json").is_file() and spooled(out, 1)())
    finally:
        await forwarder.close()
    code, err = await ended(proc)
    assert code == 3, err
    assert "state database" in err and "Traceback" not in err
    assert all(complete_tar(p) for p in out.glob("*.tar"))  # nothing partial at a final name
    kept = {"/" + u.split("/", 3)[3] for u in complete_rows(out)}
    again = await worker(lst, out, server_url, 0, 1)
    assert await ended(again) == (0, "")
    assert_one_complete_output(out, 24)
    assert {p: hits(origin, p) for p in kept} == dict.fromkeys(kept, 1)


async def test_status_and_rebuild_read_the_run(origin: TestServer, tmp_path: Path, state_url: str) -> None:
    urls = [str(origin.make_url(f"/img/1/image-0{i}.jpg")) for i in range(5)] + [
        str(origin.make_url("/404/x"))
    ]
    out = tmp_path / "out"
    res = await fetch(
        write_csv(tmp_path / "l.csv", [(u, "") for u in urls]),
        out,
        "--output-format",
        "webdataset",
        "--shard-size",
        "4",
    )
    assert res.exit_code == 1, res.output
    own = f"sqlite:///{(out / '_shards' / 'state.sqlite').resolve()}"
    first = status_json(out, own)
    assert (first["shards"], first["done"], first["left"]) == (2, 2, 0)
    assert (first["rows"], first["kinds"]) == ({"rows": 6, "ok": 5, "failed": 1}, {"http_4xx": 1})
    text = invoke("status", str(out))
    assert text.exit_code == 0 and "shards: 2 done, 0 running, 0 left (of 2)" in text.output, text.output
    res = invoke("state", "rebuild", str(out), "--state", state_url)
    assert res.exit_code == 0, res.output
    again = status_json(out, state_url)
    assert {k: again[k] for k in ("run", "shards", "done", "rows", "kinds")} == {
        k: first[k] for k in ("run", "shards", "done", "rows", "kinds")
    }


def test_a_bad_state_url_is_a_usage_error(tmp_path: Path) -> None:
    lst = tmp_path / "l.txt"
    lst.write_text("http://127.0.0.1:9/a.jpg\n")
    res = invoke(
        "fetch", str(lst), "-o", str(tmp_path / "o"), "--output-format", "webdataset", "--state", "nope://x"
    )
    assert res.exit_code == 2 and "not a state database URL" in res.output
    res = invoke("status", str(tmp_path))
    assert res.exit_code == 2 and "no state database" in res.output


def test_no_default_database_on_a_network_filesystem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mounts = tmp_path / "mounts"
    share = tmp_path / "my share"
    escaped = str(share).replace(" ", "\\040")
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {escaped} nfs4 rw 0 0\n")
    assert filesystem(share / "out", str(mounts)) == "nfs4"
    assert filesystem(tmp_path, str(mounts)) == "ext4"
    with caplog.at_level(logging.WARNING):
        assert default_url(share / "out", str(mounts)) is None
    assert "network filesystem (nfs4)" in caplog.text
    assert (
        default_url(tmp_path / "out", str(mounts))
        == f"sqlite:///{(tmp_path / 'out/_shards/state.sqlite').resolve()}"
    )


async def test_the_heartbeat_stops_a_shard_whose_lease_was_taken_over(state_url: str) -> None:
    call(state_url, "start_run", "r", {}, 1)
    assert call(state_url, "claim", "r", worker_id(), 1.0) == 0
    with Heartbeat(state_url, "r", 0, worker_id(), 1.0) as beat:
        await asyncio.sleep(0.8)
        assert not beat.stop.is_set  # renewed: still its own
        assert call(state_url, "claim", "r", "another:1", 30, 0) == 0
        await until(lambda: beat.stop.is_set, 5)
    assert beat.stop.reason is None and beat.lost is not None and "took it over" in beat.lost


async def test_the_heartbeat_stops_a_shard_when_the_database_goes_away(server_url: str) -> None:
    port = 3306 if server_url.startswith("mysql") else 5432
    forwarder = Forwarder(port)
    via = server_url.replace(f":{port}/", f":{await forwarder.start()}/")
    await asyncio.to_thread(call, via, "start_run", "r", {}, 1)  # the forwarder runs on this loop
    assert await asyncio.to_thread(call, via, "claim", "r", worker_id(), 1.0) == 0
    beat = Heartbeat(via, "r", 0, worker_id(), 1.0)
    await asyncio.to_thread(beat.__enter__)
    try:
        await forwarder.close()
        await until(lambda: beat.stop.is_set, 5)
    finally:
        await asyncio.to_thread(beat.__exit__, None, None, None)
    assert beat.lost is None and beat.stop.reason is not None and "state database" in beat.stop.reason


def test_the_run_id_is_made_once_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert runfile.create(out, {"names": "hashed"})
    assert not runfile.create(out, {"names": "plain"})  # another worker's record stands
    first = runfile.run_id(out)
    runfile.write(out, {"names": "hashed", "layout": "flat"})  # a newer setting recorded: same run
    assert runfile.run_id(out) == first and runfile.read(out) == {"names": "hashed", "layout": "flat"}
    other = tmp_path / "other"
    assert runfile.create(other, {"names": "hashed"}) and runfile.run_id(other) != first
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "run.json").write_text(json.dumps({"version": 1, "settings": {"names": "plain"}}))
    made = runfile.run_id(legacy)
    assert made and runfile.run_id(legacy) == made and runfile.read(legacy) == {"names": "plain"}


async def test_procs_2_records_every_shard_in_the_default_database(
    origin: TestServer, tmp_path: Path
) -> None:
    urls = [str(origin.make_url(f"/img/1/image-0{i % 8}.jpg?n={i}")) for i in range(12)]
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "2", "--procs", "2")
    res = await fetch(write_csv(tmp_path / "l.csv", [(u, "") for u in urls]), out, *args)
    assert res.exit_code == 0, res.output
    found = status_json(out, f"sqlite:///{(out / '_shards' / 'state.sqlite').resolve()}")
    assert (found["done"], found["shards"], found["rows"]) == (6, 6, {"rows": 12, "ok": 12})


async def test_status_rates_over_the_time_shards_ran_not_since_the_start(
    origin: TestServer, tmp_path: Path
) -> None:
    lst, out = slow_list(origin, tmp_path, 24), tmp_path / "out"
    state = f"sqlite:///{(out / '_shards' / 'state.sqlite').resolve()}"
    began = time.monotonic()
    first = await worker(lst, out, state, 0, 1)
    try:
        await until(
            lambda: recorded_done(out, state) >= 2
        )  # shards overlap: ask the database, not the markers
    finally:
        first.kill()
        await first.wait()
    ran = time.monotonic() - began
    await asyncio.sleep(2.5)  # the pause: no shard runs
    found = status_json(out, state)
    rows, busy = found["rows"]["rows"], found["busy"]
    assert found["done"] >= 2 and rows == 4 * found["done"]
    assert 0 < busy <= ran and found["rate"] == pytest.approx(rows / busy)
    assert found["updated"] - found["started"] >= busy + 2.5  # the wall time holds the pause; busy not
    text = invoke("status", str(out), "--state", state)
    assert f"rate: {found['rate']:,.1f} rows/s over {round(busy)} s of shards running" in text.output


async def test_a_worker_restarted_on_its_machine_takes_its_shard_back_at_once(
    origin: TestServer, tmp_path: Path
) -> None:
    lst, out = slow_list(origin, tmp_path, 24), tmp_path / "out"
    state, lease = f"sqlite:///{(tmp_path / 'state.sqlite').resolve()}", 30.0
    first = await worker(lst, out, state, 0, 2, "--lease", str(lease))
    other = await worker(lst, out, state, 1, 2, "--lease", str(lease))
    try:
        await until(lambda: len(complete_rows(out)) >= 3)  # mid-shard for both, most likely
    finally:
        first.kill()
        await first.wait()  # reaped: a zombie's pid would read as alive
    kept = {"/" + u.split("/", 3)[3] for u in complete_rows(out)}
    killed = time.monotonic()
    again = await worker(lst, out, state, 0, 2, "--lease", str(lease))
    assert [(await ended(p))[0] for p in (again, other)] == [0, 0]
    assert time.monotonic() - killed < lease / 2  # not after the dead worker's lease ran out
    assert_one_complete_output(out, 24)
    assert {p: hits(origin, p) for p in kept} == dict.fromkeys(kept, 1)
    assert status_json(out, state)["done"] == 6
