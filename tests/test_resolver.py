"""The resolver against a real DNS server on loopback: TTLs, shared queries, negative caching, retries,
the bound on lookups in flight, and the sentences of its failures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from downloader import resolver as resolver_module
from downloader.errors import DNSError
from downloader.resolver import Resolver
from downloader.spec import Network
from tests.dnsserver import DNSServer, Name


def resolver(server: DNSServer, **options: Any) -> Resolver:
    options.setdefault("dns_timeout", 0.3)
    return Resolver(Network(dns_servers=(("127.0.0.1", server.port),), **options))


async def test_one_query_per_host_per_ttl_shared_by_concurrent_lookups(dns_server: DNSServer) -> None:
    """Positive and negative answers alike are kept for their TTL (the SOA's for "no such host")."""
    dns_server.names["a.test"] = Name(["127.0.0.2", "::1"], ttl=1, delay=0.05)
    dns_server.negative_ttl = 1
    r = resolver(dns_server)
    await r.lookup("gone.test")
    entries = await asyncio.gather(*(r.lookup("a.test") for _ in range(50)))
    assert {e.addresses for e in entries} == {("127.0.0.2", "::1")}
    assert (dns_server.asked("a.test"), dns_server.asked("a.test", "AAAA")) == (1, 1)
    await r.lookup("a.test")
    assert dns_server.asked("a.test") == 1
    await r.lookup("gone.test")
    assert dns_server.asked("gone.test") == 1
    await asyncio.sleep(1.05)  # the TTLs have run out
    await r.lookup("a.test")
    await r.lookup("gone.test")
    assert (dns_server.asked("a.test"), dns_server.asked("gone.test")) == (2, 2)


async def test_a_truncated_answer_is_asked_again_over_tcp(dns_server: DNSServer) -> None:
    many = [f"127.0.1.{i}" for i in range(1, 61)]
    dns_server.names["many.test"] = Name(many)
    entry = await resolver(dns_server).lookup("many.test")
    assert sorted(entry.addresses) == sorted(many)  # an RRset has no order
    assert dns_server.truncated == 1


async def test_the_cache_keeps_a_bounded_number_of_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolver_module, "MAX_HOSTS", 64)
    r = Resolver(Network())
    for i in range(1000):
        await r.lookup(f"10.0.{i // 256}.{i % 256}")
    assert len(r._cache) <= 64
    assert r.cached("10.0.3.231") is not None  # the newest stay


async def test_a_cname_chain_ends_at_its_addresses(dns_server: DNSServer) -> None:
    dns_server.names["v6only.test"] = Name(["::1"])
    entry = await resolver(dns_server).lookup("v6only.test")
    assert entry.addresses == ("::1",)


async def test_nxdomain_is_cached_and_said(dns_server: DNSServer) -> None:
    r = resolver(dns_server)
    for _ in range(3):
        entry = await r.lookup("missing.test")
        assert entry.error == f"no such host (NXDOMAIN from 127.0.0.1:{dns_server.port})"
        assert not entry.retryable
    assert dns_server.asked("missing.test") == 1


async def test_a_name_without_addresses_is_said(dns_server: DNSServer) -> None:
    dns_server.names["empty.test"] = Name([])
    entry = await resolver(dns_server).lookup("empty.test")
    assert entry.error.startswith("no address records (NOERROR from 127.0.0.1:")


async def test_a_dropped_query_is_asked_again(dns_server: DNSServer) -> None:
    dns_server.names["flaky.test"] = Name(["127.0.0.2"], drop=1)
    r = resolver(dns_server, dns_timeout=0.2)
    assert (await r.lookup("flaky.test")).addresses == ("127.0.0.2",)
    assert dns_server.asked("flaky.test") == 2
    assert r.queries == 2


async def test_servfail_is_retried_then_said_and_not_kept(dns_server: DNSServer) -> None:
    dns_server.names["broken.test"] = Name(["127.0.0.2"], servfail=-1)
    r = resolver(dns_server, dns_tries=3)
    entry = await r.lookup("broken.test")
    assert entry.error == f"SERVFAIL from 127.0.0.1:{dns_server.port} after 3 tries"
    assert entry.retryable
    assert dns_server.asked("broken.test") == 3
    await r.lookup("broken.test")  # a temporary failure is not cached
    assert dns_server.asked("broken.test") == 6


async def test_servfail_then_an_answer(dns_server: DNSServer) -> None:
    dns_server.names["recovers.test"] = Name(["127.0.0.2"], servfail=2)
    entry = await resolver(dns_server).lookup("recovers.test")
    assert entry.addresses == ("127.0.0.2",)


async def test_silence_is_said_with_the_wait_and_the_tries(dns_server: DNSServer) -> None:
    dns_server.names["silent.test"] = Name(["127.0.0.2"], drop=100)
    entry = await resolver(dns_server, dns_timeout=0.1, dns_tries=2).lookup("silent.test")
    assert entry.error == f"no answer within 0.1 s from 127.0.0.1:{dns_server.port} after 2 tries"


async def test_tries_go_to_the_next_server(dns_server: DNSServer) -> None:
    dns_server.names["next.test"] = Name(["127.0.0.2"])
    dead = ("127.0.0.1", 9)  # the discard port: nothing answers
    r = Resolver(Network(dns_servers=(dead, ("127.0.0.1", dns_server.port)), dns_timeout=0.2))
    assert (await r.lookup("next.test")).addresses == ("127.0.0.2",)


async def test_lookups_in_flight_are_bounded(dns_server: DNSServer) -> None:
    hosts = [f"h{i}.test" for i in range(6)]
    for h in hosts:
        dns_server.names[h] = Name(["127.0.0.2"], delay=0.1)
    r = resolver(dns_server, dns_lookups=2)
    await asyncio.gather(*(r.lookup(h) for h in hosts))
    assert dns_server.max_in_flight == 2


async def test_the_system_resolver_reads_etc_hosts() -> None:
    r = Resolver(Network())
    try:
        entry = await r.lookup("localhost")
    finally:
        r.close()
    assert "127.0.0.1" in entry.addresses or "::1" in entry.addresses
    assert entry.listed_local


async def test_an_address_needs_no_lookup(dns_server: DNSServer) -> None:
    r = resolver(dns_server)
    assert (await r.lookup("::1")).addresses == ("::1",)
    assert r.queries == 0


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.lists(LABEL, min_size=1, max_size=4), upper=st.booleans(), last=st.integers(1, 254))
async def test_any_name_round_trips_through_the_wire(
    dns_server: DNSServer, labels: list[str], upper: bool, last: int
) -> None:
    name = ".".join([*labels, "test"])
    dns_server.names[name] = Name([f"127.0.0.{last}"])
    entry = await resolver(dns_server).lookup(name.upper() if upper else name)
    assert entry.addresses == (f"127.0.0.{last}",)


def test_a_bad_dns_server_is_a_usage_error() -> None:
    from downloader.errors import UsageError
    from downloader.spec import parse_dns_server

    assert parse_dns_server("[::1]:5353") == ("::1", 5353)
    assert parse_dns_server("::1") == ("::1", 53)
    assert parse_dns_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    for bad in ("dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1"):
        with pytest.raises(UsageError):
            parse_dns_server(bad)


def test_dns_error_keeps_its_retryability() -> None:
    assert not DNSError("x", retryable=False).retryable
    assert DNSError("x").retryable
