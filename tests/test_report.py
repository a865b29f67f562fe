"""The progress bar and the summary line."""

from __future__ import annotations

import io

from downloader.app.progress import Silent, TqdmReporter, reporter_for
from downloader.app.summary import summary
from downloader.models import Result, Stats, Status


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_only_on_a_terminal_and_not_quiet() -> None:
    assert isinstance(reporter_for(Tty(), quiet=False), TqdmReporter)
    assert type(reporter_for(Tty(), quiet=True)) is Silent
    assert not isinstance(reporter_for(io.StringIO(), quiet=False), TqdmReporter)  # status lines there


def test_bar_counts_files_and_failures() -> None:
    stream = Tty()
    bar = reporter_for(stream, quiet=False, total=3)
    bar.update(Result("u", 1, Status.OK, bytes=2_000_000))
    bar.update(Result("v", 2, Status.FAILED, kind="timeout"))
    bar.close()
    text = stream.getvalue()
    assert "2/3" in text and "file" in text and "1 failed" in text


def test_summary_reads_like_a_sentence() -> None:
    stats = Stats(backend="threads", concurrency=8, wall_s=2.0)
    for i in range(9):
        stats.add(Result("u", i, Status.OK, bytes=1_000_000, elapsed_s=0.01 * (i + 1)))
    stats.add(Result("x", 10, Status.FAILED, kind="http_4xx"))
    stats.add(Result("y", 11, Status.INVALID, kind="invalid_url"))
    text = summary(stats)
    assert text.startswith("9 ok, 1 failed, 1 invalid · 9.0 MB in 2.00 s · 4 files/s · 4.50 MB/s")
    assert "p50 50 ms" in text and "threads, -c 8" in text
    assert "failures by kind: http_4xx 1, invalid_url 1" in text
    assert not stats.all_ok
