"""The ``reqwest`` backend: Rust's reqwest and hyper (through pyreqwest) on their own tokio thread.

HTTP is parsed, and connections are pooled, in Rust; the event loop only awaits the head and each body
piece. The request's body buffer limit is 0, so the head is handed over as soon as it arrives and each
piece as hyper reads it (hyper's reads grow to hundreds of KB on a fast body; a small body comes in one
or two): the shared checks then see the body as it comes, as with the other backends, so the minimum
speed is measured from the head on. A larger limit would spare a small body its own crossing (up to 25 µs
a URL), but pyreqwest then reads the body up to the limit before it hands over the head, and later pieces
a limit at a time: a small body trickling in would arrive whole and pass the minimum speed, and an
attempt cancelled meanwhile would read on in Rust. Silence is reqwest's read timeout, connecting its
connect timeout; the attempt's total and the URL's deadline are the engine's timer. Its cancellation
drops a body at once; a request still waiting for its head runs on in Rust until the head or the read
timeout (pyreqwest 0.15 does not pass a cancellation on), which is why the client has no
``max_connections``: such a request would hold one of its slots. The engine bounds the requests in flight.

Redirects are followed by ``StreamingBackend.get``, hop by hop, each admitted by the gate, as for the
other backends. pyreqwest (0.15) has no per-request resolver, only addresses fixed when the client is
built: a plain-http hop to a name is therefore sent to the gate's address itself (the URL's host replaced
by the address, the name kept in ``Host``), each address in turn; an https hop needs the name in the URL
for TLS, so reqwest resolves it again itself (docs/dns.md says what that leaves open).

An optional extra (``pip install 'downloader[reqwest]'``).
"""

from __future__ import annotations

import http
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import NamedTuple, Self, TypeVar, overload

from .. import errors
from ..addresses import Pass
from ..spec import Transport
from .base import PER_ORIGIN, Body, Head, Proxies, StreamingBackend
from .gate import host_port

T = TypeVar("T")

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


class Headers(Mapping[str, str]):
    """reqwest's headers as the checks read them: case-insensitive, and ``getall`` with a default. Read
    through the response's own lookups, so the header map is never copied out. A value that is not
    UTF-8 (pyreqwest cannot give it as text) reads as absent."""

    __slots__ = ("_resp",)

    def __init__(self, resp: Response) -> None:
        self._resp = resp

    @overload
    def get(self, key: str, default: None = None) -> str | None: ...
    @overload
    def get(self, key: str, default: str | T) -> str | T: ...
    def get(self, key: str, default: object = None) -> object:
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
    """One client for the run: pool, timeouts, TLS and proxies; no redirects, cookies or decoding. Idle
    connections are kept ``--idle-timeout`` (hyper's default, 90 s, kept 550 MB of them on a list of
    1,000 hosts: each holds its TLS state and its read buffer, which hyper grows to 400 KB on a fast body)."""
    net = tp.network
    t = tp.timeouts
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
        .pool_idle_timeout(timedelta(seconds=t.idle_timeout))  # memory bounded by age, not by hosts seen
        .pool_max_idle_per_host(tp.slots)  # a list of one host keeps every connection it can use
        .no_proxy()  # reqwest would read the environment itself; Proxies decides instead
        .http1_ignore_invalid_headers_in_responses(True)  # read what old servers send, as browsers do
        .http1_allow_spaces_after_header_name_in_responses(True)
        .http1_allow_obsolete_multiline_headers_in_responses(True)
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
        self.gate.close()

    def hop(self, url: str, through: Pass, home: bool) -> Hop:
        return Hop(self, url, through, home)

    async def _send(self, url: str, through: Pass, home: bool) -> tuple[StreamRequest, Response]:
        """Send one GET and wait for its head; the request, entered, for the caller to exit. A plain-http
        hop to a name goes to each of the gate's addresses in turn until one connects."""
        dials = dialled(url, through)
        for n, (target, host) in enumerate(dials):
            request = self._request(target, home, host, through.fresh or through.close)
            try:
                return request, await head_of(request, url, self.timeouts.read_timeout)
            except errors.ConnectError:
                if n + 1 == len(dials):
                    raise
        raise AssertionError("unreachable: dialled() names at least the URL itself")

    def _request(self, url: str, home: bool, host: str | None, fresh: bool = False) -> StreamRequest:
        """One streamed GET (head handed over as it arrives); the user's per-origin headers (an
        Authorization, say) only on the listed URL's origin; ``host`` as the Host header when the URL
        names an address in its stead; ``Connection: close`` when the hop's connection is not to be pooled
        (``Pass.fresh``, ``Pass.close``): hyper then closes it once the answer is read."""
        extra = dict(self._per_origin) if home else {}
        if host is not None:
            extra["Host"] = host
        if fresh:
            extra["Connection"] = "close"
        try:
            builder = self._client.get(url).streamed_read_buffer_limit(0)
            if extra:
                builder = builder.headers(extra)
            return builder.build_streamed()
        except (ValueError, BuilderError) as exc:
            raise errors.InvalidURL(f"invalid URL: {_cause(exc)}") from exc


