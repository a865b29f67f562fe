"""Datasets written to an object store (``-o s3://bucket/prefix``), on a real S3 server (SeaweedFS on
loopback): every runner publishes whole shards, the done marker last; a kill -9 while a shard is
uploaded leaves no partial object and no open upload after the rerun, and nothing complete is fetched
twice. The result is read back from copies downloaded from the bucket, with webdataset and pyarrow."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from downloader.cli import main
from downloader.stores import blocking
from tests.faults import JPEG, PNG
from tests.helpers import (
    STATUSES,
    complete_tar,
    hits,
    mixed_list,
    shard_rows,
    tar_samples,
    write_csv,
)
from tests.s3server import SeaweedS3, raw_client

MB = 1 << 20


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


async def fetch(lst: Path | str, url: str, work: Path, *args: str) -> Result:
    cmd = ("fetch", str(lst), "-o", url, "--work-dir", str(work), "--backoff", "0.01", *args)
    return await asyncio.to_thread(invoke, *cmd)


def download_store(url: str, dest: Path) -> list[str]:
    """Every object under ``url`` copied into ``dest`` (as OUT would hold them); their keys."""
    with blocking(url) as store:
        keys = store.list()
        for key in keys:
            (dest / key).parent.mkdir(parents=True, exist_ok=True)
            store.get_file(key, dest / key)
    return keys


def open_uploads(server: SeaweedS3, url: str) -> list[str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    found = raw_client(server).list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/")
    return [u["Key"] for u in found.get("Uploads", [])]


WDS = ("--output-format", "webdataset", "--shard-size", "4", "--caption-column", "caption")


async def test_webdataset_to_a_store_reads_back_as_the_folder_would(
    origin: TestServer, tmp_path: Path, backend: str, s3_url: str
) -> None:
    lst, _ = mixed_list(origin, tmp_path)
    res = await fetch(lst, s3_url, tmp_path / "work", "--backend", backend, *WDS)
    assert res.exit_code == 1, res.output  # a 404 and a bad URL
    got = tmp_path / "got"
    keys = download_store(s3_url, got)
    assert {"00000.tar", "00002.tar", "_shards/00001.done.json", "run.json", "stats.json"} <= set(keys)
    assert "_shards/plan.json" in keys and not [k for k in keys if "spool" in k or "part" in k]
    assert not list((tmp_path / "work").glob("*.tar"))  # a shard lives in the store only
    rows = shard_rows(got)
    assert [r["line"] for r in rows] == list(range(2, 12)) and [r["status"] for r in rows] == STATUSES
    samples = tar_samples(got)
    assert [s["__key__"] for s in samples] == [r["key"] for r in rows if r["status"] == "ok"]
    assert all(s.get("jpg") == JPEG or s.get("png") == PNG for s in samples)
    assert [r["key"] for r in pq.read_table(got / "_shards" / "00001.parquet").to_pylist()] == [
        r["key"] for r in rows[4:8]
    ]
    again = await fetch(lst, s3_url, tmp_path / "other-work", "--backend", backend, *WDS)
    assert again.exit_code == 0 and "10 skipped" in again.output, again.output  # done: read from the store
    assert hits(origin, "/img/1/image-00.jpg") == 1


async def test_parquet_to_a_store(origin: TestServer, tmp_path: Path, s3_url: str) -> None:
    lst, _ = mixed_list(origin, tmp_path)
    args = ("--output-format", "parquet", "--shard-size", "6", "--caption-column", "caption")
    res = await fetch(lst, s3_url, tmp_path / "work", *args)
    assert res.exit_code == 1, res.output
    got = tmp_path / "got"
    download_store(s3_url, got)
    tables = [pq.read_table(p).to_pylist() for p in sorted(got.glob("*.parquet"))]
    assert [len(t) for t in tables] == [6, 4]
    rows = [r for t in tables for r in t]
    assert [r["status"] for r in rows] == STATUSES
    assert [r["caption"] for r in rows] == [f"caption {n}" for n in range(10)]
    for r in rows:
        assert r["image"] == (None if r["status"] != "ok" else PNG if r["path"].endswith(".png") else JPEG)


def many(origin: TestServer, tmp_path: Path, n: int = 16) -> tuple[Path, list[str]]:
    paths = [f"/img/{i}/image-00.jpg" for i in range(n)]
    return write_csv(tmp_path / "list.csv", [(str(origin.make_url(p)), "c") for p in paths]), paths


def check_dataset(got: Path, n: int) -> None:
    rows = shard_rows(got)
    assert [r["line"] for r in rows] == list(range(2, n + 2)) and {r["status"] for r in rows} == {"ok"}
    assert [s["__key__"] for s in tar_samples(got)] == [r["key"] for r in rows]


@pytest.mark.parametrize("how", ["--procs 2", "--dask local:2"])
async def test_runners_publish_every_shard_once(
    origin: TestServer, tmp_path: Path, s3_url: str, how: str
) -> None:
    lst, paths = many(origin, tmp_path)
    args = ("--output-format", "webdataset", "--shard-size", "4", *how.split())
    res = await fetch(lst, s3_url, tmp_path / "work", *args)
    assert res.exit_code == 0, res.output
    download_store(s3_url, tmp_path / "got")
    check_dataset(tmp_path / "got", 16)
    assert [hits(origin, p) for p in paths] == [1] * 16


async def test_two_ranks_with_a_shared_state_database(
    origin: TestServer, tmp_path: Path, s3_url: str
) -> None:
    """Two static workers, each with a work folder of its own (as on two machines), claim shards from
    one SQLite state database; each shard is made once."""
    lst, paths = many(origin, tmp_path)
    state = f"sqlite:///{tmp_path / 'state' / 'state.sqlite'}"
    (tmp_path / "state").mkdir()
    args = ("--output-format", "webdataset", "--shard-size", "2", "--state", state, "--world", "2")
    both = await asyncio.gather(
        *(fetch(lst, s3_url, tmp_path / f"work{r}", *args, "--rank", str(r)) for r in (0, 1))
    )
    assert [r.exit_code for r in both] == [0, 0], [r.output for r in both]
    keys = download_store(s3_url, tmp_path / "got")
    assert {"stats.rank-0.json", "stats.rank-1.json"} <= set(keys)
    check_dataset(tmp_path / "got", 16)
    assert [hits(origin, p) for p in paths] == [1] * 16
    made = [json.loads((tmp_path / f"work{r}" / "run.json").read_text())["run"] for r in (0, 1)]
    assert made[0] == made[1]  # one run in the database, whichever worker recorded it first


async def kill_mid_upload(cmd: list[str], server: SeaweedS3, url: str) -> bool:
    """Run ``cmd``; SIGKILL it as soon as an upload is open under ``url`` (or a tar is published);
    whether an open upload was caught."""
    proc = await asyncio.create_subprocess_exec(*cmd)
    caught = False
    try:
        async with asyncio.timeout(120):
            while proc.returncode is None:
                if open_uploads(server, url):
                    caught = True
                    break
                await asyncio.sleep(0.01)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return caught


async def test_kill_9_while_a_shard_is_uploaded_then_rerun(
    origin: TestServer, tmp_path: Path, seaweed_server: SeaweedS3, s3_url: str
) -> None:
    """Shard 0 holds two 40 MB images, so its tar (80 MB) goes up in parts, slowly enough to be caught:
    the kill leaves an open upload and no object; the rerun aborts it, fetches nothing again and
    publishes every shard whole."""
    paths = [f"/big/{40 * MB}?n={i}" for i in range(2)] + [f"/img/{i}/image-00.jpg" for i in range(2, 6)]
    lst = write_csv(tmp_path / "list.csv", [(str(origin.make_url(p)), "c") for p in paths])
    work = tmp_path / "work"
    args = ["--output-format", "webdataset", "--shard-size", "2", "-c", "2", "--max-size", "0"]
    cmd = [sys.executable, "-m", "downloader", "fetch", str(lst), "-o", s3_url, "--work-dir", str(work)]
    caught = await kill_mid_upload([*cmd, "-q", *args], seaweed_server, s3_url)
    with blocking(s3_url) as store:
        if store.exists("00000.tar"):  # too quick to catch: it is whole, then
            store.get_file("00000.tar", tmp_path / "early.tar")
            assert complete_tar(tmp_path / "early.tar")
        else:
            assert caught
    before = {p: hits(origin, p.split("?")[0]) for p in paths[:1]}
    assert before[paths[0]] == 2  # both big images fetched once, each
    res = await fetch(lst, s3_url, work, *args)
    assert res.exit_code == 0, res.output
    assert hits(origin, paths[0].split("?")[0]) == 2  # nothing complete fetched twice
    assert open_uploads(seaweed_server, s3_url) == []
    got = tmp_path / "got"
    download_store(s3_url, got)
    assert all(complete_tar(p) for p in got.glob("*.tar"))
    check_dataset(got, 6)
    assert len(tar_samples(got)[0]["jpg"]) == 40 * MB


async def test_a_list_in_a_store(origin: TestServer, tmp_path: Path, s3_url: str) -> None:
    """``fetch s3://…/list.csv`` reads a copy; the plan names the list by its URL, so a rerun matches."""
    lst, _ = many(origin, tmp_path, 6)
    with blocking(s3_url) as store:
        store.put_file(lst, "lists/list.csv")
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "4")
    res = await asyncio.to_thread(invoke, "fetch", f"{s3_url}/lists/list.csv", "-o", str(out), *args)
    assert res.exit_code == 0, res.output
    check_dataset(out, 6)
    plan: dict[str, Any] = json.loads((out / "_shards" / "plan.json").read_text())
    assert plan["source"] == f"{s3_url}/lists/list.csv"
    again = await asyncio.to_thread(invoke, "fetch", f"{s3_url}/lists/list.csv", "-o", str(out), *args)
    assert again.exit_code == 0 and "6 skipped" in again.output, again.output
    missing = await asyncio.to_thread(invoke, "fetch", f"{s3_url}/lists/none.csv", "-o", str(tmp_path / "m"))
    assert missing.exit_code == 2 and "no such list" in missing.output, missing.output
    plain = await asyncio.to_thread(invoke, "fetch", f"{s3_url}/lists/list.csv", "-o", str(tmp_path / "f"))
    assert plain.exit_code == 0 and len(list((tmp_path / "f").glob("*.jpg"))) == 6, plain.output


