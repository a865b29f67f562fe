"""One list, three ways to run its shards: ``--procs 1``, ``--dask local:2`` and two static workers
(``--rank 0|1 --world 2``, two processes started together); and, for each ``--state URL`` given, the two
static workers sharing that database. Reports files/s (wall time of the whole run, start-up included),
the peak RSS of each process (VmHWM from /proc, sampled every 0.1 s over the process tree, so the Dask
client, its scheduler's and its workers' processes each count), the machine's load average before each
run (the machine may be shared) and, with a database, the rows written to it per second (every table's
rows counted before and after: sqlite3 here, ``psql`` or ``mysql`` for a server).

Serves fixtures/image-00.jpg for every path from nginx on 127.0.0.1 (``../shared/bench/setup.sh`` installs
it), writes webdataset shards into /dev/shm (the disk is not what is measured), a fresh OUT each time.
``-c`` is per process: ``--procs 1`` and each static worker get ``-c C``, ``--dask local:2`` gets ``-c 2C``
(which it splits between its two workers).

    python benchmarks/cluster.py                                  # 200,000 URLs at -c 64
    python benchmarks/cluster.py 50000 --variants procs1 dask ranks
    python benchmarks/cluster.py --state postgresql://postgres@127.0.0.1/test \\
        --state mysql://root@127.0.0.1/test --state sqlite:////dev/shm/bench-state.sqlite
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from nginx_origin import serving, url_list

PORT = 18092
JPEG = Path(__file__).resolve().parent.parent / "fixtures" / "image-00.jpg"
EXE = str(Path(sys.executable).with_name("downloader"))
VARIANTS = ("procs1", "dask", "ranks")


@dataclass
class Peaks:
    """The highest VmHWM seen per process of the trees under ``roots``, sampled until ``stop``."""

    roots: list[int]
    seen: dict[int, tuple[str, float]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        while not self.stop.wait(0.1):
            for root in self.roots:
                try:
                    procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for p in procs:
                    self._note(p)

    def _note(self, p: psutil.Process) -> None:
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
            line = " ".join(p.cmdline())
        except (OSError, psutil.Error):
            return
        if "resource_tracker" in line:  # multiprocessing's helper, not the tool's
            return
        name = "worker" if "spawn_main" in line else "main"
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0)
        if kb / 1024 > self.seen.get(p.pid, ("", 0.0))[1]:
            self.seen[p.pid] = (name, kb / 1024)

    def text(self) -> str:
        """Each process's peak in MB: the main processes, then their workers."""
        found = sorted(self.seen.values(), key=lambda seen: (seen[0] != "main", -seen[1]))
        return ", ".join(f"{name} {mb:.0f}" for name, mb in found)


def run_all(cmds: list[list[str]]) -> tuple[float, str]:
    """Start ``cmds`` together, wait for every one; (wall s, peak RSS per process)."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in cmds]
    peaks = Peaks([p.pid for p in procs])
    sampler = threading.Thread(target=peaks.sample, daemon=True)
    sampler.start()
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - t0
    peaks.stop.set()
    sampler.join()
    for p, err in zip(procs, errors, strict=True):
        if p.returncode:
            raise SystemExit(f"{' '.join(p.args)}: exit {p.returncode}: {err[-800:]}")  # type: ignore[arg-type]
    return wall, peaks.text()


def commands(variant: str, urls: Path, out: Path, c: int, state: str | None) -> list[list[str]]:
    base = [EXE, "fetch", str(urls), "-o", str(out), "-q", "--output-format", "webdataset"]
    with_state = ["--state", state] if state else []
    if variant == "procs1":
        return [[*base, "-c", str(c), "--procs", "1", *with_state]]
    if variant == "dask":
        return [[*base, "-c", str(2 * c), "--dask", "local:2", *with_state]]
    return [
        [*base, "-c", str(c), "--procs", "1", "--rank", str(i), "--world", "2", *with_state] for i in (0, 1)
    ]


def db_rows(url: str) -> int:
    """Rows in every table of the database ``url`` names."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url.split("://", 1)[1][1:] if url.startswith("sqlite:///") else parts.path
        if not os.path.exists(path):
            return 0
        with sqlite3.connect(path) as db:
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return sum(db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names)
    if parts.scheme.startswith("postgres"):
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        names = _sql(["psql", url, "-Atc", query])
        counts = [_sql(["psql", url, "-Atc", f'SELECT count(*) FROM "{n}"']) for n in names]
    else:
        login = ["mysql", "-h", parts.hostname or "127.0.0.1", "-P", str(parts.port or 3306)]
        login += [
            "-u",
            parts.username or "root",
            f"-p{parts.password or ''}",
            parts.path.lstrip("/"),
            "-N",
            "-e",
        ]
        names = _sql([*login, "SHOW TABLES"])
        counts = [_sql([*login, f"SELECT count(*) FROM `{n}`"]) for n in names]
    return sum(int(c[0]) for c in counts if c)


def _sql(cmd: list[str]) -> list[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line]


def measure(variant: str, urls: Path, n: int, args: argparse.Namespace, state: str | None) -> str:
    """One table line: a fresh OUT, the load average before, files/s, peaks and database rows/s."""
    out = Path(tempfile.mkdtemp(prefix=f"cluster-{variant}-", dir="/dev/shm"))
    load = os.getloadavg()[0]
    before = db_rows(state) if state else 0
    wall, peaks = run_all(commands(variant, urls, out, args.concurrency, state))
    written = f"{(db_rows(state) - before) / wall:,.0f}" if state else "–"
    shutil.rmtree(out, ignore_errors=True)
    name = variant + (f" + {urlsplit(state).scheme}" if state else "")
    return f"| {n:,} | {name} | {load:.1f} | {wall:.1f} | {n / wall:,.0f} | {peaks} | {written} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sizes", nargs="*", type=int, default=[200_000])
    ap.add_argument("-c", "--concurrency", type=int, default=64, help="per process")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--state", action="append", default=[], help="a database URL: adds 2 workers on it")
    args = ap.parse_args()
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is not installed: ../shared/bench/setup.sh (or apt-get install nginx-light)")
    with serving(JPEG.read_bytes(), "image.jpg", "image/jpeg", PORT) as run:
        print(f"-c {args.concurrency} per process, {JPEG.stat().st_size:,} B a body, {os.cpu_count()} CPUs")
        print("| URLs | runner | load before | wall s | files/s | peak RSS MB per process | DB rows/s |")
        print("|---:|---|---:|---:|---:|---|---:|")
        for n in args.sizes:
            urls = url_list(run, PORT, n, f"urls-{n}.txt")
            for variant in args.variants:
                print(measure(variant, urls, n, args, None), flush=True)
            for state in args.state:
                print(measure("ranks", urls, n, args, state), flush=True)


if __name__ == "__main__":
    main()
