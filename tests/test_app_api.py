"""The library as a user meets it: what ``download()`` and ``adownload()`` take, their callbacks, their
help, rows given as dicts and the progress bar; downloads on every backend against the loopback origin."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import inspect
import logging
import os
import struct
import sys
import termios
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import pytest
from aiohttp.test_utils import TestServer

from downloader import adownload, download
from downloader.models import Result, Stats
from downloader.spec import GROUPS
from tests.helpers import Run, manifest_rows

Fetch = Callable[..., Awaitable[Run]]


def images(origin: TestServer, n: int) -> list[str]:
    return [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(n)]


async def run_in(form: str, urls: Any, out: Path, **options: Any) -> Stats:
    """``download()`` from a thread with no loop (as a script calls it), or ``adownload()`` here."""
    if form == "download":
        return await asyncio.to_thread(download, urls, out, **options)
    return await adownload(urls, out, **options)


# -- what urls may be ------------------------------------------------------------------------------------


@pytest.mark.parametrize("one", ["http://127.0.0.1:9/a.jpg", b"http://127.0.0.1:9/a.jpg"])
async def test_a_bare_string_is_refused_with_a_hint(tmp_path: Path, one: str) -> None:
    with pytest.raises(TypeError, match=r"download\(\[url\]"):
        await asyncio.to_thread(download, one, tmp_path)
    with pytest.raises(TypeError, match=r"adownload\(\[url\]"):
        await adownload(one, tmp_path)
    assert not tmp_path.joinpath("manifest.jsonl").exists()


async def test_a_bare_row_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"adownload\(\[row\]"):
        await adownload({"url": "http://127.0.0.1:9/a.jpg"}, tmp_path)


# -- callbacks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["download", "adownload"])
async def test_a_raising_callback_is_logged_with_its_own_traceback(
    origin: TestServer, backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    urls = images(origin, 5)
    seen: list[int] = []

    def fails(result: Result) -> None:
        seen.append(result.line)
        raise LookupError(f"the callback's own error, line {result.line}")

    caplog.set_level(logging.ERROR, logger="downloader")
    stats = await run_in(form, urls, tmp_path, backend=backend, on_done=fails)
    assert stats.ok == 5 and sorted(seen) == [1, 2, 3, 4, 5]
    assert len(manifest_rows(tmp_path)) == 5
    logged = [r for r in caplog.records if r.getMessage().startswith("on_done callback failed")]
    assert len(logged) == 5
    for record in logged:
        assert record.exc_info is not None and isinstance(record.exc_info[1], LookupError)
        assert record.exc_info[1].__context__ is None
    assert "LookupError: the callback's own error" in caplog.text
    assert "no running event loop" not in caplog.text and "During handling" not in caplog.text


@pytest.mark.parametrize("form", ["download", "adownload"])
async def test_async_callbacks_are_awaited_before_the_run_returns(
    origin: TestServer, backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    done: list[int] = []

    async def slow(result: Result) -> None:
        await asyncio.sleep(0.02)
        if result.line == 3:
            raise KeyError("the async callback's own error")
        done.append(result.line)

    caplog.set_level(logging.ERROR, logger="downloader")
    stats = await run_in(form, images(origin, 6), tmp_path, backend=backend, on_done=[slow, slow])
    assert stats.ok == 6 and sorted(done) == [1, 1, 2, 2, 4, 4, 5, 5, 6, 6]
    logged = [r for r in caplog.records if r.getMessage().startswith("on_done callback failed")]
    assert len(logged) == 2  # line 3, once for each callback
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], KeyError) for r in logged)
    assert 'KeyError: "the async callback\'s own error"' in caplog.text


async def test_lagging_async_callbacks_hold_new_downloads_back(
    origin: TestServer, backend: str, tmp_path: Path
) -> None:
    arrived: list[int] = []
    release = asyncio.Event()

    async def held(result: Result) -> None:
        arrived.append(result.line)
        await release.wait()

    run = asyncio.create_task(
        adownload(images(origin, 20), tmp_path, backend=backend, on_done=held, concurrency=2)
    )
    async with asyncio.timeout(5):
        while len(arrived) < 2:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert len(arrived) <= 4 and not run.done()  # the two held, and the two that were in flight
    release.set()
    stats = await run
    assert stats.ok == 20 and sorted(arrived) == list(range(1, 21))


# -- help ------------------------------------------------------------------------------------------------


def test_help_lists_every_option_download_takes_and_only_those(tmp_path: Path) -> None:
    doc = download.__doc__ or ""
    taken: list[str] = []
    refused: list[tuple[str, str]] = []
    for f in (f for g in GROUPS for f in dataclasses.fields(g) if f.name != "out"):
        try:  # an empty list: the keyword is parsed and checked, and the run ends at once
            keyword: dict[str, Any] = {f.name: f.default}
            download([], tmp_path / f.name, **keyword)
        except TypeError as exc:
            refused.append((f.name, str(exc)))
        else:
            taken.append(f.name)
    listed = {line.split()[0] for line in doc.splitlines() if "(default " in line}
    assert [name for name, _ in refused] == [
        *("work_dir", "store"),  # a dataset in a store: the library writes files
        *("input_format", "loop", "procs", "part"),
        *("dask", "rank", "world", "state", "lease"),
    ]
    assert all(name in why and "does not take" in why for name, why in refused)
    assert set(taken) <= listed and not {name for name, _ in refused} & listed
    for name in inspect.signature(download).parameters:
        assert name == "options" or f"    {name}: " in doc
    for form in (download, adownload):
        assert all(f"    {name} (default " in (form.__doc__ or "") for name in taken)


# -- rows ------------------------------------------------------------------------------------------------


async def test_rows_carry_their_columns_and_name_their_files(origin: TestServer, fetch: Fetch) -> None:
    a, b, c = images(origin, 3)
    rows: list[Any] = [
        {"url": a, "id": "a1", "caption": "a cat", "n": 3},
        b,
        {"url": f" {c} ", "id": 7, "caption": None},
        {"id": "no-url", "caption": "lost"},
        {"url": 42, "id": "x"},
    ]
    run = await fetch(rows, name_column="id", keep_columns=("caption",))
    assert run.stats.ok == 3 and run.stats.invalid == 2 and len(run.rows) == len(run.results) == 5
    row_a, row_b, row_c = run.row(a), run.row(b), run.row(c)
    assert row_a["caption"] == "a cat" and "n" not in row_a and row_a["id"] == "a1"  # the name column too
    assert Path(row_a["path"]).name.startswith("a1.") and Path(row_c["path"]).name.startswith("7.")
    assert row_c["caption"] is None and "caption" not in row_b
    assert all((run.out / r["path"]).is_file() for r in (row_a, row_b, row_c))
    by_line = {r["line"]: r for r in run.rows}
    assert by_line[4]["status"] == "invalid" and by_line[4]["kind"] == "invalid_input"
    assert by_line[4]["error"] == "row 4 has no 'url' field" and by_line[4]["caption"] == "lost"
    assert by_line[5]["kind"] == "invalid_input" and "a number as 'url'" in by_line[5]["error"]


async def test_rows_keep_every_column_under_their_own_url_key(origin: TestServer, fetch: Fetch) -> None:
    (a,) = images(origin, 1)
    rows = [{"link": a, "id": "a1", "size": {"w": 3}, 5: "five"}]
    run = await fetch(rows, url_column="link", keep_columns=["*"])
    assert run.stats.ok == 1
    (row,) = run.rows
    assert row["url"] == a and "link" not in row
    assert row["id"] == "a1" and row["size"] == {"w": 3} and row["5"] == "five"


# -- the bar ---------------------------------------------------------------------------------------------


def open_terminal() -> tuple[int, TextIO]:
    """A real pseudo-terminal, 100 columns wide: its reading end and a text stream on its other end."""
    reader, writer = os.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    return reader, open(writer, "w", encoding="utf-8")  # the caller closes it


def drawn_on(reader: int) -> str:
    os.set_blocking(reader, False)
    try:
        return os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)


async def test_progress_draws_the_bar_on_a_terminal_only(
    origin: TestServer,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls = images(origin, 3)
    stats = await adownload(urls, tmp_path / "piped", backend=backend, progress=True)
    assert stats.ok == 3 and capsys.readouterr().err == ""  # stderr is not a terminal: silence
    reader, terminal = open_terminal()
    with terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        await adownload(urls, tmp_path / "sized", backend=backend, progress=True)
        await adownload(iter(urls), tmp_path / "unsized", backend=backend, progress=True)
        await adownload(urls, tmp_path / "quiet", backend=backend)
        terminal.flush()
    sized, unsized, *rest = drawn_on(reader).split("\n")
    assert "100%" in sized and "3/3" in sized and "0 failed" in sized
    assert "3file" in unsized and "/3" not in unsized  # no len(): no total
    assert "".join(rest).strip() == ""  # progress=False draws nothing
