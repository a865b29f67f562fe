"""The state databases tests run against: a SQLite file, and a fresh database of its own on the MariaDB
and PostgreSQL servers on loopback (other people share those servers: every test gets a database with a
unique name, dropped afterwards). A server that does not answer skips the test with one line, or fails
it under ``DOWNLOADER_REQUIRE_SYSTEM=1`` (CI)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers import REQUIRE_SYSTEM

T = TypeVar("T")
MARIADB = ("127.0.0.1", 3306)
POSTGRES = ("127.0.0.1", 5432)
KINDS = ("sqlite", "mariadb", "postgresql")


def _aside(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a loop of its own, on another thread (a test's loop may be running here)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()  # type: ignore[arg-type]


def _unavailable(what: str, exc: BaseException) -> None:
    reason = f"{what} does not answer on loopback ({type(exc).__name__}: {exc})".splitlines()[0]
    if os.environ.get(REQUIRE_SYSTEM) == "1":
        pytest.fail(f"{reason} and {REQUIRE_SYSTEM}=1")
    pytest.skip(reason)


async def _mariadb(sql: str) -> None:
    import aiomysql

    conn = await aiomysql.connect(
        host=MARIADB[0], port=MARIADB[1], user="root", password="", connect_timeout=5
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
    finally:
        conn.close()


async def _postgres(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(
        host=POSTGRES[0], port=POSTGRES[1], user="postgres", database="test", timeout=5
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def fresh_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A ``--state`` URL of a new, empty database of ``kind``; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.sqlite'}"
        return
    name = f"dl_test_{uuid.uuid4().hex[:12]}"
    run: Callable[[str], Awaitable[None]] = _mariadb if kind == "mariadb" else _postgres
    try:
        _aside(lambda: run(f"CREATE DATABASE {name}"))
    except Exception as exc:  # any failure to reach the server is the same answer: not here
        _unavailable(kind, exc)
    host, port = MARIADB if kind == "mariadb" else POSTGRES
    user = "root" if kind == "mariadb" else "postgres"
    scheme = "mysql" if kind == "mariadb" else "postgresql"
    try:
        yield f"{scheme}://{user}@{host}:{port}/{name}"
    finally:
        force = " WITH (FORCE)" if kind == "postgresql" else ""
        _aside(lambda: run(f"DROP DATABASE IF EXISTS {name}{force}"))


@pytest.fixture(params=KINDS)
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture(params=KINDS[1:])
def server_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database on a server (MariaDB, PostgreSQL): what many machines share."""
    yield from fresh_database(request.param, tmp_path)


def call(url: str, method: str, *args: Any) -> Any:
    """One ``State`` call on a connection of its own (set up first), from synchronous test code."""
    from downloader.state.drivers import open_state

    async def go() -> Any:
        async with open_state(url) as db:
            await db.setup()
            return await getattr(db, method)(*args)

    return _aside(go)
