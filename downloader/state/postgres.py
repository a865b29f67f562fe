"""The state in PostgreSQL, through ``asyncpg``: the only importer of it.

Claims use ``SELECT … FOR UPDATE SKIP LOCKED``; many rows travel as arrays (``unnest``, ``= ANY``), so a
shard's archive is one statement per thousand rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ..errors import UsageError
from . import Archived, chunks
from .base import SqlState, entry_row, unique

try:
    import asyncpg
except ImportError:  # pragma: no cover - the extra is missing
    asyncpg = None
FAILURES: tuple[type[BaseException], ...] = (OSError, ConnectionError)
if asyncpg is not None:
    FAILURES += (asyncpg.PostgresError, asyncpg.InterfaceError)

CONNECT_S = 10


class PostgresState(SqlState):
    failures: ClassVar[tuple[type[BaseException], ...]] = FAILURES
    _mark: ClassVar[str] = "$1"
    _conn: Any = None
    _tr: Any = None

    async def _connect(self) -> None:
        if asyncpg is None:
            raise UsageError("--state postgresql://… needs asyncpg: pip install 'downloader[postgres]'")
        w = self.where
        self._conn = await asyncpg.connect(
            host=w.host,
            port=w.port or 5432,
            user=w.user or "postgres",
            password=w.password,
            database=w.database,
            timeout=CONNECT_S,
        )

    async def _close(self) -> None:
        if self._conn is not None:
            conn = self._conn
            self._conn = None  # before the await: a close that overlaps this one finds nothing to close
            await conn.close(timeout=CONNECT_S)

    async def _exec(self, sql: str, args: Sequence[object] = ()) -> int:
        said = await self._conn.execute(sql, *args)
        last = str(said).rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def _rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._conn.fetch(sql, *args)]

    async def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        await self._conn.executemany(sql, [tuple(r) for r in rows])

    async def _begin(self, immediate: bool = False) -> None:
        self._tr = self._conn.transaction()
        await self._tr.start()

    async def _end(self, ok: bool) -> None:
        tr = self._tr
        self._tr = None  # before the await: a failed commit leaves no transaction to end twice
        await (tr.commit() if ok else tr.rollback())

    async def _add_shards(self, run: str, shards: list[int]) -> None:
        for part in chunks(shards, 10_000):
            await self._exec(self.sql.add_shards, (run, list(part)))

    async def archive(self, entries: Sequence[Archived]) -> None:
        async with self._door("archiving"):
            for part in chunks(unique(entries)):
                rows = [entry_row(e) for e in part]
                await self._exec(self.sql.upsert, [[row[i] for row in rows] for i in range(6)])

    async def archived(self, digests: Sequence[bytes]) -> dict[bytes, Archived]:
        found: dict[bytes, Archived] = {}
        async with self._door("reading the archive"):
            for part in chunks(digests):
                for row in await self._rows(self.sql.lookup, (list(part),)):
                    found[bytes(row[0])] = Archived(bytes(row[0]), *row[1:])
        return found
