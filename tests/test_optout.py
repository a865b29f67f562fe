"""Opt-outs: X-Robots-Tag directives are read from the headers, before the body, on every backend; a URL
that opts out is closed unread and recorded as ``opted_out``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestServer

from downloader.checks import robots_directives
from tests.faults import SENT
from tests.helpers import Run

Fetch = Callable[..., Awaitable[Run]]


def tagged(origin: TestServer, name: str, tags: list[str], small: bool = True) -> str:
    query = urlencode([("tag", t) for t in tags] + ([("small", "1")] if small else []))
    return str(origin.make_url(f"/robots-tag/{name}?{query}"))


CASES: list[tuple[list[str], bool]] = [
    (["noai"], True),
    (["NoImageAI"], True),  # directives are case-insensitive
    (["noindex, nofollow"], True),
    (["nofollow", "noimageindex"], True),  # several headers
    (["none"], True),  # none means noindex, nofollow
    (["nofollow, noarchive"], False),
    (["otherbot: noai"], False),  # another agent's rule
    (["otherbot: noindex, noai"], False),  # the scope covers the whole list
    (["Downloader: noai"], True),  # ours, by the User-Agent's product token
    (["otherbot: noai", "noimageai"], True),  # a second header for everyone
    (["unavailable_after: 25 Jun 2010 15:00:00 PST"], False),  # a colon that names no agent
]


@pytest.mark.parametrize(("tags", "disallowed"), CASES)
async def test_x_robots_tag(origin: TestServer, fetch: Fetch, tags: list[str], disallowed: bool) -> None:
    u = tagged(origin, "a.jpg", tags)
    row = (await fetch([u])).row(u)
    if disallowed:
        assert row["status"] == "failed" and row["kind"] == "opted_out", row
        assert "X-Robots-Tag" in row["error"]
    else:
        assert row["status"] == "ok", row


async def test_an_empty_directive_set_switches_it_off(origin: TestServer, fetch: Fetch) -> None:
    u = tagged(origin, "a.jpg", ["noai"])
    run = await fetch([u], disallowed_header_directives="")
    assert run.row(u)["status"] == "ok"


async def test_a_chosen_directive_set(origin: TestServer, fetch: Fetch) -> None:
    ai, index = tagged(origin, "ai.jpg", ["noai"]), tagged(origin, "index.jpg", ["noindex"])
    run = await fetch([ai, index], disallowed_header_directives="noindex")
    assert run.row(ai)["status"] == "ok" and run.row(index)["kind"] == "opted_out"


async def test_the_body_of_an_opted_out_url_is_never_read(origin: TestServer, fetch: Fetch) -> None:
    """The origin streams 64 MiB slowly and counts what it sent; the client must hang up after the
    headers, without waiting for (or reading) the rest, and never retry."""
    u = tagged(origin, "big.jpg", ["noai"], small=False)
    run = await fetch([u], retries=2)
    assert run.row(u)["kind"] == "opted_out" and run.row(u)["attempts"] == 1
    await asyncio.sleep(0.3)  # the server notices the hang-up at its next write
    assert origin.app[SENT]["/robots-tag/big.jpg"] <= 4 * 65536  # of 64 MiB: only what was in flight
    assert run.files() == []


def test_directives_parse_per_agent() -> None:
    assert robots_directives(["noai, otherbot: noindex"], "downloader") == {"noai"}
    assert robots_directives(["downloader: noindex", "otherbot: noai"], "downloader") == {"noindex"}
    assert robots_directives(["max-image-preview: none, NOAI"], "downloader") == {"max-image-preview", "noai"}
