"""A run remembers how it was made: OUT/run.json records the settings that decide paths and contents; a
rerun and --retry-failed reuse them, and a rerun that asks for other values is a usage error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from downloader.runfile import RUN_FILE, recorded_settings
from tests.helpers import Run, hits, invoke, manifest_rows

Fetch = Callable[..., Awaitable[Run]]


async def test_retry_failed_reuses_the_layout_and_names_of_the_first_run(
    origin: TestServer, tmp_path: Path
) -> None:
    good, flaky = str(origin.make_url("/img/1/image-00.jpg")), str(origin.make_url("/flaky/1/f.jpg"))
    lst = tmp_path / "list.csv"
    lst.write_text(f"url,id\n{good},cat\n{flaky},dog\n")
    out = tmp_path / "out"
    first = ["fetch", str(lst), "-o", str(out), "--layout", "host", "--name-column", "id", "--retries", "0"]
    res = await asyncio.to_thread(invoke, *first)
    assert res.exit_code == 1, res.output
    recorded = json.loads((out / RUN_FILE).read_text())["settings"]
    assert recorded["layout"] == "host" and recorded["name_column"] == "id"
    res = await asyncio.to_thread(invoke, "fetch", "--retry-failed", "-o", str(out))
    assert res.exit_code == 0, res.output
    folder = f"{origin.make_url('/').host}_{origin.port}"
    paths = [r["path"] for r in manifest_rows(out) if r["path"]]
    assert len(paths) == 2 and {p.split("/")[0] for p in paths} == {folder}
    assert any(p.startswith(f"{folder}/dog.") for p in paths)  # named from its row's id, as the first run


async def test_a_conflicting_flag_on_a_rerun_names_both_values(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/img/1/image-00.jpg"))
    await fetch([url], layout="host")
    with pytest.raises(ValueError, match=r"--layout 'host' there, 'flat' now"):
        await fetch([url], layout="flat")
    again = await fetch([url])  # leaving it out reuses what OUT records: nothing refetched
    assert again.stats.skipped == 1 and hits(origin, "/img/1/image-00.jpg") == 1


def test_the_cli_says_so_with_exit_2(tmp_path: Path) -> None:
    lst = tmp_path / "urls.txt"
    lst.write_text("")
    out = str(tmp_path / "out")
    assert invoke("fetch", str(lst), "-o", out, "--names", "plain").exit_code == 0
    res = invoke("fetch", str(lst), "-o", out, "--names", "hashed")
    assert res.exit_code == 2 and "--names 'plain' there, 'hashed' now" in res.output
    assert invoke("fetch", str(lst), "-o", out).exit_code == 0


def test_what_is_recorded() -> None:
    assert recorded_settings() == [
        "names", "layout", "fix_ext", "url_column", "keep_columns", "name_column", "accept",
        "disallowed_header_directives", "robots_txt", "verify", "max_pixels", "image_size", "resize_mode",
        "resize_only_if_bigger", "downscale_interpolation", "encode_format", "encode_quality",
        "skip_reencode", "min_image_size", "max_image_area", "max_aspect_ratio", "output_format",
        "shard_size", "caption_column", "dedup",
    ]  # fmt: skip


def test_a_url_column_on_a_text_list_and_a_table_without_its_suffix(tmp_path: Path) -> None:
    txt = tmp_path / "urls.txt"
    txt.write_text("http://127.0.0.1:9/a.jpg\n")
    res = invoke("fetch", str(txt), "-o", str(tmp_path / "a"), "--url-column", "image")
    assert res.exit_code == 2 and "--url-column image needs a csv" in res.output
    table = tmp_path / "urls.dat"
    table.write_text("url,caption\nhttp://127.0.0.1:9/a.jpg,a cat\n")
    res = invoke("fetch", str(table), "-o", str(tmp_path / "b"))
    assert res.exit_code == 2 and "looks like a table" in res.output and "--input-format csv" in res.output
