"""The requests backends, each on a thread pool of its own (never the loop's default executor, which
aiofiles uses):

* ``executor``: the loop drives each download; only the blocking calls (the GET, each body piece) hop to
  the pool through ``loop.run_in_executor``. Pieces come back to the loop and go to the aiofiles writer.
* ``threads``: the classic thread-pool downloader; one worker does a whole URL (GET, stream, ``.part``,
  rename) with plain file I/O; the loop awaits its future through ``asyncio.wrap_future``.

requests has no total timeout and a cancelled coroutine does not stop a thread, so both read with
``read1`` (return as soon as some bytes arrive), the shared ``BodyCheck`` enforces the total and
minimum-speed rules piece by piece, and a cancelled download shuts its socket down so a blocked read
returns at once.

Names are resolved by the gate (``gate``), not by urllib3: its connections dial the addresses the gate
passed for the hop (``_Pinned``), and redirects are followed here, each hop admitted first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.cookiejar
import socket
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Self

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection

from .. import errors
from ..addresses import Pass
from ..models import Deadline, Fetched
from ..spec import Transport
from ..writers import Output
from .base import DRAIN, Body, Head, Page, Proxies, StreamingBackend, Transfer, same_origin, split_headers
from .gate import Gate, next_hop

if TYPE_CHECKING:
    from urllib.request import Request

    from urllib3._base_connection import BaseHTTPConnection

_PINNED: ContextVar[Pass | None] = ContextVar("downloader_pinned_sync", default=None)
"""The hop this worker thread is making (each thread has its own context)."""

CANCEL_GRACE_S = 5.0
"""How long a cancelled download waits for its worker to remove its ``.part``."""


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Keep no cookies, as the other backends do (aiohttp's ``DummyCookieJar``, libcurl by default)."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Request) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Request) -> bool:
        return False


def _dial(conn: HTTPConnection, connect: Callable[[], socket.socket]) -> socket.socket:
    """urllib3's own connect, aimed at each address the gate passed for this host in turn."""
    through = _PINNED.get()
    host = conn.host
    if through is None or not through.addresses or through.host != host.lower().strip("[]").rstrip("."):
        return connect()  # a proxy, or an IP literal
    last: Exception | None = None
    for address in through.addresses:
        conn._dns_host = address
        try:
            sock = connect()
        except urllib3.exceptions.NewConnectionError as exc:
            last = exc
            continue
        finally:
            conn._dns_host = host
        if through.fresh:
            _UNPOOLED.add(conn)
        return sock
    assert last is not None
    raise last


