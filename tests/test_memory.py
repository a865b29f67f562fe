"""The run's peak memory in ``stats.json`` and the summary: one process, and ``--procs`` workers."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result

from downloader.cli import main
from downloader.models import Stats


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_list(tmp_path: Path, origin: TestServer, n: int) -> Path:
    path = tmp_path / "urls.txt"
    path.write_text("".join(f"{origin.make_url(f'/img/{i}/image-00.jpg')}\n" for i in range(n)))
    return path


async def test_one_process_says_its_peak(origin: TestServer, tmp_path: Path, backend: str) -> None:
    lst, out = write_list(tmp_path, origin, 5), tmp_path / "out"
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "--backend", backend)
    assert res.exit_code == 0, res.output
    stats = json.loads((out / "stats.json").read_text())
    assert 10 < stats["peak_rss_mb"] < 4000  # an interpreter with its libraries, in MB, not KB or bytes
    assert stats["peak_rss_sum_mb"] == stats["peak_rss_mb"]
    shown = re.search(r"peak RSS (\d+) MB", res.output)
    assert shown is not None and abs(int(shown[1]) - stats["peak_rss_mb"]) <= 1, res.output


async def test_workers_give_the_largest_and_the_sum(origin: TestServer, tmp_path: Path) -> None:
    lst, out = write_list(tmp_path, origin, 40), tmp_path / "out"
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "--procs", "2")
    assert res.exit_code == 0, res.output
    stats = json.loads((out / "stats.json").read_text())
    # each worker is an interpreter of its own: the sum is about twice the largest. Both figures are
    # rounded to 0.1 MB on their own, so two equal peaks can stand 0.15 over twice the rounded largest
    assert 10 < stats["peak_rss_mb"] < stats["peak_rss_sum_mb"] <= 2 * stats["peak_rss_mb"] + 0.15 + 1e-6
    assert "MB a process" in res.output and "MB in all" in res.output


def test_absorbing_keeps_the_largest_and_adds_the_workers() -> None:
    run = Stats()
    for own in (120.0, 80.0):
        worker = Stats()
        worker.note_memory(own)
        run.absorb(worker)
    run.note_memory(30.0)  # the parent's own peak: smaller, and not one of the workers
    run.note_memory(30.0)  # stats written twice count it once
    assert (run.peak_rss_mb, run.peak_rss_sum_mb) == (120.0, 200.0)
    assert run.as_dict()["peak_rss_mb"] == 120.0 and run.as_dict()["peak_rss_sum_mb"] == 200.0