def test_files_to_a_store_and_reading_commands_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a.jpg\n")
    res = invoke("fetch", str(tmp_path / "urls.txt"), "-o", "s3://b/x", "--work-dir", str(tmp_path / "w"))
    assert res.exit_code == 2 and "give --output-format webdataset or parquet" in res.output, res.output
    res = invoke("fetch", str(tmp_path / "urls.txt"), "-o", str(tmp_path / "o"), "--work-dir", str(tmp_path))
    assert res.exit_code == 2 and "--work-dir is the local folder of a dataset" in res.output, res.output
    for command in ("report", "failures", "status"):
        res = invoke(command, "s3://b/x")
        assert res.exit_code == 2 and "local work folder" in res.output, res.output


async def test_a_glob_of_parquet_parts_in_a_store_is_one_list(
    origin: TestServer, tmp_path: Path, s3_url: str
) -> None:
    """``s3://…/parts/*.parquet``: the parts, in name order, read as one list (rows counted across them)."""
    import pyarrow as pa

    urls = [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(5)]
    with blocking(s3_url) as store:
        for n, chunk in enumerate((urls[:2], urls[2:])):
            pq.write_table(pa.table({"url": chunk}), tmp_path / f"p{n}.parquet")
            store.put_file(tmp_path / f"p{n}.parquet", f"parts/part-{n}.parquet")
        store.put_file(tmp_path / "p0.parquet", "parts/other/part-9.parquet")  # not matched: another folder
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "4")
    res = await asyncio.to_thread(invoke, "fetch", f"{s3_url}/parts/*.parquet", "-o", str(out), *args)
    assert res.exit_code == 0, res.output
    rows = shard_rows(out)
    assert [r["url"] for r in rows] == urls and [r["line"] for r in rows] == [1, 2, 3, 4, 5]


async def test_retry_failed_rewrites_a_shard_in_the_store(
    origin: TestServer, tmp_path: Path, s3_url: str
) -> None:
    """A done shard with a failure, rewritten from a fresh work folder: its shard fetched back from the
    store, only the failed row fetched again."""
    paths = ["/img/0/image-00.jpg", "/fail-then-ok/503/5/a.jpg", "/img/2/image-00.jpg"]
    lst = write_csv(tmp_path / "list.csv", [(str(origin.make_url(p)), "c") for p in paths])
    args = ("--output-format", "webdataset", "--shard-size", "4", "--retries", "0")
    first = await fetch(lst, s3_url, tmp_path / "work", *args)
    assert first.exit_code == 1, first.output
    res = await asyncio.to_thread(
        invoke, "fetch", "--retry-failed", "-o", s3_url, "--work-dir", str(tmp_path / "w2"), "--retries", "9",
        "--backoff", "0.01",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    got = tmp_path / "got"
    download_store(s3_url, got)
    check_dataset(got, 3)
    assert hits(origin, paths[0]) == 1 and not list((tmp_path / "w2").glob("*.tar"))
