"""Peak memory against the length of the URL list: the README's memory table.

Serves one tiny PNG for every path from nginx on 127.0.0.1 (so the origin is never the bottleneck and a
million files fit in tmpfs), then runs ``downloader fetch`` under ``/usr/bin/time -v`` for each list
length, with duplicate detection and resume on (the defaults), ``--layout shards`` and one process
(``/usr/bin/time`` reports the largest process, so ``--procs`` would hide the sum).

    python benchmarks/memory.py                  # 10k, 100k and 1M URLs at -c 64
    python benchmarks/memory.py 10000 100000 --backend curl

Needs nginx (``apt-get install nginx-light``) and ``/usr/bin/time``; writes under /dev/shm.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from nginx_origin import peak_rss_mb, serving

PORT = 18090


def tiny_png() -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def measure(n: int, run: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    urls = run / f"urls-{n}.txt"
    with urls.open("w") as fh:
        fh.writelines(f"http://127.0.0.1:{PORT}/t/{i}.png\n" for i in range(n))
    out = Path(tempfile.mkdtemp(prefix="mem-", dir="/dev/shm"))
    exe = Path(sys.executable).with_name("downloader")
    cmd = [
        "/usr/bin/time",
        "-v",
        str(exe),
        "fetch",
        str(urls),
        "-o",
        str(out),
        "-c",
        str(args.concurrency),
        "--backend",
        args.backend,
        "--layout",
        "shards",
        "--procs",
        "1",
        "-q",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode:
        raise SystemExit(f"fetch failed ({done.returncode}): {done.stderr[-500:]}")
    return peak_rss_mb(done.stderr), n / wall, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--backend", default="aiohttp")
    args = ap.parse_args()
    with serving(tiny_png(), "tiny.png", "image/png", PORT) as run:
        print(f"{args.backend}, -c {args.concurrency}, --layout shards")
        print("| URLs | peak RSS MB | files/s | wall s |")
        print("|---:|---:|---:|---:|")
        for n in args.sizes:
            rss, fps, wall = measure(n, run, args)
            print(f"| {n:,} | {rss:.0f} | {fps:,.0f} | {wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
