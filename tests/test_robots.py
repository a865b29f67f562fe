"""--robots-txt: the matcher against RFC 9309's own examples, and a run that fetches each origin's
robots.txt once and sends nothing robots.txt forbids, on every backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from downloader.app.assemble import build_engine
from downloader.errors import UsageError
from downloader.robotstxt import normalise, parse
from downloader.spec import RunSpec
from tests.faults import ROBOTS, make_app
from tests.helpers import AiohttpServer, GatedBackend, Run, hits

Fetch = Callable[..., Awaitable[Run]]

RFC_EXAMPLE = b"""\
User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot

EOF
"""


# -- the matcher (RFC 9309) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "path", "allowed"),
    [
        ("foobot", "/example/page.html", True),
        ("foobot", "/example/allowed.gif", True),
        ("foobot", "/example/other.html", False),
        ("foobot", "/", False),
        ("barbot", "/example/page.html", False),
        ("bazbot", "/example/page.html", False),
        ("barbot", "/example/other.html", True),  # its own group, not the * rules
        ("barbot", "/a.gif", True),
        ("quxbot", "/example/page.html", True),  # a group without rules allows everything
        ("otherbot", "/a/b.gif", False),  # no group of its own: the * group
        ("otherbot", "/a/b.gif?x=1", True),  # $ ends the pattern
        ("otherbot", "/example/x", False),
        ("otherbot", "/publications/x", True),
        ("otherbot", "/robots.txt", True),
    ],
)
def test_the_rfc_example(agent: str, path: str, allowed: bool) -> None:
    assert parse(RFC_EXAMPLE, agent).allows(path) is allowed


def test_the_longest_match_wins_and_an_allow_wins_a_tie() -> None:
    rules = parse(
        b"User-Agent: foobot\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif\n", "foobot"
    )
    assert rules.allows("/example/page/") and not rules.allows("/example/page/disallowed.gif")
    # file order does not matter (urllib.robotparser takes the first rule that matches)
    rules = parse(b"User-agent: *\nDisallow: /\nAllow: /img/\nDisallow: /img/x\nAllow: /img/x\n", "a")
    assert rules.allows("/img/a.jpg") and rules.allows("/img/x.jpg") and not rules.allows("/other")
    assert str(rules.decide("/other")) == "disallows /"


def test_groups_of_one_agent_merge_and_names_are_tokens_without_case() -> None:
    text = b"user-agent: ExampleBot/2.1\ndisallow: /foo\ndisallow: /bar\n\n"
    text += b"USER-AGENT: examplebot\ndisallow: /baz\n"
    rules = parse(text, "examplebot")
    assert [rules.allows(p) for p in ("/foo", "/bar", "/baz", "/qux")] == [False, False, False, True]
    assert parse(text, "example").allows("/foo")  # a token, not a substring


def test_wildcards_comments_and_lines_that_are_no_rules() -> None:
    text = (
        b"\xef\xbb\xbf# comment\r\nDisallow: /before-any-group\r\nUser-agent: * # all\r\nSitemap: /s.xml\r\n"
    )
    text += b"Disallow: /path/file-*.html\r\nAllow: /path/foo-$\r\nDisallow: /path/foo\r\n"
    text += b"Disallow:\r\nnonsense\r\n"
    rules = parse(text, "downloader")
    assert not rules.allows("/path/file-a.html") and not rules.allows("/path/file-.html?x")
    assert rules.allows("/path/file.html") and rules.allows("/before-any-group")
    assert rules.allows("/path/foo-") and not rules.allows("/path/foo-bar")


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ("/foo/bar/\u30c4".encode(), "/foo/bar/%E3%83%84"),
        (b"/foo/bar/%E3%83%84", "/foo/bar/%e3%83%84"),
        (b"/foo/bar/%62%61%7A", "/foo/bar/baz"),
        (b"/foo/bar?baz=quz", "/foo/bar?baz=quz"),
    ],
)
def test_paths_compare_percent_encoded(rule: bytes, path: str) -> None:
    assert not parse(b"User-agent: *\nDisallow: " + rule + b"\n", "a").allows(path)


def test_normalise() -> None:
    assert normalise("/a/%7e%2fb%e3") == "/a/~%2Fb%E3"
    assert normalise("/\xe3\x83\x84") == "/%E3%83%84"  # one character per octet of the file


# -- a run --------------------------------------------------------------------------------------------


def robots(server: TestServer, body: bytes = b"", status: int = 200, delay: float = 0.0) -> None:
    answer = server.app[ROBOTS]
    answer.body, answer.status, answer.delay = body, status, delay


def urls(server: TestServer, group: str, n: int) -> list[str]:
    return [str(server.make_url(f"/img/{group}/{i}.jpg")) for i in range(n)]


def statuses(run: Run, listed: list[str]) -> list[str]:
    """Each URL's status in the order listed (rows come in the order they end)."""
    return [run.row(u)["status"] for u in listed]