class Hop:
    """``ReqwestBackend.hop``: the head on entry, the request closed on exit unless its body was read to
    the end. A class rather than an ``asynccontextmanager``, whose generator and wrapper cost a few µs on
    every URL."""

    __slots__ = ("_args", "_backend", "_ended", "_request")

    def __init__(self, backend: ReqwestBackend, url: str, through: Pass, home: bool) -> None:
        self._backend = backend
        self._args = (url, through, home)
        self._ended = False

    async def __aenter__(self) -> Body:
        backend = self._backend
        self._request, resp = await backend._send(*self._args)
        try:
            length = header(resp, "content-length")
            size = int(length) if length and length.isdigit() else None
            status = resp.status
            head = Head(status, "" if 200 <= status < 300 else _reason(status), Headers(resp), size)
            return Body(head, self._pieces(resp.body_reader, size))
        except BaseException:
            await self._request.__aexit__(None, None, None)
            raise

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._ended:  # else pyreqwest's reader has ended or ends by itself: nothing to drop
            await self._request.__aexit__(None, None, None)

    async def _pieces(self, reader: ResponseBodyReader, size: int | None) -> AsyncIterator[bytes]:
        """The body as hyper reads it; a failure here is mid-body. Once Content-Length bytes are in, the
        end is not awaited: hyper has seen it and keeps the connection for reuse all the same."""
        left = -1 if size is None else size
        while left:
            try:
                piece = await reader.read_chunk()
            except PyreqwestError as exc:
                raise body_error(exc, self._backend.timeouts.read_timeout) from exc
            if piece is None:
                break
            left -= len(piece)
            yield piece.to_bytes()  # a copy (1 µs for 18 KB) that lets hyper reuse its read buffer
        self._ended = True


async def head_of(request: StreamRequest, url: str, read_timeout: float) -> Response:
    """Send ``request`` to ``url`` and wait for its head, the client's errors translated."""
    try:
        return await request.__aenter__()
    except PyreqwestError as exc:
        raise head_error(exc, read_timeout, url.startswith("https:")) from exc


def dialled(url: str, through: Pass) -> list[tuple[str, str | None]]:
    """The URLs to send and their Host header: for plain http to a name, the URL with each of the gate's
    addresses in the name's stead; else the URL itself (reqwest resolves it)."""
    if not through.addresses or through.addresses[0] == through.host or not url.startswith("http://"):
        return [(url, None)]  # a proxy resolves it, the URL names an address itself, or it is https
    port = host_port(url)[1]
    netloc = url.split("/", 3)[2]
    user, at, named = netloc.rpartition("@")
    suffix = "" if port == 80 else f":{port}"
    return [
        (url.replace(netloc, f"{user}{at}{f'[{a}]' if ':' in a else a}{suffix}", 1), named)
        for a in through.addresses
    ]


