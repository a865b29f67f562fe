"""The state in MySQL or MariaDB, through ``aiomysql`` (asyncio's MySQL driver): the only importer of it.

Claims use ``SELECT … FOR UPDATE SKIP LOCKED`` (MySQL 8, MariaDB 10.6) under READ COMMITTED, so many
workers claiming at once never wait on each other's rows nor on gap locks. The connection counts rows
matched, not rows changed (``FOUND_ROWS``), so a renewal in the same microsecond still counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ..errors import UsageError
from . import Archived, chunks
from .base import SqlState, entry_row, unique
from .sql import MYSQL_MARK, MYSQL_ROW

try:
    import aiomysql
    from pymysql.constants import CLIENT
except ImportError:  # pragma: no cover - the extra is missing
    aiomysql = None
FAILURES: tuple[type[BaseException], ...] = (OSError, ConnectionError)
if aiomysql is not None:
    FAILURES += (aiomysql.Error,)

    class _Quiet(aiomysql.Cursor):  # type: ignore[misc]
        """A cursor that does not turn the server's notes (``IF NOT EXISTS``, ``INSERT IGNORE``: the
        schema or a row was there already, as expected) into Python warnings."""

        async def _show_warnings(self, conn: Any) -> None:
            return None


CONNECT_S = 10


class MysqlState(SqlState):
    failures: ClassVar[tuple[type[BaseException], ...]] = FAILURES
    _conn: Any = None

    async def _connect(self) -> None:
        if aiomysql is None:
            raise UsageError("--state mysql://… needs aiomysql: pip install 'downloader[mysql]'")
        w = self.where
        self._conn = await aiomysql.connect(
            host=w.host,
            port=w.port or 3306,
            user=w.user or "root",
            password=w.password or "",
            db=w.database,
            autocommit=True,
            connect_timeout=CONNECT_S,
            client_flag=CLIENT.FOUND_ROWS,
            cursorclass=_Quiet,
        )
        await self._exec("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    async def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _exec(self, sql: str, args: Sequence[object] = ()) -> int:
        async with self._conn.cursor() as cur:
            return int(await cur.execute(sql, tuple(args) or None))

    async def _rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        async with self._conn.cursor() as cur:
            await cur.execute(sql, tuple(args) or None)
            return list(await cur.fetchall())

    async def _many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        async with self._conn.cursor() as cur:
            await cur.executemany(sql, [tuple(r) for r in rows])

    async def _begin(self, immediate: bool = False) -> None:
        await self._conn.begin()

    async def _end(self, ok: bool) -> None:
        await (self._conn.commit() if ok else self._conn.rollback())

    async def archive(self, entries: Sequence[Archived]) -> None:
        async with self._door("archiving"):
            for part in chunks(unique(entries)):
                sql = self.sql.upsert.format(rows=", ".join([MYSQL_ROW] * len(part)))
                rows = [(e.digest.hex(), *entry_row(e)[1:]) for e in part]
                await self._exec(sql, [v for row in rows for v in row])

    async def archived(self, digests: Sequence[bytes]) -> dict[bytes, Archived]:
        found: dict[bytes, Archived] = {}
        async with self._door("reading the archive"):
            for part in chunks(digests):
                sql = self.sql.lookup.format(marks=", ".join([MYSQL_MARK] * len(part)))
                for row in await self._rows(sql, [d.hex() for d in part]):
                    found[bytes(row[0])] = Archived(bytes(row[0]), *row[1:])
        return found
