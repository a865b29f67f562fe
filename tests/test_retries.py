"""Which HTTP answers are retried, and what a URL is recorded as when its retries run out.

The manifest's ``kind`` is what a user filters on to decide what to rerun (``rate_limited`` means "slow
down and come back", ``http_4xx`` means "gone"), so the last error's class must survive the retry loop.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from downloader.checks import check_status, parse_retry_after
from downloader.errors import HTTPError, RateLimited, RedirectError, ServerError, Timeout, http_error
from tests.helpers import Run, hits

Fetch = Callable[..., Awaitable[Run]]


# -- the error for each status (sans I/O) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "kind", "retryable"),
    [
        (400, HTTPError, "http_4xx", False),
        (404, HTTPError, "http_4xx", False),
        (407, HTTPError, "http_4xx", False),
        (408, HTTPError, "http_4xx", True),  # Request Timeout: the server gave up waiting, try again
        (409, HTTPError, "http_4xx", False),
        (428, HTTPError, "http_4xx", False),
        (429, RateLimited, "rate_limited", True),
        (430, HTTPError, "http_4xx", False),
        (499, HTTPError, "http_4xx", False),
        (500, ServerError, "http_5xx", True),
        (503, ServerError, "http_5xx", True),
        (599, ServerError, "http_5xx", True),
    ],
)
def test_each_status_has_its_kind_and_retryability(
    status: int, cls: type[HTTPError], kind: str, retryable: bool
) -> None:
    err = http_error(status, "Reason")
    assert type(err) is cls
    assert (err.kind, err.retryable, err.http_status, err.retry_after) == (kind, retryable, status, None)
    assert str(err) == f"HTTP {status} Reason"
    assert not err.host_level


def test_the_message_has_no_stray_space_without_a_reason() -> None:
    assert str(http_error(404)) == "HTTP 404"


@pytest.mark.parametrize("status", [200, 204, 206, 299])
def test_2xx_passes(status: int) -> None:
    check_status(status, "OK", {})


@pytest.mark.parametrize("status", [300, 301, 304, 399])
def test_an_unfollowed_3xx_is_a_redirect_error(status: int) -> None:
    with pytest.raises(RedirectError, match=f"HTTP {status} redirect not followed"):
        check_status(status, "", {})


@pytest.mark.parametrize(("status", "cls"), [(199, HTTPError), (400, HTTPError), (429, RateLimited)])
def test_other_statuses_raise_with_the_retry_after_read(status: int, cls: type[HTTPError]) -> None:
    with pytest.raises(cls) as caught:
        check_status(status, "Nope", {"Retry-After": " 7 "})
    assert (caught.value.http_status, caught.value.retry_after) == (status, 7.0)


# -- end to end, every backend (the server counts the attempts) ------------------------------------------


async def test_429_until_the_retries_run_out_is_rate_limited(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/status/429/x.jpg"))
    run = await fetch([url], retries=2)
    row = run.row(url)
    assert (row["status"], row["kind"], row["http_status"], row["attempts"]) == (
        "failed",
        "rate_limited",
        429,
        3,
    )
    assert hits(origin, "/status/429/x.jpg") == 3


@pytest.mark.parametrize("code", [408, 429])
async def test_a_passing_refusal_is_retried_until_it_succeeds(
    origin: TestServer, fetch: Fetch, code: int
) -> None:
    path = f"/fail-then-ok/{code}/2/x.jpg"
    url = str(origin.make_url(path))
    run = await fetch([url], retries=3)
    assert (run.row(url)["status"], run.row(url)["attempts"]) == ("ok", 3)
    assert hits(origin, path) == 3


async def test_408_until_the_retries_run_out_is_http_4xx(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/status/408/x.jpg"))
    run = await fetch([url], retries=1)
    row = run.row(url)
    assert (row["kind"], row["http_status"], row["attempts"]) == ("http_4xx", 408, 2)
    assert hits(origin, "/status/408/x.jpg") == 2


# -- what the mutation run asked for (docs/mutation.md) --------------------------------------------------


def test_retry_after_as_an_http_date_counts_from_now() -> None:
    soon = email.utils.formatdate(time.time() + 100, usegmt=True)
    wait = parse_retry_after(soon)
    assert wait is not None and 98 < wait <= 100
    assert parse_retry_after(email.utils.formatdate(time.time() - 100, usegmt=True)) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


def test_the_reason_reaches_the_message() -> None:
    with pytest.raises(HTTPError, match=r"^HTTP 404 Not Found$"):
        check_status(404, "Not Found", {})
    assert str(HTTPError(404)) == "HTTP 404"


def test_only_a_connect_timeout_counts_against_the_host() -> None:
    """A slow body says nothing about whether the host is up; a connection that never opens does."""
    assert not Timeout("read timeout").host_level
    err = Timeout("connect timeout", connecting=True)
    assert err.host_level and err.retryable and str(err) == "connect timeout"
