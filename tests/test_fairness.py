"""Per-host fairness and caps: ten origins on loopback, one of them slow."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.faults import JPEG
from tests.helpers import AiohttpServer, Run

Fetch = Callable[..., Awaitable[Run]]
PEAK: web.AppKey[list[int]] = web.AppKey("peak", list)  # [now, peak] requests in flight


def origin_app(delay: float) -> web.Application:
    async def image(request: web.Request) -> web.Response:
        counts = request.app[PEAK]
        counts[0] += 1
        counts[1] = max(counts[1], counts[0])
        try:
            await asyncio.sleep(delay)
        finally:
            counts[0] -= 1
        return web.Response(body=JPEG, content_type="image/jpeg")

    app = web.Application()
    app[PEAK] = [0, 0]
    app.router.add_get("/{n}.jpg", image)
    return app


async def ten_origins(aiohttp_server: AiohttpServer, slow_delay: float) -> list[TestServer]:
    return [await aiohttp_server(origin_app(slow_delay if i == 0 else 0.002)) for i in range(10)]


def interleaved(servers: list[TestServer], per_host: int) -> list[str]:
    return [str(s.make_url(f"/{i}.jpg")) for i in range(per_host) for s in servers]


async def test_a_slow_host_cannot_hold_every_slot(aiohttp_server: AiohttpServer, fetch: Fetch) -> None:
    servers = await ten_origins(aiohttp_server, slow_delay=1.5)
    slow_host = str(servers[0].make_url("/"))
    run = await fetch(interleaved(servers, 10), concurrency=8)
    assert run.stats.ok == 100
    order = [r.url.startswith(slow_host) for r in run.results]
    # every fast host's URL completed while the slow host's first requests were still pending
    assert order[:90] == [False] * 90 and order[90:] == [True] * 10


async def test_per_host_cap_holds_on_the_server(aiohttp_server: AiohttpServer, fetch: Fetch) -> None:
    servers = [await aiohttp_server(origin_app(0.05)) for _ in range(2)]
    run = await fetch(interleaved(servers, 12), concurrency=16, per_host=3)
    assert run.stats.ok == 24
    assert [s.app[PEAK][1] for s in servers] == [3, 3]


async def test_overall_rate(aiohttp_server: AiohttpServer, fetch: Fetch) -> None:
    servers = [await aiohttp_server(origin_app(0.0)) for _ in range(3)]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    run = await fetch(interleaved(servers, 5), rate=10)
    assert run.stats.ok == 15
    assert loop.time() - t0 >= 0.4


async def test_rate_per_host_spaces_requests(aiohttp_server: AiohttpServer, fetch: Fetch) -> None:
    server = await aiohttp_server(origin_app(0.0))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    run = await fetch([str(server.make_url(f"/{i}.jpg")) for i in range(15)], rate_per_host=10)
    assert run.stats.ok == 15
    assert loop.time() - t0 >= 0.4  # a burst of one second's worth, then 10 a second
