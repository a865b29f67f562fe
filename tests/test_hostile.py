"""The hostile web: every failure is a clear recorded outcome, nothing corrupt, for every backend."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from downloader.checks import parse_retry_after
from tests.faults import ARRIVALS, JPEG
from tests.helpers import Run, hits

Fetch = Callable[..., Awaitable[Run]]


def url(origin: TestServer, path: str) -> str:
    return str(origin.make_url(path))


@pytest.mark.parametrize("code", [429, 503])
async def test_retry_after_seconds_is_honoured(origin: TestServer, fetch: Fetch, code: int) -> None:
    u = url(origin, f"/limited/{code}/1/1/x.jpg")
    t0 = time.monotonic()
    run = await fetch([u])
    row = run.row(u)
    assert (row["status"], row["attempts"]) == ("ok", 2)
    assert time.monotonic() - t0 >= 0.95  # it waited as told, not its own 10 ms backoff


async def test_retry_after_http_date_is_honoured(origin: TestServer, fetch: Fetch) -> None:
    u = url(origin, "/limited/429/1/2/x.jpg?date=1")
    t0 = time.monotonic()
    run = await fetch([u])
    assert run.row(u)["status"] == "ok"
    assert time.monotonic() - t0 >= 0.9


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_429_slows_the_whole_host(origin: TestServer, fetch: Fetch) -> None:
    limited, slow, later = (
        url(origin, p) for p in ("/limited/429/1/1/a.jpg", "/slow/300/c.jpg", "/img/b/b.jpg")
    )
    run = await fetch([limited, slow, later], concurrency=2)
    assert run.stats.ok == 3
    log: list[tuple[float, str]] = origin.app[ARRIVALS]
    arrivals = {path: t for t, path in log[::-1]}  # the first arrival of each path
    assert arrivals["/img/b/b.jpg"] - arrivals["/limited/429/1/1/a.jpg"] >= 0.95


async def test_retry_after_beyond_the_cap_fails_fast(origin: TestServer, fetch: Fetch) -> None:
    u = url(origin, "/limited/429/5/500/x.jpg")
    t0 = time.monotonic()
    run = await fetch([u], retry_after_max=10)
    row = run.row(u)
    assert (row["kind"], row["attempts"], row["http_status"]) == ("rate_limited", 1, 429)
    assert "Retry-After 500" in row["error"]
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 451])
async def test_permanent_failures_are_not_retried(origin: TestServer, fetch: Fetch, code: int) -> None:
    u = url(origin, f"/status/{code}/x.jpg")
    run = await fetch([u])
    assert (run.row(u)["kind"], run.row(u)["attempts"]) == ("http_4xx", 1)
    assert hits(origin, f"/status/{code}/x.jpg") == 1


async def test_redirects(origin: TestServer, fetch: Fetch) -> None:
    ok, too_many, loop, ftp = (url(origin, p) for p in ("/redirect/3", "/redirect/5", "/loop", "/to-ftp"))
    run = await fetch([ok, too_many, loop, ftp], max_redirects=4)
    assert run.row(ok)["status"] == "ok"
    assert (run.out / run.row(ok)["path"]).read_bytes() == JPEG
    for u in (too_many, loop, ftp):
        assert (run.row(u)["kind"], run.row(u)["attempts"]) == ("redirect", 1)
    assert len(run.files()) == 1


async def test_trickle_fails_on_min_speed(origin: TestServer, fetch: Fetch) -> None:
    u = url(origin, "/trickle/x.jpg")
    run = await fetch([u], min_speed=(2000, 0.3), retries=0)
    assert run.row(u)["kind"] == "too_slow"
    assert run.files() == []


async def test_trickle_fails_on_the_total_timeout(origin: TestServer, fetch: Fetch) -> None:
    u = url(origin, "/trickle/x.jpg")
    t0 = time.monotonic()
    run = await fetch([u], min_speed=(0, 30.0), timeout=0.5, retries=0)
    assert run.row(u)["kind"] == "timeout"
    assert time.monotonic() - t0 < 3
    assert run.files() == []


async def test_an_attempt_cut_before_its_head_holds_nothing_up(
    origin: TestServer, fetch: Fetch, backend: str
) -> None:
    """Attempts ended by --timeout while the server has not answered yet leave the client free: one slot,
    two such attempts, then an image that arrives long before the slow answers would have come."""
    if backend in ("executor", "threads"):
        pytest.skip("a requests call waiting for its head holds its thread until the answer comes")
    slow = [url(origin, f"/slow/6000/{i}.jpg") for i in range(2)]
    t0 = time.monotonic()
    run = await fetch([*slow, url(origin, "/img/1/image-00.jpg")], concurrency=1, timeout=0.2, retries=0)
    assert [run.row(u)["kind"] for u in slow] == ["timeout"] * 2
    assert run.stats.ok == 1
    assert time.monotonic() - t0 < 5


def raw_answer(head: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A handler that writes ``head`` (status line and headers) and then an image, byte for byte."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head + b"Content-Length: %d\r\n\r\n" % len(JPEG) + JPEG)
        await writer.drain()
        writer.close()

    return answer


@pytest.fixture
async def raw_origin() -> AsyncIterator[str]:
    """A server that answers as old servers do: ``/latin.jpg`` with Latin-1 header values, not UTF-8;
    any other path with a space before a header's colon and a header folded over two lines."""
    latin = raw_answer(b"HTTP/1.1 200 OK\r\nContent-Type: image/jp\xe9g\r\nX-Robots-Tag: caf\xe9\r\n")
    odd = raw_answer(b"HTTP/1.1 200 OK\r\nContent-Type : image/jpeg\r\nX-Folded: one\r\n two\r\n")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readline()
        await (latin if b"/latin.jpg " in first else odd)(reader, writer)

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def test_headers_that_are_not_utf8_do_not_break_a_download(raw_origin: str, fetch: Fetch) -> None:
    u = f"{raw_origin}/latin.jpg"
    run = await fetch([u], retries=0)
    assert run.row(u)["status"] == "ok", run.row(u)
    assert (run.out / run.row(u)["path"]).read_bytes() == JPEG


