"""The state database's cost: rows per second each database takes into the archive (and answers from
it), and dataset runs with and without it: ``--procs 1`` without a database, ``--procs 1`` with the
default SQLite file, and two static workers (``--rank``) sharing SQLite, MariaDB or PostgreSQL.

nginx on 127.0.0.1 serves one small JPEG for every path; OUT is in /dev/shm; each database run gets a
fresh database of its own (dropped afterwards). Files/s is the list's rows over the wall time until the
last worker ended; peak RSS is the largest worker's (``/usr/bin/time -v``).

    python benchmarks/state.py                    # 200,000 URLs, -c 64, every database
    python benchmarks/state.py 50000 --dbs sqlite postgresql

Needs nginx, ``/usr/bin/time``, and the servers (MariaDB root@127.0.0.1:3306, PostgreSQL
postgres@127.0.0.1:5432) for their rows.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nginx_origin import peak_rss_mb, serving, url_list

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from downloader.keys import archive_digest
from downloader.state import Archived
from downloader.state.drivers import open_state

PORT = 18093
JPEG = Path(__file__).resolve().parent.parent / "fixtures" / "image-00.jpg"
SERVERS = {
    "mariadb": "mysql://root@127.0.0.1:3306/{db}",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/{db}",
}


async def _admin(kind: str, sql: str) -> None:
    if kind == "mariadb":
        import aiomysql

        conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root", password="")
        async with conn.cursor() as cur:
            await cur.execute(sql)
        conn.close()
    else:
        import asyncpg

        pg = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
        await pg.execute(sql)
        await pg.close()


@contextmanager
def database(kind: str, scratch: Path) -> Iterator[str]:
    """A fresh database's URL, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{scratch / f'state-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    name = f"dl_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(kind, f"CREATE DATABASE {name}"))
    try:
        yield SERVERS[kind].format(db=name)
    finally:
        asyncio.run(_admin(kind, f"DROP DATABASE {name}" + (" WITH (FORCE)" if kind == "postgresql" else "")))


async def archive_rates(url: str, n: int) -> tuple[float, float]:
    """(rows/s written by ``archive``, rows/s answered by ``archived``), a shard's 10,000 rows a call."""
    entries = [
        Archived(
            archive_digest(f"http://h/{i}.jpg"),
            f"http://h/{i}.jpg",
            "ok",
            "ab" * 32,
            f"/o/0.tar#{i:09d}",
            "r",
        )
        for i in range(n)
    ]
    async with open_state(url) as db:
        await db.setup()
        t0 = time.perf_counter()
        for i in range(0, n, 10_000):
            await db.archive(entries[i : i + 10_000])
        t1 = time.perf_counter()
        for i in range(0, n, 10_000):
            await db.archived([e.digest for e in entries[i : i + 10_000]])
        t2 = time.perf_counter()
    return n / (t1 - t0), n / (t2 - t1)


def run_workers(
    urls: Path, n: int, out: Path, *, state: str | None, world: int, conc: int
) -> tuple[float, float]:
    """(files/s, peak RSS MB of the largest process) of ``world`` workers (0: one ``--procs 1`` run)."""
    exe = Path(sys.executable).with_name("downloader")
    base = ["/usr/bin/time", "-v", str(exe), "fetch", str(urls), "-o", str(out), "-q", "--procs", "1"]
    base += ["--output-format", "webdataset", "-c", str(conc), "--state", state or "none"]
    cmds = [base] if not world else [[*base, "--rank", str(r), "--world", str(world)] for r in range(world)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stderr=subprocess.PIPE, text=True) for c in cmds]
    errs = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[e[-400:] for e in errs]}")
    return n / wall, max(peak_rss_mb(e) for e in errs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("size", nargs="?", type=int, default=200_000)
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--dbs", nargs="+", default=["sqlite", "mariadb", "postgresql"])
    ap.add_argument("--archive-rows", type=int, default=100_000)
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-state-", dir="/dev/shm"))
    try:
        print("| database | archive rows/s written | archive rows/s looked up |\n|---|---:|---:|")
        for kind in args.dbs:
            with database(kind, scratch) as url:
                put, get = asyncio.run(archive_rates(url, args.archive_rows))
            print(f"| {kind} | {put:,.0f} | {get:,.0f} |", flush=True)
        with serving(JPEG.read_bytes(), "image.jpg", "image/jpeg", PORT) as origin:
            urls = url_list(origin, PORT, args.size)
            print(f"\n{args.size:,} URLs, -c {args.concurrency} a process\n")
            print("| run | files/s | peak RSS MB a process |\n|---|---:|---:|")
            runs: list[tuple[str, str | None, int]] = [
                ("--procs 1, --state none", None, 0),
                ("--procs 1, default SQLite", "", 0),
            ]
            runs += [(f"2 static workers, {kind}", kind, 2) for kind in args.dbs]
            for label, kind, world in runs:
                out = Path(tempfile.mkdtemp(prefix="out-", dir=scratch))
                if kind is None or kind == "":
                    state = None if kind is None else f"sqlite:///{out / '_shards' / 'state.sqlite'}"
                    rate, rss = run_workers(
                        urls, args.size, out, state=state, world=world, conc=args.concurrency
                    )
                else:
                    with database(kind, scratch) as url:
                        rate, rss = run_workers(
                            urls, args.size, out, state=url, world=world, conc=args.concurrency
                        )
                shutil.rmtree(out, ignore_errors=True)
                print(f"| {label} | {rate:,.0f} | {rss:,.0f} |", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
