"""Each hop's way out: its host resolved (``resolver``) and its addresses sorted by the address policy
(``addresses``), before anything connects; and where a redirect leads.

A backend asks ``admit`` for every hop of a URL (the listed URL, then each redirect, which the backends
follow themselves) and connects only to the addresses the ``Pass`` names: aiohttp through its resolver
hook, libcurl through ``CURLOPT_RESOLVE``, urllib3 through a connection that dials them. So a name
that answers differently a moment later (DNS rebinding) cannot move the connection elsewhere.
With a proxy, the proxy resolves the name: only a URL's own address (an IP literal) is judged then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urljoin, urlsplit

from .. import errors
from ..addresses import Policy, parse_ip
from ..names import parse_url
from ..resolver import Entry, Resolver
from ..spec import Network

_HOST = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?(\[[^\]/?#]*\]|[^/?#:]*)(?::(\d+))?")
_DEFAULT_PORT = {"http": 80, "https": 443}
REDIRECTS = frozenset((301, 302, 303, 307, 308))


def host_port(url: str) -> tuple[str, int]:
    """The URL's host (lower case, IPv6 without brackets, no trailing dot: ``a.test.`` is ``a.test``) and
    port: a split for the usual
    ``scheme://host[:port]/...``, a regular expression for the rest (user info, IPv6, no path)."""
    parts = url.split("/", 3)
    if len(parts) > 3 and parts[1] == "" and parts[0][-1:] == ":":
        netloc = parts[2]
        if not ("@" in netloc or "[" in netloc or "?" in netloc or "#" in netloc):
            host, _, port = netloc.partition(":")
            if port.isdigit() or not port:
                port_number = int(port) if port else _DEFAULT_PORT.get(parts[0][:-1].lower(), 80)
                return host.lower().rstrip("."), port_number
    m = _HOST.match(url)
    if m is None:
        raise errors.InvalidURL(f"invalid URL: {url[:200]}")
    host, port = m.group(1).lower().strip("[]").rstrip("."), m.group(2)
    return host, int(port) if port else _DEFAULT_PORT.get(url[: url.index(":")].lower(), 80)


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
    (TLS state and read buffers, some 200 KB) until ``--idle-timeout``."""

    def closing(self, keep_alive: bool) -> Pass:
        """This pass, asking that the connection be closed after the hop unless ``keep_alive``."""
        return self if keep_alive or self.close else replace(self, close=True)


class Gate:
    """The resolver and the policy of one backend's run."""

    def __init__(self, network: Network) -> None:
        self.resolver = Resolver(network)
        self.policy = Policy(network)

    def now(self, url: str, before: Pass | None = None) -> Pass | None:
        """``admit`` without an await when the host's answer is cached (the common case), else None."""
        host = host_port(url)[0]
        entry = self.resolver.cached(host)
        return None if entry is None else self._pass(host, entry, before)

    async def admit(self, url: str, before: Pass | None = None, proxied: bool = False) -> Pass:
        """The hop to ``url``, after ``before`` (None: the listed URL). Raises ``DNSError`` with what
        the resolver answered, or ``Blocked`` when no address may be reached."""
        host = host_port(url)[0]
        if proxied and parse_ip(host) is None:
            return Pass(host, (), False)
        entry = self.resolver.cached(host) or await self.resolver.lookup(host)
        return self._pass(host, entry, before)

    def _pass(self, host: str, entry: Entry, before: Pass | None) -> Pass:
        if entry.error:
            raise errors.DNSError(entry.error, retryable=entry.retryable)
        trusted = entry.listed_local if before is None else before.trusted
        found: Pass | None = entry.passes.get(trusted)
        if found is None:
            verdict = self.policy.sort(entry.addresses, trusted)
            if verdict.refused is not None and not verdict.allowed:
                raise self.policy.blocked(host, verdict.refused, before is not None)
            policy = self.policy
            fresh = trusted and verdict.some_private and not (entry.listed_local or policy.allow_private)
            found = Pass(host, verdict.allowed, trusted and verdict.private_only, fresh)
            entry.passes[trusted] = found
        return found

    def close(self) -> None:
        self.resolver.close()


def next_hop(url: str, status: int, location: str | None) -> str | None:
    """Where a redirect answer leads (``Location`` resolved against ``url``, normalised as listed URLs
    are), or None when the answer is not a redirect to follow."""
    if status not in REDIRECTS or not location:
        return None
    target = urljoin(url, location.strip())
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        raise errors.RedirectError(f"redirect to a URL that is not http(s): {target[:200]}")
    try:
        return parse_url(target)[0]
    except errors.InvalidURL as exc:
        raise errors.RedirectError(f"redirect to an invalid URL: {exc}") from None
