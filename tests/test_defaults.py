"""Defaults that end a run: under default flags no URL holds a run much past a minute (stalls, trickles
and dead hosts included), while a body that keeps arriving at a healthy speed still completes. The rules
are shown at a smaller time scale on every backend; the defaults themselves are checked by arithmetic."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestServer

from downloader.spec import RunSpec
from tests.helpers import Run, hits

Fetch = Callable[..., Awaitable[Run]]


def test_the_defaults_bound_every_unhealthy_case_under_a_minute() -> None:
    spec = RunSpec()
    t, r = spec.timeouts, spec.retries
    assert t.deadline == 60 and t.timeout == 0  # one bound for a URL; no fixed limit on a healthy body
    backoff = sum(r.backoff * 2**i * 1.5 for i in range(r.retries))  # the longest waits, jitter included
    dead_host = (r.retries + 1) * t.connect_timeout + backoff
    stall = (r.stall_retries + 1) * t.read_timeout + backoff
    trickle = (r.stall_retries + 1) * t.min_speed[1] + backoff
    assert max(dead_host, stall, trickle) < t.deadline  # each ends on its own, before the deadline
    assert t.deadline_speed <= 1_000_000  # a body at 1 MB/s or more is never cut by the deadline


async def test_a_stall_is_retried_only_stall_retries_times(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/stall/s.jpg"))
    run = await fetch([url], read_timeout=0.3, retries=3, stall_retries=1, backoff=0.01)
    row = run.row(url)
    assert row["kind"] == "timeout" and row["attempts"] == 2 and hits(origin, "/stall/s.jpg") == 2


async def test_a_body_that_keeps_arriving_runs_past_the_deadline(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/steady/20000/50/30"))  # 600 KB over 1.5 s: about 400 KB/s
    run = await fetch([url], deadline=0.5, deadline_speed="100KB", min_speed="1000:0.2")
    row = run.row(url)
    assert row["status"] == "ok" and row["bytes"] == 600_000 and row["elapsed_s"] > 1.2


async def test_a_body_slower_than_deadline_speed_ends_at_the_deadline(
    origin: TestServer, fetch: Fetch
) -> None:
    url = str(origin.make_url("/steady/20000/50/30"))
    run = await fetch([url], deadline=0.5, deadline_speed="10MB", min_speed="1000:0.2", retries=0)
    row = run.row(url)
    assert row["kind"] == "timeout" and row["error"] == "URL deadline of 0.5 s exceeded"
    assert row["elapsed_s"] < 1.0


async def test_a_strict_deadline(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/steady/20000/50/30"))
    run = await fetch([url], deadline=0.5, deadline_speed=0, min_speed="1000:0.2", retries=0)
    assert run.row(url)["kind"] == "timeout" and run.row(url)["elapsed_s"] < 1.0
