"""DNS and the address policy end to end, for every backend: names resolved through a DNS server the
test starts (``--dns-server``), and the addresses each hop may reach.

Loopback plays both sides: only 127.0.0.1 counts as private here (``private_networks``), so an origin
on 127.0.0.2 is a "public" host and one on 127.0.0.1 the private network behind it. Both listen on the
same port, so a name that answers both addresses shows which one a backend really dialled.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from downloader.cli import main
from tests.dnsserver import DNSServer, Name
from tests.faults import JPEG
from tests.helpers import PRIVATE, PUBLIC, AiohttpServer, Run, public_and_private

Fetch = Callable[..., Awaitable[Run]]
HITS: web.AppKey[collections.Counter[str]] = web.AppKey("hits", collections.Counter)
SEEN: web.AppKey[dict[str, dict[str, str]]] = web.AppKey("seen", dict)


def small_app() -> web.Application:
    """``/img.jpg`` an image; ``/go?to=URL`` a redirect there. Counts hits by path."""

    async def img(request: web.Request) -> web.Response:
        request.app[HITS][request.path] += 1
        request.app[HITS][request.query_string] += 1
        if "slow" in request.query:
            await asyncio.sleep(1.1)
        return web.Response(body=JPEG, content_type="image/jpeg")

    async def go(request: web.Request) -> web.Response:
        request.app[HITS][request.path] += 1
        raise web.HTTPFound(request.query["to"])

    async def echo(request: web.Request) -> web.Response:
        request.app[SEEN][request.query_string] = dict(request.headers)
        return web.Response(body=JPEG, content_type="image/jpeg")

    app = web.Application()
    app[HITS] = collections.Counter()
    app[SEEN] = {}
    app.router.add_get("/echo", echo)
    app.router.add_get("/img.jpg", img)
    app.router.add_get("/go", go)
    return app


@pytest.fixture
async def origins(aiohttp_server: AiohttpServer) -> tuple[TestServer, TestServer]:
    """A "public" origin on 127.0.0.2 and a "private" one on 127.0.0.1, on one port."""
    return await public_and_private(aiohttp_server, small_app)


@pytest.fixture
def dl(fetch: Fetch, dns_server: DNSServer) -> Callable[..., Awaitable[Run]]:
    """``fetch`` through the test's DNS server, with only 127.0.0.1 private."""

    async def run(urls: list[str], **options: Any) -> Run:
        options.setdefault("retries", 0)
        options.setdefault("dns_timeout", 0.2)
        return await fetch(
            urls, dns_servers=[f"127.0.0.1:{dns_server.port}"], private_networks=["127.0.0.1/32"], **options
        )

    return run


