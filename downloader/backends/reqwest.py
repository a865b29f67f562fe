"""The ``reqwest`` backend: Rust's reqwest and hyper (through pyreqwest) on their own tokio thread.

HTTP is parsed, and connections are pooled, in Rust; the event loop only awaits the head and each body
piece. The request's body buffer limit is 0, so the head is handed over as soon as it arrives and each
piece as hyper reads it (hyper's reads grow to hundreds of KB on a fast body; a small body comes in one
or two): the shared checks then see the body as it comes, as with the other backends, so the minimum
speed is measured from the head on. Silence is reqwest's read timeout, connecting its connect timeout;
the attempt's total and the URL's deadline are the engine's timer. Its cancellation drops a body at once;
a request still waiting for its head runs on in Rust until the head or the read timeout (pyreqwest 0.15
does not pass a cancellation on), which is why the client has no ``max_connections``: such a request
would hold one of its slots. The engine bounds the requests in flight.

Redirects are followed here, hop by hop (``_open``), under the same rules as the other backends:
``--max-redirects``, only http(s), and the headers the user gave for one origin not sent to another.

An optional extra (``pip install 'downloader[reqwest]'``).
"""

from __future__ import annotations

import http
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

from .. import errors
from ..spec import Transport
from .base import Body, Head, Proxies, StreamingBackend

try:
    from pyreqwest.client import Client, ClientBuilder
    from pyreqwest.exceptions import (
        BodyDecodeError,
        BuilderError,
        ConnectError,
        ConnectTimeoutError,
        DecodeError,
        PyreqwestError,
        ReadError,
        ReadTimeoutError,
        RequestPanicError,
    )
    from pyreqwest.proxy import ProxyBuilder
    from pyreqwest.request import StreamRequest
    from pyreqwest.response import Response, ResponseBodyReader
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise errors.UsageError("the reqwest backend needs pyreqwest: pip install 'downloader[reqwest]'") from exc

REDIRECTS = frozenset((301, 302, 303, 307, 308))
"""The statuses followed (as aiohttp and libcurl do); any other 3xx is the answer."""
PER_ORIGIN = frozenset(("authorization", "cookie", "proxy-authorization"))
"""Request headers of the user's that go to the listed URL's origin only, never to a redirect's."""


class Headers(Mapping[str, str]):
    """reqwest's headers as the checks read them: case-insensitive, and ``getall`` with a default. Read
    through the response's own lookups, so the header map is never copied out. A value that is not
    UTF-8 (pyreqwest cannot give it as text) reads as absent."""

    __slots__ = ("_resp",)

    def __init__(self, resp: Response) -> None:
        self._resp = resp

    def get(self, key: str, default: Any = None) -> Any:
        value = header(self._resp, key)
        return default if value is None else value

    def __getitem__(self, key: str) -> str:
        value = header(self._resp, key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._resp.headers.keys())

    def __len__(self) -> int:
        return len(self._resp.headers)

    def getall(self, key: str, default: list[str]) -> list[str]:
        try:
            return self._resp.get_header_all(key) or default
        except ValueError:
            return default


def header(resp: Response, name: str) -> str | None:
    """One header's value, or None when absent or not UTF-8."""
    try:
        return resp.get_header(name)
    except ValueError:
        return None


def build_client(tp: Transport) -> Client:
    """One client for the run: pool, timeouts, TLS and proxies; no redirects, cookies or decoding."""
    net, t = tp.network, tp.timeouts
    shared = {k: v for k, v in net.request_headers().items() if k.lower() not in PER_ORIGIN}
    builder = (
        ClientBuilder()
        .follow_redirects(False)
        .referer(False)
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .user_agent(net.user_agent)
        .default_headers(shared)
        .connect_timeout(timedelta(seconds=t.connect_timeout))
        .read_timeout(timedelta(seconds=t.read_timeout))
        .no_proxy()  # reqwest would read the environment itself; Proxies decides instead
    )
    if net.insecure:
        builder = builder.danger_accept_invalid_certs(True)
    elif net.ca_bundle:  # added to the built-in roots, which pyreqwest 0.15 cannot turn off
        with open(net.ca_bundle, "rb") as fh:
            builder = builder.add_root_certificate_pem(fh.read())
    proxies = Proxies(net)
    if proxies.fixed:
        builder = builder.proxy(ProxyBuilder.all(proxies.fixed))
    elif proxies.by_scheme:
        builder = builder.proxy(ProxyBuilder.custom(lambda url: proxies.for_url(str(url))))
    return builder.build()


