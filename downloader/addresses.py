"""Which addresses a URL may reach: the address policy, sans-I/O (the resolver and the backends apply it).

Every address falls in one class, the first that matches:

* ``metadata``: cloud metadata endpoints (169.254.169.254, fd00:ec2::254, 100.100.100.200...): never;
* ``not_unicast``: multicast, broadcast and reserved space: never (no HTTP server lives there);
* ``link_local`` (169.254.0.0/16, fe80::/10): only with ``allow_private``;
* ``private``: the ``private_networks`` setting (by default loopback, RFC 1918, CGNAT, ULA...);
* ``public``: the rest.

A private address is reached by default only by a chain that began at a URL listed *by address* (or
``localhost``) and has not touched a public address since: the user asked for it. A listed name that
resolves into private space, and a redirect from a public address into it, are refused (DNS rebinding,
and a web page that points a crawler at the network behind it). ``allow_private`` lets every URL and
redirect reach private and link-local space; ``deny_private`` refuses private space even by address.

IPv4 addresses written in IPv6 (mapped ``::ffff:a.b.c.d``, compatible ``::a.b.c.d``, NAT64
``64:ff9b::a.b.c.d``) are judged as the IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from .errors import Blocked
from .spec import Network

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Class = Literal["public", "private", "link_local", "metadata", "not_unicast"]

METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.123",  # AWS time
        "169.254.169.253",  # AWS VPC DNS
        "fd00:ec2::254",  # AWS, IPv6
        "fd00:ec2::253",
        "fd00:ec2::123",
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer
    )
)
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
NOT_UNICAST = (
    ipaddress.ip_network("224.0.0.0/4"),
    ipaddress.ip_network("240.0.0.0/4"),
    ipaddress.ip_network("ff00::/8"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_WHAT = {
    "private": "a private address",
    "link_local": "a link-local address",
    "metadata": "a cloud metadata address",
    "not_unicast": "not a unicast address",
}


def embedded_v4(ip: IP) -> IP:
    """The IPv4 address an IPv6 address carries (mapped, compatible or NAT64), else ``ip`` itself."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def parse_ip(text: str) -> IP | None:
    """The address ``text`` writes (brackets and an IPv6 zone allowed), or None for a host name."""
    text = text.strip("[]").partition("%")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_listed_local(host: str) -> bool:
    """True for a host that names this machine or an address by itself: an IP literal or ``localhost``
    (RFC 6761). A listed URL with such a host may reach private space; a listed *name* may not."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost") or parse_ip(host) is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A hop's addresses sorted by the policy: those it may connect to, the first refused and why."""

    allowed: tuple[str, ...]
    refused: tuple[str, Class] | None
    private_only: bool
    """Every allowed address is private or link-local: a chain of such hops may go on into private space."""
    some_private: bool
    """Some allowed address is private or link-local."""


@dataclass(frozen=True, slots=True)
class Pass:
    """A hop the policy lets through: the addresses to connect to (empty: a proxy resolves the name)
    and whether the next hop may still reach private space."""

    host: str
    addresses: tuple[str, ...]
    trusted: bool
    fresh: bool = False
    """The hop reaches private space through a name (a private chain's redirect): its connection must
    not be pooled, or a later URL naming the same host, allowed only public addresses, could be carried
    over it. An address or ``localhost`` is its own pool key and needs no such care."""
    close: bool = False
    """The connection is not to be kept once the hop is done: the listed URL's host has nothing more
    queued or in flight (``keep_alive=False`` on the fetch), so an idle connection would only hold memory
    (TLS state and read buffers) until ``--idle-timeout``."""

    def closing(self, keep_alive: bool) -> Pass:
        """This pass, asking that the connection be closed after the hop unless ``keep_alive``."""
        return self if keep_alive or self.close else replace(self, close=True)


class Policy:
    """The address policy of a run, built once from the ``Network`` settings."""

    def __init__(self, network: Network) -> None:
        self.allow_private = network.allow_private
        self.deny_private = network.deny_private
        self.private = tuple(ipaddress.ip_network(n) for n in network.private_networks)
        self.classify = lru_cache(maxsize=4096)(self._classify)

    def _classify(self, text: str) -> Class:
        ip = parse_ip(text)
        if ip is None:
            raise ValueError(f"not an address: {text!r}")
        ip = embedded_v4(ip)
        if ip in METADATA:
            return "metadata"
        if any(ip in net for net in NOT_UNICAST) or ip == ipaddress.IPv4Address("255.255.255.255"):
            return "not_unicast"
        if any(ip in net for net in LINK_LOCAL):
            return "link_local"
        if any(ip in net for net in self.private):
            return "private"
        return "public"

    def may_reach(self, cls: Class, trusted: bool) -> bool:
        """Whether a hop may connect to an address of class ``cls``; ``trusted``: the chain began at a
        URL listed by address or ``localhost`` and has met only private addresses since."""
        if cls == "public":
            return True
        if cls == "private":
            return self.allow_private or (trusted and not self.deny_private)
        if cls == "link_local":
            return self.allow_private
        return False

    def sort(self, addresses: tuple[str, ...], trusted: bool) -> Verdict:
        """The addresses a hop may use, in the resolver's order (mixed answers keep their allowed part)."""
        allowed: list[str] = []
        refused: tuple[str, Class] | None = None
        public = 0
        for addr in addresses:
            cls = self.classify(addr)
            if self.may_reach(cls, trusted):
                allowed.append(addr)
                public += cls == "public"
            elif refused is None:
                refused = (addr, cls)
        return Verdict(tuple(allowed), refused, bool(allowed) and not public, public < len(allowed))

    def blocked(self, host: str, refused: tuple[str, Class], redirected: bool) -> Blocked:
        """The failure for a hop none of whose addresses may be reached, in a sentence that says why."""
        addr, cls = refused
        what = _WHAT[cls]
        where = f"{addr} is {what}" if parse_ip(host) is not None else f"{host} resolves to {addr}, {what}"
        if cls in ("metadata", "not_unicast"):
            return Blocked(f"{where} (never fetched)")
        if self.deny_private:
            return Blocked(f"{where} (--deny-private)")
        if cls == "private" and redirected:
            return Blocked(f"a redirect from a public address; {where} (--allow-private allows it)")
        if cls == "private":
            return Blocked(
                f"{where}; a listed URL reaches private space only by address or localhost "
                "(--allow-private allows it)"
            )
        return Blocked(f"{where} (--allow-private allows it)")
