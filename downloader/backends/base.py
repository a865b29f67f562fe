"""What the backends share: the ``Backend`` protocol, the ``Body`` a streaming backend yields, the sans-I/O
``Transfer`` rules, proxy choice, and ``StreamingBackend.fetch`` (checks, then the output's writer).

A backend is built from a ``Transport`` (its share of the run spec) and an ``Output`` (the writer seam):
it never sees the naming rules or the output folder."""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable
from urllib.parse import urlsplit

from ..checks import BodyCheck, check_opt_out, check_status
from ..errors import DownloadError
from ..models import Deadline, Fetched, Stored
from ..spec import Network, Transport
from ..writers import Output


class Backend(Protocol):
    """``async with backend:`` opens its session or pool; ``fetch`` makes one attempt at one URL and
    leaves the body with the output's writer for ``rel``, raising only ``DownloadError``."""

    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def fetch(self, url: str, rel: str, deadline: Deadline | None = None) -> Fetched: ...


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
        s, check = self.stored, self.check
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
    """A backend whose body pieces come back to the event loop; they are checked and written here."""

    name = ""

    def __init__(self, transport: Transport, output: Output) -> None:
        self.transport, self.output = transport, output
        self.net, self.timeouts = transport.network, transport.timeouts

    @abstractmethod
    def get(self, url: str) -> AbstractAsyncContextManager[Body]:
        """Send the GET; yield once the headers are in. Library errors leave as ``DownloadError``."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def fetch(self, url: str, rel: str, deadline: Deadline | None = None) -> Fetched:
        start = time.monotonic()
        async with self.get(url) as body:
            tr = Transfer(self.transport, start, body.head, deadline)
            check, writer = tr.check, self.output.open(rel)
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
            pieces, size = [], 0
            async for piece in body.chunks:
                pieces.append(piece)
                size += len(piece)
                if size >= limit:
                    break
            return Page(body.head.status, b"".join(pieces)[:limit])
