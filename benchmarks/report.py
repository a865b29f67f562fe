"""Time and peak memory of ``downloader report`` against the length of the manifest (docs/performance.md).

Writes a synthetic manifest per size (rows shaped like a real run's: 90 % ok with sizes, latencies and
image fields, failures of several kinds spread over 5,000 hosts, some invalid rows and duplicates, a
wall-clock ``t`` over an hour), then runs ``downloader report`` on it in a child process and reads the
child's CPU time and peak RSS from ``os.wait4``. No image files exist, so the contact sheet is empty:
this measures the streaming pass and the page, not thumbnails.

    python benchmarks/report.py                  # 100k and 1M rows
    python benchmarks/report.py 10000000

The manifests go under /dev/shm when it exists (removed afterwards); they are not kept.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KINDS = ("http_4xx", "http_5xx", "timeout", "connect", "dns", "not_image")


def row(i: int, rng: random.Random, start: float, span: float) -> dict[str, object]:
    """One manifest row, of the run's mix."""
    r = rng.random()
    url = f"http://h{rng.randrange(5000)}.example/img/{i}.jpg"
    base: dict[str, object] = {"url": url, "line": i + 1, "t": round(start + span * i / 1e6, 3)}
    if r < 0.9:
        size = int(rng.lognormvariate(11, 1))
        elapsed = rng.lognormvariate(-2, 0.7)
        return base | {
            **{"path": f"{i:09d}.jpg", "status": "ok", "kind": None, "http_status": 200, "bytes": size},
            **{"sha256": "0" * 64, "content_type": "image/jpeg", "attempts": 1, "elapsed_s": elapsed},
            **{"ttfb_s": elapsed / 3, "error": None, "width": 256, "height": 256, "format": "jpg"},
        }
    if r < 0.98:
        kind = KINDS[rng.randrange(len(KINDS))]
        return base | {"path": None, "status": "failed", "kind": kind, "elapsed_s": 0.5, "error": f"{kind}!"}
    if r < 0.99:
        return base | {"url": f"junk {i}", "status": "invalid", "kind": "invalid_url", "error": "not a URL"}
    return base | {"path": None, "status": "duplicate", "kind": None, "elapsed_s": 0.0}


def write_manifest(out: Path, rows: int) -> None:
    rng, start = random.Random(rows), time.time() - 3600
    with (out / "manifest.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(rows):
            fh.write(json.dumps(row(i, rng, start, 3600 * 1e6 / rows), separators=(",", ":")) + "\n")


def measure(out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one ``downloader report`` child."""
    argv = [sys.executable, "-m", "downloader", "report", str(out), "-o", str(out / "report.html")]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"report exited {proc.returncode}")
    return time.perf_counter() - began, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    args = parser.parse_args()
    root = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    print("| rows | manifest MB | report s | CPU s | peak RSS MB | page kB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        out = Path(tempfile.mkdtemp(prefix="downloader-report-bench-", dir=root))
        try:
            write_manifest(out, size)
            wall, cpu, rss = measure(out)
            mb = (out / "manifest.jsonl").stat().st_size / 1e6
            kb = (out / "report.html").stat().st_size / 1e3
            print(f"| {size:,} | {mb:,.0f} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {kb:.0f} |", flush=True)
        finally:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