async def test_disallowed_urls_fail_unrequested_and_robots_txt_is_fetched_once(
    fetch: Fetch, origin: TestServer
) -> None:
    robots(origin, b"User-agent: *\nDisallow: /img/private/\n")
    shut, open_ = urls(origin, "private", 10), urls(origin, "public", 10)
    run = await fetch(
        [u for pair in zip(shut, open_, strict=True) for u in pair], robots_txt=True, concurrency=8
    )
    assert hits(origin, "/robots.txt") == 1
    assert all(run.row(u)["status"] == "ok" for u in open_)
    row = run.row(shut[0])
    assert row["kind"] == "opted_out" and row["attempts"] == 0
    assert row["error"] == "robots.txt disallows /img/private/ for *; not requested"
    assert sum(hits(origin, f"/img/private/{i}.jpg") for i in range(10)) == 0


async def test_our_group_wins_over_the_star_group_and_allow_wins_by_length(
    fetch: Fetch, origin: TestServer
) -> None:
    robots(
        origin,
        b"User-agent: *\nDisallow: /\n\nUser-agent: otherbot\nDisallow: /img/b/\n\n"
        b"User-agent: downloader\nDisallow: /img/\nAllow: /img/b/\n",
    )
    listed = [*urls(origin, "a", 2), *urls(origin, "b", 2)]
    run = await fetch(listed, robots_txt=True)
    assert statuses(run, listed) == ["failed", "failed", "ok", "ok"]
    assert run.row(listed[0])["error"] == "robots.txt disallows /img/ for downloader; not requested"


async def test_the_agent_is_the_user_agents_product_token(fetch: Fetch, origin: TestServer) -> None:
    robots(origin, b"User-agent: OtherBot\nDisallow: /img/b/\n")
    listed = [*urls(origin, "a", 1), *urls(origin, "b", 1)]
    run = await fetch(listed, robots_txt=True, user_agent="otherbot/2.0")
    assert statuses(run, listed) == ["ok", "failed"]
    assert run.row(listed[1])["error"] == "robots.txt disallows /img/b/ for otherbot; not requested"


async def test_a_missing_robots_txt_allows_everything(fetch: Fetch, origin: TestServer) -> None:
    robots(origin, b"User-agent: *\nDisallow: /\n", status=404)
    run = await fetch(urls(origin, "a", 3), robots_txt=True)
    assert run.stats.ok == 3 and hits(origin, "/robots.txt") == 1


async def test_a_server_error_is_tried_twice_then_the_site_is_disallowed(
    fetch: Fetch, origin: TestServer
) -> None:
    robots(origin, status=503)
    run = await fetch(urls(origin, "a", 3), robots_txt=True)
    assert hits(origin, "/robots.txt") == 2 and hits(origin, "/img/a/0.jpg") == 0
    assert {r["kind"] for r in run.rows} == {"opted_out"}
    assert "answered HTTP 503: RFC 9309 reads that as disallowing the whole site" in run.rows[0]["error"]


async def test_a_robots_txt_that_times_out_is_tried_twice_then_allows(
    fetch: Fetch, origin: TestServer
) -> None:
    robots(origin, b"User-agent: *\nDisallow: /\n", delay=3.0)
    run = await fetch(urls(origin, "a", 3), robots_txt=True, read_timeout=0.3)
    assert hits(origin, "/robots.txt") == 2 and run.stats.ok == 3


async def test_an_unreachable_host_is_not_asked_for_its_images(fetch: Fetch) -> None:
    run = await fetch(["http://127.0.0.1:9/a.jpg", "http://127.0.0.1:9/b.jpg"], robots_txt=True)
    assert {r["kind"] for r in run.rows} == {"connect"} and {r["attempts"] for r in run.rows} == {0}
    assert run.rows[0]["error"].startswith("http://127.0.0.1:9/robots.txt could not be fetched (")


async def test_only_the_first_500_kib_are_read(fetch: Fetch, origin: TestServer) -> None:
    robots(origin, b"User-agent: *\nDisallow: /img/a/\n" + b"#" * (600 << 10) + b"\nDisallow: /img/b/\n")
    listed = [*urls(origin, "a", 1), *urls(origin, "b", 1)]
    run = await fetch(listed, robots_txt=True)
    assert statuses(run, listed) == ["failed", "ok"]


async def test_one_fetch_per_origin_however_many_urls(fetch: Fetch, aiohttp_server: AiohttpServer) -> None:
    servers = [await aiohttp_server(make_app()) for _ in range(2)]
    for server in servers:
        robots(server, b"User-agent: *\nDisallow: /img/x/\n")
    lists = [urls(s, "a", 20) + urls(s, "x", 5) for s in servers]
    run = await fetch([u for pair in zip(*lists, strict=True) for u in pair], robots_txt=True, concurrency=16)
    assert [hits(s, "/robots.txt") for s in servers] == [1, 1]
    assert run.stats.ok == 40 and run.stats.failed == 10


async def test_off_by_default_no_robots_txt_is_asked_for(fetch: Fetch, origin: TestServer) -> None:
    robots(origin, b"User-agent: *\nDisallow: /\n")
    run = await fetch(urls(origin, "a", 2))
    assert run.stats.ok == 2 and hits(origin, "/robots.txt") == 0


def test_a_backend_that_cannot_read_a_page_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="robots_txt needs a backend that can read a page"):
        build_engine(RunSpec.from_options(out=tmp_path, robots_txt=True), backend=GatedBackend())
