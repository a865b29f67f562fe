"""The ``aiohttp`` backend: everything on the event loop, bodies read as they arrive (``iter_any``).

Names are resolved by the gate (``gate``), not by aiohttp: ``PinnedResolver`` hands aiohttp's connector
the addresses the gate let through for this hop, read from a context variable the hop sets.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .. import errors
from ..addresses import Pass
from .base import Body, Head, StreamingBackend, split_headers
from .gate import Gate

_PINNED: ContextVar[Pass | None] = ContextVar("downloader_pinned", default=None)
"""The hop this task is making, so that the connector dials the addresses the gate passed."""
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver hook: the current hop's addresses; any other name (a proxy's: the user chose
    it) from the run's resolver, where only metadata and non-unicast addresses are left out."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.rstrip(".").lower()
        through = _PINNED.get()
        if through is not None and through.host == name and through.addresses:
            addresses = through.addresses
        else:
            entry = await self.gate.resolver.lookup(name)
            if entry.error:
                raise OSError(entry.error)
            classify = self.gate.policy.classify
            addresses = tuple(a for a in entry.addresses if classify(a) not in ("metadata", "not_unicast"))
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=_NUMERIC,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        return None


def _ssl(config_insecure: bool, ca_bundle: str | None) -> ssl.SSLContext | bool:
    if config_insecure:
        return False
    if ca_bundle:
        return ssl.create_default_context(cafile=ca_bundle)
    return True


class AiohttpBackend(StreamingBackend):
    name = "aiohttp"
    _session: aiohttp.ClientSession

    async def __aenter__(self) -> Self:
        net = self.net
        t = self.timeouts
        self._shared, self._per_origin = split_headers(net)
        connector = aiohttp.TCPConnector(
            limit=self.transport.slots,
            limit_per_host=self.transport.per_host,
            keepalive_timeout=t.idle_timeout,  # memory bounded by age, not by hosts seen
            resolver=PinnedResolver(self.gate),
            use_dns_cache=False,
            ssl=_ssl(net.insecure, net.ca_bundle),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(sock_connect=t.connect_timeout, sock_read=t.read_timeout),
            headers=self._shared,
            auto_decompress=False,
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._session.close()
        self.gate.close()

    @asynccontextmanager
    async def hop(self, url: str, through: Pass, home: bool) -> AsyncIterator[Body]:
        in_body = False
        _PINNED.set(through)  # before the GET: the resolver reads it in this task's context
        extra = self._per_origin if home and self._per_origin else None
        if through.fresh or through.close:  # private space by a name, or the host's last: not pooled
            extra = {**(extra or {}), "Connection": "close"}
        try:
            async with self._session.get(
                url, allow_redirects=False, proxy=self._proxies.for_url(url), headers=extra
            ) as resp:
                in_body = True
                head = Head(resp.status, resp.reason or "", resp.headers, resp.content_length)
                yield Body(head, resp.content.iter_any())
        except (errors.DownloadError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise translate(exc, in_body, self.timeouts.read_timeout) from exc


def translate(exc: Exception, in_body: bool, read_timeout: float) -> errors.DownloadError:
    """aiohttp's exceptions as ``downloader.errors``, with a sentence a person can read."""
    if isinstance(exc, aiohttp.TooManyRedirects):
        return errors.RedirectError("too many redirects (a loop, or more than --max-redirects)")
    if isinstance(exc, aiohttp.RedirectClientError):
        return errors.RedirectError(f"redirect to a URL that is not http(s): {exc}")
    if isinstance(exc, aiohttp.InvalidURL):
        return errors.InvalidURL(f"invalid URL: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return errors.DNSError(f"cannot resolve host: {exc.os_error.strerror or exc}")
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ClientConnectorCertificateError):
        return errors.TLSError(f"TLS failure: {exc}")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return errors.Timeout("connect timed out", connecting=True)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return errors.Timeout(f"no data for {read_timeout:g} s (read timeout)")
    if isinstance(exc, TimeoutError):
        return errors.Timeout("attempt exceeded its total timeout")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return errors.Truncated(f"body incomplete: {exc}")
    if in_body and isinstance(exc, aiohttp.ClientError | OSError):
        return errors.Truncated(f"connection lost mid-body: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return errors.ConnectError(f"cannot connect: {exc.os_error.strerror or exc}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return errors.ConnectError(f"connection failed: {exc or type(exc).__name__}")
    return errors.DownloadError(f"unexpected {type(exc).__name__}: {exc}")
