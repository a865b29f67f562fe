"""Two URLs never share one file: whatever the naming option, a later URL whose name is taken (in this run
or an earlier one in OUT) is saved under the name plus its URL's digest, and the row and a warning say so."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestServer

from downloader.keys import digest64
from downloader.names import normalise, url_hash
from tests.faults import JPEG, PNG
from tests.helpers import Run, hits, invoke, manifest_rows

Fetch = Callable[..., Awaitable[Run]]


def _hashed(url: str, name: str) -> str:
    stem, ext = name.rsplit(".", 1)
    return f"{stem}.{url_hash(digest64(normalise(url)))}.{ext}"


async def test_plain_names_that_collide_keep_both_files(origin: TestServer, fetch: Fetch) -> None:
    first, second = str(origin.make_url("/img/a/image-00.jpg")), str(origin.make_url("/img/b/image-00.jpg"))
    other = str(origin.make_url("/img/c/IMAGE-00.jpg"))  # one file on a case-insensitive file system
    run = await fetch([first, second, other], names="plain")
    assert run.stats.ok == 3 and run.stats.renamed == 2
    assert run.row(first)["path"] == "image-00.jpg" and "note" not in run.row(first)
    assert run.row(second)["path"] == _hashed(second, "image-00.jpg")
    assert (
        run.row(second)["note"] == f"image-00.jpg is another URL's file; saved as {run.row(second)['path']}"
    )
    assert run.row(other)["path"] == _hashed(other, "IMAGE-00.jpg")
    assert len(run.files()) == 3
    again = await fetch([first, second, other], names="plain")  # a rerun finds them all: nothing refetched
    assert again.stats.skipped == 3 and again.stats.ok == 0
    assert hits(origin, "/img/a/image-00.jpg") == hits(origin, "/img/b/image-00.jpg") == 1


async def test_a_name_taken_by_an_earlier_run_is_not_overwritten(origin: TestServer, fetch: Fetch) -> None:
    first, second = str(origin.make_url("/img/a/image-00.jpg")), str(origin.make_url("/img/b/image-02.png"))
    await fetch([first], names="plain")
    renamed = str(origin.make_url("/img/b/image-00.jpg"))
    run = await fetch([renamed, second], names="plain")
    assert run.row(renamed)["path"] == _hashed(renamed, "image-00.jpg")
    assert (run.out / "image-00.jpg").read_bytes() == JPEG and (run.out / "image-02.png").read_bytes() == PNG


async def test_name_column_values_that_repeat(origin: TestServer, tmp_path: Path) -> None:
    urls = [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(3)]
    lst = tmp_path / "list.csv"
    lst.write_text("url,id\n" + "".join(f"{u},same\n" for u in urls))
    out = tmp_path / "out"
    args = ("fetch", str(lst), "-o", str(out), "--name-column", "id", "--names", "plain")
    res = await asyncio.to_thread(invoke, *args)
    assert res.exit_code == 0, res.output
    assert "name taken: same.jpg" in res.output and "names taken by another URL: 2" in res.output
    rows = manifest_rows(out)
    assert "same.jpg" in {r["path"] for r in rows} and len({r["path"] for r in rows}) == 3
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(r["path"] for r in rows)


async def test_procs_never_write_one_name_twice(origin: TestServer, tmp_path: Path) -> None:
    urls = [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(40)]
    lst = tmp_path / "urls.txt"
    lst.write_text("\n".join(urls) + "\n")
    out = tmp_path / "out"
    res = await asyncio.to_thread(
        invoke, "fetch", str(lst), "-o", str(out), "--names", "plain", "--procs", "2"
    )
    assert res.exit_code == 0, res.output
    rows = manifest_rows(out)
    assert len({r["path"] for r in rows}) == 40 == len(list(out.glob("*.jpg")))
    assert sum(r["path"] == "image-00.jpg" for r in rows) == 1
    args = ("fetch", str(lst), "-o", str(out), "--names", "plain", "--procs", "2")
    again = await asyncio.to_thread(invoke, *args)  # each worker knows every earlier row: nothing refetched
    assert again.exit_code == 0 and "0 ok, 0 failed, 40 skipped" in again.output, again.output
    assert all(hits(origin, f"/img/{i}/image-00.jpg") == 1 for i in range(40))
