"""Progress and the summary line. The tqdm bar draws on a terminal only; its postfix (MB/s) is refreshed
at most twice a second, so it costs nothing measurable per file."""

from __future__ import annotations

import sys
import time
from typing import IO

from .models import Reporter, Result, Stats, Status


class TqdmReporter(Reporter):
    """Files done, files/s and MB/s on stderr."""

    def __init__(self, total: int | None = None, stream: IO[str] | None = None) -> None:
        from tqdm import tqdm  # here, not at the top: a quiet run never draws and skips its 12 ms import

        self._bar = tqdm(
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
        ok = result.status is Status.OK
        self.advance(1, result.bytes if ok else 0, 0 if result.ok else 1)

    def advance(self, files: int, nbytes: int, failed: int) -> None:
        """Count ``files`` more rows done (also what ``--procs`` workers report in batches)."""
        self._bytes += nbytes
        self._failed += failed
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.5
            self._postfix(now)
        self._bar.update(files)

    def _postfix(self, now: float) -> None:
        rate = self._bytes / 1e6 / max(now - self._t0, 1e-9)
        self._bar.set_postfix_str(f"{rate:.2f} MB/s, {self._failed} failed", refresh=False)

    def close(self) -> None:
        self._postfix(time.monotonic())
        self._bar.close()


def reporter_for(stream: IO[str], quiet: bool, total: int | None = None) -> Reporter:
    """A bar when ``stream`` is a terminal and not ``quiet``; otherwise silence."""
    if quiet or not stream.isatty():
        return Reporter()
    return TqdmReporter(total, stream)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def summary(stats: Stats) -> str:
    """One line a person can read, plus failures by kind when there are any."""
    q = stats.latency.quantile
    done = f"{stats.ok} ok"
    for label, n in (
        ("failed", stats.failed),
        ("invalid", stats.invalid),
        ("skipped", stats.skipped),
        ("duplicate", stats.duplicate),
    ):
        if n or label == "failed":
            done += f", {n} {label}"
    line = (
        f"{done} · {_size(stats.bytes)} in {stats.wall_s:.2f} s · {stats.files_per_s:,.0f} files/s · "
        f"{stats.mb_per_s:.2f} MB/s · latency p50 {_ms(q(0.5))}, p95 {_ms(q(0.95))}, p99 {_ms(q(0.99))}"
        f" · {stats.backend}, -c {stats.concurrency}"
    )
    if stats.failures:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.failures.items(), key=lambda kv: -kv[1]))
        line += f"\nfailures by kind: {kinds}"
    if stats.aborted:
        line += f"\nrun aborted: {stats.aborted}"
    elif stats.interrupted:
        line += "\ninterrupted: rerun the same command to resume"
    return line
