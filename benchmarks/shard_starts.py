"""Time to a shard's first row, early and late in a list: by counting the rows before it (an older
plan's way) and by the plan's mark (a byte offset; for a gzip'd list, one in the decompressed stream).

Writes a list of N URLs (unresolvable hosts: only reading is measured) into a temporary folder, plain
and gzip'd, then for each: the plan's pass (counting alone, then counting and marking), and the first
row of shard 0 and of the last shard each way.

    python benchmarks/shard_starts.py                   # 10,000,000 URLs, shards of 10,000
    python benchmarks/shard_starts.py 1000000 --shard-size 1000
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tempfile
import time
from pathlib import Path

from downloader.inputs import Window, jobs_from_source, rows_and_marks, rows_in
from downloader.marks import Mark


def write_list(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(f"http://host{i % 997}.invalid/images/{i:08d}/photo-{i * 7919 % 100003}.jpg\n")


def first_row(source: str, k: int, size: int, at: Mark | None) -> tuple[float, int]:
    """Seconds to shard ``k``'s first row, and that row's line."""
    started = time.perf_counter()
    job = next(jobs_from_source(source, window=Window(k * size, (k + 1) * size, at)))
    return time.perf_counter() - started, job.line


def measure(source: str, size: int) -> None:
    started = time.perf_counter()
    rows = rows_in(source)
    counting = time.perf_counter() - started
    started = time.perf_counter()
    again, marks = rows_and_marks(source, size)
    marking = time.perf_counter() - started
    assert again == rows
    assert marks is not None
    last = (rows - 1) // size
    print(f"{source}: {rows:,} rows, {last + 1:,} shards of {size:,}")
    print(f"  plan pass: counting {counting:.2f} s, counting and marking {marking:.2f} s")
    for k in (0, last):
        by_count = first_row(source, k, size, None)
        by_mark = first_row(source, k, size, marks[k - 1] if k else None)
        assert by_count[1] == by_mark[1]
        print(f"  shard {k:,}: first row by counting {by_count[0]:.4f} s, by mark {by_mark[0]:.4f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, nargs="?", default=10_000_000)
    parser.add_argument("--shard-size", type=int, default=10_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="shard-starts-"))
    try:
        plain = folder / "list.txt"
        write_list(plain, args.rows)
        with plain.open("rb") as src, gzip.open(folder / "list.txt.gz", "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        for source in (plain, folder / "list.txt.gz"):
            measure(str(source), args.shard_size)
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
