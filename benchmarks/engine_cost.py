"""The engine's own cost per URL: everything of ours, with the network taken away.

An in-memory backend answers every GET at once with a small PNG body, through the same
``StreamingBackend.fetch`` the aiohttp, executor and curl backends use (status and opt-out checks, the
``BodyCheck`` with its sha256 and magic bytes, the output's writer, ``.part`` and rename). Around it
runs everything a real run pays for each URL: the list read into jobs (normalisation, digest, name),
the per-host scheduler, the attempt's timer, the result, the manifest row, the statistics and the
status-line reporter. The figure is CPU time (``time.process_time``: every thread of the process, so
the writer's thread hops count) divided by the URLs, taken around the run alone, not start-up.

    python benchmarks/engine_cost.py                     # 20,000 URLs on 300 hosts, files and null
    python benchmarks/engine_cost.py --output null -r 5  # without the file writes
    python benchmarks/engine_cost.py --profile prof.out  # cProfile of one run (files output)

``--output null`` keeps every step but the writes (its writer takes the pieces and commits nothing to
disk), so the difference between the two is what the files output costs.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from downloader.addresses import Pass
from downloader.app.assemble import arun, build_engine, build_output
from downloader.app.progress import LinesReporter, Reporter, Silent
from downloader.backends.base import Body, Head, StreamingBackend
from downloader.loop import run_loop
from downloader.models import Stats, Stored
from downloader.sources import jobs_from_urls
from downloader.spec import RunSpec
from downloader.writers import Output, SyncSampleWriter

SHM = "/dev/shm" if Path("/dev/shm").is_dir() else None
"""Output on tmpfs: a disk file system's journal makes the kernel's share of a small file swing 10x
from run to run (its writeback of the previous run), which would drown our own cost."""
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # 2,056 bytes that sniff as a PNG


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


class MemoryBackend(StreamingBackend):
    """Answers every GET at once, 200 with ``body`` in one piece: no socket, no thread, no wait."""

    name = "memory"

    def __init__(self, spec: RunSpec, output: Output, body: bytes) -> None:
        super().__init__(spec.transport(), output)
        self.head = Head(200, "OK", {"Content-Type": "image/png"}, len(body))
        self.body = body

    async def admit(self, url: str, before: Pass | None) -> Pass:
        """The gate's pass as for a host whose answer is cached (the names here resolve nowhere)."""
        return Pass(url.split("/", 3)[2], ("192.0.2.1",), trusted=False)

    @asynccontextmanager
    async def hop(self, url: str, through: Pass, home: bool) -> AsyncIterator[Body]:
        yield Body(self.head, _once(self.body))


class _NullWriter:
    __slots__ = ("rel",)

    def __init__(self, rel: str) -> None:
        self.rel = rel

    async def write(self, piece: bytes) -> None:
        return None

    async def commit(self, kind: str | None) -> Stored:
        return Stored(self.rel)

    async def abort(self) -> None:
        return None


class NullOutput:
    """An output that keeps nothing: the files output's cost is the difference from it."""

    def open(self, rel: str) -> _NullWriter:
        return _NullWriter(rel)

    def open_sync(self, rel: str) -> SyncSampleWriter:  # pragma: no cover - no thread backend here
        raise NotImplementedError


def urls(n: int, hosts: int) -> Iterator[str]:
    """``n`` image URLs spread over ``hosts`` hosts in turn, as a crawled list would be."""
    for i in range(n):
        yield f"http://img{i % hosts}.example.com/photos/{i // hosts}/pic{i}.png"


def one_run(args: argparse.Namespace, out: Path, profile: cProfile.Profile | None = None) -> Stats:
    spec = RunSpec.from_options(out=out, concurrency=args.concurrency)
    output: Output = NullOutput() if args.output == "null" else build_output(spec)
    engine = build_engine(spec, backend=MemoryBackend(spec, output, PNG[: args.size]))
    bar: Reporter = LinesReporter(args.n, io.StringIO(), 10.0) if args.progress else Silent()
    jobs = jobs_from_urls(urls(args.n, args.hosts), spec.naming)
    if profile is not None:
        profile.enable()
    try:
        return run_loop(arun(engine, jobs, progress=bar), args.loop)
    finally:
        if profile is not None:
            profile.disable()


def measure(args: argparse.Namespace, output: str) -> tuple[list[float], list[float]]:
    """CPU µs per URL of each repeat, and the kernel's share of it, in a fresh output folder each time."""
    args.output = output
    figures, kernel = [], []
    for _ in range(args.repeat):
        out = Path(tempfile.mkdtemp(prefix="engine-cost-", dir=args.tmp))
        try:
            cpu, sys0 = time.process_time(), os.times().system
            stats = one_run(args, out)
            cpu, sys1 = time.process_time() - cpu, os.times().system
        finally:
            shutil.rmtree(out, ignore_errors=True)
        assert stats.ok == args.n, stats.as_dict()
        figures.append(cpu / args.n * 1e6)
        kernel.append((sys1 - sys0) / args.n * 1e6)
    return figures, kernel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=20_000, help="URLs a run [%(default)s]")
    p.add_argument("--hosts", type=int, default=300, help="hosts they are spread over [%(default)s]")
    p.add_argument("-c", "--concurrency", type=int, default=64, help="[%(default)s]")
    p.add_argument("--size", type=int, default=2048, help="body bytes (at most 2,056) [%(default)s]")
    p.add_argument("-r", "--repeat", type=int, default=3, help="runs of each output [%(default)s]")
    p.add_argument("--output", choices=("files", "null", "both"), default="both")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no status lines")
    p.add_argument("--tmp", default=SHM, help="where the output folders go [%(default)s]")
    p.add_argument("--profile", metavar="FILE", help="cProfile one run of --output into FILE instead")
    args = p.parse_args()
    if args.profile:
        args.output = "files" if args.output == "both" else args.output
        out = Path(tempfile.mkdtemp(prefix="engine-cost-", dir=args.tmp))
        profile = cProfile.Profile()
        try:
            one_run(args, out, profile)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        profile.dump_stats(args.profile)
        return
    for output in ("files", "null") if args.output == "both" else (args.output,):
        figures, kernel = measure(args, output)
        shown = " ".join(f"{f:.1f}" for f in figures)
        print(
            f"{output:5} {args.n} URLs, {args.hosts} hosts, -c {args.concurrency}: "
            f"median {statistics.median(figures):.1f} µs CPU per URL (min {min(figures):.1f}; {shown}), "
            f"of which system {statistics.median(kernel):.1f}"
        )


if __name__ == "__main__":
    main()
