"""The floor under the contract: ``plain_reqwest.py`` plus only what every stored file must have, with no
engine at all. Each body is hashed (sha256), written to ``NAME.part`` and renamed to its final name, and
gets one manifest row (orjson, appended in batches); the body is read with the head in one crossing from
the tokio thread where it is small. No names beyond the URL's last segment, no duplicate or resume
checks, no scheduling, retries, time limits, statistics or progress.

What this loop costs beyond ``plain_reqwest.py`` is the least any tool keeping the contract pays on top
of the HTTP client; what the project's run costs beyond this loop is its engine, names and checks. Run
beside them on the team's yardstick:

    ../shared/bench/peers.py small many --project . \\
        --cmd "reqwest-floor=$PWD/.venv/bin/python $PWD/benchmarks/floor_reqwest.py {list} {out} {conc}"
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Iterator

import orjson
import uvloop
from plain_args import plain_args
from pyreqwest.client import Client, ClientBuilder

BUFFERED = 64 << 10
"""Bytes reqwest may read before handing over the head: a small body comes with it."""


class Manifest:
    """Rows appended in batches of 256, as the project's manifest writer does."""

    def __init__(self, path: str) -> None:
        self.fh = open(path, "ab")  # noqa: SIM115 - closed by close()
        self.rows: list[bytes] = []

    def add(self, row: dict[str, object]) -> None:
        self.rows.append(orjson.dumps(row))
        if len(self.rows) >= 256:
            self.flush()

    def flush(self) -> None:
        self.fh.write(b"\n".join(self.rows) + b"\n" if self.rows else b"")
        self.rows.clear()

    def close(self) -> None:
        self.flush()
        self.fh.close()


async def fetch(client: Client, url: str, out: str, manifest: Manifest) -> None:
    start = time.monotonic()
    request = client.get(url).streamed_read_buffer_limit(BUFFERED).build_streamed()
    resp = await request.__aenter__()
    sha, size, final = hashlib.sha256(), 0, os.path.join(out, url.rsplit("/", 1)[-1])
    left = int(resp.get_header("content-length") or -1)
    fd = os.open(final + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while left and (piece := await resp.body_reader.read_chunk()) is not None:
            sha.update(piece)
            size += len(piece)
            left -= len(piece)
            os.write(fd, piece)
    finally:
        os.close(fd)
        if left:  # as the reqwest backend: a body read to its end (Content-Length) is not closed again
            await request.__aexit__(None, None, None)
    os.rename(final + ".part", final)
    manifest.add(
        {"url": url, "path": final, "status": "ok", "http_status": resp.status, "bytes": size,
         "sha256": sha.hexdigest(), "elapsed_s": round((time.monotonic() - start) * 1e6) / 1e6}
    )  # fmt: skip


async def main(urls: Iterator[str], out: str, concurrency: int) -> None:
    builder = ClientBuilder().gzip(False).brotli(False).zstd(False).deflate(False).follow_redirects(False)
    manifest = Manifest(os.path.join(out, ".manifest.jsonl"))

    async def worker() -> None:
        for url in urls:
            await fetch(client, url, out, manifest)

    async with builder.build() as client:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    manifest.close()


if __name__ == "__main__":
    urls, out_dir, concurrency = plain_args()
    uvloop.run(main(iter(urls), out_dir, concurrency))
