"""The embedded origin: an aiohttp web server on 127.0.0.1 serving the images in ``fixtures/`` with a
little simulated latency, so the demo and the benchmarks need no internet.

Every path ``/img/<anything>/<name>`` serves fixture ``<name>``, so a few images make any number of
distinct URLs.
"""

from __future__ import annotations

import asyncio
import random
import struct
import zlib
from pathlib import Path

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def _png(width: int, height: int, seed: int) -> bytes:
    """A real PNG without an imaging library (for when ``fixtures/`` is not beside the package)."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(width * 3)) for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def load_images(folder: Path = FIXTURES) -> dict[str, bytes]:
    """Image name → bytes, from ``folder`` when it holds images, else a dozen generated PNGs."""
    found = {p.name: p.read_bytes() for p in sorted(folder.glob("*")) if p.suffix.lower() in _TYPES}
    return found or {f"generated-{i:02d}.png": _png(48 + 8 * i, 40, i) for i in range(12)}


def make_app(images: dict[str, bytes], latency: float = 0.02) -> web.Application:
    """``latency`` seconds per response, jittered by ±50 %."""

    async def image(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = images.get(name)
        if body is None:
            raise web.HTTPNotFound()
        if latency > 0:
            await asyncio.sleep(latency * random.uniform(0.5, 1.5))
        return web.Response(body=body, content_type=_TYPES[Path(name).suffix.lower()])

    app = web.Application()
    app.router.add_get("/img/{group}/{name}", image)
    return app


class Origin:
    """``async with Origin() as origin:`` serves on a free port; ``origin.urls(n)`` lists ``n`` URLs."""

    def __init__(
        self, latency: float = 0.02, folder: Path = FIXTURES, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.images = load_images(folder)
        self.latency = latency
        self.host = host
        self.port = port
        self._runner = web.AppRunner(make_app(self.images, latency), access_log=None)

    async def __aenter__(self) -> Origin:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def urls(self, count: int) -> list[str]:
        names = list(self.images)
        return [f"{self.base}/img/{i}/{names[i % len(names)]}" for i in range(count)]

    def size_of(self, url: str) -> int:
        return len(self.images[url.rsplit("/", 1)[-1]])


async def serve_forever(origin: Origin) -> None:
    async with origin:
        await asyncio.Event().wait()
