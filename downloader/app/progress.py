"""Progress while a run goes on. The tqdm bar draws on a terminal only; its postfix (MB/s) is refreshed
at most twice a second, so it costs nothing measurable per file."""

from __future__ import annotations

import sys
import time
from typing import IO, Protocol

from ..models import Result, Status


class Reporter(Protocol):
    """Progress as results arrive: one ``update`` per row, or ``advance`` by counts (what ``--procs``
    workers send in batches)."""

    def update(self, result: Result) -> None: ...

    def advance(self, files: int, nbytes: int, failed: int) -> None: ...

    def close(self) -> None: ...


class Silent:
    """The reporter of a quiet run, or of a run without a terminal."""

    def update(self, result: Result) -> None:
        return None

    def advance(self, files: int, nbytes: int, failed: int) -> None:
        return None

    def close(self) -> None:
        return None


class TqdmReporter:
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
        return Silent()
    return TqdmReporter(total, stream)