class _PinnedHTTP(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _dial(self, super()._new_conn)


class _PinnedHTTPS(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _dial(self, super()._new_conn)


_UNPOOLED: weakref.WeakSet[BaseHTTPConnection] = weakref.WeakSet()
"""Connections into private space made through a name (``Pass.fresh``): closed after use, not pooled."""


def _put_back(pool: urllib3.HTTPConnectionPool, conn: BaseHTTPConnection | None) -> None:
    """Return ``conn`` to ``pool``, or close it and free its slot when it must not be reused."""
    if conn is not None and conn in _UNPOOLED:
        conn.close()
        conn = None
    urllib3.HTTPConnectionPool._put_conn(pool, conn)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _PinnedHTTP

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        _put_back(self, conn)


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPS

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        _put_back(self, conn)


def make_session(tp: Transport) -> requests.Session:
    session = requests.Session()
    session.headers.clear()
    session.headers.update(split_headers(tp.network)[0])
    session.cookies.set_policy(_NoCookies())
    session.max_redirects = tp.network.max_redirects
    session.trust_env = False  # environment proxies come through Proxies, read once
    session.verify = False if tp.network.insecure else (tp.network.ca_bundle or True)
    if tp.network.insecure:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    adapter = HTTPAdapter(pool_connections=32, pool_maxsize=tp.slots, max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def open_response(
    session: requests.Session, url: str, tp: Transport, proxy: str | None, *, through: Pass, home: bool
) -> requests.Response:
    """One hop's GET, headers only (``stream=True``), dialling ``through``'s addresses, with the user's
    per-origin headers if ``home``; requests' exceptions leave as ``DownloadError``."""
    _PINNED.set(through)
    headers = (
        {**session.headers, **split_headers(tp.network)[1]}
        if home and tp.network.headers
        else session.headers
    )
    if through.close:  # the host's last URL for now: http.client closes the connection after the answer
        headers = {**headers, "Connection": "close"}
    proxies = {"http": proxy, "https": proxy} if proxy else {}
    timeout = (tp.timeouts.connect_timeout, tp.timeouts.read_timeout)
    try:
        # ``session.get`` would merge per-request settings into the session's (none are given here) at
        # about 100 us a call: requests 2.34 checks each against a runtime Protocol, slow before
        # Python 3.12. The request is prepared from the session's own headers and sent directly.
        request = requests.PreparedRequest()
        request.prepare(method="GET", url=url, headers=headers, cookies=session.cookies)
        return session.send(
            request,
            stream=True,
            timeout=timeout,
            proxies=proxies,
            verify=session.verify,
            cert=None,
            allow_redirects=False,
        )
    except Exception as exc:
        raise translate(exc, False, tp) from exc


def read_piece(resp: requests.Response, size: int, tp: Transport) -> bytes:
    """Up to ``size`` bytes, returning as soon as any arrive; ``b""`` at the end of the body."""
    try:
        return resp.raw.read1(size, decode_content=False)
    except Exception as exc:
        raise translate(exc, True, tp) from exc


def head_of(resp: requests.Response) -> Head:
    value = resp.headers.get("Content-Length")
    size = int(value) if value and value.isdigit() else None
    # urllib3's headers keep a repeated header's values apart (X-Robots-Tag); requests joins them
    return Head(resp.status_code, resp.reason or "", resp.raw.headers, size)


def shutdown(resp: requests.Response) -> None:
    """Unblock a thread that is reading ``resp`` and drop its connection."""
    with contextlib.suppress(Exception):  # the reader may have closed it already: this is best effort
        resp.raw.shutdown()
    with contextlib.suppress(Exception):
        resp.close()


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = (
            cur.__cause__
            or cur.__context__
            or (cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None)
        )
    return seen


def translate(exc: Exception, in_body: bool, tp: Transport) -> errors.DownloadError:
    """requests' and urllib3's exceptions as ``downloader.errors``."""
    if isinstance(exc, errors.DownloadError):
        return exc
    if isinstance(exc, requests.TooManyRedirects):
        return errors.RedirectError("too many redirects (a loop, or more than --max-redirects)")
    if isinstance(exc, requests.exceptions.InvalidSchema):
        return errors.RedirectError(f"redirect to a URL that is not http(s): {exc}")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return errors.InvalidURL(f"invalid URL: {exc}")
    if isinstance(exc, requests.exceptions.SSLError | urllib3.exceptions.SSLError):
        return errors.TLSError(f"TLS failure: {exc}")
    if isinstance(exc, requests.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError):
        return errors.Timeout("connect timed out", connecting=True)
    if isinstance(exc, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return errors.Timeout(f"no data for {tp.timeouts.read_timeout:g} s (read timeout)")
    if in_body:
        return errors.Truncated(f"connection lost mid-body: {_last_words(exc)}")
    if any(isinstance(e, urllib3.exceptions.NameResolutionError) for e in _chain(exc)):
        return errors.DNSError(f"cannot resolve host: {_last_words(exc)}")
    if isinstance(exc, requests.ConnectionError | OSError | urllib3.exceptions.HTTPError):
        return errors.ConnectError(f"cannot connect: {_last_words(exc)}")
    return errors.DownloadError(f"unexpected {type(exc).__name__}: {exc}")


def _last_words(exc: BaseException) -> str:
    """The innermost reason of a chained exception (urllib3 nests them deeply)."""
    inner = _chain(exc)[-1]
    text = getattr(inner, "strerror", None) or str(inner) or type(inner).__name__
    return str(text)


class _PoolBackend:
    """What both requests backends own: a session and a pool of their own."""

    name = ""

    def __init__(self, tp: Transport, output: Output) -> None:
        self.transport = tp
        self.output = output
        self._proxies = Proxies(tp.network)
        self.gate = Gate(tp.network)

    async def __aenter__(self) -> Self:
        self._pool = ThreadPoolExecutor(self.transport.slots, thread_name_prefix=f"downloader-{self.name}")
        self._session = make_session(self.transport)
        self._loop = asyncio.get_running_loop()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        self._session.close()
        self.gate.close()

    def admit_from_thread(self, url: str, before: Pass | None) -> Pass:
        """The gate's pass for a redirect's hop, asked from a worker thread: read from the cache, or
        looked up on the loop."""
        proxied = self._proxies.for_url(url) is not None
        found = None if proxied else self.gate.now(url, before)
        if found is not None:
            return found
        pending = asyncio.run_coroutine_threadsafe(self.gate.admit(url, before, proxied), self._loop)
        try:  # bounded, so a worker never outlives the run waiting on a loop that has moved on
            return pending.result(timeout=self.transport.timeouts.deadline)
        except TimeoutError:
            pending.cancel()
            raise errors.DNSError("no lookup of the redirect's host within --deadline") from None

    def follow(self, url: str, through: Pass, token: _Token | None = None) -> requests.Response:
        """In a worker thread: the GET and its redirects, each hop admitted; the last answer, headers
        read. ``through`` is the listed URL's pass, taken on the loop."""
        tp = self.transport
        first = url
        for _ in range(tp.network.max_redirects + 1):
            home = url is first or same_origin(url, first)
            proxy = self._proxies.for_url(url)
            resp = open_response(self._session, url, tp, proxy, through=through, home=home)
            if token is not None:
                token.resp = resp
            try:
                target = next_hop(url, resp.status_code, resp.headers.get("Location"))
            except BaseException:
                resp.close()
                raise
            if target is None:
                return resp
            with contextlib.suppress(Exception):  # drained so the connection is reused; failing costs it only
                resp.raw.read(DRAIN, decode_content=False)
            resp.close()
            url = target
            through = self.admit_from_thread(target, through).closing(not through.close)
        raise errors.RedirectError("too many redirects (a loop, or more than --max-redirects)")


class ExecutorBackend(_PoolBackend, StreamingBackend):
    """The loop drives; requests' blocking calls hop to the pool; aiofiles writes."""

    name = "executor"

    def __init__(self, tp: Transport, output: Output) -> None:
        StreamingBackend.__init__(self, tp, output)

    @asynccontextmanager
    async def hop(self, url: str, through: Pass, home: bool) -> AsyncIterator[Body]:
        loop = asyncio.get_running_loop()
        proxy = self._proxies.for_url(url)
        call = functools.partial(open_and_read, through=through, home=home)
        pending = loop.run_in_executor(self._pool, call, self._session, url, self.transport, proxy)
        try:
            resp, pieces, ended = await pending
        except asyncio.CancelledError:
            pending.add_done_callback(_close_when_done)
            raise
        try:
            yield Body(head_of(resp), self._pieces(resp, pieces, ended))
        except BaseException:
            shutdown(resp)
            raise
        finally:
            resp.close()

    async def _pieces(
        self, resp: requests.Response, pieces: list[bytes], ended: bool
    ) -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
        if ended:
            return
        loop = asyncio.get_running_loop()
        size = self.transport.network.chunk_size
        tp = self.transport
        while piece := await loop.run_in_executor(self._pool, read_piece, resp, size, tp):
            yield piece


def open_and_read(
    session: requests.Session, url: str, tp: Transport, proxy: str | None, *, through: Pass, home: bool
) -> tuple[requests.Response, list[bytes], bool]:
    """The GET and, for a 2xx answer, as much of the body as has a known end, in one hop: a small body
    then needs no hop of its own. Returns the response, the pieces read and whether the body ended."""
    resp = open_response(session, url, tp, proxy, through=through, home=home)
    if not 200 <= resp.status_code < 300:
        return resp, [], False
    pieces: list[bytes] = []
    try:
        while piece := read_piece(resp, tp.network.chunk_size, tp):
            pieces.append(piece)
            if resp.raw.length_remaining != 0:  # more to come, or no known length: piece by piece
                return resp, pieces, False
    except BaseException:
        shutdown(resp)
        raise
    return resp, pieces, True


def _close_when_done(fut: asyncio.Future[tuple[requests.Response, list[bytes], bool]]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        fut.result()[0].close()


def _retrieve(fut: asyncio.Future[Fetched]) -> None:
    """Take a cancelled worker's outcome so asyncio does not log it as never retrieved."""
    if not fut.cancelled():
        fut.exception()


class _Token:
    """Tells a worker thread it was cancelled, and unblocks its read."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.resp: requests.Response | None = None

    def cancel(self) -> None:
        self.event.set()
        if self.resp is not None:
            shutdown(self.resp)


class ThreadsBackend(_PoolBackend):
    """A worker thread does the whole URL; the engine awaits its future."""

    name = "threads"

    async def fetch(
        self, url: str, rel: str, deadline: Deadline | None = None, *, keep_alive: bool = True
    ) -> Fetched:
        through = await self.gate.admit(url, None, self._proxies.for_url(url) is not None)
        through = through.closing(keep_alive)
        token = _Token()
        future: Future[Fetched] = self._pool.submit(self._work, url, rel, token, deadline, through)
        waiter = asyncio.wrap_future(future)
        try:
            return await asyncio.shield(waiter)
        except asyncio.CancelledError:
            token.cancel()
            waiter.add_done_callback(_retrieve)
            await asyncio.wait([waiter], timeout=CANCEL_GRACE_S)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                return waiter.result()  # the worker had already saved the file: report it
            raise

    async def read(self, url: str, limit: int) -> Page:
        """``PageReader.read`` in a worker; a cancel unblocks its read."""
        through = await self.gate.admit(url, None, self._proxies.for_url(url) is not None)
        token = _Token()
        try:
            return await asyncio.wrap_future(self._pool.submit(self._read, url, limit, token, through))
        except asyncio.CancelledError:
            token.cancel()
            raise

    def _read(self, url: str, limit: int, token: _Token, through: Pass) -> Page:
        resp = self.follow(url, through, token)
        pieces = []
        size = 0
        try:
            while size < limit and (piece := read_piece(resp, limit - size, self.transport)):
                pieces.append(piece)
                size += len(piece)
        finally:
            resp.close()
        return Page(resp.status_code, b"".join(pieces))

    def _work(self, url: str, rel: str, token: _Token, deadline: Deadline | None, through: Pass) -> Fetched:
        start = time.monotonic()
        if token.event.is_set():
            raise errors.Cancelled("cancelled before it started")
        resp = self.follow(url, through, token)
        try:
            tr = Transfer(self.transport, start, head_of(resp), deadline)
            writer = self.output.open_sync(rel)
            try:
                while True:
                    piece = read_piece(resp, self.transport.network.chunk_size, self.transport)
                    if token.event.is_set():  # a shut-down socket reads as the end: never commit it
                        raise errors.Cancelled("cancelled")
                    if not piece:
                        break
                    tr.check.feed(piece)
                    writer.write(piece)
                tr.check.finish()
                tr.stored = writer.commit(tr.check.kind)
            except errors.DownloadError as err:
                tr.failed(err)
                writer.abort()
                raise
            except BaseException:
                writer.abort()
                raise
        finally:
            resp.close()
        return tr.fetched()
