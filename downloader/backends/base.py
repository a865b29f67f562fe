"""What the backends share: the ``Backend`` protocol, the ``Body`` a streaming backend yields, the sans-I/O
``Transfer`` rules, proxy choice, and ``StreamingBackend.fetch`` (checks, then the output's writer).

A backend is built from a ``Transport`` (its share of the run spec) and an ``Output`` (the writer seam):
it never sees the naming rules or the output folder."""

from __future__ import annotations

import inspect
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, cast, runtime_checkable
from urllib.parse import urlsplit

from ..addresses import Pass
from ..checks import BodyCheck, check_opt_out, check_status
from ..errors import DownloadError, RedirectError
from ..models import Deadline, Fetched, Stored
from ..spec import Network, Transport
from ..writers import Output
from .gate import Gate, next_hop

DRAIN = 64 << 10
"""Bytes of a redirect's body read (so its connection can be reused) before it is dropped instead."""
PER_ORIGIN = frozenset(("authorization", "cookie", "proxy-authorization"))
"""Request headers of the user's that go to the listed URL's origin only, never to a redirect's."""


def split_headers(network: Network) -> tuple[dict[str, str], dict[str, str]]:
    """The request headers every hop sends, and those only the listed URL's origin gets (``PER_ORIGIN``)."""
    headers = network.request_headers()
    per_origin = {k: v for k, v in headers.items() if k.lower() in PER_ORIGIN}
    return {k: v for k, v in headers.items() if k not in per_origin}, per_origin


def same_origin(url: str, first: str) -> bool:
    """Whether two normalised URLs share scheme, host and port."""
    return url.split("/", 3)[:3] == first.split("/", 3)[:3]


class Backend(Protocol):
    """``async with backend:`` opens its session or pool; ``fetch`` makes one attempt at one URL and
    leaves the body with the output's writer for ``rel``, raising only ``DownloadError``."""

    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def fetch(self, url: str, rel: str, deadline: Deadline | None = None) -> Fetched: ...


class Closing(Protocol):
    """A backend whose ``fetch`` can be told that the URL is its host's last for now (``keep_alive=False``:
    nothing else of the host is queued or in flight), so that its connection is closed after it rather
    than kept idle. Every backend here is one; a library caller's own ``Backend`` need not be."""

    async def fetch(
        self, url: str, rel: str, deadline: Deadline | None = None, *, keep_alive: bool = True
    ) -> Fetched: ...


def closing(backend: Backend) -> Closing | None:
    """``backend`` if its ``fetch`` takes ``keep_alive`` (read from its signature, once a run), else None."""
    try:
        params = inspect.signature(backend.fetch).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature: asked nothing more
        return None
    if any(p.name == "keep_alive" or p.kind is p.VAR_KEYWORD for p in params):
        return cast(Closing, backend)
    return None


@dataclass(frozen=True, slots=True)
class Page:
    """A small resource read whole into memory (robots.txt): its status, and at most ``limit`` bytes."""

    status: int
    body: bytes


@runtime_checkable
class PageReader(Protocol):
    """A backend that can also read a small resource into memory, whatever its status or type, through
    its own session (proxies, TLS, timeouts), raising only ``DownloadError`` when no answer came. Apart
    from ``Backend`` so that a library caller's own backend need not have it unless it is asked for."""

    async def read(self, url: str, limit: int) -> Page: ...


@dataclass(slots=True)
class Head:
    """A response whose headers have arrived."""

    status: int
    reason: str
    headers: Mapping[str, str]
    size: int | None


@dataclass(slots=True)
class Body:
    """``head``, and the body's pieces as they come."""

    head: Head
    chunks: AsyncIterator[bytes]


_NOT_STORED = Stored("")
"""``Transfer.stored`` until the writer commits (replaced then, never changed: one for every transfer)."""


class Transfer:
    """The rules for one body, for sync and async callers alike: status, opt-out, checks, result. Built
    once the headers are in and before any of the body is read, by every backend."""

    __slots__ = ("check", "content_type", "status", "stored", "ttfb")

    def __init__(
        self, transport: Transport, start: float, head: Head, deadline: Deadline | None = None
    ) -> None:
        self.ttfb = time.monotonic() - start
        if not 200 <= head.status < 300:
            check_status(head.status, head.reason, head.headers)
        check_opt_out(head.headers, transport)
        self.check = BodyCheck(transport, start, head.size, deadline)
        self.status = head.status
        self.content_type = head.headers.get("Content-Type")
        self.stored = _NOT_STORED

    def failed(self, err: DownloadError) -> None:
        """Note on a failure after the headers what the server answered, for its manifest row."""
        err.http_status = err.http_status or self.status
        err.content_type = self.content_type

    def fetched(self) -> Fetched:
        """The attempt's result: the body as checked, or as a stage stored it."""
        s = self.stored
        check = self.check
        size = check.received if s.bytes is None else s.bytes
        sha = check.sha256 if s.sha256 is None else s.sha256
        return Fetched(self.status, size, sha, self.content_type, self.ttfb, s.path, s.meta)


