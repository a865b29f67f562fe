"""What tests share that is not a fixture: the CLI and the library driven as a user would, readers of
what a run leaves (the manifest, shards, tars), system programs a test needs, and a fake backend.
Fixtures stay in tests/conftest.py, which imports from here; a test imports helpers from here only,
never from conftest or from another test module."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import socket
import ssl
import sys
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from click.testing import Result as CliResult
from webdataset.tariterators import group_by_keys, tar_file_expander

from downloader.cli import main
from downloader.models import Deadline, Fetched, Result, Stats
from downloader.writers.tar import scan
from tests.faults import HITS

AiohttpServer = Callable[..., Awaitable[TestServer]]


REQUIRE_SYSTEM = "DOWNLOADER_REQUIRE_SYSTEM"


def require(program: str) -> str:
    """The path of a system program a test needs. Absent, the test skips with a one-line reason, or fails
    when ``DOWNLOADER_REQUIRE_SYSTEM=1`` (CI, which installs it: there a missing program is a broken
    environment, not a reason to pass quietly)."""
    found = shutil.which(program)
    if found is None:
        unavailable(f"{program} is not installed")
    return found


def unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason``, or fail it under ``DOWNLOADER_REQUIRE_SYSTEM=1``."""
    if os.environ.get(REQUIRE_SYSTEM) == "1":
        pytest.fail(f"{reason} and {REQUIRE_SYSTEM}=1")
    pytest.skip(reason)


@dataclass
class Run:
    stats: Stats
    results: list[Result]
    rows: list[dict[str, Any]]
    out: Path

    def row(self, url: str) -> dict[str, Any]:
        (found,) = [r for r in self.rows if r["url"] == url]
        return found

    def files(self) -> list[str]:
        """Every file left in the output folder, manifest and stats aside."""
        return sorted(
            str(p.relative_to(self.out))
            for p in self.out.rglob("*")
            if p.is_file() and p.name not in ("manifest.jsonl", "stats.json", "run.json")
        )


PUBLIC, PRIVATE = "127.0.0.2", "127.0.0.1"
"""A "public" address and a private one, both on loopback: what the address policy's tests tell apart."""


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be bound on ``host``, asked with a socket of our own: aiohttp's test server
    leaves its socket open when the bind fails (an unclosed-socket warning, an error here)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def public_and_private(
    serve: AiohttpServer, app: Callable[[], Any], context: ssl.SSLContext | None = None
) -> tuple[TestServer, TestServer]:
    """A "public" origin on 127.0.0.2 and a "private" one on 127.0.0.1, on one port (a name that
    answers first one address, then the other, reaches the same port on both)."""
    for _ in range(20):
        public = await serve(app(), host=PUBLIC, ssl=context)
        assert public.port is not None
        if port_free(PRIVATE, public.port):
            return public, await serve(app(), host=PRIVATE, port=public.port, ssl=context)
        await public.close()
    raise OSError("no port free on both 127.0.0.1 and 127.0.0.2")


def manifest_rows(out: Path) -> list[dict[str, Any]]:
    path = out / "manifest.jsonl"
    lines = path.read_text().split("\n") if path.exists() else []  # JSON Lines: a row ends at "\n" only
    return [json.loads(line) for line in lines if line]


def hits(server: TestServer, path: str) -> int:
    return server.app[HITS][path]


def invoke(*args: str, stdin: str | None = None) -> CliResult:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def write_list(tmp_path: Path, urls: list[str]) -> Path:
    path = tmp_path / "urls.txt"
    path.write_text("# a list\n" + "\n".join(urls) + "\n\n")
    return path


async def fetch(lst: Path, out: Path, *args: str) -> CliResult:
    return await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "--backoff", "0.01", *args)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["url", "caption"])
        w.writerows(rows)
    return path


def shard_rows(out: Path) -> list[dict[str, Any]]:
    """Every shard's final rows, in shard order."""
    paths = sorted((out / "_shards").glob("[0-9]*.jsonl"))
    return [json.loads(line) for p in paths for line in p.read_text().splitlines()]