async def test_names_resolve_once_and_failures_say_what_the_server_answered(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    port = origins[0].port
    for name in ("a.test", "b.test"):
        dns_server.names[name] = Name([PUBLIC])
    dns_server.names["flaky.test"] = Name([PUBLIC], drop=1)
    dns_server.names["broken.test"] = Name([PUBLIC], servfail=-1)
    good = [f"http://{h}:{port}/img.jpg?{i}" for h in ("a.test", "b.test") for i in range(4)]
    missing = [f"http://missing.test:{port}/img.jpg?{i}" for i in range(2)]
    flaky, broken = f"http://flaky.test:{port}/img.jpg", f"http://broken.test:{port}/img.jpg"
    run = await dl([*good, *missing, flaky, broken], host_down_after=0)
    assert all(run.row(u)["status"] == "ok" for u in [*good, flaky])
    assert (dns_server.asked("a.test"), dns_server.asked("b.test"), dns_server.asked("flaky.test")) == (
        1,
        1,
        2,
    )
    for u in missing:
        row = run.row(u)
        assert (row["kind"], row["attempts"]) == ("dns", 1)
        assert row["error"] == f"no such host (NXDOMAIN from 127.0.0.1:{dns_server.port})"
    assert dns_server.asked("missing.test") == 1
    assert run.row(broken)["kind"] == "dns"
    assert run.row(broken)["error"] == f"SERVFAIL from 127.0.0.1:{dns_server.port} after 3 tries"
    assert dns_server.asked("broken.test") == 3


async def test_a_timed_out_lookup_is_retried_by_the_engine_too(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    dns_server.names["slow.test"] = Name([PUBLIC], drop=4)  # A and AAAA, twice
    u = f"http://slow.test:{origins[0].port}/img.jpg"
    run = await dl([u], dns_tries=1, retries=2, backoff=0.01)
    assert (run.row(u)["status"], run.row(u)["attempts"]) == ("ok", 3)


async def test_lookups_in_flight_are_bounded(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    hosts = [f"h{i}.test" for i in range(6)]
    for h in hosts:
        dns_server.names[h] = Name([PUBLIC], delay=0.1)
    urls = [f"http://{h}:{origins[0].port}/img.jpg" for h in hosts]
    run = await dl(urls, dns_lookups=2)
    assert {r["status"] for r in run.rows} == {"ok"}
    assert dns_server.max_in_flight == 2


async def test_names_into_forbidden_space_are_blocked_unconnected(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    public, private = origins
    dns_server.names["metadata.test"] = Name(["169.254.169.254"])
    dns_server.names["linklocal.test"] = Name(["169.254.7.7", "fe80::7"])
    dns_server.names["inside.test"] = Name([PRIVATE])
    dns_server.names["both.test"] = Name([PRIVATE, PUBLIC])
    port = public.port
    meta, link, inside, both = (
        f"http://{h}:{port}/img.jpg" for h in ("metadata.test", "linklocal.test", "inside.test", "both.test")
    )
    dotted = f"http://both.test.:{port}/img.jpg"  # the same name, written absolute
    run = await dl([meta, link, inside, both, dotted])
    assert (
        run.row(meta)["error"]
        == "metadata.test resolves to 169.254.169.254, a cloud metadata address (never fetched)"
    )
    assert "169.254.7.7, a link-local address" in run.row(link)["error"]
    assert "inside.test resolves to 127.0.0.1, a private address" in run.row(inside)["error"]
    assert {run.row(u)["kind"] for u in (meta, link, inside)} == {"blocked"}
    assert {run.row(u)["attempts"] for u in (meta, link, inside)} == {1}
    assert (run.row(both)["status"], run.row(dotted)["status"]) == ("ok", "ok")  # through its public address
    assert (public.app[HITS]["/img.jpg"], private.app[HITS]["/img.jpg"]) == (2, 0)


async def test_a_redirect_from_a_public_address_into_private_space_is_blocked(
    origins: tuple[TestServer, TestServer], dl: Fetch
) -> None:
    public, private = origins
    inside = f"http://{PRIVATE}:{private.port}/img.jpg"
    hop = f"http://{PUBLIC}:{public.port}/go?to={inside}"
    run = await dl([hop, inside + "?listed"])
    row = run.row(hop)
    assert (row["kind"], row["attempts"]) == ("blocked", 1)
    assert row["error"] == (
        "a redirect from a public address; 127.0.0.1 is a private address (--allow-private allows it)"
    )
    assert run.row(inside + "?listed")["status"] == "ok"  # listed by address: the user asked for it
    assert private.app[HITS]["/img.jpg"] == 1


async def test_a_listed_private_origin_may_redirect_within_private_space(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    private = origins[1]
    dns_server.names["inside.test"] = Name([PRIVATE])
    u = f"http://{PRIVATE}:{private.port}/go?to=http://inside.test:{private.port}/img.jpg"
    run = await dl([u])
    assert run.row(u)["status"] == "ok"


async def test_a_pin_made_for_a_private_chain_is_not_inherited_by_the_next_url(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    """A chain from a listed private address reaches a name's private address; by the time the next URL
    names it, the name answers a public address (TTL 1 s, the chain's answer is slow): that URL may not
    ride the chain's connection into private space, nor inherit its pin."""
    public, private = origins
    dns_server.names["mixed.test"] = Name(ttl=1, cycle=[[PRIVATE], [PUBLIC]])
    port = public.port
    chain = f"http://{PRIVATE}:{port}/go?to=http://mixed.test:{port}/img.jpg?slow"
    later = [f"http://mixed.test:{port}/img.jpg?later{i}" for i in range(3)]
    run = await dl([chain, *later], concurrency=1)
    assert {r["status"] for r in run.rows} == {"ok"}
    assert private.app[HITS]["slow"] == 1
    assert [public.app[HITS][f"later{i}"] for i in range(3)] == [1, 1, 1]
    assert not any(private.app[HITS][f"later{i}"] for i in range(3))


async def test_allow_private_opens_private_and_link_local_space_but_never_metadata(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    public, private = origins
    dns_server.names["inside.test"] = Name([PRIVATE])
    dns_server.names["metadata.test"] = Name(["169.254.169.254"])
    hop = f"http://{PUBLIC}:{public.port}/go?to=http://{PRIVATE}:{private.port}/img.jpg"
    inside, meta = f"http://inside.test:{private.port}/img.jpg", f"http://metadata.test:{private.port}/x"
    run = await dl([hop, inside, meta], allow_private=True)
    assert (run.row(hop)["status"], run.row(inside)["status"]) == ("ok", "ok")
    assert run.row(meta)["kind"] == "blocked"


async def test_deny_private_refuses_even_a_listed_address(
    origins: tuple[TestServer, TestServer], dl: Fetch
) -> None:
    private = origins[1]
    u = f"http://{PRIVATE}:{private.port}/img.jpg"
    run = await dl([u], deny_private=True)
    assert (run.row(u)["kind"], run.row(u)["error"]) == (
        "blocked",
        "127.0.0.1 is a private address (--deny-private)",
    )
    assert private.app[HITS]["/img.jpg"] == 0


async def test_credentials_stay_with_the_listed_origin_across_redirects(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    public = origins[0]
    dns_server.names["other.test"] = Name([PUBLIC])
    home = f"http://{PUBLIC}:{public.port}/echo?home"
    away = f"http://{PUBLIC}:{public.port}/go?to=http://other.test:{public.port}/echo?away"
    same = f"http://{PUBLIC}:{public.port}/go?to=/echo?same"
    run = await dl([home, away, same], headers=[("Authorization", "Bearer s"), ("X-Trace", "7")])
    assert run.stats.ok == 3
    seen = public.app[SEEN]
    assert (seen["home"]["Authorization"], seen["same"]["Authorization"]) == ("Bearer s", "Bearer s")
    assert "Authorization" not in seen["away"]
    assert seen["away"]["X-Trace"] == "7"


async def test_through_a_proxy_an_address_is_still_judged_and_a_name_left_to_the_proxy(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, dl: Fetch
) -> None:
    public = origins[0]
    proxy = f"http://{PUBLIC}:{public.port}"
    meta, named = "http://169.254.169.254/latest/meta-data/", "http://unknown-to-any-resolver.test/img.jpg"
    run = await dl([meta, named], proxy=proxy)
    assert run.row(meta)["kind"] == "blocked"
    assert run.row(named)["status"] == "ok"  # the proxy (here the origin itself) answered
    assert dns_server.asked("unknown-to-any-resolver.test") == 0


async def test_the_command_line_takes_dns_servers_and_private_networks(
    origins: tuple[TestServer, TestServer], dns_server: DNSServer, tmp_path: Path
) -> None:
    dns_server.names["a.test"] = Name([PUBLIC])
    lst = tmp_path / "urls.txt"
    lst.write_text(f"http://a.test:{origins[0].port}/img.jpg\n")
    args = ["fetch", str(lst), "-o", str(tmp_path / "out"), "-q", "--private-networks", "127.0.0.1/32"]
    args += [
        "--dns-server",
        "[::1]:9",
        "--dns-server",
        f"127.0.0.1:{dns_server.port}",
        "--dns-timeout",
        "0.2",
    ]
    res = await asyncio.to_thread(CliRunner().invoke, main, args)
    assert res.exit_code == 0, res.output
    assert dns_server.asked("a.test") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allow-private", "--deny-private"], "contradict"),
        (["--dns-server", "dns.example"], "not a DNS server address"),
        (["--private-networks", "10.0.0.0/33"], "not a network"),
    ],
)
def test_dns_usage_errors_exit_2(args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["fetch", "-", *args], input="")
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
