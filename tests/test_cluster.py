"""Shards beyond one process: a Dask cluster (``--dask local:N`` started by the run, and a scheduler with
its workers as real processes, one of them killed mid-shard), static workers (``--rank I --world N``, real
CLI processes) and the shard lock. Each makes the same dataset as ``--procs 1``. The runners only decide
where ``process_shard`` runs, so one backend (the default) stands for all."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp.test_utils import TestServer
from distributed import Client

from downloader.report import build
from tests.faults import JPEG
from tests.helpers import (
    complete_rows,
    complete_tar,
    fetch,
    hits,
    invoke,
    kill_when,
    mixed_list,
    shard_rows,
    spooled,
    tar_samples,
    untimed,
    write_csv,
)

TIMINGS = ("elapsed_s", "ttfb_s", "t")
COUNTS = ("ok", "failed", "invalid", "duplicate", "skipped", "not_started", "bytes")
DATASET = ("--output-format", "webdataset", "--shard-size", "3")
DASK = (sys.executable, "-m", "dask")


def rows_untimed(out: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in shard_rows(out)]


def counts(path: Path) -> dict[str, Any]:
    stats = json.loads(path.read_text())
    return {k: stats[k] for k in COUNTS}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "downloader", *args]


async def reference(origin: TestServer, tmp_path: Path) -> tuple[Path, Path]:
    """The mixed list (ten rows: ok, a duplicate, a 404, a bad URL) made with ``--procs 1``."""
    lst, _ = mixed_list(origin, tmp_path)
    out = tmp_path / "procs1"
    res = await fetch(lst, out, *DATASET, "--procs", "1")
    assert res.exit_code == 1, res.output
    assert len(untimed(out)) == 7
    return lst, out


def same_output(out: Path, ref: Path) -> None:
    """The same shards (their members and bytes, rows without timings) and the same manifest rows."""
    assert sorted(p.name for p in out.glob("*.tar")) == [f"0000{k}.tar" for k in range(4)]
    assert untimed(out) == untimed(ref)
    assert rows_untimed(out) == rows_untimed(ref)
    assert not list(out.glob(".*")) and not list((out / "_shards").glob("*part*"))


# -- Dask ---------------------------------------------------------------------------------------------------


async def test_a_local_cluster_of_2_makes_the_same_dataset_as_procs_1(
    origin: TestServer, tmp_path: Path
) -> None:
    lst, ref = await reference(origin, tmp_path)
    out = tmp_path / "dask"
    res = await fetch(lst, out, *DATASET, "--dask", "local:2")
    assert res.exit_code == 1, res.output  # the 404 and the bad URL, as with --procs 1
    same_output(out, ref)
    assert counts(out / "stats.json") == counts(ref / "stats.json")
    assert "10/10 (100 %)" in res.output  # the bar advanced as shards finished
    assert "7 ok, 1 failed, 1 invalid, 1 duplicate" in res.output  # and the summary came back


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Dask scheduler and two single-thread workers under their nannies, each a real process on
    loopback; yields the scheduler's address and the workers' command (whose children are the workers)."""
    where = tmp_path_factory.mktemp("dask")
    info = where / "scheduler.json"
    quiet = subprocess.DEVNULL
    boss = subprocess.Popen(
        [
            *DASK,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        ],
        stdout=quiet,
        stderr=quiet,
    )
    crew = subprocess.Popen(
        [
            *(*DASK, "worker", "--scheduler-file", str(info), "--nworkers", "2", "--nthreads", "1"),
            *("--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "60"),
        ],
        stdout=quiet,
        stderr=quiet,
    )
    try:
        deadline = time.monotonic() + 60
        while not info.is_file():
            assert time.monotonic() < deadline and boss.poll() is None, "the Dask scheduler did not start"
            time.sleep(0.1)
        with Client(scheduler_file=str(info), timeout=60) as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(2, timeout=60)
        yield json.loads(info.read_text())["address"], crew
    finally:  # a graceful close first (a killed nanny leaves its semaphores in /dev/shm), then kill
        children = psutil.Process(crew.pid).children(recursive=True)
        for proc in (crew, boss):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        for proc in (crew, boss):
            proc.kill()
            proc.wait()


def lock_holder(lock: Path) -> int | None:
    """The process holding an ``flock`` on ``lock``, from /proc/locks."""
    inode = os.stat(lock).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[1] == str(inode):
            return int(fields[4])
    return None


async def test_a_scheduler_elsewhere_makes_the_same_dataset_as_procs_1(
    origin: TestServer, tmp_path: Path, scheduler: tuple[str, subprocess.Popen[bytes]]
) -> None:
    lst, ref = await reference(origin, tmp_path)
    out = tmp_path / "dask"
    res = await fetch(lst, out, *DATASET, "--dask", scheduler[0])
    assert res.exit_code == 1, res.output
    same_output(out, ref)


async def test_a_worker_killed_mid_shard_and_the_run_still_completes_once(
    origin: TestServer, tmp_path: Path, scheduler: tuple[str, subprocess.Popen[bytes]]
) -> None:
    urls = [str(origin.make_url(f"/slow/{40 * (i % 3)}/{i}.jpg")) for i in range(24)]
    lst = write_csv(tmp_path / "list.csv", [(u, f"c{i}") for i, u in enumerate(urls)])
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "8", "-c", "2", "--dask", scheduler[0])
    running = asyncio.create_task(fetch(lst, out, *args))
    async with asyncio.timeout(30):
        while not spooled(out, 3)():
            await asyncio.sleep(0.005)
    spools = sorted((out / "_shards").glob("*.spool"))
    holder = lock_holder(spools[0].with_name(spools[0].name.split(".")[0] + ".lock"))
    assert holder is not None and holder in {p.pid for p in psutil.Process(scheduler[1].pid).children()}
    os.kill(holder, signal.SIGKILL)
    complete = {u: hits(origin, "/" + u.split("/", 3)[3]) for u in complete_rows(out)}
    assert complete
    res = await running
    assert res.exit_code == 0, res.output
    assert [r["line"] for r in shard_rows(out)] == list(range(2, 26))  # every row exactly once
    assert len(tar_samples(out)) == 24 and all(complete_tar(p) for p in out.glob("*.tar"))
    assert {u: hits(origin, "/" + u.split("/", 3)[3]) for u in complete} == complete  # none fetched again
    assert not list(out.glob(".0*")) and not list((out / "_shards").glob("*part*"))


