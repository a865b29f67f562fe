"""One try of a lookup at one DNS server: A and AAAA side by side over UDP (TCP when the answer is
truncated), read into a ``Reply``. The one owner of dnspython (``pip install 'downloader[dns]'``), used
only with ``--dns-server``; retries, caching and the choice of server are the resolver's (``resolver``).

dnspython rather than aiodns/c-ares: it is pure Python and typed, builds and reads messages we can
inspect (the rcode, the SOA of a negative answer, the TTLs along a CNAME chain), and its asyncio
queries leave timeouts and retries to us, so a failure row can say exactly what the server answered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import UsageError

if TYPE_CHECKING:
    import dns.message
    import dns.name
    import dns.rdatatype

Status = Literal["ok", "nxdomain", "nodata", "servfail", "timeout", "error"]
NEGATIVE_TTL = 60.0
"""How long "no such name" is kept when the server sent no SOA to say (RFC 2308)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What a server said about a name: its addresses and their TTL, or why there are none (``detail``
    names an rcode other than SERVFAIL, or a network error)."""

    status: Status
    addresses: tuple[str, ...] = ()
    ttl: float = NEGATIVE_TTL
    detail: str = ""


def require() -> None:
    """Import dnspython, or say which extra brings it (a usage error, raised when the run starts)."""
    try:
        import dns.asyncquery  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the extra
        raise UsageError("--dns-server needs dnspython: pip install 'downloader[dns]'") from None


async def ask(host: str, server: tuple[str, int], wait: float) -> Reply:
    """A and AAAA for ``host`` at ``server``, each within ``wait`` seconds, as one ``Reply``."""
    import dns.exception
    import dns.name
    import dns.rdatatype

    try:
        name = dns.name.from_text(host)
    except dns.exception.DNSException as exc:
        return Reply("error", detail=f"not a DNS name ({exc})")
    a, aaaa = await asyncio.gather(
        _query(name, dns.rdatatype.A, server, wait), _query(name, dns.rdatatype.AAAA, server, wait)
    )
    return _merge(a, aaaa)


async def _query(
    name: dns.name.Name, rdtype: dns.rdatatype.RdataType, server: tuple[str, int], wait: float
) -> Reply:
    """One question, read into a ``Reply`` (never raises for what the network or the server did)."""
    import dns.asyncquery
    import dns.exception
    import dns.message

    query = dns.message.make_query(name, rdtype)
    try:
        response, _tcp = await dns.asyncquery.udp_with_fallback(query, server[0], wait, server[1])
    except dns.exception.Timeout:
        return Reply("timeout")
    except (OSError, dns.exception.DNSException) as exc:
        return Reply("error", detail=str(exc) or type(exc).__name__)
    return _read(response)


def _read(response: dns.message.Message) -> Reply:
    """The addresses at the end of the answer's CNAME chain and the smallest TTL on the way; for a
    negative answer, the TTL its SOA gives."""
    import dns.exception
    import dns.message
    import dns.rcode

    if not isinstance(response, dns.message.QueryMessage):
        return Reply("error", detail="not an answer to a query")
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        status: Status = "servfail" if rcode == dns.rcode.SERVFAIL else "error"
        return Reply(status, detail=dns.rcode.to_text(rcode))
    try:
        chain = response.resolve_chaining()
    except dns.exception.DNSException as exc:
        return Reply("error", detail=str(exc))
    ttl = float(chain.minimum_ttl) if chain.minimum_ttl < 2**31 else NEGATIVE_TTL
    if rcode == dns.rcode.NXDOMAIN:
        return Reply("nxdomain", ttl=ttl)
    if chain.answer is None:
        return Reply("nodata", ttl=ttl)
    return Reply("ok", tuple(rd.address for rd in chain.answer), ttl)


def _merge(a: Reply, aaaa: Reply) -> Reply:
    """One reply from the A and AAAA answers: any addresses win; else the more telling failure."""
    if a.status == "ok" or aaaa.status == "ok":
        found = [r for r in (a, aaaa) if r.status == "ok"]
        return Reply("ok", tuple(x for r in found for x in r.addresses), min(r.ttl for r in found))
    for status in ("nxdomain", "servfail", "error", "timeout"):
        for r in (a, aaaa):
            if r.status == status:
                return r
    return Reply("nodata", ttl=min(a.ttl, aaaa.ttl))