async def test_old_header_syntax_is_read(raw_origin: str, fetch: Fetch, backend: str) -> None:
    if backend == "aiohttp":
        pytest.skip("aiohttp's parser refuses a space before the colon and folded header lines")
    u = f"{raw_origin}/odd.jpg"
    run = await fetch([u], retries=0)
    assert run.row(u)["status"] == "ok", run.row(u)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listening socket never accepts and whose backlog is full: a connect there hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(4)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        yield port
        for filler in fillers:
            filler.close()


async def test_connect_timeout_is_told_from_silence(fetch: Fetch, unanswered_port: int) -> None:
    u = f"http://127.0.0.1:{unanswered_port}/x.jpg"
    run = await fetch([u], connect_timeout=0.3, read_timeout=5, retries=0)
    assert (run.row(u)["kind"], run.row(u)["error"]) == ("timeout", "connect timed out")


async def test_dead_host_fails_fast_as_host_down(fetch: Fetch, closed_port: int) -> None:
    urls = [f"http://127.0.0.1:{closed_port}/{i}.jpg" for i in range(20)]
    run = await fetch(urls, concurrency=1, retries=1, host_down_after=3)
    kinds = [r["kind"] for r in sorted(run.rows, key=lambda r: r["line"])]
    assert kinds[0] == "connect"
    assert set(kinds[1:]) == {"host_down"}
    assert sum(r["attempts"] for r in run.rows) <= 3 + 19  # the down host's URLs make no more connects