def unfinished_shards(dask_scheduler: Any) -> int:
    """On the scheduler: how many shard tasks it holds that have not finished."""
    waiting = ("waiting", "no-worker", "queued", "processing")
    return sum(1 for t in dask_scheduler.tasks.values() if "shard" in str(t.key) and t.state in waiting)


def watch(address: str, stop: threading.Event) -> list[int]:
    """The scheduler's unfinished shard tasks, every 20 ms until ``stop``."""
    seen = []
    with Client(address, timeout=30) as client:  # type: ignore[no-untyped-call]
        while not stop.wait(0.02):
            seen.append(client.run_on_scheduler(unfinished_shards))
    return seen


async def test_shards_are_submitted_a_bounded_number_ahead(
    origin: TestServer, tmp_path: Path, scheduler: tuple[str, subprocess.Popen[bytes]]
) -> None:
    urls = [str(origin.make_url(f"/slow/30/{i}.jpg")) for i in range(30)]
    lst = write_csv(tmp_path / "list.csv", [(u, "") for u in urls])
    stop = threading.Event()
    watching = asyncio.create_task(asyncio.to_thread(watch, scheduler[0], stop))
    await asyncio.sleep(0.5)
    args = ("--output-format", "webdataset", "--shard-size", "2", "-c", "2", "--dask", scheduler[0])
    res = await fetch(lst, tmp_path / "out", *args)
    stop.set()
    seen = await watching
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "out").glob("*.tar"))) == 15
    assert 2 <= max(seen) <= 4  # twice the cluster's two threads, never the fifteen shards at once


# -- static workers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("world", [2, 3])
async def test_static_workers_converge_on_the_output_of_procs_1(
    origin: TestServer, tmp_path: Path, world: int
) -> None:
    lst, ref = await reference(origin, tmp_path)
    out = tmp_path / "ranks"
    workers = [
        await asyncio.create_subprocess_exec(
            *cli("fetch", str(lst), "-o", str(out), "-q", *DATASET, "--rank", str(i), "--world", str(world))
        )
        for i in range(world)
    ]
    failing = 2 % world  # shard 2 holds the 404 and the bad URL
    assert [await w.wait() for w in workers] == [int(i == failing) for i in range(world)]
    same_output(out, ref)
    own = [counts(out / f"stats.rank-{i}.json") for i in range(world)]
    assert {k: sum(c[k] for c in own) for k in COUNTS} == counts(ref / "stats.json")
    assert not (out / "stats.json").exists()
    # the report of the finished run adds the workers' statistics up; so it does for one process
    ok = counts(ref / "stats.json")["ok"]
    for folder in (out, ref):
        html = build(folder).read_text(encoding="utf-8")
        assert "No final stats.json" not in html
        assert f"The last invocation alone (its stats.json) did {ok:,} ok" in html


