"""TLS, for every backend, against a real HTTPS origin on loopback whose certificate a throwaway CA signed:
untrusted by default, trusted with ``--ca-bundle``, unchecked with ``--insecure``."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.faults import JPEG, make_app
from tests.helpers import AiohttpServer, Run, require

Fetch = Callable[..., Awaitable[Run]]

LEAF_EXTENSIONS = "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA and a certificate for 127.0.0.1 that it signed (``ca.pem``, ``leaf.pem``, ``leaf.key``), and
    ``bundle.pem``: another CA's certificate, then this one's, as in a system bundle."""
    openssl, d = require("openssl"), tmp_path_factory.mktemp("tls")
    (d / "leaf.ext").write_text(LEAF_EXTENSIONS)
    steps = [
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem",
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem",
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout leaf.key -out leaf.csr",
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext"
        " -out leaf.pem",
    ]
    for step in steps:
        subprocess.run([openssl, *step.split()], cwd=d, check=True, capture_output=True)
    (d / "bundle.pem").write_bytes((d / "other.pem").read_bytes() + (d / "ca.pem").read_bytes())
    return d


@pytest.fixture
async def https_origin(aiohttp_server: AiohttpServer, certificates: Path) -> TestServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
    return await aiohttp_server(make_app(), ssl=context)


async def test_an_untrusted_certificate_fails_as_tls(https_origin: TestServer, fetch: Fetch) -> None:
    url = str(https_origin.make_url("/img/1/image-00.jpg"))
    assert url.startswith("https://")
    run = await fetch([url], retries=0)
    assert (run.row(url)["kind"], run.row(url)["attempts"]) == ("tls", 1)
    assert run.files() == []


async def test_ca_bundle_and_insecure_are_honoured(
    https_origin: TestServer, fetch: Fetch, certificates: Path, tmp_path: Path
) -> None:
    url = str(https_origin.make_url("/img/1/image-00.jpg"))
    trusted = await fetch([url], ca_bundle=str(certificates / "bundle.pem"), out=tmp_path / "a")
    unchecked = await fetch([url], insecure=True, out=tmp_path / "b")
    for run in (trusted, unchecked):
        assert run.row(url)["status"] == "ok"
        assert (run.out / run.row(url)["path"]).read_bytes() == JPEG
