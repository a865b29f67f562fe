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
    """A 2400×1800 PNG of noise: no decoder shortcut, so each image costs a real decode and resize (tens
    of milliseconds, well above the loop's own scheduling noise on a busy machine)."""
    img = Image.effect_noise((2400, 1800), 40).convert("RGB")
    buf = BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


async def lags(run: Awaitable[object], every: float = 0.005) -> list[float]:
    """How long a callback due every ``every`` s waited beyond its time, each time, while ``run`` ran."""
    loop, waited = asyncio.get_running_loop(), []
    task = asyncio.ensure_future(run)
    due = loop.time() + every
    while not task.done():
        await asyncio.sleep(max(0.0, due - loop.time()))
        waited.append(loop.time() - due)
        due = loop.time() + every
    await task
    return waited


async def test_no_loop_callback_waits_for_a_decode(aiohttp_server: AiohttpServer, tmp_path: Path) -> None:
    body = photo()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = await aiohttp_server(app)
    urls = [str(server.make_url(f"/{i}.png")) for i in range(60)]
    started = time.perf_counter()
    transform(body, ".png", Images(**OPTIONS))
    one_decode = time.perf_counter() - started
    pooled = await lags(adownload(urls, tmp_path / "pool", image_workers=1, **OPTIONS))
    blocked = await lags(adownload(urls[:8], tmp_path / "inline", image_executor="inline", **OPTIONS))
    assert len(list((tmp_path / "pool").glob("*.jpg"))) == 60
    # inline, the loop loses about a whole decode per image (several at once when bodies finish together);
    # with the pool a decode never holds it: what the loop still loses comes from the machine (two busy
    # cores, a decoding worker, this origin, the collector of a large test process), and per image it
    # stays well below what an inline decode costs the loop on the same machine at the same time
    inline_loss = sum(lag for lag in blocked if lag > 0.02)
    pooled_loss = sum(lag for lag in pooled if lag > 0.02)
    assert inline_loss >= 0.5 * 8 * one_decode, (inline_loss, one_decode)
    assert pooled_loss / 60 <= 0.5 * inline_loss / 8, (pooled_loss, inline_loss, one_decode)
