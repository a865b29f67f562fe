"""What a run shows a person: progress on a terminal and off it, failures on screen, -q, -v, --log-file,
the `failures` command, and an honest count after an interrupt or on a rerun."""

from __future__ import annotations

import asyncio
import io
import time
import unicodedata
from pathlib import Path

from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from downloader.app.progress import LinesReporter, Silent, TqdmReporter, reporter_for
from downloader.app.summary import summary
from downloader.models import Result, Stats, Status, one_line
from tests.helpers import invoke, manifest_rows, write_list


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_modes() -> None:
    assert isinstance(reporter_for(Tty(), quiet=False), TqdmReporter)
    assert isinstance(reporter_for(io.StringIO(), quiet=False), LinesReporter)  # a log, not a terminal
    assert isinstance(reporter_for(io.StringIO(), quiet=False, mode="bar"), TqdmReporter)
    assert isinstance(reporter_for(Tty(), quiet=False, mode="lines"), LinesReporter)
    assert isinstance(reporter_for(Tty(), quiet=True), Silent)
    assert isinstance(reporter_for(Tty(), quiet=False, mode="none"), Silent)


def test_status_lines_come_at_the_interval_with_rate_failures_and_eta() -> None:
    stream = io.StringIO()
    lines = LinesReporter(total=10, stream=stream, interval=0.05)
    lines.update(Result("a", 1, Status.SKIPPED))
    lines.update(Result("b", 2, Status.OK, bytes=1000))
    assert stream.getvalue() == ""  # not before the interval
    time.sleep(0.06)
    lines.update(Result("c", 3, Status.FAILED, kind="timeout"))
    text = stream.getvalue()
    assert text.startswith("3/10 (30 %) · ") and "files/s" in text and "1 failed" in text and "ETA" in text


def test_the_bar_starts_from_skipped_rows_and_stops_where_the_run_stopped() -> None:
    stream = Tty()
    bar = TqdmReporter(total=100, stream=stream)
    for i in range(30):
        bar.update(Result(f"s{i}", i, Status.SKIPPED))
    for i in range(5):
        bar.update(Result(f"o{i}", 30 + i, Status.OK, bytes=10))
    for i in range(65):
        bar.update(Result(f"n{i}", 35 + i, Status.NOT_STARTED))
    tq = bar._bar
    assert tq.n == 35 and tq.initial == 30  # skipped rows are the starting point, not speed
    bar.close()
    assert "35/100" in stream.getvalue() and "100/100" not in stream.getvalue()


def test_summary_shows_the_first_failures_and_how_to_list_them_all() -> None:
    stats = Stats(backend="aiohttp", concurrency=4, wall_s=1.0)
    for i in range(12):
        stats.add(Result(f"http://h/{i}.jpg", i, Status.FAILED, kind="http_4xx", error="HTTP 404 Not Found"))
    stats.add(Result("x", 13, Status.NOT_STARTED))
    stats.interrupted = True
    text = summary(stats, "out")
    assert text.startswith("0 ok, 12 failed, 1 not started (interrupted) · ")
    assert "first failures:\n  http://h/0.jpg  http_4xx: HTTP 404 Not Found" in text
    assert text.count("http_4xx: HTTP 404") == 10
    assert "to list all 12: downloader failures out" in text


async def test_failures_are_shown_listed_and_logged(origin: TestServer, tmp_path: Path) -> None:
    good, gone = str(origin.make_url("/img/1/image-00.jpg")), str(origin.make_url("/status/404/x"))
    lst, out, log = write_list(tmp_path, [good, gone, "not a url"]), tmp_path / "out", tmp_path / "run.log"
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "-v", "--log-file", str(log))
    assert res.exit_code == 1
    assert f"failed {gone} (http_4xx): HTTP 404" in res.output  # -v: as it happens
    assert f"  {gone}  http_4xx: HTTP 404 Not Found" in res.output  # after the summary
    assert f"downloader failures {out}" in res.output
    logged = log.read_text()
    assert f"failed {gone} (http_4xx)" in logged and "1 ok, 1 failed, 1 invalid" in logged
    listed = await asyncio.to_thread(invoke, "failures", str(out))
    assert listed.exit_code == 0
    assert sorted(listed.output.splitlines()) == [
        f"{gone}\thttp_4xx\tHTTP 404 Not Found",
        "not a url\tinvalid_url\tnot a URL (no http://)",
    ]
    only = await asyncio.to_thread(invoke, "failures", str(out), "--kind", "invalid_url", "--json")
    assert '"url": "not a url"' in only.output and gone not in only.output


async def test_a_failed_url_with_a_line_break_stays_one_line(origin: TestServer, tmp_path: Path) -> None:
    """A quote left open in a CSV swallows the next line into the URL: the summary, the failure log and
    ``failures`` show it on one line, its control characters escaped, so the tab-separated rows stay
    three fields each."""
    good = str(origin.make_url("/img/1/image-00.jpg"))
    lst = tmp_path / "urls.csv"
    lst.write_text(f'url,caption\n"unterminated,quote\n{good},a cat\n')
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "--log-file", str(log))
    assert res.exit_code == 1
    said = "line 2 has 1 field but the header has 2"  # the quote runs to the end of the file
    assert f"  unterminated,quote\\n{good},a cat\\n  invalid_input: {said}" in res.output
    assert f"failed unterminated,quote\\n{good},a cat\\n (invalid_input): {said}\n" in log.read_text()
    listed = await asyncio.to_thread(invoke, "failures", str(out))
    assert listed.output.splitlines() == [f"unterminated,quote\\n{good},a cat\\n\tinvalid_input\t{said}"]


@given(url=st.text(max_size=30), sentence=st.text(max_size=30))
def test_the_summary_gives_each_failure_one_line(url: str, sentence: str) -> None:
    stats = Stats(backend="aiohttp", concurrency=4, wall_s=1.0)
    stats.add(Result(url, 1, Status.FAILED, kind="http_4xx", error=sentence))
    """Any URL and sentence: the failure is the summary's last line, with no control character in it."""
    lines = summary(stats, None).splitlines()
    assert lines[-2] == "failures:" and lines[-1].startswith("  ")
    assert not [c for c in lines[-1] if unicodedata.category(c) == "Cc"]
    assert "\n" not in one_line(url) and "\t" not in one_line(sentence)


async def test_quiet_shows_nothing_but_errors(origin: TestServer, tmp_path: Path) -> None:
    lst = write_list(tmp_path, [str(origin.make_url("/status/404/x"))])
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 1 and res.output == ""


async def test_status_lines_without_a_terminal(origin: TestServer, tmp_path: Path) -> None:
    lst = write_list(tmp_path, [str(origin.make_url(f"/slow/300/{i}.jpg")) for i in range(8)])
    args = ("fetch", str(lst), "-o", str(tmp_path / "out"), "-c", "2", "--progress-interval", "0.2")
    res = await asyncio.to_thread(invoke, *args)
    assert res.exit_code == 0
    status = [line for line in res.output.splitlines() if "files/s ·" in line and "/8 (" in line]
    assert len(status) >= 3, res.output  # steady lines while it runs, and one at the end
    assert status[-1].startswith("8/8 (100 %)")


async def test_a_rerun_of_a_complete_list_does_not_grow_the_manifest(
    origin: TestServer, tmp_path: Path
) -> None:
    lst = write_list(tmp_path, [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(6)])
    out = tmp_path / "out"
    for _ in range(3):
        res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "-q")
        assert res.exit_code == 0
    assert len(manifest_rows(out)) == 6
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out))
    assert "0 ok, 0 failed, 6 skipped" in res.output
