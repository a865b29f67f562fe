"""Dataset shards (``--output-format webdataset|parquet``): contents equal the manifest, keys, captions,
resume from a spool, ``--retry-failed`` on a done shard, ``--procs``; every backend, a real origin."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from PIL import Image

from downloader import download
from downloader.cli import main
from tests.faults import JPEG, PNG
from tests.helpers import (
    STATUSES,
    complete_rows,
    complete_tar,
    done_shards,
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

PNGS = ("000000002", "000000005", "000000008", "000000011")


async def test_webdataset_shards_hold_each_ok_row_with_its_row_and_caption(
    origin: TestServer, tmp_path: Path, backend: str
) -> None:
    lst, _ = mixed_list(origin, tmp_path)
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "4", "--caption-column", "caption")
    res = await fetch(lst, out, "--backend", backend, *args)
    assert res.exit_code == 1, res.output  # a 404 and a bad URL
    assert sorted(p.name for p in out.glob("*.tar")) == ["00000.tar", "00001.tar", "00002.tar"]
    rows = shard_rows(out)
    assert [r["line"] for r in rows] == list(range(2, 12))  # every input row once, in order (header: 1)
    assert [r["key"] for r in rows] == [f"{n:09d}" for n in range(2, 12)]
    status = {r["key"]: r["status"] for r in rows}
    assert list(status.values()) == STATUSES
    dup = rows[5]
    assert dup["duplicate_of"] == "000000006" and dup["path"] == rows[4]["path"]
    samples = tar_samples(out)
    assert [s["__key__"] for s in samples] == [r["key"] for r in rows if r["status"] == "ok"]
    for s in samples:
        row = json.loads(s["json"])
        assert row == next(r for r in rows if r["key"] == s["__key__"])
        ext = "png" if s["__key__"] in PNGS else "jpg"
        assert s[ext] == (PNG if ext == "png" else JPEG)
        assert s["txt"] == f"caption {row['line'] - 2}".encode()
        assert row["path"] == f"{s['__url__'].rsplit('/', 1)[1]}/{s['__key__']}.{ext}"
    meta = pq.read_table(out / "_shards" / "00001.parquet").to_pylist()
    assert [r["key"] for r in meta] == [r["key"] for r in rows[4:8]]  # failures included
    assert not list(out.glob(".*")) and not list((out / "_shards").glob("*.spool"))
    assert json.loads((out / "_shards" / "00001.done.json").read_text())["rows"] == 4


async def test_parquet_shards_hold_the_bytes_beside_the_row(
    origin: TestServer, tmp_path: Path, backend: str
) -> None:
    lst, _ = mixed_list(origin, tmp_path)
    out = tmp_path / "out"
    args = ("--output-format", "parquet", "--shard-size", "6", "--caption-column", "caption")
    res = await fetch(lst, out, "--backend", backend, *args)
    assert res.exit_code == 1, res.output
    tables = [pq.read_table(p).to_pylist() for p in sorted(out.glob("*.parquet"))]
    assert [len(t) for t in tables] == [6, 4]
    rows = [r for t in tables for r in t]
    given = [{k: v for k, v in r.items() if v is not None} for r in shard_rows(out)]
    assert [{k: v for k, v in r.items() if k != "image" and v is not None} for r in rows] == given
    for r in rows:
        expected = None if r["status"] != "ok" else PNG if r["path"].endswith(".png") else JPEG
        assert r["image"] == expected
    assert [r["caption"] for r in rows] == [f"caption {n}" for n in range(10)]  # carried: a caption column


async def test_a_rerun_skips_done_shards(origin: TestServer, tmp_path: Path, backend: str) -> None:
    lst, _ = mixed_list(origin, tmp_path)
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "4", "--backend", backend)
    await fetch(lst, out, *args)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    res = await fetch(lst, out, *args)
    assert res.exit_code == 0 and "10 skipped" in res.output, res.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")} == before
    assert hits(origin, "/img/1/image-00.jpg") == 1


def stored(out: Path) -> dict[str, bytes]:
    """Key → image bytes of every sample in OUT's tars or Parquet shards."""
    if list(out.glob("*.tar")):
        return {s["__key__"]: s["jpg"] for s in tar_samples(out)}
    if list(out.glob("[0-9]*/")):  # plain files in shards: a folder each
        return {p.stem: p.read_bytes() for p in sorted(out.glob("[0-9]*/*.jpg"))}
    rows = [r for p in sorted(out.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return {r["key"]: r["image"] for r in rows if r["image"] is not None}


@pytest.mark.parametrize("fmt", ["webdataset", "parquet", "files"])
async def test_retry_failed_rewrites_a_done_shard_and_fetches_only_the_failures(
    origin: TestServer, tmp_path: Path, backend: str, fmt: str
) -> None:
    state = ("--state", f"sqlite:///{tmp_path / 'state.sqlite'}") if fmt == "files" else ()  # in shards
    urls = [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(3)]
    urls.insert(1, str(origin.make_url("/flaky/1/f.jpg")))
    lst = write_csv(tmp_path / "list.csv", [(u, "") for u in urls])
    out = tmp_path / "out"
    args = ("--output-format", fmt, "--shard-size", "3", "--retries", "0", "--backend", backend, *state)
    assert (await fetch(lst, out, *args)).exit_code == 1
    assert list(stored(out)) == ["000000002", "000000004", "000000005"]
    res = await asyncio.to_thread(invoke, "fetch", "--retry-failed", "-o", str(out), *args[4:])
    assert res.exit_code == 0, res.output
    assert stored(out) == dict.fromkeys(["000000002", "000000003", "000000004", "000000005"], JPEG)
    assert [r["status"] for r in shard_rows(out)] == ["ok"] * 4
    assert hits(origin, "/flaky/1/f.jpg") == 2 and all(
        hits(origin, f"/img/{i}/image-00.jpg") == 1 for i in range(3)
    )


async def test_procs_2_makes_the_same_dataset_as_procs_1(
    origin: TestServer, tmp_path: Path, backend: str
) -> None:
    lst, _ = mixed_list(origin, tmp_path)
    made = {}
    for procs in ("1", "2"):
        out = tmp_path / f"out{procs}"
        args = ("--output-format", "webdataset", "--shard-size", "3", "--backend", backend)
        res = await fetch(lst, out, *args, "--procs", procs)
        assert res.exit_code == 1, res.output
        assert sorted(p.name for p in out.glob("*.tar")) == [f"0000{k}.tar" for k in range(4)]
        made[procs] = untimed(out)
    assert made["1"] == made["2"] and len(made["1"]) == 7


def test_stdin_cannot_be_sharded(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["fetch", "-", "-o", str(tmp_path), "--output-format", "parquet"], input=""
    )
    assert res.exit_code == 2 and "stdin" in res.output


# -- kill -9 of a real CLI process, and a rerun -----------------------------------------------------------


def finishing(out: Path) -> Callable[[], bool]:
    """The first shard's tar under its temporary name, or just renamed (its marker maybe not yet)."""
    return lambda: bool(list(out.glob(".0*.tar.*.part"))) or bool(list(out.glob("*.tar")))


@pytest.mark.parametrize("when", ["during a shard", "between shards", "while finishing", "twice"])
async def test_kill_9_then_rerun_fetches_nothing_complete_twice(
    origin: TestServer, tmp_path: Path, backend: str, when: str
) -> None:
    urls = [str(origin.make_url(f"/slow/{40 * (i % 3)}/{i}.jpg")) for i in range(24)]
    urls[5] = urls[3]  # a duplicate in the first shard
    lst = write_csv(tmp_path / "list.csv", [(u, f"c{i}") for i, u in enumerate(urls)])
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "8", "-c", "3", "--backend", backend)
    points = {
        "during a shard": [spooled(out, 3)],
        "between shards": [done_shards(out, 1)],
        "while finishing": [finishing(out)],
        "twice": [spooled(out, 2), spooled(out, 12)],
    }[when]
    paths = {u: "/" + u.split("/", 3)[3] for u in urls}
    complete: dict[str, int] = {}
    for ready in points:
        await kill_when(lst, out, ready, *args)
        assert all(complete_tar(p) for p in out.glob("*.tar"))  # nothing partial at a final name
        assert {u: hits(origin, paths[u]) for u in complete} == complete  # none fetched again
        complete = {u: hits(origin, paths[u]) for u in complete_rows(out)}
    assert complete
    res = await fetch(lst, out, *args)
    assert res.exit_code == 0, res.output
    assert {u: hits(origin, paths[u]) for u in complete} == complete  # no complete sample fetched twice
    rows = shard_rows(out)
    assert [r["line"] for r in rows] == list(range(2, 26))  # every input row exactly once
    keys = [s["__key__"] for s in tar_samples(out)]
    assert keys == [r["key"] for r in rows if r["status"] == "ok"] and len(keys) == 23
    assert not list(out.glob(".0*")) and not list((out / "_shards").glob("*part*"))  # no temporaries left


async def test_content_dedup_across_two_runs_stores_each_body_once(
    origin: TestServer, tmp_path: Path, backend: str
) -> None:
    img = [
        str(origin.make_url(f"/img/{i}/image-0{n}.{'png' if n == 2 else 'jpg'}"))
        for i, n in enumerate([0, 2, 0, 1, 2])
    ]
    lst = write_csv(tmp_path / "list.csv", [(u, "") for u in img[:3]])
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "3", "--dedup", "content", "--backend", backend)
    first = await fetch(lst, out, *args)
    assert first.exit_code == 0 and "1 duplicate" in first.output, first.output
    write_csv(lst, [(u, "") for u in img])  # the list grows: a second shard, two bodies seen before
    second = await fetch(lst, out, *args)
    assert second.exit_code == 0, second.output
    rows = shard_rows(out)
    # rows 0 and 2 hold one body and download side by side: whichever is stored first is the copy
    first_copy, other = (0, 2) if rows[0]["status"] == "ok" else (2, 0)
    assert [r["status"] for r in rows][1:2] + [r["status"] for r in rows][3:] == ["ok", "ok", "duplicate"]
    assert rows[first_copy]["status"] == "ok" and rows[other]["status"] == "duplicate"
    assert rows[other]["duplicate_of"] == rows[first_copy]["key"] and rows[4]["duplicate_of"] == "000000003"
    assert rows[other]["path"] == rows[first_copy]["path"]
    assert rows[4]["path"] == rows[1]["path"] == "00000.tar/000000003.png"
    stored = sorted(s["__key__"] for s in tar_samples(out))
    assert stored == sorted([rows[first_copy]["key"], "000000003", "000000005"])  # each body once


