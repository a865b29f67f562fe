"""``downloader report``: the page built from real runs against the local origin, its bounded structures,
a run still being written, and the page opened in headless Chromium with the network shut."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from downloader.cli import main
from downloader.report import build
from downloader.report.collect import LogHistogram, Reservoir, TimeBuckets, Top
from downloader.stages import images
from downloader.trials import Run as BenchRun
from downloader.trials import summarise, write_html
from tests.helpers import Run, invoke, mixed_list, require
from tests.helpers import fetch as fetch_cli

Fetch = Callable[..., Awaitable[Run]]
ONE_BACKEND = pytest.mark.parametrize("backend", ["aiohttp"])  # the report reads rows, not backends


def messy(origin: TestServer) -> list[str]:
    """Images, a 404, a 503, an HTML page, a dead port, a line that is no URL and a duplicate."""
    base = str(origin.make_url("")).rstrip("/")
    good = [f"{base}/img/{i}/image-0{i % 9}.{'png' if i % 3 == 2 else 'jpg'}" for i in range(24)]
    bad = [f"{base}/status/404/{i}" for i in range(5)] + [f"{base}/status/503/1", f"{base}/html/page"]
    return [*good, *bad, "http://127.0.0.1:9/refused.jpg", "not a url", good[0]]


def page_of(out: Path) -> str:
    return build(out).read_text(encoding="utf-8")


@ONE_BACKEND
async def test_report_of_a_messy_run(origin: TestServer, fetch: Fetch) -> None:
    run = await fetch(messy(origin), retries=0, timeout=5)
    html = page_of(run.out)
    assert html.count('<svg class="chart"') == 5  # files/s, MB/s, latency, failures by kind, sizes
    table = html[html.index('id="failure-table"') :]
    table = table[: table.index("</table>")]
    port = origin.port
    assert table.index(f"127.0.0.1:{port}") < table.index("127.0.0.1:9")  # 7 failures before 1
    assert "http_4xx 5" in table and "cannot connect" in table
    for figure, caption in (("24", "ok"), ("8", "failed"), ("1", "invalid"), ("1", "duplicates")):
        assert f"<b>{figure}</b><span>{caption}</span>" in html
    assert re.search(r"(src|href)=\"(https?:)?//", html) is None  # nothing to fetch: opens offline
    assert "No final stats.json" not in html


@ONE_BACKEND
async def test_report_of_an_image_run_shows_sizes_and_a_contact_sheet(
    origin: TestServer, fetch: Fetch
) -> None:
    if not images.available():
        pytest.skip("Pillow is not installed")
    base = str(origin.make_url("")).rstrip("/")
    run = await fetch([f"{base}/img/{i}/image-0{i % 9}.jpg" for i in range(60)], image_size=48)
    html = page_of(run.out)
    sheet = html[html.index('id="sheet"') :]
    assert sheet.count('src="data:image/jpeg;base64,') == 48  # the reservoir, not all 60
    assert "48 of 60 stored images" in sheet
    dims = re.findall(r"<td>(\d+)×(\d+)</td>", html)
    assert dims and all(max(int(w), int(h)) == 48 for w, h in dims)  # the stored sizes, after the stage
    assert "<td>image_size</td><td>48</td>" in html  # run.json


@ONE_BACKEND
async def test_report_of_a_run_still_being_written(origin: TestServer, fetch: Fetch) -> None:
    base = str(origin.make_url("")).rstrip("/")
    run = await fetch([f"{base}/img/{i}/image-00.jpg" for i in range(10)])
    (run.out / "stats.json").unlink()
    with (run.out / "manifest.jsonl").open("ab") as fh:
        fh.write(b'{"url":"http://127.0.0.1/x","status":"ok","by')  # torn: the writer is mid-line
    html = page_of(run.out)
    assert "No final stats.json" in html and "10 manifest rows" in html
    (run.out / "manifest.jsonl").rename(run.out / ".manifest-0.jsonl")  # a --procs worker's, not merged
    assert "10 manifest rows" in page_of(run.out)


def test_report_command_writes_where_asked_and_refuses_a_folder_without_a_manifest(tmp_path: Path) -> None:
    runner = CliRunner()
    refused = runner.invoke(main, ["report", str(tmp_path)])
    assert refused.exit_code == 2 and "no manifest" in refused.output
    (tmp_path / "manifest.jsonl").write_text('{"url":"u","status":"invalid","kind":"invalid_url"}\n')
    done = runner.invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "r.html")])
    assert done.exit_code == 0 and (tmp_path / "r.html").is_file()
    assert "no run.json" in (tmp_path / "r.html").read_text()


def test_the_structures_stay_bounded() -> None:
    buckets = TimeBuckets(limit=10, width=1.0)
    for t in range(1000):
        buckets.add(1e9 + t, 1)
    assert len(buckets.series()) <= 10 and buckets.width == 128.0
    assert all(rate == 1.0 for _x, rate, _b in buckets.series()[:-1])  # one row a second
    top = Top(limit=5)
    for i in range(100):
        top.add("big", "e", sub="k")
        top.add(f"h{i}")
    assert len(top.counts) <= 10 and top.most(1)[0][:2] == ("big", 100) and top.approximate
    sample: Reservoir[int] = Reservoir(7)
    for i in range(1000):
        sample.add(i)
    assert len(sample.items) == 7 and sample.seen == 1000
    hist = LogHistogram(0.001, 100.0, 96)
    for i in range(1, 1001):
        hist.add(i / 1000)
    p50 = hist.quantile(0.5)
    assert p50 is not None and abs(p50 - 0.5) / 0.5 < 0.07


@ONE_BACKEND
async def test_report_renders_in_headless_chromium_offline(
    origin: TestServer, fetch: Fetch, tmp_path: Path
) -> None:
    chromium = require("chromium")
    run = await fetch(messy(origin), retries=0, timeout=5)
    page = build(run.out)
    dom, console = browse(chromium, page, tmp_path)
    assert console == []
    assert dom.count('<svg class="chart"') == 5 and 'id="failure-table"' in dom
    assert dom.count("<tr>") >= 3  # the failure table and the settings came out as rows
    shot = tmp_path / "shot.png"
    browse(chromium, page, tmp_path, ["--screenshot=" + str(shot), "--window-size=1000,1800"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def browse(chromium: str, page: Path, tmp: Path, extra: list[str] | None = None) -> tuple[str, list[str]]:
    """Load the page in headless Chromium with every host name unresolvable and every request sent to a
    dead proxy, so nothing outside the file can load; return the DOM and the console messages."""
    argv = [
        *(chromium, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0"),
        *("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9"),
        *(f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=2000", "--no-first-run"),
        *(extra or ["--dump-dom"]),
        page.resolve().as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def test_bench_page_renders_in_headless_chromium_offline(tmp_path: Path) -> None:
    chromium = require("chromium")
    runs = [
        BenchRun(b, c, 1, 0, cpu_s=1.0, peak_rss_mb=40.0, files_per_s=c * k, p95_ms=20.0 + c)
        for b, k in (("aiohttp", 10.0), ("threads", 7.0))
        for c in (8, 32, 128)
    ]
    page = tmp_path / "bench.html"
    write_html(page, summarise(runs), {"list": "urls.txt", "repeat": 1})
    dom, console = browse(chromium, page, tmp_path)
    assert console == [] and dom.count('<svg class="chart"') == 2
    assert dom.count('<polyline class="series"') == 4 and "<title>aiohttp: 1.28k at 128</title>" in dom


async def test_the_report_of_a_dataset_rerun_tells_the_runs_totals(
    origin: TestServer, tmp_path: Path
) -> None:
    """A rerun that skips every done shard writes a stats.json of 0 ok: the report still gives the
    run's totals, from the shards' rows, and that invocation's figures as its own."""
    lst, _urls = mixed_list(origin, tmp_path)
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "4")
    assert (await fetch_cli(lst, out, *args)).exit_code == 1  # a 404 and a bad URL
    again = await fetch_cli(lst, out, *args)
    assert "10 skipped" in again.output, again.output
    starts = json.loads((out / "_shards" / "plan.json").read_text())["starts"]
    assert starts[0] is None and all(isinstance(s, list) for s in starts[1:]) and len(starts) == 3
    made = await asyncio.to_thread(invoke, "report", str(out))
    assert made.exit_code == 0, made.output
    html = (out / "report.html").read_text(encoding="utf-8")
    for figure, caption in (("7", "ok"), ("1", "failed"), ("1", "invalid"), ("1", "duplicates")):
        assert f"<b>{figure}</b><span>{caption}</span>" in html
    assert "The last invocation alone (its stats.json) did 10 skipped in " in html
    assert "statistics say" not in html