class ReqwestBackend(StreamingBackend):
    name = "reqwest"
    _client: Client

    async def __aenter__(self) -> Self:
        self._client = build_client(self.transport)
        headers = self.net.request_headers().items()
        self._per_origin = {k: v for k, v in headers if k.lower() in PER_ORIGIN}
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._client.close()

    @asynccontextmanager
    async def get(self, url: str) -> AsyncIterator[Body]:
        request, resp = await self._open(url)
        try:
            length = header(resp, "content-length")
            size = int(length) if length and length.isdigit() else None
            status = resp.status
            head = Head(status, "" if 200 <= status < 300 else _reason(status), Headers(resp), size)
            yield Body(head, self._pieces(resp.body_reader, size))
        finally:
            await request.__aexit__(None, None, None)

    async def _open(self, url: str) -> tuple[StreamRequest, Response]:
        """Send the GET, following up to ``--max-redirects`` redirects; the final request, entered (its
        head in), for the caller to exit. Each hop is a request of its own, so each is checked here."""
        first = url
        for _ in range(self.net.max_redirects + 1):
            request = self._request(url, first)
            resp = await _enter(request, url, self.timeouts.read_timeout)
            location = header(resp, "location") if resp.status in REDIRECTS else None
            if location is None:
                return request, resp
            await request.__aexit__(None, None, None)
            url = next_hop(url, location)
        raise errors.RedirectError("too many redirects (a loop, or more than --max-redirects)")

    def _request(self, url: str, first: str) -> StreamRequest:
        """One streamed GET (head handed over as it arrives); the user's per-origin headers (an
        Authorization, say) only while the URL stays on the listed URL's origin."""
        try:
            builder = self._client.get(url).streamed_read_buffer_limit(0)
            if self._per_origin and _origin(url) == _origin(first):
                builder = builder.headers(self._per_origin)
            return builder.build_streamed()
        except (ValueError, BuilderError) as exc:
            raise errors.InvalidURL(f"invalid URL: {_cause(exc)}") from exc

    async def _pieces(self, reader: ResponseBodyReader, size: int | None) -> AsyncIterator[bytes]:
        """The body as hyper reads it; a failure here is mid-body. Once Content-Length bytes are in, the
        end is not awaited: hyper has seen it and keeps the connection for reuse all the same."""
        left = -1 if size is None else size
        while left:
            try:
                piece = await reader.read_chunk()
            except PyreqwestError as exc:
                raise body_error(exc, self.timeouts.read_timeout) from exc
            if piece is None:
                return
            left -= len(piece)
            yield piece.to_bytes()


async def _enter(request: StreamRequest, url: str, read_timeout: float) -> Response:
    """Send ``request`` to ``url`` and wait for its head, the client's errors translated."""
    try:
        return await request.__aenter__()
    except PyreqwestError as exc:
        raise head_error(exc, read_timeout, url.startswith("https:")) from exc


def next_hop(url: str, location: str) -> str:
    """Where a redirect leads, resolved against ``url``; only http(s) is followed."""
    target = urljoin(url, location.strip())
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https"):
        raise errors.RedirectError(f"redirect to a URL that is not http(s): {target[:200]}")
    return target


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _reason(status: int) -> str:
    """The standard phrase (reqwest keeps no reason phrase from the wire)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _causes(exc: Exception) -> list[str]:
    details: Any = getattr(exc, "details", None)
    found = details.get("causes") if isinstance(details, dict) else None
    return [c["message"] for c in found or [] if isinstance(c, dict) and "message" in c]


def _cause(exc: Exception) -> str:
    """The innermost cause: the sentence that says what happened (``Connection refused``...)."""
    causes = _causes(exc)
    return causes[-1] if causes else str(exc.args[0] if exc.args else exc)


def head_error(exc: PyreqwestError, read_timeout: float, tls: bool) -> errors.DownloadError:
    """pyreqwest's errors before the head arrived, as ``downloader.errors``. reqwest names every timeout
    before the body a connect timeout; the cause chain says whether connecting was what timed out."""
    causes, why = _causes(exc), _cause(exc)
    connecting = "client error (Connect)" in causes
    if isinstance(exc, ConnectTimeoutError):
        if connecting:
            return errors.Timeout("connect timed out", connecting=True)
        return errors.Timeout(f"no data for {read_timeout:g} s (read timeout)")
    if isinstance(exc, BuilderError):
        return errors.InvalidURL(f"invalid URL: {why}")
    if isinstance(exc, RequestPanicError):
        return errors.DownloadError(f"unexpected failure in the HTTP client: {why}")
    if isinstance(exc, ConnectError) and connecting:
        return _connect_error(causes, why, tls)
    return errors.ConnectError(f"connection failed: {why}")


def _connect_error(causes: list[str], why: str, tls: bool) -> errors.DownloadError:
    """A failure while connecting: resolving the name, the TCP connect, or (https) the TLS handshake."""
    if "dns error" in causes:
        return errors.DNSError(f"cannot resolve host: {why}")
    if not tls or "tcp connect error" in causes or any("tunnel" in c.lower() for c in causes):
        return errors.ConnectError(f"cannot connect: {why}")
    return errors.TLSError(f"TLS failure: {why}")


def body_error(exc: PyreqwestError, read_timeout: float) -> errors.DownloadError:
    """pyreqwest's errors while the body streamed, as ``downloader.errors``."""
    why = _cause(exc)
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return errors.Timeout(f"no data for {read_timeout:g} s (read timeout)")
    if isinstance(exc, ReadError | BodyDecodeError | DecodeError | ConnectError):
        return errors.Truncated(f"body incomplete: {why}")
    return errors.Truncated(f"connection lost mid-body: {why}")
