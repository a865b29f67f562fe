"""Idle pooled connections: kept ``--idle-timeout`` seconds at most, and none kept for a host with nothing
more queued or in flight that did not come back lately: what bounds a run's memory on a list of many hosts
(docs/performance.md, "Memory at web scale"). Loopback servers count the connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from downloader.backends.base import closing
from downloader.models import Deadline, Fetched
from tests.faults import JPEG
from tests.helpers import AiohttpServer, Run

Fetch = Callable[..., Awaitable[Run]]
PEERS: web.AppKey[list[int]] = web.AppKey("peers", list)
IDLE = 1.0
"""Seconds (curl counts whole seconds)."""
AGED = {"reqwest", "aiohttp", "curl"}
"""The backends whose pools forget an idle connection by age; urllib3's (executor, threads) are
bounded in number instead (pools, and connections a pool)."""


def counted(seen: list[asyncio.BaseTransport], wait: float = 0.0) -> web.Application:
    """``/a.jpg``, noting each request's connection in ``seen`` (shared by several servers) and its
    client port in ``PEERS``; after ``wait`` seconds."""

    async def img(request: web.Request) -> web.Response:
        assert request.transport is not None
        seen.append(request.transport)
        peer = request.transport.get_extra_info("peername")
        request.app[PEERS].append(peer[1] if peer else -1)
        await asyncio.sleep(wait)
        return web.Response(body=JPEG, content_type="image/jpeg")

    application = web.Application()
    application[PEERS] = []
    application.router.add_get("/a.jpg", img)
    return application


async def test_a_connection_idle_past_its_age_is_not_reused(
    aiohttp_server: AiohttpServer, fetch: Fetch, backend: str
) -> None:
    """One at a time: host A, then a slow answer of host B that outlasts ``--idle-timeout``, then A again:
    the second request to A comes on a new connection; a fast sequence reuses it."""
    if backend not in AGED:
        pytest.skip(f"{backend}: urllib3's pools are bounded in number, not in age")
    fast: TestServer = await aiohttp_server(counted([]))
    slow: TestServer = await aiohttp_server(counted([], IDLE + 1.5))
    urls = [str(fast.make_url("/a.jpg?1")), str(slow.make_url("/a.jpg")), str(fast.make_url("/a.jpg?2"))]
    run = await fetch(urls, concurrency=1, idle_timeout=IDLE)
    assert {r["status"] for r in run.rows} == {"ok"}
    first, second = fast.app[PEERS]
    assert first != second  # the idle connection was let go (or refused for reuse) once it was too old
    later = [str(fast.make_url(f"/a.jpg?{i}")) for i in range(3, 6)]
    again = await fetch(later, concurrency=1, idle_timeout=IDLE)
    assert {r["status"] for r in again.rows} == {"ok"}
    assert len(set(fast.app[PEERS][2:])) == 1  # young connections are reused as before


async def test_a_host_with_nothing_more_queued_keeps_no_connection(
    aiohttp_server: AiohttpServer, fetch: Fetch
) -> None:
    """One URL for each of five hosts (host:port), then a slow one: while it is answered, none of the
    five connections is still open, though ``--idle-timeout`` would have kept them a minute."""
    seen: list[asyncio.BaseTransport] = []
    servers = [await aiohttp_server(counted(seen)) for _ in range(5)]
    seen_by_probe: list[int] = []

    async def probe(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)  # the others' answers are in; a client's close reaches the server
        seen_by_probe.append(sum(not t.is_closing() for t in seen))
        return web.Response(body=JPEG, content_type="image/jpeg")

    slow = web.Application()
    slow.router.add_get("/a.jpg", probe)
    last: TestServer = await aiohttp_server(slow)
    urls = [str(s.make_url("/a.jpg")) for s in servers] + [str(last.make_url("/a.jpg"))]
    run = await fetch(urls, concurrency=1, idle_timeout=60.0)
    assert {r["status"] for r in run.rows} == {"ok"}
    assert len(seen) == 5
    assert seen_by_probe == [0]


async def test_a_host_that_comes_back_soon_keeps_its_connection(
    aiohttp_server: AiohttpServer, fetch: Fetch
) -> None:
    """Two hosts taking turns, one URL at a time, read ahead no further than the next: nothing of A is
    queued when its URL starts, but from its second visit on it came back within a fifth of
    ``--idle-timeout``, so its connection is kept and the third visit reuses it. Its first visit's
    connection is closed (a host seen once is not worth a connection idling)."""
    seen: list[asyncio.BaseTransport] = []
    a: TestServer = await aiohttp_server(counted(seen))
    b: TestServer = await aiohttp_server(counted(seen))
    urls = [str(server.make_url(f"/a.jpg?{i}")) for i in range(3) for server in (a, b)]
    run = await fetch(urls, concurrency=1, lookahead=0, idle_timeout=60.0)
    assert {r["status"] for r in run.rows} == {"ok"}
    first, second, third = a.app[PEERS]
    assert first != second  # the first visit closed its connection
    assert second == third  # the second kept it: A came back within 12 s


async def test_many_urls_of_one_host_still_share_connections(
    aiohttp_server: AiohttpServer, fetch: Fetch
) -> None:
    """Twenty URLs of one host, two at a time: all but the last go out on kept connections, so a
    handful are opened, not twenty."""
    seen: list[asyncio.BaseTransport] = []
    server: TestServer = await aiohttp_server(counted(seen, 0.01))
    urls = [str(server.make_url(f"/a.jpg?{i}")) for i in range(20)]
    run = await fetch(urls, concurrency=2)
    assert {r["status"] for r in run.rows} == {"ok"}
    peers = server.app[PEERS]
    assert len(peers) == 20
    assert len(set(peers)) <= 3  # two slots' connections, and at most one more at the end


def test_a_callers_backend_without_keep_alive_is_asked_nothing_more() -> None:
    """``closing`` reads the hint from ``fetch``'s signature: a caller's own backend keeps its seam."""

    class Plain:
        async def fetch(self, url: str, rel: str, deadline: Deadline | None = None) -> Fetched:
            return Fetched(200, 0, "", None, 0.0, rel)

    class Hinted(Plain):
        async def fetch(
            self, url: str, rel: str, deadline: Deadline | None = None, *, keep_alive: bool = True
        ) -> Fetched:
            return Fetched(200, 0, "", None, 0.0, rel)

    assert closing(Plain()) is None  # type: ignore[arg-type]
    hinted = Hinted()
    assert closing(hinted) is hinted  # type: ignore[arg-type]
