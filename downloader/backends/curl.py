"""The ``curl`` backend: libcurl's multi interface (pycurl) driven by the event loop.

libcurl does the HTTP in C; the loop only watches its sockets (``add_reader``/``add_writer`` from
libcurl's socket callback) and its timer (``call_later``). Body pieces arrive in libcurl's write
callback, are queued for the coroutine that streams them through the shared checks and aiofiles writer,
and the transfer is paused while more than ``HIGH_WATER`` bytes wait, so a large body is never held whole.
libcurl neither resolves names nor follows redirects here: each hop is pinned to the addresses the gate
passed (``CURLOPT_RESOLVE``), and redirects are followed by ``StreamingBackend.get``, hop by hop.

An optional extra (``pip install 'downloader[curl]'``); a fourth contender beside the three strategies,
because the profile shows the HTTP client itself is the ceiling on small files.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self, TypeVar, overload

from .. import errors
from ..addresses import Pass
from ..spec import Transport
from ..writers import Output
from .base import Body, Head, StreamingBackend, split_headers
from .gate import host_port

T = TypeVar("T")

try:
    import pycurl
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise errors.UsageError("the curl backend needs pycurl: pip install 'downloader[curl]'") from exc

HIGH_WATER = 512 << 10
"""Queued body bytes above which the transfer pauses until the writer catches up."""
READ_SIZE = 256 << 10
"""libcurl's receive buffer, so its largest piece: a large body comes in 256 KiB pieces rather than
16 KiB ones, a sixteenth of the calls into Python (a small body still comes in one)."""


class Headers(dict[str, str]):
    """Response headers with case-insensitive lookup (names are stored lower-case)."""

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[str]] = {}

    @overload
    def get(self, key: str, default: None = None) -> str | None: ...
    @overload
    def get(self, key: str, default: str | T) -> str | T: ...
    def get(self, key: str, default: object = None) -> object:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def getall(self, key: str, default: list[str]) -> list[str]:
        """Every value of a repeated header (only X-Robots-Tag's are kept apart)."""
        return self.repeated.get(key.lower()) or ([self[key]] if key in self else default)


class _Transfer:
    """One request on one easy handle: headers as they come, body pieces queued for the coroutine."""

    def __init__(self, loop: asyncio.AbstractEventLoop, easy: pycurl.Curl, read_timeout: float) -> None:
        self.easy = easy
        self.read_timeout = read_timeout
        self.last_heard = loop.time()
        self.silence = loop.call_later(read_timeout, self.on_silence)
        self.status = 0
        self.reason = ""
        self.headers = Headers()
        self.head: asyncio.Future[None] = loop.create_future()
        self.pieces: deque[bytes] = deque()
        self.queued = 0
        self.paused = False
        self.finished = False
        self.error: errors.DownloadError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self._loop = loop

    def heard(self) -> None:
        """Something arrived: note when (libcurl has no timeout for silence). The one timer checks this
        when it fires, rather than being cancelled and rescheduled for every header line and piece."""
        self.last_heard = self._loop.time()

    def on_silence(self) -> None:
        quiet = self._loop.time() - self.last_heard
        if quiet < self.read_timeout:
            self.silence = self._loop.call_later(self.read_timeout - quiet, self.on_silence)
            return
        self.on_finish(errors.Timeout(f"no data for {self.read_timeout:g} s (read timeout)"))

    def on_header(self, line: bytes) -> None:
        self.heard()
        if line.startswith(b"HTTP/"):  # a new response (after a redirect, or a 100 Continue)
            parts = line.decode("latin-1").split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.reason = parts[2].strip() if len(parts) > 2 else ""
            self.headers = Headers()
        elif b":" in line:
            name, _, value = line.decode("latin-1").partition(":")
            key = name.strip().lower()
            self.headers[key] = value.strip()
            if key == "x-robots-tag":
                self.headers.repeated.setdefault(key, []).append(value.strip())

    def on_body(self, piece: bytes) -> int | None:
        if self.queued > HIGH_WATER:
            self.paused = True
            return pycurl.WRITEFUNC_PAUSE  # libcurl keeps this piece and offers it again on unpause
        self.heard()
        self._headers_in()
        self.pieces.append(piece)
        self.queued += len(piece)
        self._wake()
        return None

    def on_finish(self, error: errors.DownloadError | None) -> None:
        if self.finished:
            return
        self.silence.cancel()
        self.finished = True
        self.error = error
        if not self.head.done():
            if error is None:
                self.head.set_result(None)
            else:
                self.head.set_exception(error)
        self._wake()

    def _headers_in(self) -> None:
        if not self.head.done():
            self.head.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            if self.pieces:
                piece = b"".join(self.pieces) if len(self.pieces) > 1 else self.pieces[0]
                self.pieces.clear()
                self.queued = 0
                if self.paused:
                    self.paused = False
                    self.easy.pause(pycurl.PAUSE_CONT)
                yield piece
                continue
            if self.finished:
                if self.error is not None:
                    raise self.error
                return
            self.waiter = self._loop.create_future()
            await self.waiter


class _Driver:
    """Connects libcurl's socket and timer callbacks to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tp: Transport) -> None:
        self.loop = loop
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self.multi.setopt(pycurl.M_MAXCONNECTS, max(tp.slots, 8))
        if tp.per_host:
            self.multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, tp.per_host)
        self.transfers: dict[pycurl.Curl, _Transfer] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._kick_pending = False

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        loop = self.loop
        if what in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        else:
            loop.remove_reader(fd)
        if what in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        else:
            loop.remove_writer(fd)

    def _on_timer(self, ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if ms >= 0:
            self._timer = self.loop.call_later(ms / 1000, self._act, pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, event: int) -> None:
        self.multi.socket_action(fd, event)
        self._collect()

    def _collect(self) -> None:
        while True:
            queued, ok, failed = self.multi.info_read()
            for easy in ok:
                self._done(easy, None)
            for easy, code, message in failed:
                self._done(easy, (code, message))
            if not queued:
                return

    def _done(self, easy: pycurl.Curl, failure: tuple[int, str] | None) -> None:
        transfer = self.transfers.get(easy)
        if transfer is None:
            return
        error = None if failure is None else translate(*failure, transfer)
        transfer.on_finish(error)

    def start(self, transfer: _Transfer) -> None:
        """Add the transfer; libcurl starts it on the next ``socket_action``. One is asked for per loop
        turn (``call_soon``), however many transfers start in it: libcurl's own zero-delay timer would
        come a turn later, and a ``socket_action`` per transfer costs more than it saves."""
        self.transfers[transfer.easy] = transfer
        self.multi.add_handle(transfer.easy)
        if not self._kick_pending:
            self._kick_pending = True
            self.loop.call_soon(self._kick)

    def _kick(self) -> None:
        if self._kick_pending:  # not closed since it was asked for
            self._kick_pending = False
            self._act(pycurl.SOCKET_TIMEOUT, 0)

    def stop(self, transfer: _Transfer) -> None:
        """Take the handle out of the multi (aborting the transfer if it still runs)."""
        transfer.silence.cancel()
        if self.transfers.pop(transfer.easy, None) is not None:
            self.multi.remove_handle(transfer.easy)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._kick_pending = False
        self.multi.close()


def translate(code: int, message: str, transfer: _Transfer) -> errors.DownloadError:
    """libcurl's error codes as ``downloader.errors``."""
    started = transfer.head.done()
    if code == pycurl.E_COULDNT_RESOLVE_HOST:
        return errors.DNSError(f"cannot resolve host: {message}")
    if code in (pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_PROXY):
        return errors.ConnectError(f"cannot connect: {message}")
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return errors.Timeout("connect timed out", connecting=not started)
    if code == pycurl.E_TOO_MANY_REDIRECTS:
        return errors.RedirectError("too many redirects (a loop, or more than --max-redirects)")
    if code == pycurl.E_UNSUPPORTED_PROTOCOL:
        return errors.RedirectError(f"redirect to a URL that is not http(s): {message}")
    if code == pycurl.E_URL_MALFORMAT:
        return errors.InvalidURL(f"invalid URL: {message}")
    if code in (pycurl.E_SSL_CONNECT_ERROR, pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CACERT):
        return errors.TLSError(f"TLS failure: {message}")
    if started or code == pycurl.E_PARTIAL_FILE:
        return errors.Truncated(f"body incomplete: {message}")
    return errors.ConnectError(f"connection failed: {message}")


class CurlBackend(StreamingBackend):
    name = "curl"

    def __init__(self, tp: Transport, output: Output) -> None:
        super().__init__(tp, output)
        self._idle: list[pycurl.Curl] = []
        shared, per_origin = split_headers(tp.network)
        self._away = [f"{k}: {v}" for k, v in shared.items()] if per_origin else None
        self._header_list = [f"{k}: {v}" for k, v in {**shared, **per_origin}.items()]
        self._cafile = tp.network.ca_bundle or ssl.get_default_verify_paths().cafile

    async def __aenter__(self) -> Self:
        self._driver = _Driver(asyncio.get_running_loop(), self.transport)
        self._unpooled: set[pycurl.Curl] = set()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        for easy in self._idle:
            easy.close()
        self._driver.close()
        self.gate.close()

    def _new_handle(self) -> pycurl.Curl:
        """An easy handle with the settings every request shares, set once."""
        c = self.transport
        easy = pycurl.Curl()
        easy.setopt(pycurl.NOSIGNAL, 1)
        easy.setopt(pycurl.FOLLOWLOCATION, 0)
        easy.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        easy.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        easy.setopt(pycurl.HTTPHEADER, self._header_list)
        easy.setopt(pycurl.HTTP_CONTENT_DECODING, 0)
        easy.setopt(pycurl.CONNECTTIMEOUT_MS, int(c.timeouts.connect_timeout * 1000))
        easy.setopt(pycurl.TCP_NODELAY, 1)
        easy.setopt(pycurl.MAXAGE_CONN, max(1, round(c.timeouts.idle_timeout)))  # MAXCONNECTS caps the count
        easy.setopt(pycurl.BUFFERSIZE, READ_SIZE)
        if c.network.insecure:
            easy.setopt(pycurl.SSL_VERIFYPEER, 0)
            easy.setopt(pycurl.SSL_VERIFYHOST, 0)
        elif self._cafile and os.path.exists(self._cafile):
            easy.setopt(pycurl.CAINFO, self._cafile)
        return easy

    def _pin(self, easy: pycurl.Curl, url: str, through: Pass) -> None:
        """Point libcurl at the gate's addresses for a name: set for every hop, since libcurl moves the
        list into its DNS cache (replacing the name's entry) at the next transfer and then forgets it.
        The name with a trailing dot is pinned too: libcurl looks a name up as the URL writes it."""
        if not through.addresses or through.addresses[0] == through.host:  # a proxy, or an address
            return
        host, port = host_port(url)
        dial = ",".join(f"[{a}]" if ":" in a else a for a in through.addresses)
        easy.setopt(pycurl.RESOLVE, [f"{host}:{port}:{dial}", f"{host}.:{port}:{dial}"])

    @asynccontextmanager
    async def hop(self, url: str, through: Pass, home: bool) -> AsyncIterator[Body]:
        easy = self._idle.pop() if self._idle else self._new_handle()
        transfer = _Transfer(self._driver.loop, easy, self.transport.timeouts.read_timeout)
        easy.setopt(pycurl.URL, url)
        if self._away is not None:  # the user's per-origin headers stay with the listed origin
            easy.setopt(pycurl.HTTPHEADER, self._header_list if home else self._away)
        self._pin(easy, url, through)
        unpooled = through.fresh or through.close  # private space by a name, or the host's last
        if unpooled or easy in self._unpooled:  # libcurl closes the connection after the transfer
            easy.setopt(pycurl.FORBID_REUSE, int(unpooled))
            (self._unpooled.add if unpooled else self._unpooled.discard)(easy)
        easy.setopt(pycurl.PROXY, self._proxies.for_url(url) or "")  # "": no proxy, not libcurl's env
        easy.setopt(pycurl.HEADERFUNCTION, transfer.on_header)
        easy.setopt(pycurl.WRITEFUNCTION, transfer.on_body)
        self._driver.start(transfer)
        try:
            await transfer.head
            size = transfer.headers.get("Content-Length")
            head = Head(
                transfer.status,
                transfer.reason,
                transfer.headers,
                int(size) if size and size.isdigit() else None,
            )
            yield Body(head, transfer.body())
        finally:
            self._driver.stop(transfer)  # out of the multi before the handle can be reused
            self._idle.append(easy)