@pytest.mark.parametrize("fmt", ["webdataset", "parquet"])
async def test_with_the_image_stage_shards_hold_the_processed_images(
    origin: TestServer, tmp_path: Path, backend: str, fmt: str
) -> None:
    names = ["progressive.jpg", "alpha.png", "html.jpg", "panorama.jpg"]
    lst = write_csv(tmp_path / "list.csv", [(str(origin.make_url(f"/images/{n}/{n}")), n) for n in names])
    out = tmp_path / "out"
    sizes = ("--image-size", "32", "--resize-mode", "center_crop", "--encode-format", "webp")
    args = ("--output-format", fmt, "--backend", backend, *sizes, "--image-executor", "thread")
    res = await fetch(lst, out, *args)
    assert res.exit_code == 1, res.output  # html.jpg is no image
    rows = shard_rows(out)
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "ok"] and rows[2]["kind"] == "not_image"
    if fmt == "webdataset":
        stored = {s["__key__"]: s["webp"] for s in tar_samples(out)}
    else:
        stored = {
            r["key"]: r["image"] for r in pq.read_table(out / "00000.parquet").to_pylist() if r["image"]
        }
    assert sorted(stored) == ["000000002", "000000003", "000000005"]
    for row in (r for r in rows if r["status"] == "ok"):
        with Image.open(io.BytesIO(stored[row["key"]])) as im:
            assert (im.format, im.size) == ("WEBP", (32, 32))
        assert (row["width"], row["height"], row["format"]) == (32, 32, "webp")
        assert row["path"].endswith(f"/{row['key']}.webp") and row["bytes"] == len(stored[row["key"]])


def test_the_library_writes_files_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="writes files"):
        download([], tmp_path / "out", output_format="webdataset")
    assert not (tmp_path / "out").exists()


async def test_failures_and_the_report_read_the_shards(origin: TestServer, tmp_path: Path) -> None:
    """A dataset run keeps its rows beside its shards: the failures command and the report find them."""
    lst, urls = mixed_list(origin, tmp_path)
    out = tmp_path / "out"
    res = await fetch(lst, out, "--output-format", "webdataset", "--shard-size", "4")
    assert res.exit_code == 1 and f"downloader failures {out}" in res.output
    listed = await asyncio.to_thread(invoke, "failures", str(out))
    assert listed.exit_code == 0, listed.output
    assert sorted(line.split("\t")[0] for line in listed.output.splitlines()) == sorted([urls[7], urls[8]])
    made = await asyncio.to_thread(invoke, "report", str(out))
    assert made.exit_code == 0, made.output
    assert "http_4xx" in (out / "report.html").read_text()
