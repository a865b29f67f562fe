"""Where each row goes once decided: the manifest first, then the statistics, the failure log and the
caller's callbacks (an ``async def`` one runs as a task, held until it ends), and at the run's end
``stats.json``.

The row is written before anyone hears of it, so a manifest that failed stops the run (the engine
asks ``write``'s answer) before a callback counts the row as done.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..manifest import FLUSH_ROWS, ManifestWriter, write_stats
from ..models import Result, Stats, Status, one_line
from ..spec import RunSpec

log = logging.getLogger("downloader")
failure_log = logging.getLogger("downloader.failures")
"""Each failed or invalid row as it happens, at INFO (``-v`` and ``--log-file`` show it)."""

OnDone = Callable[[Result], object]
"""Called with each result on the loop's thread; when it returns an awaitable (an ``async def``), that
is awaited as a task before the run returns. Either way an exception is logged, not raised."""


def _no_wake() -> None:
    """Nothing to wake: no run is going on."""


class Results:
    """The fan-out of one run's rows; ``open`` with the output folder, ``close`` at the end (which writes
    ``stats.json``). ``on_done`` is the caller's list, shared: a callback added before the run is heard."""

    def __init__(
        self, spec: RunSpec, stats: Stats, on_done: list[OnDone], *, manifest: str, stats_file: str | None
    ) -> None:
        self.stats = stats
        self.on_done = on_done
        self.pending: set[asyncio.Future[object]] = set()
        """The async callbacks still running: while as many lag as there are slots, nothing new starts."""
        self._batch = 1 if spec.in_shards else FLUSH_ROWS
        self._manifest_name = manifest
        self._stats_file = stats_file
        self._manifest: ManifestWriter | None = None
        self._log_failures = False
        self._wake: Callable[[], None] = _no_wake

    def open(self, out: Path, wake: Callable[[], None]) -> None:
        """The manifest, appended to; ``wake`` (the engine's pump) is called as each async callback ends,
        until ``close`` lets go of it (no reference cycle outlives the run)."""
        self._manifest = ManifestWriter(out / self._manifest_name, self._batch)
        self._log_failures = failure_log.isEnabledFor(logging.INFO)
        self._wake = wake

    def write(self, result: Result) -> str | None:
        """The row into the manifest; the manifest's error, if writing it has failed (now or before)."""
        manifest = self._manifest
        assert manifest is not None
        if result.status is not Status.SKIPPED:  # complete already: its earlier row stands
            manifest.write(result)
        return manifest.error

    def fan_out(self, result: Result) -> None:
        """The row to the statistics, the failure log and every callback, in that order."""
        self.stats.add(result)
        if self._log_failures and result.status in (Status.FAILED, Status.INVALID):
            failure_log.info(
                "failed %s (%s): %s", one_line(result.url), result.kind, one_line(str(result.error))
            )
        for callback in self.on_done:
            try:
                value = callback(result)
            except Exception:
                log.exception("on_done callback failed for %s", result.url)
            else:
                if value is not None and inspect.isawaitable(value):
                    self._await_callback(value, result.url)

    def _await_callback(self, value: Awaitable[object], url: str) -> None:
        """Run an async callback as a task, held until it ends (the loop keeps only weak references)."""
        task = asyncio.ensure_future(value)
        self.pending.add(task)
        task.add_done_callback(functools.partial(self._callback_done, url=url))

    def _callback_done(self, task: asyncio.Future[object], *, url: str) -> None:
        self.pending.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("on_done callback failed for %s", url, exc_info=exc)
        self._wake()

    async def drain(self) -> None:
        """Wait for every async callback still running."""
        while self.pending:
            await asyncio.wait(list(self.pending))

    def flush(self) -> None:
        """The buffered rows to the manifest now (the output is failing: while they may still fit)."""
        assert self._manifest is not None
        self._manifest.flush()

    def close(self, out: Path) -> None:
        """Cancel the callbacks still running (only when the run itself failed or was cancelled), close the
        manifest (its error aborts the run, if nothing else did) and write ``stats.json``."""
        self._wake = _no_wake  # before cancelling: a callback ended now pumps no finished run
        for pending in self.pending:
            pending.cancel()
        assert self._manifest is not None
        self._manifest.close()
        if self._manifest.error and not self.stats.aborted:
            self.stats.aborted = self._manifest.error
        if self._stats_file:
            self._write_stats(out / self._stats_file)

    def _write_stats(self, path: Path) -> None:
        try:
            write_stats(path, self.stats)
        except OSError as exc:
            log.error("cannot write %s: %s", path, exc.strerror or exc)
            self.stats.aborted = self.stats.aborted or f"cannot write {path.name}"
