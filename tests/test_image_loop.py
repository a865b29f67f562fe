"""The loop stays responsive while images are decoded: with the process pool no loop callback waits for
a decode, while ``inline`` shows what blocking the loop costs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from io import BytesIO
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from downloader.app.api import adownload
from downloader.spec import Images
from downloader.stages.images import transform

AiohttpServer = Callable[..., Awaitable[TestServer]]
OPTIONS: dict[str, Any] = {"image_size": 256, "resize_mode": "border", "encode_format": "jpg"}


def photo() -> bytes:
    """A 1800×1350 PNG: no decoder shortcut, so each image costs a real decode and resize."""
    img = Image.new("RGB", (1800, 1350))
    img.putdata([((x * 3) % 256, (y * 5) % 256, (x ^ y) % 256) for y in range(1350) for x in range(1800)])
    buf = BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


async def max_lag(run: Awaitable[object], every: float = 0.005) -> float:
    """The longest a callback due every ``every`` s waited beyond its time while ``run`` ran."""
    loop, worst = asyncio.get_running_loop(), 0.0
    task = asyncio.ensure_future(run)
    due = loop.time() + every
    while not task.done():
        await asyncio.sleep(max(0.0, due - loop.time()))
        worst, due = max(worst, loop.time() - due), loop.time() + every
    await task
    return worst


async def test_no_loop_callback_waits_for_a_decode(aiohttp_server: AiohttpServer, tmp_path: Path) -> None:
    body = photo()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = await aiohttp_server(app)
    urls = [str(server.make_url(f"/{i}.png")) for i in range(200)]
    started = time.perf_counter()
    transform(body, ".png", Images(**OPTIONS))
    one_decode = time.perf_counter() - started
    pooled = await max_lag(adownload(urls, tmp_path / "pool", image_workers=1, **OPTIONS))
    blocked = await max_lag(adownload(urls[:20], tmp_path / "inline", image_executor="inline", **OPTIONS))
    assert len(list((tmp_path / "pool").glob("*.jpg"))) == 200
    assert blocked >= 0.8 * one_decode  # inline: the loop waits a whole decode
    assert pooled < 0.6 * one_decode, (pooled, one_decode)  # the pool: never a whole decode