def tar_samples(out: Path) -> list[dict[str, Any]]:
    """The samples of every tar in OUT as the webdataset library reads them."""
    found = []
    for path in sorted(out.glob("*.tar")):
        with path.open("rb") as fh:  # the library's own opener leaves its files to the collector
            found += list(group_by_keys(tar_file_expander([{"stream": fh, "url": str(path)}])))
    return found


def image(origin: TestServer, i: int) -> str:
    return str(origin.make_url(f"/img/{i}/image-{'02.png' if i % 3 == 0 else '00.jpg'}"))


def mixed_list(origin: TestServer, tmp_path: Path) -> tuple[Path, list[str]]:
    """Ten rows with captions: seven images (JPEG and PNG), a duplicate of row 4 (in the same shard of
    four), a 404 and a bad URL."""
    urls = [image(origin, i) for i in range(5)]
    urls += [urls[4], image(origin, 6), str(origin.make_url("/status/404/x")), "not a url", image(origin, 9)]
    lst = write_csv(tmp_path / "list.csv", [(u, f"caption {n}") for n, u in enumerate(urls)])
    return lst, urls


def untimed(out: Path) -> list[tuple[str, dict[str, bytes]]]:
    """What a trainer reads: each sample's key and files, its row without the timings."""
    found = []
    for s in tar_samples(out):
        row = json.loads(s["json"])
        del row["elapsed_s"], row["ttfb_s"], row["t"]
        files = {k: v for k, v in s.items() if not k.startswith("__") and k != "json"}
        found.append((s["__key__"], {**files, "json": json.dumps(row).encode()}))
    return found


def complete_tar(path: Path) -> bool:
    """A whole archive: every member's bytes there, and the two zero blocks that end it."""
    data = path.read_bytes()
    if not data.endswith(bytes(1024)):
        return False
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return all(len(tf.extractfile(m).read()) == m.size for m in tf.getmembers())  # type: ignore[union-attr]


def complete_rows(out: Path) -> set[str]:
    """URLs whose sample is complete: an ok row in a part manifest or in a done shard's rows."""
    paths = [*(out / "_shards").glob("*.part.jsonl"), *(out / "_shards").glob("[0-9]*.jsonl")]
    rows = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line.endswith("}")]
    return {r["url"] for r in rows if r["status"] == "ok"}


async def kill_when(lst: Path, out: Path, ready: Callable[[], bool], *args: str) -> None:
    """``downloader fetch`` as a subprocess, killed with SIGKILL once ``ready()`` holds."""
    cmd = [sys.executable, "-m", "downloader", "fetch", str(lst), "-o", str(out), "-q", *args]
    proc = await asyncio.create_subprocess_exec(*cmd)
    try:
        async with asyncio.timeout(30):
            while not ready() and proc.returncode is None:
                await asyncio.sleep(0.005)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def spooled(out: Path, n: int) -> Callable[[], bool]:
    def ready() -> bool:
        return sum(len(scan(str(p))) for p in (out / "_shards").glob("*.spool")) >= n

    return ready


class GatedBackend:
    """Holds every fetch until the test releases it; counts what is in flight."""

    name = "gated"

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.completed = 0
        self.gate = asyncio.Semaphore(0)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def fetch(self, url: str, rel: str, deadline: Deadline | None = None) -> Fetched:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.gate.acquire()
        finally:
            self.in_flight -= 1
        self.completed += 1
        return Fetched(200, 0, "", None, 0.0, rel)


PKG = Path(__file__).resolve().parent.parent / "downloader"


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def done_shards(out: Path, n: int) -> Callable[[], bool]:
    """True once ``n`` shards of OUT have their done marker."""
    return lambda: len(list((out / "_shards").glob("*.done.json"))) >= n


STATUSES = ["ok"] * 5 + ["duplicate", "ok", "failed", "invalid", "ok"]
"""The statuses of ``mixed_list``'s rows, in order."""
