"""Every URL a browser accepts: IRIs become URIs once, where a URL is parsed, so every backend sends the
same bytes; whatever a line holds, it ends in a row of a known kind, never ``internal`` or a traceback."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Run
from tests.faults import JPEG, TARGETS

Fetch = Callable[..., Awaitable[Run]]


def base(origin: TestServer) -> str:
    return f"http://127.0.0.1:{origin.port}"


async def test_a_raw_utf8_path_and_query_go_out_percent_encoded(origin: TestServer, fetch: Fetch) -> None:
    url = f"{base(origin)}/img/图片/ü ber.jpg?q=é"
    run = await fetch([url])
    row = run.row(url)  # the manifest keeps the URL as the user gave it
    assert row["status"] == "ok", row
    assert row["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert origin.app[TARGETS] == ["/img/%E5%9B%BE%E7%89%87/%C3%BC%20ber.jpg?q=%C3%A9"]
    (name,) = run.files()
    assert name.startswith("ü ber.") and name.endswith(".jpg")  # the name people read, as before


async def test_an_international_host_goes_out_in_idna_form(origin: TestServer, fetch: Fetch) -> None:
    """Through the origin as a proxy, so the request line shows the host each backend sent."""
    urls = ["http://Bücher.example/img/a/image-00.jpg", "http://图/img/b/image-00.jpg?q=ß"]
    run = await fetch(urls, proxy=base(origin))
    assert [run.row(u)["status"] for u in urls] == ["ok", "ok"]
    targets: list[str] = origin.app[TARGETS]
    assert sorted(targets) == [
        "http://xn--bcher-kva.example/img/a/image-00.jpg",
        "http://xn--wcs/img/b/image-00.jpg?q=%C3%9F",
    ]


async def test_a_host_mapped_to_ascii_is_fetched(origin: TestServer, fetch: Fetch) -> None:
    url = f"http://１２７。０。０。１:{origin.port}/img/c/image-00.jpg"
    run = await fetch([url])
    assert run.row(url)["status"] == "ok"
    assert origin.app[TARGETS] == ["/img/c/image-00.jpg"]


@pytest.mark.parametrize(
    ("host", "reason"),
    [("..", "empty label"), ("a" * 64 + ".localhost", "over 63"), ("xn--zz", "international")],
)
async def test_hosts_idna_refuses_are_invalid_url_rows(
    origin: TestServer, fetch: Fetch, host: str, reason: str
) -> None:
    url = f"http://{host}:{origin.port}/x.jpg"
    run = await fetch([url])
    row = run.row(url)
    assert (row["status"], row["kind"]) == ("invalid", "invalid_url") and reason in row["error"]
    assert origin.app[TARGETS] == []
