"""What the three drivers share: the ``State`` methods written once over four primitives each driver
gives (run a statement, fetch rows, run many, a transaction), and the door where a driver's errors
become ``StateError``. Statements come from ``state.sql``."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, ClassVar, Self

from . import SCHEMA_VERSION, Archived, Lease, RunStatus, State, StateError, Where, chunks
from .sql import DIALECTS, SETUP_LOCK, Dialect

TIMEOUT = 60.0
"""Seconds one call may take before the database counts as gone."""


class SqlState(State):
    """``State`` over a driver's primitives (``_exec``, ``_rows``, ``_many``, ``_begin``/``_end``)."""

    failures: ClassVar[tuple[type[BaseException], ...]] = (OSError,)
    """The driver's exceptions that mean the database failed (mapped to ``StateError`` at the door)."""

    def __init__(self, where: Where) -> None:
        self.where = where
        self.url = where.shown
        self.sql: Dialect = DIALECTS[where.dialect]
        self._lock = asyncio.Lock()

    # -- what a driver gives ------------------------------------------------------------------------------

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _exec(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run one statement; the rows it matched."""
        raise NotImplementedError

    async def _rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """One statement over many rows, in one round trip where the driver can."""
        raise NotImplementedError

    async def _begin(self, immediate: bool = False) -> None:
        raise NotImplementedError

    async def _end(self, ok: bool) -> None:
        raise NotImplementedError

    # -- the door -------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _door(self, what: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(TIMEOUT):
                yield
        except StateError:
            raise
        except TimeoutError:
            raise StateError(f"state database {self.url}: {what} got no answer in {TIMEOUT:.0f} s") from None
        except self.failures as exc:
            raise StateError(f"state database {self.url}: {what} failed: {_said(exc)}") from None

    @asynccontextmanager
    async def _tx(self, what: str, immediate: bool = False) -> AsyncIterator[None]:
        """A transaction, inside the door: committed when the block ends, rolled back when it raises."""
        async with self._lock, self._door(what):
            await self._begin(immediate)
            try:
                yield
            except BaseException:
                await asyncio.shield(self._end(False))  # a cancel must not leave the lock's transaction open
                raise
            await self._end(True)

    async def __aenter__(self) -> Self:
        async with self._door("connecting"):
            await self._connect()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        with contextlib.suppress(*self.failures):  # a database already gone has nothing left to close
            await self._close()

    # -- the protocol ---------------------------------------------------------------------------------------

    async def setup(self) -> None:
        lock, unlock = SETUP_LOCK.get(self.sql.name, ("", ""))
        async with self._tx("creating the schema", immediate=True):
            if lock:
                await self._rows(lock)
            for table in self.sql.tables:
                await self._exec(table)
            await self._exec(self.sql.set_version, (str(SCHEMA_VERSION),))
            found = await self._rows(self.sql.version)
            if unlock:
                await self._rows(unlock)
        if int(found[0][0]) > SCHEMA_VERSION:
            raise StateError(
                f"state database {self.url} has schema version {found[0][0]}, newer than this "
                f"downloader's ({SCHEMA_VERSION}): upgrade downloader"
            )

    async def start_run(self, run: str, settings: dict[str, object], shards: int) -> None:
        async with self._door("recording the run"):
            had = await self._rows(self.sql.run, (run,))
        if had and int(had[0][0]) >= shards:
            return
        first = int(had[0][0]) if had else 0
        async with self._door("recording the run's shards"):
            await self._add_shards(run, list(range(first, shards)))
            await self._exec(self.sql.add_run, (run, json.dumps(settings), shards))
            await self._exec(self.sql.grow_run, (shards, run, shards))

    async def _add_shards(self, run: str, shards: list[int]) -> None:
        for part in chunks(shards):
            await self._many(self.sql.add_shards, [(run, k) for k in part])

    async def claim(self, run: str, worker: str, lease: float, shard: int | None = None) -> int | None:
        if shard is not None:
            async with self._door("claiming a shard"):
                await self._add_shards(run, [shard])
        async with self._tx("claiming a shard", immediate=True):
            if shard is None:
                found = await self._rows(self.sql.pick, (run,))
            else:
                found = await self._rows(self.sql.pick_one, (run, shard))
            if not found:
                return None
            k = int(found[0][0])
            await self._exec(self.sql.take, (worker, lease, run, k))
        return k

    async def renew(self, run: str, shard: int, worker: str, lease: float) -> bool:
        async with self._door("renewing a lease"):
            return await self._exec(self.sql.renew, (lease, run, shard, worker)) == 1

    async def finish(self, run: str, shard: int, worker: str, counts: dict[str, int]) -> bool:
        args = (worker, int(counts.get("rows", 0)), json.dumps(counts), run, shard)
        async with self._door("finishing a shard"):
            return await self._exec(self.sql.finish, args) == 1

    async def release(self, run: str, shard: int, worker: str) -> None:
        async with self._door("releasing a shard"):
            await self._exec(self.sql.release, (run, shard, worker))

    async def left(self, run: str) -> int:
        async with self._door("counting shards"):
            found = await self._rows(self.sql.left, (run,))
        return int(found[0][0])

    async def runs(self) -> list[str]:
        async with self._door("listing runs"):
            return [str(r[0]) for r in await self._rows(self.sql.runs)]

    async def archive(self, entries: Sequence[Archived]) -> None:
        async with self._door("archiving"):
            for part in chunks(unique(entries)):
                await self._many(self.sql.upsert, [entry_row(e) for e in part])

    async def archived(self, digests: Sequence[bytes]) -> dict[bytes, Archived]:
        found: dict[bytes, Archived] = {}
        async with self._door("reading the archive"):
            for part in chunks(digests, 500):
                sql = self.sql.lookup.format(marks=", ".join([self._mark] * len(part)))
                for row in await self._rows(sql, part):
                    entry = Archived(bytes(row[0]), *row[1:])
                    found[entry.digest] = entry
        return found

    _mark: ClassVar[str] = "?"

    async def status(self, run: str) -> RunStatus:
        async with self._door("reading the status"):
            head = await self._rows(self.sql.run, (run,))
            shards = await self._rows(self.sql.shards, (run,))
            now = float((await self._rows(self.sql.now))[0][0])
        return summarise(run, head[0] if head else None, shards, now)


def unique(entries: Sequence[Archived]) -> list[Archived]:
    """One entry per digest (a statement may not touch a row twice): an ``ok`` one, else the last."""
    by: dict[bytes, Archived] = {}
    for e in entries:
        if by.get(e.digest) is None or by[e.digest].status != "ok":
            by[e.digest] = e
    return list(by.values())


def entry_row(e: Archived) -> tuple[object, ...]:
    return (e.digest, e.url, e.status, e.sha256, e.where, e.run)


def _said(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def summarise(run: str, head: Sequence[Any] | None, shards: Sequence[Sequence[Any]], now: float) -> RunStatus:
    """A run's status from its row and its shards' rows (``sql.shards``' columns) at the database's time."""
    status = RunStatus(run, shards=len(shards), updated=now)
    if head is not None:
        status.started = float(head[1])
        status.settings = json.loads(head[2] or "{}")
    for k, done, worker, since, expires, attempts, finished, _rows, counts in shards:
        if done:
            _done(status, int(k), _float(since), float(finished or 0), json.loads(counts or "{}"))
        elif worker is not None:
            lease = Lease(run, int(k), str(worker), float(expires), int(attempts), _float(since))
            (status.running if lease.until >= now else status.expired).append(lease)
    return status


def _done(status: RunStatus, k: int, since: float | None, finished: float, counts: dict[str, int]) -> None:
    """A done shard counted into ``status``: its rows, its failure kinds, and its last run's interval."""
    status.done += 1
    status.done_shards.add(k)
    status.last_finish = max(status.last_finish or 0.0, finished)
    for said, n in counts.items():
        into = status.kinds if said.startswith("kind:") else status.rows
        name = said.removeprefix("kind:")
        into[name] = into.get(name, 0) + int(n)
    if since is not None and since <= finished:
        status.ran.append((since, finished))
        status.ran_rows += int(counts.get("rows", 0))


def _float(value: object) -> float | None:
    """A database's number (a float, an int, a ``Decimal`` or a numeric string, by driver) as a float."""
    return None if value is None else float(str(value))
