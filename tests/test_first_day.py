"""What a new user met on the first day, each pinned: rows that keep what the server said, comments after
a URL, the demo's and origin's help."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from downloader.checks import BodyCheck
from downloader.errors import NotImage
from downloader.sources import read_lines
from downloader.spec import RunSpec
from tests.helpers import Run, invoke

Fetch = Callable[..., Awaitable[Run]]


async def test_a_not_image_row_keeps_status_type_and_a_plain_sentence(
    origin: TestServer, fetch: Fetch
) -> None:
    url = str(origin.make_url("/html/page.jpg"))
    run = await fetch([url])
    row = run.row(url)
    assert row["kind"] == "not_image" and row["http_status"] == 200
    assert row["content_type"].startswith("text/html")
    assert row["error"] == "body is not an image (starts with '<!DOCTYPE html><html><bo')"
    assert "\\\\" not in row["error"]  # escaped once, not twice


def test_a_comment_after_a_url_is_not_part_of_it() -> None:
    text = "http://a/1.jpg  # the cat\nhttp://a/2.jpg#frag\nhttp://a/3.jpg\t#tab\n  # whole line\n"
    assert list(read_lines(io.StringIO(text))) == [
        (1, "http://a/1.jpg"),
        (2, "http://a/2.jpg#frag"),
        (3, "http://a/3.jpg"),
    ]


def test_demo_help_shows_where_files_go_and_origin_help_names_its_paths() -> None:
    demo = invoke("demo", "--help").output
    assert "a temporary folder" in demo and "[default: downloads]" not in demo
    origin = invoke("origin", "--help").output
    assert "/img/<anything>/<name>" in origin and "image-00.jpg" in origin


def _rows(run: Run) -> dict[str, dict[str, Any]]:
    return {r["url"]: r for r in run.rows}


async def test_a_commented_line_is_fetched_without_its_comment(origin: TestServer, tmp_path: Path) -> None:
    url = str(origin.make_url("/img/1/image-00.jpg"))
    lst = tmp_path / "urls.txt"
    lst.write_text(f"{url}   # first image\n")
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(tmp_path / "out"))
    assert res.exit_code == 0 and "1 ok" in res.output, res.output


def test_a_not_image_sentence_is_escaped_once() -> None:
    check = BodyCheck(RunSpec().transport(), time.monotonic(), None)
    with pytest.raises(NotImage) as caught:
        check.feed(b"<html>blocked</html>\n" + b" " * 2000)
    assert str(caught.value) == "body is not an image (starts with '<html>blocked</html>\\n   ')"