async def test_a_second_process_on_a_shard_waits_for_the_first(origin: TestServer, tmp_path: Path) -> None:
    lst, ref = await reference(origin, tmp_path)
    out = tmp_path / "out"
    (out / "_shards").mkdir(parents=True)
    held = os.open(out / "_shards" / "00000.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = await asyncio.create_subprocess_exec(
            *cli(
                "fetch",
                str(lst),
                "-o",
                str(out),
                "--progress",
                "none",
                *DATASET,
                "--rank",
                "0",
                "--world",
                "1",
            ),
            stderr=asyncio.subprocess.PIPE,
        )
        assert worker.stderr is not None
        said = b"shard 00000 is being written by another process: waiting for it"
        async with asyncio.timeout(30):
            while said not in await worker.stderr.readline():
                pass
        await asyncio.sleep(0.3)
        assert worker.returncode is None and not list(out.glob("*.tar"))
    finally:
        os.close(held)  # lets go of the lock
    await worker.communicate()
    assert worker.returncode == 1
    same_output(out, ref)


# -- plain files, in shards ---------------------------------------------------------------------------------

FILES = ("--output-format", "files", "--shard-size", "3")


def folder_files(out: Path) -> dict[str, Any]:
    """Every shard folder's files (``00000/KEY.EXT``: its bytes; ``KEY.json``: its row without timings)."""
    found: dict[str, Any] = {}
    for path in sorted(out.glob("[0-9]*/*")):
        assert not path.name.startswith("."), path  # no working file left
        body = path.read_bytes()
        if path.suffix == ".json":
            found[f"{path.parent.name}/{path.name}"] = {
                k: v for k, v in json.loads(body).items() if k not in TIMINGS
            }
        else:
            found[f"{path.parent.name}/{path.name}"] = body
    return found


async def files_reference(origin: TestServer, tmp_path: Path) -> tuple[Path, Path]:
    """The mixed list made as plain files in shards by one process (``--rank 0 --world 1``)."""
    lst, _ = mixed_list(origin, tmp_path)
    out = tmp_path / "one"
    res = await fetch(lst, out, *FILES, "--rank", "0", "--world", "1")
    assert res.exit_code == 1, res.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "00000",
        "00001",
        "00002",
        "00003",
        "_shards",
    ]
    ok = [r for r in shard_rows(out) if r["status"] == "ok"]
    assert len(ok) == 7 and all((out / r["path"]).is_file() for r in ok)
    assert all(r["path"].startswith(f"{(r['line'] - 2) // 3:05d}/{r['key']}.") for r in ok)
    return lst, out


def same_files(out: Path, ref: Path) -> None:
    assert folder_files(out) == folder_files(ref)
    assert rows_untimed(out) == rows_untimed(ref)
    assert len(list((out / "_shards").glob("*.done.json"))) == 4
    assert not list((out / "_shards").glob("*part*")) and not list((out / "_shards").glob("*.spool"))


async def test_files_on_a_local_cluster_of_2_are_those_of_one_process(
    origin: TestServer, tmp_path: Path
) -> None:
    lst, ref = await files_reference(origin, tmp_path)
    out = tmp_path / "dask"
    res = await fetch(lst, out, *FILES, "--dask", "local:2")
    assert res.exit_code == 1, res.output
    same_files(out, ref)
    assert "7 ok, 1 failed, 1 invalid, 1 duplicate" in res.output


async def test_files_by_two_static_workers_are_those_of_one_process(
    origin: TestServer, tmp_path: Path
) -> None:
    lst, ref = await files_reference(origin, tmp_path)
    out = tmp_path / "ranks"
    workers = [
        await asyncio.create_subprocess_exec(
            *cli("fetch", str(lst), "-o", str(out), "-q", *FILES, "--rank", str(i), "--world", "2")
        )
        for i in range(2)
    ]
    assert [await w.wait() for w in workers] == [1, 0]  # shard 2 holds the 404 and the bad URL
    same_files(out, ref)


