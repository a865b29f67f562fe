"""The state database from synchronous code: a connection on a thread and event loop of its own, so a
shard's own loop (and a Dask worker's) never waits on the database, and a heartbeat that renews a
shard's lease on another such connection while the shard runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from ..app.assemble import StopFlag
from ..state import Archived, Lease, RunStatus, State, StateError
from ..state.drivers import open_state

log = logging.getLogger(__name__)
T = TypeVar("T")


def worker_id() -> str:
    """Who holds a lease, as ``downloader status`` shows it: this machine and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def gone(worker: str) -> bool:
    """Whether the process a lease names (``worker_id``) is provably gone: it ran on this machine and no
    live process has its pid now. Another machine's worker can never be proved gone from here (it may
    be alive behind a partition): its lease runs out instead. A pid reused by some other process reads
    as alive, so the worst a reuse does is make the shard wait out its lease, as before."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: is there such a process (sends nothing)
    except ProcessLookupError:
        return True
    except PermissionError:  # there is one, another user's
        return False
    return _zombie(int(pid))


def _zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet still has its pid, but no life (nor flocks)."""
    try:
        stat = open(f"/proc/{pid}/stat", encoding="utf-8").read()  # noqa: SIM115 - Linux only, else alive
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class StateThread:
    """A ``State`` opened on a thread of its own. Each method below runs the ``State`` method of its name
    there and waits for its typed result (a proxy spelled out, so that renaming a ``State`` method fails
    the type check here, not a run)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db: State = open_state(url)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="downloader-state", daemon=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``coro`` run on the state's loop; its result, once it is done."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def setup(self) -> None:
        self.run(self.db.setup())

    def start_run(self, run: str, settings: dict[str, Any], shards: int) -> None:
        self.run(self.db.start_run(run, settings, shards))

    def claim(self, run: str, worker: str, lease: float, shard: int | None = None) -> int | None:
        return self.run(self.db.claim(run, worker, lease, shard))

    def finish(self, run: str, shard: int, worker: str, counts: dict[str, int]) -> bool:
        return self.run(self.db.finish(run, shard, worker, counts))

    def release(self, run: str, shard: int, worker: str) -> None:
        self.run(self.db.release(run, shard, worker))

    def left(self, run: str) -> int:
        return self.run(self.db.left(run))

    def runs(self) -> list[str]:
        return self.run(self.db.runs())

    def archive(self, entries: Sequence[Archived]) -> None:
        self.run(self.db.archive(entries))

    def archived(self, digests: Sequence[bytes]) -> dict[bytes, Archived]:
        return self.run(self.db.archived(digests))

    def status(self, run: str) -> RunStatus:
        return self.run(self.db.status(run))

    def running(self, run: str) -> list[Lease]:
        """The leases held now (read with the status: only when no shard is free, so never per URL)."""
        return self.status(run).running

    def __enter__(self) -> Self:
        self._thread.start()
        try:
            self.run(self.db.__aenter__())
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.run(self.db.__aexit__(None, None, None))
        finally:
            self._stop()

    def _stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Heartbeat:
    """Renews ``worker``'s lease on shard ``shard`` every third of the lease, on a connection of its own.
    A lease found lost sets ``stop`` without a reason (the shard stops; another worker has it), a database
    gone sets it with one (the run stops, exit 3)."""

    def __init__(self, url: str, run: str, shard: int, worker: str, lease: float) -> None:
        self.args = (run, shard, worker, lease)
        self.lease = lease
        self.conn = StateThread(url)
        self.stop = StopFlag()
        self.lost: str | None = None
        self._task: concurrent.futures.Future[None] | None = None

    async def _beat(self) -> None:
        run, shard, worker, lease = self.args
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                mine = await self.conn.db.renew(run, shard, worker, lease)
            except StateError as exc:
                self.stop.set(f"{exc}; shard {shard:05d} stopped, its complete samples kept")
                return
            if not mine:
                self.lost = f"shard {shard:05d}: its lease expired and another worker took it over"
                log.warning("%s: stopping it here", self.lost)
                self.stop.set()
                return

    def __enter__(self) -> Self:
        self.conn.__enter__()
        self._task = asyncio.run_coroutine_threadsafe(self._beat(), self.conn.loop)
        return self

    def end(self) -> None:
        """Renew no more (the shard's work is over: it is about to be recorded done, or given back)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.end()
        self.conn.__exit__(et, ev, tb)
