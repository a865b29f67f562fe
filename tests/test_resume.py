"""Resume reads an earlier run's manifest, which may be damaged: a crash can tear its last line, and a
person may have edited it. Whatever is not a row is ignored; what is a row still counts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from downloader import keys
from downloader.app.api import adownload
from downloader.keys import digest64
from downloader.manifest import earlier_outcomes, failed_rows, jobs_from_manifest, read_manifest
from downloader.models import Naming, Result
from downloader.names import normalise
from tests.helpers import Run, hits

Fetch = Callable[..., Awaitable[Run]]

NOT_ROWS = [
    "[1, 2]",  # JSON, not an object
    "5",
    '"ok"',
    "null",
    '{"status": "ok", "path": "a.jpg"}',  # an object without a url
    '{"url": 7, "status": "ok", "path": "a.jpg"}',  # a url that is not a string
    "",
    "not json at all",
]


def row(url: str, status: str = "ok", path: str | None = "a.jpg", **more: Any) -> str:
    return json.dumps({"url": url, "line": 1, "status": status, "path": path, **more})


def digest(url: str) -> int:
    return digest64(normalise(url))


# -- reading (sans network) ------------------------------------------------------------------------------


def test_read_manifest_keeps_the_rows_and_nothing_else(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    good = [row("http://h/1.jpg"), row("http://h/2.jpg", "failed", None)]
    torn = row("http://h/3.jpg")[:30]
    manifest.write_text("\n".join([good[0], *NOT_ROWS, good[1], torn]), encoding="utf-8")
    assert [r["url"] for r in read_manifest(manifest)] == ["http://h/1.jpg", "http://h/2.jpg"]


def test_a_missing_manifest_has_no_rows(tmp_path: Path) -> None:
    assert list(read_manifest(tmp_path / "none.jsonl")) == []


def test_earlier_outcomes_take_the_latest_row_of_each_url(tmp_path: Path) -> None:
    """Done means: latest row ok or skipped, and its file still on disk. ``failed`` asks the opposite."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    lines = [
        row("http://h/ok.jpg"),
        row("http://h/skipped.jpg", "skipped"),
        row("http://h/gone.jpg", path="missing.jpg"),  # its file was deleted since
        row("http://h/nopath.jpg", path=None),
        row("http://h/later-failed.jpg"),
        row("http://h/later-failed.jpg", "failed", None),
        row("http://h/later-ok.jpg", "failed", None),
        row("http://h/later-ok.jpg"),
        row("http://h/dup.jpg", "duplicate"),  # says nothing about the URL's outcome
        row("http://h/bad.jpg", "invalid"),
        row("not a url", "ok"),
        *NOT_ROWS,
        row("http://h/torn.jpg")[:-5],
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(lines), encoding="utf-8")
    done = earlier_outcomes(manifest, tmp_path)
    failed = earlier_outcomes(manifest, tmp_path, failed=True)
    names = ["ok", "skipped", "gone", "nopath", "later-failed", "later-ok", "dup", "bad", "torn"]
    is_done = {n for n in names if digest(f"http://h/{n}.jpg") in done}
    is_failed = {n for n in names if digest(f"http://h/{n}.jpg") in failed}
    assert is_done == {"ok", "skipped", "later-ok"} and len(done) == 3
    assert is_failed == {"later-failed"} and len(failed) == 1
    done.close()
    failed.close()


