"""The reqwest backend tells pyreqwest's failures apart partly by their words (``reqwest.HEAD_ERRORS``):
each row is provoked here once against the real library and real loopback servers, and the test checks
both that the library still raises that class with those words in its cause chain (an upgrade that
rewords them fails here, not quietly in the manifest's kinds) and the kind our mapping makes of it.

Failures mid-body are told apart by class alone, and are provoked too. Redirects are not the library's
to fail (it hands every 3xx back; ``--max-redirects`` is ours), which is checked as well.

The name lookup that fails is of a ``.invalid`` name with a label over 63 characters: the system resolver
refuses to encode it, so no query leaves the machine (a plain ``.invalid`` name would be asked of the
configured DNS server). The backend's gate resolves before reqwest does, so here the client is used
plainly, as ``build_client`` makes it, with the backend's own ``head_of`` (which maps the error)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any

import pytest

pytest.importorskip("pyreqwest")

from pyreqwest.exceptions import PyreqwestError
from pyreqwest.response import ResponseBodyReader

from downloader import errors
from downloader.backends.reqwest import (
    CONNECTING,
    HEAD_ERRORS,
    body_error,
    build_client,
    cause_chain,
    head_of,
    head_rule,
)
from downloader.spec import RunSpec
from tests.helpers import require

SHORT, LONG = 0.3, 10.0
"""The timeout that should fire, and the one that should not."""

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[..., Awaitable[int]]


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context whose certificate for 127.0.0.1 signed itself: no client trusts it."""
    d = tmp_path_factory.mktemp("self-signed")
    args = "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    subprocess.run(
        [require("openssl"), *args.split(), "-keyout", d / "key.pem", "-out", d / "cert.pem"],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(d / "cert.pem", d / "key.pem")
    return context


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a loopback server with a handler (and TLS, if given); its port. All are closed at the end."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
        # Python 3.11's wait_closed does not wait for the accepted connections: one whose TLS handshake the
        # client refused may still be reading the alert, and left open it warns when the loop closes
        for _ in range(500):
            if not getattr(server, "_active_count", 0):
                break
            await asyncio.sleep(0.01)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, and answer nothing until the client gives up."""
    await _until_closed(reader, writer)


async def head_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A head announcing 100 bytes and 3 of them, then nothing."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    await _until_closed(reader, writer)


async def head_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A head announcing 100 bytes and 3 of them, then the connection closed."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
    await _until_closed(reader, writer, wait=False)


async def refusing_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A proxy that answers every request, a CONNECT included, with 403."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    await _until_closed(reader, writer, wait=False)


async def redirect_loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await _until_closed(reader, writer, wait=False)


async def _until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: bool = True
) -> None:
    with suppress(ConnectionError, ssl.SSLError):
        await writer.drain()
        if wait:
            await reader.read()
    writer.close()
    with suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def scenario(name: str, serve: Serve, tls: ssl.SSLContext) -> tuple[str, dict[str, Any]]:
    """The URL and settings that provoke the row ``name`` of ``HEAD_ERRORS``."""
    # reqwest's connect takes in the TLS handshake: a server that accepts and never shakes hands
    if name == "connect timeout":
        return f"https://127.0.0.1:{await serve(silent)}/", {"connect_timeout": SHORT, "read_timeout": LONG}
    if name == "read timeout":
        return f"http://127.0.0.1:{await serve(silent)}/", {"connect_timeout": LONG, "read_timeout": SHORT}
    if name == "dns":
        return f"http://{'a' * 64}.invalid/", {}
    if name == "refused":
        return f"http://127.0.0.1:{free_port()}/", {}
    if name == "tunnel":  # the proxy is sent the name (CONNECT images.invalid:443), nothing resolves it here
        return "https://images.invalid/", {"proxy": f"http://127.0.0.1:{await serve(refusing_proxy)}"}
    if name == "tls":  # the handshake fails on the certificate, before the handler runs
        return f"https://127.0.0.1:{await serve(silent, tls)}/", {}
    raise AssertionError(f"no scenario provokes {name!r}: add one")


EXPECTED = {
    "connect timeout": "timeout",
    "read timeout": "timeout",
    "dns": "dns",
    "refused": "connect",
    "tunnel": "connect",
    "tls": "tls",
}
"""The kind each row makes (and so what each scenario must end in)."""


async def head_failure(url: str, **options: Any) -> errors.DownloadError:
    """Send a GET as the backend does, expecting it to fail before the head; our error, the library's as
    its cause."""
    spec = RunSpec.from_options(retries=0, **options)
    client = build_client(spec.transport())
    try:
        request = client.get(url).streamed_read_buffer_limit(0).build_streamed()
        with pytest.raises(errors.DownloadError) as caught:
            await head_of(request, url, spec.timeouts.read_timeout)
    finally:
        await client.close()
    assert isinstance(caught.value.__cause__, PyreqwestError)
    return caught.value


def test_every_row_has_a_scenario_and_a_kind() -> None:
    assert list(EXPECTED) == list(HEAD_ERRORS)
    assert set(EXPECTED.values()) <= set(errors.KINDS)


@pytest.mark.parametrize("name", list(HEAD_ERRORS))
async def test_each_row_still_matches_what_the_library_raises(
    name: str, serve: Serve, self_signed: ssl.SSLContext
) -> None:
    url, options = await scenario(name, serve, self_signed)
    ours = await head_failure(url, **options)
    theirs = ours.__cause__
    assert isinstance(theirs, PyreqwestError)
    rule, causes = HEAD_ERRORS[name], cause_chain(theirs)
    assert isinstance(theirs, rule.raised), theirs
    for words in rule.causes:
        assert any(words in cause for cause in causes), f"{words!r} no longer in {causes}"
    assert head_rule(theirs, url.startswith("https:")) == name, causes
    assert ours.kind == EXPECTED[name], ours
    assert ours.host_level == (name in ("connect timeout", "dns", "refused", "tunnel")), ours


async def test_a_silent_server_is_no_connect_timeout(serve: Serve) -> None:
    """What tells a silent server from a slow connect: the cause chain of the one lacks ``CONNECTING``."""
    ours = await head_failure(
        f"http://127.0.0.1:{await serve(silent)}/", connect_timeout=LONG, read_timeout=SHORT
    )
    assert isinstance(ours.__cause__, PyreqwestError) and CONNECTING not in cause_chain(ours.__cause__)
    assert str(ours) == f"no data for {SHORT:g} s (read timeout)"


async def body_failure(url: str, **options: Any) -> errors.DownloadError:
    """Read a body as the backend does, expecting it to fail after the head; our error for it."""
    spec = RunSpec.from_options(retries=0, **options)
    client = build_client(spec.transport())
    try:
        async with client.get(url).streamed_read_buffer_limit(0).build_streamed() as resp:
            assert resp.status == 200
            with pytest.raises(PyreqwestError) as caught:
                await drain(resp.body_reader)
    finally:
        await client.close()
    return body_error(caught.value, spec.timeouts.read_timeout)


async def drain(reader: ResponseBodyReader) -> None:
    while await reader.read_chunk() is not None:
        pass


async def test_a_body_cut_short_is_truncated(serve: Serve) -> None:
    ours = await body_failure(f"http://127.0.0.1:{await serve(head_then_close)}/")
    assert ours.kind == "truncated" and ours.retryable, ours


async def test_a_body_gone_silent_is_a_read_timeout(serve: Serve) -> None:
    ours = await body_failure(f"http://127.0.0.1:{await serve(head_then_silent)}/", read_timeout=SHORT)
    assert (ours.kind, ours.stall) == ("timeout", True), ours


async def test_a_redirect_is_handed_back_not_followed(serve: Serve) -> None:
    """The client follows no redirect, so it never fails on too many: ``--max-redirects`` is ours."""
    url = f"http://127.0.0.1:{await serve(redirect_loop)}/"
    client = build_client(RunSpec.from_options().transport())
    try:
        async with client.get(url).build_streamed() as resp:
            assert (resp.status, resp.get_header("location")) == (302, "/")
    finally:
        await client.close()
