"""The engine's behaviour, asserted for every backend against a real server on loopback."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from downloader import keys
from tests.faults import HEADERS, HTML, JPEG, PNG, image_for
from tests.helpers import AiohttpServer, Run, hits

Fetch = Callable[..., Awaitable[Run]]


async def test_bytes_are_identical(origin: TestServer, fetch: Fetch) -> None:
    names = ["image-00.jpg", "image-02.png", "image-05.png", "image-07.jpg"]
    urls = [str(origin.make_url(f"/img/{i}/{n}")) for i, n in enumerate(names)]
    run = await fetch(urls)
    assert run.stats.ok == 4 and run.stats.all_ok
    for url, name in zip(urls, names, strict=True):
        row = run.row(url)
        body = (run.out / row["path"]).read_bytes()
        assert body == image_for(name)
        assert row["sha256"] == hashlib.sha256(body).hexdigest()
        assert row["bytes"] == len(body) and row["status"] == "ok" and row["http_status"] == 200
    assert not [f for f in run.files() if f.endswith(".part")]


async def test_distinct_urls_never_share_a_file(origin: TestServer, fetch: Fetch) -> None:
    urls = [
        str(origin.make_url("/img/a/image-00.jpg")),
        str(origin.make_url("/img/b/image-00.jpg")),
        str(origin.make_url("/img/a/image-02.png?s=1")),
        str(origin.make_url("/img/a/image-02.png?s=2")),
    ]
    run = await fetch(urls)
    paths = {run.row(u)["path"] for u in urls}
    assert len(paths) == 4 and len(run.files()) == 4
    assert {p.lower() for p in paths} == {p.lower() for p in paths} and len({p.lower() for p in paths}) == 4


async def test_503_twice_then_success(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/flaky/2/x"))
    run = await fetch([url])
    row = run.row(url)
    assert row["status"] == "ok" and row["attempts"] == 3
    assert hits(origin, "/flaky/2/x") == 3
    assert (run.out / row["path"]).read_bytes() == JPEG


async def test_404_is_not_retried(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/status/404/x"))
    run = await fetch([url])
    row = run.row(url)
    assert (row["status"], row["kind"], row["http_status"], row["attempts"]) == ("failed", "http_4xx", 404, 1)
    assert hits(origin, "/status/404/x") == 1
    assert run.files() == []


async def test_500_retries_run_out(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/status/500/x"))
    run = await fetch([url], retries=2)
    row = run.row(url)
    assert (row["kind"], row["attempts"]) == ("http_5xx", 3)
    assert hits(origin, "/status/500/x") == 3


async def test_stalled_response_fails_on_read_timeout(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/stall/x"))
    run = await fetch([url], read_timeout=0.3, retries=0)
    row = run.row(url)
    assert (row["status"], row["kind"]) == ("failed", "timeout")
    assert "read timeout" in row["error"]
    assert run.files() == []


async def test_truncated_body_leaves_no_file(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/truncated/x"))
    run = await fetch([url], retries=1)
    row = run.row(url)
    assert (row["status"], row["kind"], row["attempts"]) == ("failed", "truncated", 2)
    assert run.files() == []  # neither a .part nor a final name


async def test_manifest_has_one_row_per_input_line(origin: TestServer, fetch: Fetch) -> None:
    good = str(origin.make_url("/img/1/image-00.jpg"))
    urls = [good, "not a url", str(origin.make_url("/status/404/y")), good, "ftp://example.com/x.jpg"]
    run = await fetch(urls)
    assert [r["line"] for r in sorted(run.rows, key=lambda r: r["line"])] == [1, 2, 3, 4, 5]
    by_line = {r["line"]: r for r in run.rows}
    assert [by_line[i]["status"] for i in range(1, 6)] == ["ok", "invalid", "failed", "duplicate", "invalid"]
    assert by_line[2]["kind"] == by_line[5]["kind"] == "invalid_url"
    assert by_line[4]["path"] == by_line[1]["path"]
    assert hits(origin, "/img/1/image-00.jpg") == 1
    assert len(run.results) == 5
    assert not run.stats.all_ok


async def test_rerun_skips_completed_urls_without_a_request(origin: TestServer, fetch: Fetch) -> None:
    urls = [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(3)]
    first = await fetch(urls)
    assert first.stats.ok == 3
    again = await fetch(urls)
    assert again.stats.skipped == 3 and again.stats.ok == 0 and again.stats.all_ok
    assert all(hits(origin, f"/img/{i}/image-00.jpg") == 1 for i in range(3))
    forced = await fetch(urls, overwrite=True)
    assert forced.stats.ok == 3


async def test_headers_sent(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/echo/h"))
    await fetch([url], headers=(("X-Trace", "42"),))
    sent = origin.app[HEADERS]["/echo/h"]
    assert sent["User-Agent"].startswith("downloader/")
    assert sent["Accept-Encoding"] == "identity"
    assert sent["X-Trace"] == "42"


async def test_credentials_stay_with_the_listed_origin(
    aiohttp_server: AiohttpServer, origin: TestServer, fetch: Fetch
) -> None:
    """The user's Authorization goes to the listed URL's origin, and not to another a redirect names."""

    async def elsewhere(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(origin.make_url("/echo/away")))

    app = web.Application()
    app.router.add_get("/{tail:.*}", elsewhere)
    redirector = await aiohttp_server(app)
    urls = [str(redirector.make_url("/a.jpg")), str(origin.make_url("/echo/home"))]
    run = await fetch(urls, headers=(("Authorization", "Bearer secret"), ("X-Trace", "7")))
    assert run.stats.ok == 2
    assert origin.app[HEADERS]["/echo/home"]["Authorization"] == "Bearer secret"
    assert "Authorization" not in origin.app[HEADERS]["/echo/away"]
    assert origin.app[HEADERS]["/echo/away"]["X-Trace"] == "7"


async def test_connections_are_reused(aiohttp_server: AiohttpServer, fetch: Fetch) -> None:
    """One after another, bodies with and without a length, small and large, go over one connection: a
    body read to its announced end leaves the connection fit for the next request."""
    ports: set[int] = set()

    async def answer(request: web.Request) -> web.StreamResponse:
        ports.add(request.transport.get_extra_info("peername")[1] if request.transport else 0)
        body = JPEG + bytes(int(request.match_info["size"]))
        if request.query.get("chunked"):
            resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            await resp.prepare(request)
            await resp.write(body)
            await resp.write_eof()
            return resp
        return web.Response(body=body, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{size}/{n}", answer)
    server = await aiohttp_server(app)
    urls = [
        str(server.make_url(f"/{size}/{n}{query}"))
        for n, size in enumerate([0, 20_000, 600_000] * 4)
        for query in ("", "?chunked=1")
    ]
    run = await fetch(urls, concurrency=1)
    assert run.stats.ok == len(urls)
    assert len(ports) == 1


async def test_no_backend_keeps_cookies(origin: TestServer, fetch: Fetch) -> None:
    """A cookie set on the way (here by a redirect) is not sent back, by any backend."""
    first, later = str(origin.make_url("/cookie/c")), str(origin.make_url("/echo/later"))
    run = await fetch([first, later], concurrency=1)
    assert run.stats.ok == 2
    assert "Cookie" not in origin.app[HEADERS]["/echo/c"]
    assert "Cookie" not in origin.app[HEADERS]["/echo/later"]


async def test_html_error_page_is_not_saved_as_an_image(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/html/x.jpg"))
    run = await fetch([url])
    assert run.row(url)["kind"] == "not_image"
    assert run.files() == []
    kept = await fetch([url], accept="any", out=run.out / "any")
    assert (kept.out / kept.row(url)["path"]).read_bytes() == HTML


async def test_octet_stream_image_is_kept_and_fix_ext_names_it(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/octet/photo.jpg"))
    run = await fetch([url], fix_ext=True)
    row = run.row(url)
    assert row["status"] == "ok" and row["path"].endswith(".png")
    assert (run.out / row["path"]).read_bytes() == PNG


async def test_callbacks_get_every_result(origin: TestServer, fetch: Fetch) -> None:
    urls = [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(10)] + ["nope"]
    run = await fetch(urls, concurrency=3)
    assert sorted(r.line for r in run.results) == list(range(1, 12))
    assert run.stats.ok == 10 and run.stats.invalid == 1


async def test_proxy_carries_every_request(aiohttp_server: AiohttpServer, fetch: Fetch) -> None:
    seen: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        seen.append(f"{request.host}{request.path}")
        return web.Response(body=JPEG, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    proxy = await aiohttp_server(app)
    run = await fetch(["http://images.invalid/a.jpg"], proxy=str(proxy.make_url("/")).rstrip("/"))
    assert run.stats.ok == 1 and seen == ["images.invalid/a.jpg"]


async def test_environment_proxy_and_no_proxy(
    aiohttp_server: AiohttpServer, origin: TestServer, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        seen.append(request.host)
        return web.Response(body=JPEG, content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    proxy = await aiohttp_server(app)
    monkeypatch.setenv("HTTP_PROXY", str(proxy.make_url("/")))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = str(origin.make_url("/img/1/image-00.jpg"))
    run = await fetch(["http://images.invalid/b.jpg", direct])
    assert run.stats.ok == 2 and seen == ["images.invalid"]
    assert hits(origin, "/img/1/image-00.jpg") == 1


async def test_duplicates_and_resume_with_indexes_on_disk(
    origin: TestServer, fetch: Fetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "SPILL_AT", 8)  # the real SQLite index, after 8 URLs instead of 65,536
    urls = [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(30)]
    run = await fetch([*urls, *urls[:10]])
    assert (run.stats.ok, run.stats.duplicate) == (30, 10)
    again = await fetch(urls)
    assert again.stats.skipped == 30
    assert not list(run.out.glob(".downloader-index-*"))
    assert all(hits(origin, f"/img/{i}/image-00.jpg") == 1 for i in range(30))