def test_earlier_outcomes_of_one_shard(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    urls = [f"http://h/{i}.jpg" for i in range(40)]
    (tmp_path / "manifest.jsonl").write_text("\n".join(row(u) for u in urls), encoding="utf-8")
    for k in range(3):
        done = earlier_outcomes(tmp_path / "manifest.jsonl", tmp_path, part=(k, 3))
        assert {u for u in urls if digest(u) in done} == {u for u in urls if digest(u) % 3 == k}
        done.close()


# -- a rerun, every backend ------------------------------------------------------------------------------


async def damaged_first_run(origin: TestServer, fetch: Fetch) -> tuple[list[str], Path]:
    """Three URLs downloaded, then the manifest mangled: junk lines around a's and b's rows, and c's row
    torn in half as a crash would leave it (c's file is on disk, but its row does not say so)."""
    urls = [str(origin.make_url(f"/img/{n}/image-00.jpg")) for n in "abcd"]
    first = await fetch(urls[:3])
    assert first.stats.ok == 3
    a, b, c = (json.dumps(first.row(u)) for u in urls[:3])
    (first.out / "manifest.jsonl").write_text(
        "\n".join([a, *NOT_ROWS, b, c[: len(c) // 2]]), encoding="utf-8"
    )
    return urls, first.out


async def rerun(urls: list[str], out: Path, backend: str) -> dict[str, Result]:
    """The rerun, its outcomes taken from the callbacks (the fixture would parse the junk lines)."""
    results: list[Result] = []
    await adownload(urls, out, backend=backend, on_done=results.append, backoff=0.01)
    return {r.url: r for r in results}


async def test_a_rerun_over_a_damaged_manifest_skips_what_is_complete(
    origin: TestServer, fetch: Fetch, backend: str
) -> None:
    urls, out = await damaged_first_run(origin, fetch)
    again = await rerun(urls, out, backend)
    assert [again[u].status for u in urls] == ["skipped", "skipped", "ok", "ok"]
    assert [hits(origin, f"/img/{n}/image-00.jpg") for n in "abcd"] == [1, 1, 2, 1]


async def test_no_row_of_the_rerun_is_lost_after_a_torn_line(
    origin: TestServer, fetch: Fetch, backend: str
) -> None:
    urls, out = await damaged_first_run(origin, fetch)
    await rerun(urls, out, backend)
    rows = list(read_manifest(out / "manifest.jsonl"))  # junk lines skipped, as resume reads it
    # a and b from the first run; c and d from the rerun, the first of which follows the torn line
    assert sorted(r["url"] for r in rows) == sorted(urls) and {r["status"] for r in rows} == {"ok"}


# -- what the mutation run asked for (docs/mutation.md) --------------------------------------------------


def test_a_row_with_bytes_that_are_not_utf8_does_not_end_the_reading(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(b'{"url": "http://h/\xff.jpg"}\n' + row("http://h/1.jpg").encode() + b"\n")
    assert [r["url"] for r in read_manifest(manifest)] == ["http://h/\ufffd.jpg", "http://h/1.jpg"]


def test_rows_after_an_unknown_status_still_count(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    lines = [row("http://h/0.jpg", "duplicate"), row("http://h/1.jpg"), row("http://h/2.jpg", "failed")]
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines), encoding="utf-8")
    done = earlier_outcomes(tmp_path / "manifest.jsonl", tmp_path)
    assert digest("http://h/1.jpg") in done
    assert digest("http://h/2.jpg") not in done  # failed, though a file of that name is on disk
    done.close()


def test_a_long_manifest_is_indexed_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "SPILL_AT", 8)
    (tmp_path / "a.jpg").write_bytes(b"x")
    urls = [f"http://h/{i}.jpg" for i in range(30)]
    (tmp_path / "manifest.jsonl").write_text("\n".join(row(u) for u in urls), encoding="utf-8")
    done = earlier_outcomes(tmp_path / "manifest.jsonl", tmp_path)
    assert done.spilled and all(digest(u) in done for u in urls)
    done.close()


def test_retry_failed_takes_each_failed_url_once_with_its_line_and_columns(tmp_path: Path) -> None:
    lines = [
        row("http://h/a.jpg", "failed", None, line=3, label="cat"),
        row("http://h/b.jpg", "failed", None, line=4),
        row("http://h/b.jpg"),  # b succeeded later: not retried
        row("http://h/a.jpg", "failed", None, line=3, label="cat"),  # a failed twice: retried once
        row("http://h/c.jpg", "failed", None, line="x"),  # a line that is not a number
        row("not a url", "failed", None, line=9),
    ]
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines), encoding="utf-8")
    jobs = list(jobs_from_manifest(tmp_path / "manifest.jsonl", tmp_path, Naming("plain")))
    assert [(j.url, j.line, j.extra, j.path) for j in jobs] == [
        ("http://h/a.jpg", 3, {"label": "cat"}, "a.jpg"),
        ("http://h/c.jpg", 0, None, "c.jpg"),
    ]


def test_retry_failed_names_each_file_from_its_rows_name_column(tmp_path: Path) -> None:
    lines = [
        row("http://h/a.jpg", "failed", None, line=1, id="cat"),
        row("http://h/b.jpg", "failed", None, line=2, id="  "),  # blank: named from the URL
        row("http://h/c.jpg", "failed", None, line=3, id=7),
        row("http://h/d.jpg", "failed", None, line=4),
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines), encoding="utf-8")
    jobs = list(jobs_from_manifest(tmp_path / "manifest.jsonl", tmp_path, Naming("plain"), "id"))
    assert [(j.path, j.url_named) for j in jobs] == [
        ("cat.jpg", False),
        ("b.jpg", True),
        ("7.jpg", False),
        ("d.jpg", True),
    ]
    jobs = list(jobs_from_manifest(tmp_path / "manifest.jsonl", tmp_path, Naming("plain")))
    assert [j.path for j in jobs] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]  # no name column asked for


def test_the_failures_to_show_are_each_failed_url_and_each_invalid_line_once(tmp_path: Path) -> None:
    lines = [
        row("http://h/a.jpg", "failed", None, line=1),
        row("http://h/b.jpg", "failed", None, line=2),
        row("http://h/b.jpg"),  # b succeeded later: not a failure any more
        row("http://h/a.jpg", "failed", None, line=1),  # a failed twice: shown once
        row("nope", "invalid", None, line=5),
        row("nope", "invalid", None, line=5),  # a rerun met the same bad row again
        row("nope", "invalid", None, line=6),  # the same text on another line is another row
        row("http://h/c.jpg", "skipped"),
        row("http://h/d.jpg", "duplicate"),
        row("not a url", "failed", None, line=9),
    ]
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines), encoding="utf-8")
    shown = [(r["url"], r["line"], r["status"]) for r in failed_rows(tmp_path / "manifest.jsonl", tmp_path)]
    assert shown == [("http://h/a.jpg", 1, "failed"), ("nope", 5, "invalid"), ("nope", 6, "invalid")]
    assert list(tmp_path.iterdir()) == [tmp_path / "manifest.jsonl"]  # no index left behind
