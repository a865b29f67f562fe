"""Idle pooled connections are kept ``--idle-timeout`` seconds at most: what bounds a run's memory on a
list of many hosts (docs/performance.md, "Memory at web scale"). Loopback servers count the connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.faults import JPEG
from tests.helpers import AiohttpServer, Run

Fetch = Callable[..., Awaitable[Run]]
PEERS: web.AppKey[list[int]] = web.AppKey("peers", list)
IDLE = 1.0
"""Seconds (curl counts whole seconds)."""
AGED = {"reqwest", "aiohttp", "curl"}
"""The backends whose pools forget an idle connection by age; urllib3's (executor, threads) are
bounded in number instead (pools, and connections a pool)."""


def app(wait: float) -> web.Application:
    """``/a.jpg`` after ``wait`` seconds; records the client port of each request's connection."""

    async def img(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
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
    fast: TestServer = await aiohttp_server(app(0.0))
    slow: TestServer = await aiohttp_server(app(IDLE + 1.5))
    urls = [str(fast.make_url("/a.jpg?1")), str(slow.make_url("/a.jpg")), str(fast.make_url("/a.jpg?2"))]
    run = await fetch(urls, concurrency=1, idle_timeout=IDLE)
    assert {r["status"] for r in run.rows} == {"ok"}
    first, second = fast.app[PEERS]
    assert first != second  # the idle connection was let go (or refused for reuse) once it was too old
    later = [str(fast.make_url(f"/a.jpg?{i}")) for i in range(3, 6)]
    again = await fetch(later, concurrency=1, idle_timeout=IDLE)
    assert {r["status"] for r in again.rows} == {"ok"}
    assert len(set(fast.app[PEERS][2:])) == 1  # young connections are reused as before
