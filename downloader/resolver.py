"""Host names to addresses, once per TTL for the run: the resolver every backend connects through.

* **Cached**: an answer is kept for its TTL (at least ``MIN_TTL``); the system resolver gives no TTL,
  so its answers are kept ``--dns-ttl`` seconds. "No such host" and "no address records" are cached
  too (negative caching, RFC 2308: the SOA's TTL, or ``dnsclient.NEGATIVE_TTL``).
* **Shared**: concurrent lookups of one host wait on one query.
* **Bounded**: at most ``--dns-lookups`` lookups in flight; the system resolver runs on a pool of that
  many threads of its own (``getaddrinfo`` blocks), never the loop's default executor.
* **Retried**: a lookup that timed out or met SERVFAIL (the system resolver's "temporary failure") is
  tried ``--dns-tries`` times, with ``--dns-server`` on the next server each time.
* **Said**: a failure is a ``DNSError`` whose sentence says what the resolver answered; "no such host"
  and "no address records" are not retried by the engine (the answer was definite).

The cache holds at most ``MAX_HOSTS`` names; past that the oldest entries go first.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .addresses import Pass, is_listed_local, parse_ip
from .dnsclient import Reply, ask, require
from .spec import Network

MIN_TTL = 1.0
"""An answer is kept at least this long, so a TTL of 0 costs one query per second, not one per URL."""
MAX_HOSTS = 65_536
"""Names kept; past this the oldest eighth is dropped (a long list's hosts come and go)."""


@dataclass(slots=True)
class Entry:
    """One host's answer: its addresses until ``expires`` (loop time), or the sentence of a failure."""

    addresses: tuple[str, ...]
    expires: float
    error: str = ""
    retryable: bool = False
    listed_local: bool = False
    """The host is an address or ``localhost``: listed, it may reach private space (``addresses``)."""
    passes: dict[bool, Pass] = field(default_factory=dict)
    """What the gate decided for this answer, by whether the chain may reach private space."""


def _server(server: tuple[str, int]) -> str:
    addr, port = server
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Resolver:
    """The run's resolver: the system's (``getaddrinfo`` in threads) or ``--dns-server``'s (``dnsclient``)."""

    def __init__(self, network: Network) -> None:
        self.net = network
        self.servers = network.dns_servers
        if self.servers:
            require()
        self._cache: dict[str, Entry] = {}
        self._pending: dict[str, asyncio.Future[Entry]] = {}
        self._slots = asyncio.Semaphore(network.dns_lookups)
        self._pool: ThreadPoolExecutor | None = None
        self.queries = 0
        """Lookups sent (each try counts), for tests and statistics."""

    def cached(self, host: str) -> Entry | None:
        """The host's entry if it is still fresh: the hot path, no await."""
        entry = self._cache.get(host)
        if entry is not None and entry.expires > time.monotonic():
            return entry
        return None

    async def lookup(self, host: str) -> Entry:
        """The host's entry, from the cache, from a lookup already under way, or from a new one."""
        entry = self.cached(host)
        if entry is not None:
            return entry
        if parse_ip(host) is not None:
            return self._keep(host, Entry((host.strip("[]"),), float("inf"), listed_local=True))
        pending = self._pending.get(host)
        if pending is None:
            pending = self._pending[host] = asyncio.ensure_future(self._resolve(host))
            pending.add_done_callback(lambda fut: self._settle(host, fut))
        return await asyncio.shield(pending)

    def _settle(self, host: str, fut: asyncio.Future[Entry]) -> None:
        """A lookup ended: keep a definite answer for its TTL (a temporary failure is not kept)."""
        del self._pending[host]
        if not fut.cancelled() and fut.exception() is None and not fut.result().retryable:
            self._keep(host, fut.result())

    def _keep(self, host: str, entry: Entry) -> Entry:
        if len(self._cache) >= MAX_HOSTS:
            for old in list(self._cache)[: MAX_HOSTS // 8]:
                del self._cache[old]
        self._cache[host] = entry
        return entry

    async def _resolve(self, host: str) -> Entry:
        """Up to ``dns_tries`` tries, each at the next server; the last reply says what went wrong."""
        tries = self.net.dns_tries
        reply = Reply("error")
        async with self._slots:
            for n in range(tries):
                self.queries += 1
                reply = await self._ask(host, n)
                if reply.status not in ("servfail", "timeout", "error"):
                    break
                if reply.status != "timeout" and n + 1 < tries:
                    await asyncio.sleep(0.05 * 2**n)
        return self._entry(host, reply, n + 1)

    async def _ask(self, host: str, n: int) -> Reply:
        if self.servers:
            return await ask(host, self.servers[n % len(self.servers)], self.net.dns_timeout)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.net.dns_lookups, thread_name_prefix="downloader-dns")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, system_lookup, host, self.net.dns_ttl)

    def _entry(self, host: str, reply: Reply, tries: int) -> Entry:
        """The reply as an entry: addresses and when they expire, or the failure in a sentence."""
        now = time.monotonic()
        local = is_listed_local(host)
        if reply.status == "ok":
            return Entry(reply.addresses, now + max(reply.ttl, MIN_TTL), listed_local=local)
        source = self._source(tries)
        if reply.status in ("nxdomain", "nodata"):
            what = "no such host" if reply.status == "nxdomain" else "no address records"
            return Entry((), now + max(reply.ttl, MIN_TTL), f"{what} ({source(reply)})")
        return Entry((), 0.0, self._temporary(reply, tries), retryable=True)

    def _source(self, tries: int) -> Callable[[Reply], str]:
        """Who answered, for a definite answer's sentence."""
        if not self.servers:
            return lambda r: f"the system resolver: {r.detail}"
        server = _server(self.servers[(tries - 1) % len(self.servers)])
        return lambda r: f"{'NXDOMAIN' if r.status == 'nxdomain' else 'NOERROR'} from {server}"

    def _temporary(self, reply: Reply, tries: int) -> str:
        """The sentence of a lookup that never got a definite answer."""
        if not self.servers:
            return f"temporary failure in name resolution (system resolver: {reply.detail}, {tries} tries)"
        asked = sorted({_server(self.servers[n % len(self.servers)]) for n in range(tries)})
        where = ", ".join(asked)
        if reply.status == "timeout":
            return f"no answer within {self.net.dns_timeout:g} s from {where} after {tries} tries"
        what = "SERVFAIL" if reply.status == "servfail" else reply.detail
        return f"{what} from {where} after {tries} tries"

    def close(self) -> None:
        """Let the lookup threads go (one blocked in ``getaddrinfo`` ends on its own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def system_lookup(host: str, ttl: float) -> Reply:
    """``getaddrinfo`` (honours /etc/hosts and nsswitch), in a worker thread, as a ``Reply``."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        detail = exc.strerror or str(exc)
        if exc.errno == socket.EAI_NONAME:
            return Reply("nxdomain", ttl=ttl, detail=detail)
        if exc.errno == getattr(socket, "EAI_NODATA", None):
            return Reply("nodata", ttl=ttl, detail=detail)
        return Reply("servfail" if exc.errno == socket.EAI_AGAIN else "error", detail=detail)
    except (OSError, UnicodeError) as exc:
        return Reply("error", detail=str(exc))
    found = dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos)
    return Reply("ok", tuple(found), ttl) if found else Reply("nodata", ttl=ttl, detail="no addresses")