async def test_deadline_bounds_all_attempts(origin: TestServer, fetch: Fetch) -> None:
    u = url(origin, "/flaky/100/x.jpg")
    t0 = time.monotonic()
    run = await fetch([u], deadline=1.0, retries=50, backoff=0.2)
    row = run.row(u)
    assert row["status"] == "failed" and row["kind"] in ("http_5xx", "timeout")
    assert time.monotonic() - t0 < 2.5
    assert 2 <= row["attempts"] < 50


@pytest.mark.parametrize("with_length", [True, False])
async def test_oversize_bodies_fail_early(origin: TestServer, fetch: Fetch, with_length: bool) -> None:
    u = url(origin, f"/big/5000000{'?cl=1' if with_length else ''}")
    run = await fetch([u], max_size=100_000)
    row = run.row(u)
    assert (row["kind"], row["attempts"]) == ("too_large", 1)
    assert run.files() == []


@pytest.mark.parametrize("path", ["/truncated/x.jpg", "/reset/x.jpg"])
async def test_cut_bodies_are_failures_never_files(origin: TestServer, fetch: Fetch, path: str) -> None:
    u = url(origin, path)
    run = await fetch([u], retries=1)
    assert (run.row(u)["kind"], run.row(u)["attempts"]) == ("truncated", 2)
    assert run.files() == []


@pytest.mark.parametrize("with_length", [True, False])
async def test_large_body_streams_to_disk_intact(origin: TestServer, fetch: Fetch, with_length: bool) -> None:
    u = url(origin, f"/big/3000000{'?cl=1' if with_length else ''}")
    run = await fetch([u])
    row = run.row(u)
    body = (run.out / row["path"]).read_bytes()
    assert len(body) == row["bytes"] == 3_000_000 and body.startswith(JPEG)
    assert row["sha256"] == hashlib.sha256(body).hexdigest()  # hashed in the writer's thread hops


async def test_no_name_from_the_server_or_url_escapes_out(
    origin: TestServer, fetch: Fetch, tmp_path: Path
) -> None:
    urls = [url(origin, "/cd/x.jpg"), url(origin, "/img/..%2F..%2Fevil.jpg/..%2F..%2Fevil.jpg")]
    before = sorted(p for p in tmp_path.parent.rglob("*") if "out" not in p.parts)
    run = await fetch(urls)
    assert run.stats.ok == 2
    after = sorted(p for p in tmp_path.parent.rglob("*") if "out" not in p.parts)
    assert after == before
    assert all("/" not in f for f in run.files())


async def test_bad_input_lines_are_rows_and_the_run_goes_on(origin: TestServer, fetch: Fetch) -> None:
    bad = [
        "file:///etc/passwd",
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
        "http://",
        "x" * 10000,
        "ftp://h/x.jpg",
        "just words",
    ]
    good = url(origin, "/img/1/image-00.jpg")
    run = await fetch([*bad, good])
    assert run.stats.ok == 1 and run.stats.invalid == len(bad)
    assert {r["kind"] for r in run.rows if r["status"] == "invalid"} == {"invalid_url"}
    assert all(r["error"] for r in run.rows if r["status"] == "invalid")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=False, capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


async def test_full_disk_aborts_the_run_cleanly(origin: TestServer, fetch: Fetch, tiny_disk: Path) -> None:
    urls = [url(origin, f"/big/200000?cl=1&n={i}") for i in range(40)]  # 200 KB each: 4 fit in 1 MB
    run = await fetch(urls, out=tiny_disk / "out", concurrency=1)
    assert run.stats.aborted and "No space left" in run.stats.aborted
    kinds = {r["kind"] for r in run.rows if r["status"] == "failed"}
    assert "write" in kinds and kinds <= {"write", "cancelled"}
    assert {r["status"] for r in run.rows} <= {"ok", "failed", "not_started"}
    assert run.stats.failures["write"] == 1  # it stopped instead of failing every URL as a write error
    assert not run.stats.interrupted
    assert not [f for f in run.files() if f.endswith(".part")]
    for r in run.rows:
        if r["status"] == "ok":
            assert (run.out / r["path"]).stat().st_size == r["bytes"]
