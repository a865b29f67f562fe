"""Progress while a run goes on: a tqdm bar on a terminal, a status line at a steady interval elsewhere
(nohup, CI, a batch scheduler, a pipe), or nothing.

Rows an earlier run completed (``skipped``) are where the run starts from, not speed: they move the count
but not the rate or the ETA. Rows the run never did (``not_started``, after an interrupt) move nothing,
so the bar stops where the run stopped. The bar's postfix is refreshed at most twice a second, so it costs
nothing measurable per file.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Literal, Protocol

from ..models import Result, Status

ProgressMode = Literal["auto", "bar", "lines", "none"]


class Reporter(Protocol):
    """Progress as results arrive: one ``update`` per row, or ``advance`` by counts (what ``--procs``
    workers send in batches); ``tick`` about once a second, so a quiet spell still shows."""

    def update(self, result: Result) -> None: ...

    def advance(self, files: int, nbytes: int, failed: int, skipped: int = 0) -> None: ...

    def tick(self) -> None: ...

    def close(self) -> None: ...


def counts(result: Result) -> tuple[int, int, int, int] | None:
    """(files, bytes, failed, skipped) that one row adds; None for a row the run never did."""
    status = result.status
    if status is Status.NOT_STARTED:
        return None
    if status is Status.SKIPPED:
        return (0, 0, 0, 1)
    return (1, result.bytes if status is Status.OK else 0, 0 if result.ok else 1, 0)


class Silent:
    """The reporter of a quiet run."""

    def update(self, result: Result) -> None:
        return None

    def advance(self, files: int, nbytes: int, failed: int, skipped: int = 0) -> None:
        return None

    def tick(self) -> None:
        return None

    def close(self) -> None:
        return None


class TqdmReporter:
    """Files done, files/s, MB/s and failures on a terminal."""

    def __init__(self, total: int | None = None, stream: IO[str] | None = None) -> None:
        from tqdm import tqdm  # here, not at the top: a quiet run never draws and skips its 12 ms import

        self._bar: Any = tqdm(
            total=total,
            unit="file",
            file=stream or sys.stderr,
            mininterval=0.25,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self._bytes = 0
        self._failed = 0
        self._t0 = time.monotonic()
        self._next = 0.0

    def update(self, result: Result) -> None:
        c = counts(result)
        if c is not None:
            self.advance(*c)

    def advance(self, files: int, nbytes: int, failed: int, skipped: int = 0) -> None:
        """Count ``files`` more rows done; ``skipped`` rows move the bar as its starting point (tqdm's
        ``initial``), so they add nothing to the rate or the ETA."""
        if skipped:
            bar = self._bar
            bar.n += skipped
            bar.last_print_n += skipped
            bar.initial += skipped
        self._bytes += nbytes
        self._failed += failed
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.5
            self._postfix(now)
        self._bar.update(files)

    def tick(self) -> None:
        self._bar.refresh()

    def _postfix(self, now: float) -> None:
        rate = self._bytes / 1e6 / max(now - self._t0, 1e-9)
        self._bar.set_postfix_str(f"{rate:.2f} MB/s, {self._failed} failed", refresh=False)

    def close(self) -> None:
        self._postfix(time.monotonic())
        self._bar.close()


class LinesReporter:
    """One status line every ``interval`` seconds, for a log rather than a terminal."""

    def __init__(self, total: int | None, stream: IO[str], interval: float = 10.0) -> None:
        self.total = total
        self.stream = stream
        self.interval = interval
        self.done = self.skipped = self.failed = self.bytes = 0
        self._t0 = time.monotonic()
        self._next = self._t0 + interval

    def update(self, result: Result) -> None:
        if result.status is Status.OK:  # most rows: what ``counts`` would say, without the tuple
            self.done += 1
            self.bytes += result.bytes
            self.tick()
            return
        c = counts(result)
        if c is not None:
            self.advance(*c)

    def advance(self, files: int, nbytes: int, failed: int, skipped: int = 0) -> None:
        self.done += files
        self.bytes += nbytes
        self.failed += failed
        self.skipped += skipped
        self.tick()

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        """``1,200/5,000 (24 %) · 310 files/s · 2.4 MB/s · 3 failed · ETA 12 s``."""
        elapsed = max(now - self._t0, 1e-9)
        rate = self.done / elapsed
        reached = self.done + self.skipped
        text = f"{reached:,}" if self.total is None else f"{reached:,}/{self.total:,}"
        if self.total:
            text += f" ({100 * reached / self.total:.0f} %)"
        text += f" · {rate:,.0f} files/s · {self.bytes / 1e6 / elapsed:.1f} MB/s · {self.failed:,} failed"
        if self.total and rate > 0:
            text += f" · ETA {_duration(max(0, self.total - reached) / rate)}"
        return text

    def close(self) -> None:
        if self.done or self.skipped:
            self.stream.write(self.line(time.monotonic()) + "\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def reporter_for(
    stream: IO[str],
    quiet: bool,
    total: int | None = None,
    mode: ProgressMode = "auto",
    interval: float = 10.0,
) -> Reporter:
    """``auto``: a bar on a terminal, status lines elsewhere; ``quiet`` or ``none``: nothing."""
    if quiet or mode == "none":
        return Silent()
    if mode == "bar" or (mode == "auto" and stream.isatty()):
        return TqdmReporter(total, stream)
    return LinesReporter(total, stream, interval)