def _reason(status: int) -> str:
    """The standard phrase (reqwest keeps no reason phrase from the wire)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def cause_chain(exc: Exception) -> list[str]:
    """What pyreqwest says caused ``exc``, outermost first (reqwest's error, then hyper's and the OS's)."""
    details: object = getattr(exc, "details", None)
    found = details.get("causes") if isinstance(details, dict) else None
    return [c["message"] for c in found or [] if isinstance(c, dict) and "message" in c]


def _cause(exc: Exception) -> str:
    """The innermost cause: the sentence that says what happened (``Connection refused``...)."""
    causes = cause_chain(exc)
    return causes[-1] if causes else str(exc.args[0] if exc.args else exc)


CONNECTING = "client error (Connect)"
"""hyper's word, in reqwest's cause chain, for a failure of the connector (the name's lookup, the TCP
connect, a proxy's tunnel, the TLS handshake); without it the connection was made and what failed came
after."""


class Rule(NamedTuple):
    """A row of ``HEAD_ERRORS``: the class pyreqwest raises and the sentences its cause chain must hold
    (each a substring of one cause, as reqwest and hyper word them today: an upgrade may reword them,
    which tests/test_backends_reqwest.py catches); then our error and its sentence (``why`` the innermost
    cause, ``t`` the read timeout); ``https`` if only an https URL can match."""

    raised: type[PyreqwestError]
    causes: tuple[str, ...]
    error: Callable[[str], errors.DownloadError]
    sentence: str
    https: bool = False


HEAD_ERRORS: dict[str, Rule] = {
    # the first row that matches wins; the tests provoke each row once against the real library
    "connect timeout": Rule(
        ConnectTimeoutError, (CONNECTING,), partial(errors.Timeout, connecting=True), "connect timed out"
    ),
    # reqwest names every timeout before the head a connect timeout: without CONNECTING, the server was silent
    "read timeout": Rule(ConnectTimeoutError, (), errors.Timeout, "no data for {t:g} s (read timeout)"),
    "dns": Rule(ConnectError, (CONNECTING, "dns error"), errors.DNSError, "cannot resolve host: {why}"),
    "refused": Rule(
        ConnectError, (CONNECTING, "tcp connect error"), errors.ConnectError, "cannot connect: {why}"
    ),
    "tunnel": Rule(ConnectError, (CONNECTING, "tunnel"), errors.ConnectError, "cannot connect: {why}"),
    # connecting to an https URL failed past the lookup, the TCP connect and any tunnel: the handshake
    "tls": Rule(ConnectError, (CONNECTING,), errors.TLSError, "TLS failure: {why}", https=True),
}
"""pyreqwest's errors before the head that are told apart by their words, in the order they are tried."""


def head_rule(exc: PyreqwestError, tls: bool) -> str | None:
    """The name of the first row of ``HEAD_ERRORS`` that ``exc`` matches, if any."""
    causes = cause_chain(exc)
    for name, rule in HEAD_ERRORS.items():
        if not isinstance(exc, rule.raised) or (rule.https and not tls):
            continue
        if all(any(text in cause for cause in causes) for text in rule.causes):
            return name
    return None


def head_error(exc: PyreqwestError, read_timeout: float, tls: bool) -> errors.DownloadError:
    """pyreqwest's errors before the head arrived, as ``downloader.errors``: by class, then by the rows
    of ``HEAD_ERRORS``; any other failure is one to connect."""
    why = _cause(exc)
    if isinstance(exc, BuilderError):
        return errors.InvalidURL(f"invalid URL: {why}")
    if isinstance(exc, RequestPanicError):
        return errors.DownloadError(f"unexpected failure in the HTTP client: {why}")
    name = head_rule(exc, tls)
    if name is not None:
        rule = HEAD_ERRORS[name]
        return rule.error(rule.sentence.format(why=why, t=read_timeout))
    if isinstance(exc, ConnectError) and CONNECTING in cause_chain(exc):  # plain http, none of the above
        return errors.ConnectError(f"cannot connect: {why}")
    return errors.ConnectError(f"connection failed: {why}")


def body_error(exc: PyreqwestError, read_timeout: float) -> errors.DownloadError:
    """pyreqwest's errors while the body streamed, as ``downloader.errors``."""
    why = _cause(exc)
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return errors.Timeout(f"no data for {read_timeout:g} s (read timeout)")
    if isinstance(exc, ReadError | BodyDecodeError | DecodeError | ConnectError):
        return errors.Truncated(f"body incomplete: {why}")
    return errors.Truncated(f"connection lost mid-body: {why}")
