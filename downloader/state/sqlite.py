"""The state in a SQLite file (the default: ``OUT/_shards/state.sqlite``), through the standard library's
``sqlite3``, on a thread of its own so the event loop never waits on the disk.

Write-ahead logging lets readers (``downloader status``) run beside the writers; a busy timeout makes
``--procs`` workers wait their turn instead of failing. SQLite has no ``SKIP LOCKED``: a claim runs
inside ``BEGIN IMMEDIATE``, which takes the write lock first, so two claimers are served one after the
other and never pick the same shard. Never put this file on a network filesystem: its locks are not
reliable there (``state.local`` picks no default on one).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar, TypeVarTuple

from .base import SqlState

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
BUSY_S = 30.0
"""How long a writer waits for another's lock before the database counts as failed."""


class SqliteState(SqlState):
    failures: ClassVar[tuple[type[BaseException], ...]] = (sqlite3.Error, OSError)

    _db: sqlite3.Connection | None = None
    _pool: ThreadPoolExecutor | None = None

    async def _call(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        assert self._pool is not None, "not opened"
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open(self) -> None:
        Path(self.where.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.where.path, timeout=BUSY_S, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_S * 1000)}")
        _write_ahead(db)
        db.execute("PRAGMA synchronous = NORMAL")
        self._db = db

    async def _connect(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="downloader-sqlite")
        await self._call(self._open)

    async def _close(self) -> None:
        if self._pool is None:
            return
        if self._db is not None:
            await self._call(self._db.close)
        self._pool.shutdown(wait=True)
        self._pool = self._db = None

    def _run(self, sql: str, args: Sequence[object]) -> int:
        assert self._db is not None
        return self._db.execute(sql, tuple(args)).rowcount

    def _fetch(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        assert self._db is not None
        return self._db.execute(sql, tuple(args)).fetchall()

    def _run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        assert self._db is not None
        in_tx = self._db.in_transaction
        if not in_tx:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(sql, rows)
        except BaseException:
            if not in_tx:
                self._db.rollback()
            raise
        if not in_tx:
            self._db.commit()

    async def _exec(self, sql: str, args: Sequence[object] = ()) -> int:
        return await self._call(self._run, sql, args)

    async def _rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return await self._call(self._fetch, sql, args)

    async def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        await self._call(self._run_many, sql, rows)

    async def _begin(self, immediate: bool = False) -> None:
        await self._exec("BEGIN IMMEDIATE" if immediate else "BEGIN")

    async def _end(self, ok: bool) -> None:
        assert self._db is not None
        await self._call(self._db.commit if ok else self._db.rollback)


def _write_ahead(db: sqlite3.Connection) -> None:
    """Write-ahead logging, asked again while another process holds the new file: SQLite answers a
    change of journal mode it cannot make at once with "database is locked" without calling the busy
    handler (workers that start together all open the database at once)."""
    deadline = time.monotonic() + BUSY_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
