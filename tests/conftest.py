"""Shared fixtures: the fault-injecting origin on loopback, every backend, and a runner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from downloader.app.api import adownload
from downloader.backends import backend_names
from downloader.models import Result
from tests.dnsserver import DNSServer
from tests.faults import make_app
from tests.helpers import AiohttpServer, Run, manifest_rows


@pytest.fixture(params=backend_names())
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def origin(aiohttp_server: AiohttpServer) -> TestServer:
    return await aiohttp_server(make_app())


@pytest.fixture
async def dns_server() -> AsyncIterator[DNSServer]:
    """A DNS server on 127.0.0.1 (a random port, UDP and TCP) that the test scripts (tests/dnsserver.py)."""
    server = DNSServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def fetch(backend: str, tmp_path: Path) -> Callable[..., Awaitable[Run]]:
    """``await fetch(urls, **options)`` downloads with the test's backend into ``tmp_path/out``."""

    async def run(urls: list[str], **options: Any) -> Run:
        out = options.pop("out", tmp_path / "out")
        results: list[Result] = []
        options.setdefault("backoff", 0.01)
        stats = await adownload(urls, out, backend=backend, on_done=results.append, **options)
        return Run(stats, results, manifest_rows(out), out)

    return run
