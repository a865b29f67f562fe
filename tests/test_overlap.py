"""A process's shards overlap (``dataset.lanes``): the next shard's rows start while the last one's
stragglers finish, within one ``-c`` budget, and an interrupt stops every open shard. Ordering, not
timing: the straggler is held by the origin until the next shard's first request arrives."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from tests.helpers import fetch, shard_rows, tar_samples, write_csv

HOLD_S = 20.0
"""How long a held straggler waits for its release at most (a sequential runner's run would take it)."""


class Held:
    """An origin whose ``/hold/<id>`` answers once ``/img/<id>`` of a released id arrives (or after
    ``HOLD_S``), logging each request's start and end in order, and the most requests at once."""

    def __init__(self, release_on: str) -> None:
        self.release_on, self.released = release_on, asyncio.Event()
        self.log: list[tuple[str, str]] = []
        self.now = self.most = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.count])
        app.router.add_get("/hold/{id}", self.hold)
        app.router.add_get("/img/{id}", self.img)
        return app

    @web.middleware
    async def count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.now += 1
        self.most = max(self.most, self.now)
        self.log.append(("start", request.path))
        try:
            return await handler(request)
        finally:
            self.log.append(("end", request.path))
            self.now -= 1

    async def hold(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(HOLD_S):
                await self.released.wait()
        except TimeoutError:
            pass
        return web.Response(body=b"\xff\xd8\xff" + bytes(400), content_type="image/jpeg")

    async def img(self, request: web.Request) -> web.Response:
        if request.path == self.release_on:
            self.released.set()
        await asyncio.sleep(0.01)
        return web.Response(body=b"\xff\xd8\xff" + bytes(100), content_type="image/jpeg")


async def test_the_next_shard_starts_before_the_last_ones_straggler_ends(
    aiohttp_server: AiohttpServer, tmp_path: Path, backend: str
) -> None:
    held = Held(release_on="/img/4")  # row 4: shard 1's first row
    server: TestServer = await aiohttp_server(held.app())
    paths = ["/hold/0", "/img/1", "/img/2", "/img/3", "/img/4", "/img/5", "/img/6", "/img/7"]
    lst = write_csv(tmp_path / "list.csv", [(str(server.make_url(p)), f"c{i}") for i, p in enumerate(paths)])
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "4", "-c", "3", "--backend", backend)
    res = await fetch(lst, out, *args)
    assert res.exit_code == 0, res.output
    assert held.log.index(("start", "/img/4")) < held.log.index(("end", "/hold/0"))
    assert held.most <= 3  # the open shards share -c
    rows = shard_rows(out)
    assert [r["line"] for r in rows] == list(range(2, 10)) and all(r["status"] == "ok" for r in rows)
    assert [s["__key__"] for s in tar_samples(out)] == [r["key"] for r in rows]  # each shard whole, in order


async def test_an_interrupt_stops_every_open_shard_and_a_rerun_finishes_them(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    held = Held(release_on="/img/never")
    server: TestServer = await aiohttp_server(held.app())
    paths = ["/hold/0", "/img/1", "/hold/2", "/img/3"]  # two shards of two, each with a straggler
    lst = write_csv(tmp_path / "list.csv", [(str(server.make_url(p)), f"c{i}") for i, p in enumerate(paths)])
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "2", "-c", "4")
    cmd = [sys.executable, "-m", "downloader", "fetch", str(lst), "-o", str(out), "-q", *args]
    proc = await asyncio.create_subprocess_exec(*cmd)
    async with asyncio.timeout(30):
        while not {"/hold/0", "/hold/2"} <= {p for e, p in held.log if e == "start"}:
            await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    assert await proc.wait() == 130
    parts = {p.name: p.read_text().splitlines() for p in (out / "_shards").glob("*.part.jsonl")}
    assert sorted(parts) == ["00000.part.jsonl", "00001.part.jsonl"]  # both open, neither made final
    rows = [json.loads(line) for lines in parts.values() for line in lines]
    status = {r["url"].split("/", 3)[3]: r["status"] for r in rows}
    assert status["hold/0"] == status["hold/2"] == "not_started"  # each open shard's straggler
    assert not list(out.glob("*.tar"))
    held.released.set()
    res = await fetch(lst, out, *args)
    assert res.exit_code == 0, res.output
    assert [r["status"] for r in shard_rows(out)] == ["ok"] * 4
