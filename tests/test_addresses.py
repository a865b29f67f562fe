"""The address policy, sans-I/O: every address in one class, and who may reach it (hypothesis over
addresses, modes and chains)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from downloader.addresses import METADATA, Policy, embedded_v4, is_listed_local
from downloader.backends.gate import host_port, next_hop
from downloader.errors import Blocked, RedirectError
from downloader.spec import PRIVATE_NETWORKS, Network, parse_networks

V4 = st.ip_addresses(v=4)
V6 = st.ip_addresses(v=6)
ANY = st.one_of(V4, V6)
MODES = st.sampled_from(["listed", "allow", "deny"])


def policy(mode: str = "listed", networks: tuple[str, ...] = PRIVATE_NETWORKS) -> Policy:
    return Policy(
        Network(allow_private=mode == "allow", deny_private=mode == "deny", private_networks=networks)
    )


DEFAULT = policy()


@given(V4)
def test_an_ipv4_address_written_in_ipv6_is_judged_as_itself(ip: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(ip))
    assert DEFAULT.classify(str(mapped)) == DEFAULT.classify(str(nat64)) == DEFAULT.classify(str(ip))


@given(ANY)
def test_each_class_is_what_its_networks_say(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    cls = DEFAULT.classify(str(ip))
    v4 = embedded_v4(ip)
    private = any(v4 in ipaddress.ip_network(n) for n in PRIVATE_NETWORKS)
    link_local = v4 in ipaddress.ip_network("169.254.0.0/16") or v4 in ipaddress.ip_network("fe80::/10")
    if v4 in METADATA:
        assert cls == "metadata"
    elif v4.is_multicast or (v4.version == 4 and v4 in ipaddress.ip_network("240.0.0.0/4")):
        assert cls == "not_unicast"
    elif link_local:
        assert cls == "link_local"
    else:
        assert cls == ("private" if private else "public")


@given(ANY, MODES, st.booleans())
def test_who_may_reach_what(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, mode: str, trusted: bool
) -> None:
    p = policy(mode)
    cls = p.classify(str(ip))
    allowed = p.may_reach(cls, trusted)
    expected = {
        "public": True,
        "private": mode == "allow" or (mode == "listed" and trusted),
        "link_local": mode == "allow",
        "metadata": False,
        "not_unicast": False,
    }[cls]
    assert allowed == expected


@given(st.lists(ANY, min_size=1, max_size=6), MODES, st.booleans())
def test_a_verdict_keeps_the_allowed_part_in_order(
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address], mode: str, trusted: bool
) -> None:
    p = policy(mode)
    addrs = tuple(str(i) for i in ips)
    v = p.sort(addrs, trusted)
    assert v.allowed == tuple(a for a in addrs if p.may_reach(p.classify(a), trusted))
    assert (v.refused is None) == (v.allowed == addrs)
    assert v.private_only == (bool(v.allowed) and all(p.classify(a) != "public" for a in v.allowed))
    assert v.some_private == any(p.classify(a) != "public" for a in v.allowed)


@pytest.mark.parametrize("metadata", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"])
@pytest.mark.parametrize("mode", ["listed", "allow", "deny"])
def test_metadata_is_never_reached(metadata: str, mode: str) -> None:
    p = policy(mode)
    verdict = p.sort((metadata,), trusted=True)
    assert verdict.allowed == ()
    assert verdict.refused is not None
    err = p.blocked("169.254.169.254", verdict.refused, redirected=False)
    assert isinstance(err, Blocked)
    assert str(err) == f"{metadata.removeprefix('::ffff:')} is a cloud metadata address (never fetched)" or (
        "cloud metadata" in str(err)
    )


def test_the_sentences_say_why() -> None:
    p = policy()
    assert str(p.blocked("intranet.example", ("10.1.2.3", "private"), redirected=False)) == (
        "intranet.example resolves to 10.1.2.3, a private address; a listed URL reaches private "
        "space only by address or localhost (--allow-private allows it)"
    )
    assert "a redirect from a public address; 127.0.0.1 is a private address" in str(
        p.blocked("127.0.0.1", ("127.0.0.1", "private"), redirected=True)
    )
    assert str(p.blocked("fe80::1", ("fe80::1", "link_local"), redirected=False)) == (
        "fe80::1 is a link-local address (--allow-private allows it)"
    )
    assert str(policy("deny").blocked("127.0.0.1", ("127.0.0.1", "private"), False)).endswith(
        "(--deny-private)"
    )


def test_networks_of_ones_own_decide_what_is_private() -> None:
    p = policy(networks=("127.0.0.1/32",))
    assert (p.classify("127.0.0.1"), p.classify("127.0.0.2"), p.classify("10.0.0.1")) == (
        "private",
        "public",
        "public",
    )
    assert parse_networks("default, 203.0.113.0/24") == (*PRIVATE_NETWORKS, "203.0.113.0/24")


@pytest.mark.parametrize(
    ("host", "local"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("a.localhost", True), ("example.com", False)],
)
def test_what_counts_as_listed_by_address(host: str, local: bool) -> None:
    assert is_listed_local(host) == local


HOSTS = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", fullmatch=True),
    V4.map(str),
    V6.map(lambda ip: f"[{ip}]"),
)


REST = st.tuples(st.sampled_from(["", "/", "?", "#"]), st.text("/?#a=&:@", max_size=8)).map("".join)


@given(st.sampled_from(["http", "https", "HTTP"]), HOSTS, st.none() | st.integers(1, 65535), REST)
def test_host_port_agrees_with_urlsplit(scheme: str, host: str, port: int | None, rest: str) -> None:
    from urllib.parse import urlsplit

    rest = rest if rest[:1] in ("/", "?", "#") else ""
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{rest}"
    parts = urlsplit(url)
    assert host_port(url) == (parts.hostname, parts.port or {"http": 80, "https": 443}[scheme.lower()])


def test_next_hop_follows_only_http_redirects() -> None:
    assert next_hop("http://a.test/x/y", 302, "../z") == "http://a.test/z"
    assert next_hop("http://a.test/x", 200, "/z") is None
    assert next_hop("http://a.test/x", 301, None) is None
    assert next_hop("https://a.test/x", 308, "//B.test:443/p") == "https://b.test/p"
    with pytest.raises(RedirectError, match="not http"):
        next_hop("http://a.test/", 302, "ftp://a.test/")