class Proxies:
    """The proxy for each URL, decided from settings read once per run: ``--proxy``, else (with
    ``trust_env``) HTTP_PROXY/HTTPS_PROXY/NO_PROXY. The clients' own per-request environment lookups
    (aiohttp and requests re-read the environment and ``~/.netrc`` on every request) are switched off."""

    def __init__(self, network: Network) -> None:
        self.fixed = network.proxy
        env = _proxy_environment() if network.trust_env and not network.proxy else {}
        self.by_scheme = {k: v for k, v in env.items() if k in ("http", "https")}
        self.bypass = [h.strip().lower().lstrip(".") for h in env.get("no", "").split(",") if h.strip()]

    def for_url(self, url: str) -> str | None:
        if self.fixed or not self.by_scheme:
            return self.fixed
        parts = urlsplit(url)
        if self._bypassed(parts.hostname or "", parts.netloc.lower()):
            return None
        return self.by_scheme.get(parts.scheme)

    def _bypassed(self, host: str, netloc: str) -> bool:
        """NO_PROXY as curl reads it: ``*``, or host names and domain suffixes, with or without a port."""
        return any(
            entry == "*" or entry in (host, netloc) or host.endswith("." + entry) for entry in self.bypass
        )


def _proxy_environment() -> dict[str, str]:
    """``urllib.request.getproxies_environment()``, importing urllib.request (10 ms of start-up, with
    http.client and email) only when some ``*_proxy`` variable is set at all."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return {}
    import urllib.request

    return urllib.request.getproxies_environment()


class StreamingBackend(ABC):
    """A backend whose body pieces come back to the event loop; they are checked and written here.
    Redirects are followed here too, each hop admitted by the gate (``gate``) before it connects."""

    name = ""

    def __init__(self, transport: Transport, output: Output) -> None:
        self.transport = transport
        self.output = output
        self.net = transport.network
        self.timeouts = transport.timeouts
        self._proxies = Proxies(transport.network)
        self.gate = Gate(transport.network)

    @abstractmethod
    def hop(self, url: str, through: Pass, home: bool) -> AbstractAsyncContextManager[Body]:
        """Send one GET (no redirects), connecting only to ``through.addresses`` (if any), with the
        user's per-origin headers only if ``home`` (the listed URL's origin); yield once the headers are
        in. Library errors leave as ``DownloadError``."""

    @asynccontextmanager
    async def get(self, url: str, keep_alive: bool = True) -> AsyncIterator[Body]:
        """The GET and its redirects, up to ``--max-redirects``; yields the last answer's body. Without
        ``keep_alive`` every hop asks for its connection to be closed (which hop is the last is known
        only once it answers; a chain within one host reconnects, on its host's last URL only)."""
        through: Pass | None = None
        first = url
        for _ in range(self.net.max_redirects + 1):
            through = (await self.admit(url, through)).closing(keep_alive)
            async with self.hop(url, through, url is first or same_origin(url, first)) as body:
                target = next_hop(url, body.head.status, body.head.headers.get("Location"))
                if target is None:
                    yield body
                    return
                await drain(body)
            url = target
        raise RedirectError("too many redirects (a loop, or more than --max-redirects)")

    async def admit(self, url: str, before: Pass | None) -> Pass:
        """The gate's pass for this hop: a cached answer costs a few dictionary reads, no await."""
        if self._proxies.for_url(url) is None:
            found = self.gate.now(url, before)
            return found if found is not None else await self.gate.admit(url, before)
        return await self.gate.admit(url, before, proxied=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.gate.close()

    async def fetch(
        self, url: str, rel: str, deadline: Deadline | None = None, *, keep_alive: bool = True
    ) -> Fetched:
        start = time.monotonic()
        async with self.get(url, keep_alive) as body:
            tr = Transfer(self.transport, start, body.head, deadline)
            check = tr.check
            writer = self.output.open(rel)
            hash_with = getattr(writer, "hash_with", None)  # optional: writers/__init__.py
            if hash_with is not None:
                hash_with(check.hashed_elsewhere())
            try:
                async for piece in body.chunks:
                    check.feed(piece)
                    await writer.write(piece)
                check.finish()
                tr.stored = await writer.commit(check.kind)
            except DownloadError as err:
                tr.failed(err)
                await writer.abort()
                raise
            except BaseException:
                await writer.abort()
                raise
        return tr.fetched()

    async def read(self, url: str, limit: int) -> Page:
        """``PageReader.read``: the first ``limit`` bytes; the rest is not read (the connection drops)."""
        async with self.get(url) as body:
            pieces = []
            size = 0
            async for piece in body.chunks:
                pieces.append(piece)
                size += len(piece)
                if size >= limit:
                    break
            return Page(body.head.status, b"".join(pieces)[:limit])


async def drain(body: Body) -> None:
    """Read a redirect's body, up to ``DRAIN`` bytes, and drop it."""
    got = 0
    async for piece in body.chunks:
        got += len(piece)
        if got > DRAIN:
            return
