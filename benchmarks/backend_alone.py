"""One backend's own cost per URL: ``Backend.fetch`` in a loop, with no engine and a writer that keeps
nothing, so what is measured is the HTTP client, the shared checks and sha256 of the body.

    python benchmarks/backend_alone.py BACKEND LIST [N] [CONCURRENCY]

prints files/s and the process's CPU µs per URL (every thread: pyreqwest's tokio thread counts too), on
the loop a run uses (uvloop where installed, the collector tuned as in a run).
Run it pinned to one CPU (``taskset -c 1``) against the yardstick's nginx to compare backends.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time

from downloader.backends import create_backend
from downloader.loop import run_loop
from downloader.models import Stored
from downloader.spec import Content, Network, Timeouts, Transport
from downloader.writers import SampleWriter


class Discard:
    """A writer that keeps nothing."""

    async def write(self, piece: bytes) -> None:
        return None

    async def commit(self, kind: str | None) -> Stored:
        return Stored("")

    async def abort(self) -> None:
        return None


class Nowhere:
    def open(self, rel: str) -> SampleWriter:
        return Discard()


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(name: str, urls: list[str], concurrency: int) -> None:
    tp = Transport(
        network=Network(backend=name), timeouts=Timeouts(), content=Content(), slots=concurrency, per_host=0
    )
    todo = iter(urls)
    async with create_backend(tp, Nowhere()) as backend:  # type: ignore[arg-type]

        async def worker() -> None:
            for url in todo:
                await backend.fetch(url, "x")

        cpu, wall = cpu_s(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu, wall = cpu_s() - cpu, time.perf_counter() - wall
    print(f"{name}: {len(urls) / wall:.0f} files/s, {cpu / len(urls) * 1e6:.0f} µs CPU a URL")


if __name__ == "__main__":
    with open(sys.argv[2]) as lines:
        listed = [line.strip() for line in lines if line.strip()]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    run_loop(main(sys.argv[1], listed[:n], int(sys.argv[4]) if len(sys.argv) > 4 else 64), "auto")