async def test_files_killed_mid_shard_and_rerun_hold_every_row_once(
    origin: TestServer, tmp_path: Path
) -> None:
    urls = [str(origin.make_url(f"/slow/{40 * (i % 3)}/{i}.jpg")) for i in range(12)]
    lst = write_csv(tmp_path / "list.csv", [(u, f"c{i}") for i, u in enumerate(urls)])
    out = tmp_path / "out"
    args = ("--output-format", "files", "--shard-size", "4", "-c", "2", "--rank", "0", "--world", "1")
    await kill_when(lst, out, lambda: len(complete_rows(out)) >= 6, *args)
    complete = {u: hits(origin, "/" + u.split("/", 3)[3]) for u in complete_rows(out)}
    assert complete and len(list((out / "_shards").glob("*.done.json"))) < 3  # killed mid-run
    res = await fetch(lst, out, *args)
    assert res.exit_code == 0, res.output
    rows = shard_rows(out)
    assert [r["line"] for r in rows] == list(range(2, 14))  # every row exactly once
    assert all((out / r["path"]).read_bytes() == JPEG for r in rows)
    assert {u: hits(origin, "/" + u.split("/", 3)[3]) for u in complete} == complete  # none fetched again
    assert not list(out.glob("[0-9]*/.*")) and not list((out / "_shards").glob("*part*"))


async def test_files_with_procs_are_sharded_only_when_a_state_asks(
    origin: TestServer, tmp_path: Path
) -> None:
    lst, ref = await files_reference(origin, tmp_path)
    out = tmp_path / "procs"
    res = await fetch(lst, out, *FILES, "--procs", "2", "--state", f"sqlite:///{tmp_path / 'state.sqlite'}")
    assert res.exit_code == 1, res.output
    same_files(out, ref)
    plain = tmp_path / "plain"
    res = await fetch(lst, plain, "--output-format", "files", "--procs", "2")
    assert res.exit_code == 1, res.output
    assert (
        not (plain / "_shards").exists() and (plain / "manifest.jsonl").is_file()
    )  # the plain pool, as ever


def test_a_plain_files_run_over_an_out_made_in_shards_is_a_usage_error(tmp_path: Path) -> None:
    lst, out = tmp_path / "list.txt", tmp_path / "out"
    lst.write_text("http://127.0.0.1:9/a.jpg\n")
    made = invoke("fetch", str(lst), "-o", str(out), "--retries", "0", *FILES, "--rank", "0", "--world", "1")
    assert made.exit_code == 1 and (out / "_shards" / "00000.done.json").is_file(), made.output
    plain = invoke("fetch", str(lst), "-o", str(out), "--output-format", "files")
    assert plain.exit_code == 2 and "holds a run made in shards" in plain.output, plain.output
    assert not (out / "manifest.jsonl").exists()


# -- usage errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((*DATASET, "--rank", "2", "--world", "2"), "--rank counts from 0"),
        ((*DATASET, "--rank", "0"), "--rank and --world go together"),
        ((*DATASET, "--dask", "local:2", "--rank", "0", "--world", "2"), "choose one"),
        ((*DATASET, "--dask", "127.0.0.1:8786"), "--dask takes a scheduler's address"),
        ((*DATASET, "--dask", "local:0"), "--dask takes a scheduler's address"),
        ((*DATASET, "--dask", "local:2", "--procs", "2"), "the cluster's workers are the processes"),
        ((*DATASET, "--dask", "local:2", "--image-size", "64"), "needs --image-executor thread or inline"),
    ],
)
def test_cluster_usage_errors_exit_2_with_a_sentence(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    lst = tmp_path / "list.txt"
    lst.write_text("http://127.0.0.1:9/a.jpg\n")
    res = invoke("fetch", str(lst), "-o", str(tmp_path / "out"), *args)
    assert res.exit_code == 2 and said in res.output, res.output
    assert not list((tmp_path / "out").glob("*.tar")) and not (tmp_path / "out" / "_shards").exists()


def test_a_scheduler_that_does_not_answer_is_a_usage_error(tmp_path: Path) -> None:
    lst = tmp_path / "list.txt"
    lst.write_text("http://127.0.0.1:9/a.jpg\n")
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{unused.getsockname()[1]}"
    args = ("fetch", str(lst), "-o", str(tmp_path / "out"), *DATASET, "--dask", address)
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    done = subprocess.run(cli(*args), capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 2
    assert f"no Dask scheduler answers at {address}" in done.stderr and "Traceback" not in done.stderr


def test_without_dask_installed_the_run_says_how_to_install_it(tmp_path: Path) -> None:
    lst = tmp_path / "list.txt"
    lst.write_text("http://127.0.0.1:9/a.jpg\n")
    hide = "import sys; sys.modules['distributed'] = None; from downloader.cli import main; main()"
    args = ("fetch", str(lst), "-o", str(tmp_path / "out"), *DATASET, "--dask", "local:1")
    done = subprocess.run([sys.executable, "-c", hide, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "pip install 'downloader[dask]'" in done.stderr and "Traceback" not in done.stderr
