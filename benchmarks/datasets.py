"""Dataset shards against loose files: files/s and peak RSS of ``downloader fetch`` for one list of URLs
written as ``--output-format files`` (``--layout shards``), ``webdataset`` and ``parquet``.

Serves fixtures/image-00.jpg for every path from nginx on 127.0.0.1 (the origin is never the bottleneck),
then runs each format under ``/usr/bin/time -v`` on one process, into /dev/shm (so the disk is not what is
measured), a fresh OUT each time. The shard writer should cost under 10 % of the files throughput, and
memory should stay flat as the list grows (compare two sizes).

    python benchmarks/datasets.py                          # 100,000 URLs at -c 64
    python benchmarks/datasets.py 20000 100000 --formats files webdataset

Needs nginx (``apt-get install nginx-light``) and ``/usr/bin/time``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nginx_origin import peak_rss_mb, serving, url_list

PORT = 18091
JPEG = Path(__file__).resolve().parent.parent / "fixtures" / "image-00.jpg"
FORMATS = {
    "files": ["--layout", "shards"],
    "webdataset": ["--output-format", "webdataset"],
    "parquet": ["--output-format", "parquet"],
}


def measure(urls: Path, n: int, fmt: str, args: argparse.Namespace) -> tuple[float, float, float]:
    """(files/s, peak RSS MB, wall s) of one run into a fresh folder."""
    out = Path(tempfile.mkdtemp(prefix=f"ds-{fmt}-", dir="/dev/shm"))
    exe = Path(sys.executable).with_name("downloader")
    cmd = ["/usr/bin/time", "-v", str(exe), "fetch", str(urls), "-o", str(out), "-q"]
    cmd += ["-c", str(args.concurrency), "--backend", args.backend, "--procs", "1", *FORMATS[fmt]]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode:
        raise SystemExit(f"{fmt}: fetch failed ({done.returncode}): {done.stderr[-500:]}")
    return n / wall, peak_rss_mb(done.stderr), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="*", type=int, default=[100_000])
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--backend", default="aiohttp")
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    args = ap.parse_args()
    with serving(JPEG.read_bytes(), "image.jpg", "image/jpeg", PORT) as run:
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
