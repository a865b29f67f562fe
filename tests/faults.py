"""A fault-injecting origin for the tests: one route per case, and a hit counter per path."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
JPEG = (FIXTURES / "image-00.jpg").read_bytes()
PNG = (FIXTURES / "image-02.png").read_bytes()
HTML = b"<!DOCTYPE html><html><body>Not found</body></html>"
HITS: web.AppKey[collections.Counter[str]] = web.AppKey("hits", collections.Counter)
ARRIVALS: web.AppKey[list[tuple[float, str]]] = web.AppKey("arrivals", list)
HEADERS: web.AppKey[dict[str, dict[str, str]]] = web.AppKey("headers", dict)
TARGETS: web.AppKey[list[str]] = web.AppKey("targets", list)
"""Each request's target as it came on the wire: a path and query, or a whole URL through a proxy."""
SENT: web.AppKey[collections.Counter[str]] = web.AppKey("sent", collections.Counter)
"""Body bytes each path's handler handed to the socket (the opted-out body must stay near zero)."""
IMAGES = FIXTURES / "images"


@dataclass
class RobotsTxt:
    """What /robots.txt answers; a test sets it before its run (by default there is none: 404)."""

    status: int = 404
    body: bytes = b""
    delay: float = 0.0


ROBOTS: web.AppKey[RobotsTxt] = web.AppKey("robots", RobotsTxt)


def image_for(name: str) -> bytes:
    path = FIXTURES / name
    return path.read_bytes() if path.is_file() else JPEG


async def img(request: web.Request) -> web.Response:
    """/img/<anything>/<fixture name>: the fixture's bytes (JPEG when there is no such fixture)."""
    name = request.match_info["name"]
    ctype = "image/png" if name.endswith(".png") else "image/jpeg"
    return web.Response(body=image_for(name), content_type=ctype)


async def echo(request: web.Request) -> web.Response:
    """Remembers the request's headers under its path, answers with an image."""
    request.app[HEADERS][request.path] = dict(request.headers)
    return web.Response(body=JPEG, content_type="image/jpeg")


async def flaky(request: web.Request) -> web.Response:
    """/flaky/<n>/<id>: 503 for the first n hits, then the image."""
    if request.app[HITS][request.path] <= int(request.match_info["n"]):
        return web.Response(status=503, text="busy")
    return web.Response(body=JPEG, content_type="image/jpeg")


async def status(request: web.Request) -> web.Response:
    """/status/<code>/<id>: always that status."""
    return web.Response(status=int(request.match_info["code"]), text="no")


async def limited(request: web.Request) -> web.Response:
    """/limited/<code>/<n>/<after>/<id>: <code> (429 or 503) with Retry-After: <after> seconds, or with
    ``?date=1`` an HTTP-date that far ahead, for the first n hits; then the image."""
    if request.app[HITS][request.path] <= int(request.match_info["n"]):
        after = request.match_info["after"]
        if request.query.get("date"):
            after = email.utils.formatdate(time.time() + int(after), usegmt=True)
        return web.Response(status=int(request.match_info["code"]), headers={"Retry-After": after})
    return web.Response(body=JPEG, content_type="image/jpeg")


async def stall(request: web.Request) -> web.StreamResponse:
    """Headers and a few bytes, then silence."""
    resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    resp.content_length = len(JPEG)
    await resp.prepare(request)
    await resp.write(JPEG[:100])
    await asyncio.sleep(30)
    return resp


async def trickle(request: web.Request) -> web.StreamResponse:
    """A few bytes at a time, forever slower than any sane minimum speed."""
    resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    resp.content_length = len(JPEG)
    await resp.prepare(request)
    for i in range(0, len(JPEG), 4):
        await resp.write(JPEG[i : i + 4])
        await asyncio.sleep(0.05)
    return resp


async def steady(request: web.Request) -> web.StreamResponse:
    """/steady/<bytes>/<ms>/<n>: a JPEG that arrives in n pieces of that size, one every ms milliseconds:
    a body that keeps moving, as fast or as slow as the test needs."""
    size, pause, count = (int(request.match_info[k]) for k in ("size", "ms", "n"))
    body = (JPEG + bytes(size * count))[: size * count]
    resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    resp.content_length = len(body)
    await resp.prepare(request)
    for i in range(count):
        await resp.write(body[i * size : (i + 1) * size])
        await asyncio.sleep(pause / 1000)
    return resp


async def truncated(request: web.Request) -> web.StreamResponse:
    """Announces the whole image, sends half, closes."""
    resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    resp.content_length = len(JPEG)
    await resp.prepare(request)
    await resp.write(JPEG[: len(JPEG) // 2])
    assert request.transport is not None
    request.transport.close()
    return resp


async def redirect(request: web.Request) -> web.Response:
    """/redirect/<n>: n hops, then the image."""
    n = int(request.match_info["n"])
    if n == 0:
        return web.Response(body=JPEG, content_type="image/jpeg")
    raise web.HTTPFound(f"/redirect/{n - 1}")


async def cookie(request: web.Request) -> web.Response:
    """/cookie/<id>: sets a cookie and redirects to /echo/<id>, which records whether it came back."""
    resp = web.HTTPFound(f"/echo/{request.match_info['id']}")
    resp.set_cookie("session", "abc", path="/")
    raise resp


async def reset(request: web.Request) -> web.StreamResponse:
    """Half the image, then a TCP reset."""
    resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    resp.content_length = len(JPEG)
    await resp.prepare(request)
    await resp.write(JPEG[: len(JPEG) // 2])
    await asyncio.sleep(0.05)
    assert request.transport is not None
    sock = request.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.transport.abort()
    return resp


async def disposition(request: web.Request) -> web.Response:
    """An image whose Content-Disposition asks for a path outside the output folder."""
    return web.Response(
        body=JPEG,
        content_type="image/jpeg",
        headers={"Content-Disposition": 'attachment; filename="../../evil.jpg"'},
    )


async def loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


async def to_ftp(request: web.Request) -> web.Response:
    raise web.HTTPFound("ftp://127.0.0.1/secret.jpg")


async def html(request: web.Request) -> web.Response:
    """An error page served as 200 at an image URL."""
    return web.Response(body=HTML, content_type="text/html")


async def octet(request: web.Request) -> web.Response:
    """A real PNG with a useless Content-Type."""
    return web.Response(body=PNG, content_type="application/octet-stream")


async def big(request: web.Request) -> web.StreamResponse:
    """/big/<bytes>?cl=1: a JPEG of that size, with or without Content-Length."""
    size = int(request.match_info["size"])
    resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    if request.query.get("cl") == "1":
        resp.content_length = size
    await resp.prepare(request)
    sent = 0
    block = JPEG + bytes(65536)
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        await resp.write(piece)
        sent += len(piece)
    await resp.write_eof()
    return resp


async def fail_then_ok(request: web.Request) -> web.Response:
    """/fail-then-ok/<code>/<n>/<id>: <code> without Retry-After for the first n hits, then the image."""
    if request.app[HITS][request.path] <= int(request.match_info["n"]):
        return web.Response(status=int(request.match_info["code"]), text="not now")
    return web.Response(body=JPEG, content_type="image/jpeg")


async def markup(request: web.Request) -> web.StreamResponse:
    """/markup/<n>: an HTML page (status 200, chunked) of n KiB, one KiB every 50 ms."""
    resp = web.StreamResponse(headers={"Content-Type": "text/html"})
    await resp.prepare(request)
    await resp.write(HTML)
    for _ in range(int(request.match_info["n"])):
        await asyncio.sleep(0.05)
        await resp.write(b" " * 1024)
    await resp.write_eof()
    return resp


async def slow(request: web.Request) -> web.Response:
    """/slow/<ms>/<id>: the image after a delay."""
    await asyncio.sleep(int(request.match_info["ms"]) / 1000)
    return web.Response(body=JPEG, content_type="image/jpeg")


async def image(request: web.Request) -> web.Response:
    """/images/<fixture>/<id>: a file of fixtures/images (the image stage's cases)."""
    name = request.match_info["name"]
    return web.Response(body=(IMAGES / name).read_bytes(), content_type="image/" + name.rsplit(".")[-1])


async def robots_tag(request: web.Request) -> web.StreamResponse:
    """/robots-tag/<id>?tag=V&tag=W: a JPEG with one X-Robots-Tag header per ``tag``, streamed slowly
    (64 KiB every 20 ms, up to 64 MiB) so a client that reads the body would be seen reading it."""
    resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    for value in request.query.getall("tag", []):
        resp.headers.add("X-Robots-Tag", value)
    if request.query.get("small"):
        resp.content_length = len(JPEG)
        await resp.prepare(request)
        await resp.write(JPEG)
        return resp
    await resp.prepare(request)
    block = JPEG + bytes(65536 - len(JPEG))
    try:
        for _ in range(1024):
            await resp.write(block)
            request.app[SENT][request.path] += len(block)
            await asyncio.sleep(0.02)
    except (ConnectionError, RuntimeError):  # the client hung up: exactly what an opt-out must do
        return resp
    await resp.write_eof()
    return resp


async def robots_txt(request: web.Request) -> web.Response:
    """/robots.txt: as the test set ``app[ROBOTS]``, after its delay (a robots.txt that times out)."""
    answer = request.app[ROBOTS]
    if answer.delay:
        await asyncio.sleep(answer.delay)
    return web.Response(status=answer.status, body=answer.body, content_type="text/plain")


@web.middleware
async def log_arrivals(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request.app[ARRIVALS].append((time.monotonic(), request.path))
    request.app[TARGETS].append(request.raw_path)
    return await handler(request)


@web.middleware
async def count_hits(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request.app[HITS][request.path] += 1
    return await handler(request)


def make_app() -> web.Application:
    app = web.Application(middlewares=[log_arrivals, count_hits])
    app[ARRIVALS] = []
    app[HITS] = collections.Counter()
    app[HEADERS] = {}
    app[TARGETS] = []
    app[SENT] = collections.Counter()
    app[ROBOTS] = RobotsTxt()
    routes = {
        "/img/{group}/{name}": img,
        "/echo/{id}": echo,
        "/flaky/{n}/{id}": flaky,
        "/status/{code}/{id}": status,
        "/limited/{code}/{n}/{after}/{id}": limited,
        "/reset/{id}": reset,
        "/cd/{id}": disposition,
        "/stall/{id}": stall,
        "/trickle/{id}": trickle,
        "/steady/{size}/{ms}/{n}": steady,
        "/truncated/{id}": truncated,
        "/redirect/{n}": redirect,
        "/cookie/{id}": cookie,
        "/loop": loop,
        "/to-ftp": to_ftp,
        "/html/{name}": html,
        "/octet/{name}": octet,
        "/big/{size}": big,
        "/slow/{ms}/{id}": slow,
        "/images/{name}/{id}": image,
        "/robots-tag/{id}": robots_tag,
        "/fail-then-ok/{code}/{n}/{id}": fail_then_ok,
        "/markup/{n}": markup,
        "/robots.txt": robots_txt,
    }
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return app
