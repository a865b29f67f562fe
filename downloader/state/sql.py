"""Every statement the state database runs, for each dialect: ``sqlite``, ``mysql`` (MySQL and MariaDB)
and ``postgresql``. The drivers only choose and execute; nothing else in the package writes SQL.

Times are the database's own clock in seconds since the epoch (``NOW``), so a lease's expiry never
depends on the workers' clocks agreeing. Table and column names avoid every dialect's reserved words
(``until``, ``rows``, ``where``).
"""

from __future__ import annotations

from dataclasses import dataclass

NOW = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "mysql": "UNIX_TIMESTAMP(NOW(6))",
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())::double precision",
}
_TYPES = {
    "sqlite": {"real": "REAL", "bin": "BLOB", "key": "TEXT", "text": "TEXT"},
    "mysql": {"real": "DOUBLE", "bin": "VARBINARY(16)", "key": "VARCHAR(191)", "text": "LONGTEXT"},
    "postgresql": {"real": "DOUBLE PRECISION", "bin": "BYTEA", "key": "VARCHAR(191)", "text": "TEXT"},
}
_TABLES = (
    "CREATE TABLE IF NOT EXISTS dl_meta (name {key} PRIMARY KEY, value {key} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dl_runs (run {key} PRIMARY KEY, settings {text} NOT NULL, "
    "shards INTEGER NOT NULL, started {real} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dl_shards (run {key} NOT NULL, shard INTEGER NOT NULL, "
    "done SMALLINT NOT NULL DEFAULT 0, worker {key}, since {real}, expires {real}, "
    "attempts INTEGER NOT NULL DEFAULT 0, finished {real}, rows_done INTEGER, counts {text}, "
    "PRIMARY KEY (run, shard))",
    "CREATE TABLE IF NOT EXISTS dl_archive (digest {bin} PRIMARY KEY, url {text} NOT NULL, "
    "status {key} NOT NULL, sha256 {key}, location {text}, run {key} NOT NULL)",
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """One database's statements. Placeholders are the driver's own (``?``, ``%s``, ``$1``)."""

    name: str
    tables: tuple[str, ...]
    version: str
    set_version: str
    run: str
    add_run: str
    grow_run: str
    add_shards: str
    pick: str
    """The first claimable shard of a run, locked for this transaction (others skip it)."""
    pick_one: str
    """A given shard, whoever holds it: its caller holds the shard's lock file, so its holder is gone."""
    take: str
    renew: str
    finish: str
    release: str
    left: str
    runs: str
    shards: str
    now: str
    upsert: str
    lookup: str


def _tables(name: str) -> tuple[str, ...]:
    return tuple(t.format(**_TYPES[name]) for t in _TABLES)


def _sqlite() -> Dialect:
    now = NOW["sqlite"]
    free = f"done = 0 AND (worker IS NULL OR expires < {now})"
    return Dialect(
        name="sqlite",
        tables=_tables("sqlite"),
        now=f"SELECT {NOW['sqlite']}",
        version="SELECT value FROM dl_meta WHERE name = 'schema'",
        set_version="INSERT OR IGNORE INTO dl_meta (name, value) VALUES ('schema', ?)",
        run="SELECT shards, started, settings FROM dl_runs WHERE run = ?",
        add_run=f"INSERT OR IGNORE INTO dl_runs (run, settings, shards, started) VALUES (?, ?, ?, {now})",
        grow_run="UPDATE dl_runs SET shards = ? WHERE run = ? AND shards < ?",
        add_shards="INSERT OR IGNORE INTO dl_shards (run, shard) VALUES (?, ?)",
        pick=f"SELECT shard FROM dl_shards WHERE run = ? AND {free} ORDER BY shard LIMIT 1",
        pick_one="SELECT shard FROM dl_shards WHERE run = ? AND shard = ?",
        take=f"UPDATE dl_shards SET done = 0, worker = ?, since = {now}, expires = {now} + ?, "
        "attempts = attempts + 1 WHERE run = ? AND shard = ?",
        renew=f"UPDATE dl_shards SET expires = {now} + ? WHERE run = ? AND shard = ? AND worker = ? "
        "AND done = 0",
        finish=f"UPDATE dl_shards SET done = 1, worker = ?, expires = NULL, finished = {now}, "
        "rows_done = ?, counts = ? WHERE run = ? AND shard = ? AND done = 0",
        release="UPDATE dl_shards SET worker = NULL, expires = NULL WHERE run = ? AND shard = ? "
        "AND worker = ? AND done = 0",
        left="SELECT COUNT(*) FROM dl_shards WHERE run = ? AND done = 0",
        runs="SELECT run FROM dl_runs ORDER BY started, run",
        shards="SELECT shard, done, worker, since, expires, attempts, finished, rows_done, counts "
        "FROM dl_shards WHERE run = ? ORDER BY shard",
        upsert="INSERT INTO dl_archive (digest, url, status, sha256, location, run) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO UPDATE SET url = excluded.url, "
        "status = excluded.status, sha256 = excluded.sha256, location = excluded.location, "
        "run = excluded.run WHERE dl_archive.status <> 'ok'",
        lookup="SELECT digest, url, status, sha256, location, run FROM dl_archive WHERE digest IN ({marks})",
    )


def _mysql() -> Dialect:
    now = NOW["mysql"]
    free = f"done = 0 AND (worker IS NULL OR expires < {now})"
    keep = "IF(status <> 'ok', VALUES({0}), {0})"
    return Dialect(
        name="mysql",
        tables=_tables("mysql"),
        now=f"SELECT {NOW['mysql']}",
        version="SELECT value FROM dl_meta WHERE name = 'schema'",
        set_version="INSERT IGNORE INTO dl_meta (name, value) VALUES ('schema', %s)",
        run="SELECT shards, started, settings FROM dl_runs WHERE run = %s",
        add_run=f"INSERT IGNORE INTO dl_runs (run, settings, shards, started) VALUES (%s, %s, %s, {now})",
        grow_run="UPDATE dl_runs SET shards = %s WHERE run = %s AND shards < %s",
        add_shards="INSERT IGNORE INTO dl_shards (run, shard) VALUES (%s, %s)",
        pick=f"SELECT shard FROM dl_shards WHERE run = %s AND {free} ORDER BY shard LIMIT 1 "
        "FOR UPDATE SKIP LOCKED",
        pick_one="SELECT shard FROM dl_shards WHERE run = %s AND shard = %s FOR UPDATE",
        take=f"UPDATE dl_shards SET done = 0, worker = %s, since = {now}, expires = {now} + %s, "
        "attempts = attempts + 1 WHERE run = %s AND shard = %s",
        renew=f"UPDATE dl_shards SET expires = {now} + %s WHERE run = %s AND shard = %s AND worker = %s "
        "AND done = 0",
        finish=f"UPDATE dl_shards SET done = 1, worker = %s, expires = NULL, finished = {now}, "
        "rows_done = %s, counts = %s WHERE run = %s AND shard = %s AND done = 0",
        release="UPDATE dl_shards SET worker = NULL, expires = NULL WHERE run = %s AND shard = %s "
        "AND worker = %s AND done = 0",
        left="SELECT COUNT(*) FROM dl_shards WHERE run = %s AND done = 0",
        runs="SELECT run FROM dl_runs ORDER BY started, run",
        shards="SELECT shard, done, worker, since, expires, attempts, finished, rows_done, counts "
        "FROM dl_shards WHERE run = %s ORDER BY shard",
        # status last: each assignment sees the ones before it, so it must still read the old status
        upsert="INSERT INTO dl_archive (digest, url, status, sha256, location, run) "
        "VALUES {rows} ON DUPLICATE KEY UPDATE "
        + ", ".join(f"{c} = {keep.format(c)}" for c in ("url", "sha256", "location", "run", "status")),
        lookup="SELECT digest, url, status, sha256, location, run FROM dl_archive WHERE digest IN ({marks})",
    )


def _postgresql() -> Dialect:
    now = NOW["postgresql"]
    free = f"done = 0 AND (worker IS NULL OR expires < {now})"
    return Dialect(
        name="postgresql",
        tables=_tables("postgresql"),
        now=f"SELECT {NOW['postgresql']}",
        version="SELECT value FROM dl_meta WHERE name = 'schema'",
        set_version="INSERT INTO dl_meta (name, value) VALUES ('schema', $1) ON CONFLICT DO NOTHING",
        run="SELECT shards, started, settings FROM dl_runs WHERE run = $1",
        add_run="INSERT INTO dl_runs (run, settings, shards, started) "
        f"VALUES ($1, $2, $3, {now}) ON CONFLICT DO NOTHING",
        grow_run="UPDATE dl_runs SET shards = $1 WHERE run = $2 AND shards < $3",
        add_shards="INSERT INTO dl_shards (run, shard) SELECT $1, s FROM unnest($2::integer[]) AS s "
        "ON CONFLICT DO NOTHING",
        pick=f"SELECT shard FROM dl_shards WHERE run = $1 AND {free} ORDER BY shard LIMIT 1 "
        "FOR UPDATE SKIP LOCKED",
        pick_one="SELECT shard FROM dl_shards WHERE run = $1 AND shard = $2 FOR UPDATE",
        take=f"UPDATE dl_shards SET done = 0, worker = $1, since = {now}, expires = {now} + $2, "
        "attempts = attempts + 1 WHERE run = $3 AND shard = $4",
        renew=f"UPDATE dl_shards SET expires = {now} + $1 WHERE run = $2 AND shard = $3 AND worker = $4 "
        "AND done = 0",
        finish=f"UPDATE dl_shards SET done = 1, worker = $1, expires = NULL, finished = {now}, "
        "rows_done = $2, counts = $3 WHERE run = $4 AND shard = $5 AND done = 0",
        release="UPDATE dl_shards SET worker = NULL, expires = NULL WHERE run = $1 AND shard = $2 "
        "AND worker = $3 AND done = 0",
        left="SELECT COUNT(*) FROM dl_shards WHERE run = $1 AND done = 0",
        runs="SELECT run FROM dl_runs ORDER BY started, run",
        shards="SELECT shard, done, worker, since, expires, attempts, finished, rows_done, counts "
        "FROM dl_shards WHERE run = $1 ORDER BY shard",
        upsert="INSERT INTO dl_archive (digest, url, status, sha256, location, run) "
        "SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) "
        "ON CONFLICT (digest) DO UPDATE SET url = excluded.url, status = excluded.status, "
        "sha256 = excluded.sha256, location = excluded.location, run = excluded.run "
        "WHERE dl_archive.status <> 'ok'",
        lookup="SELECT digest, url, status, sha256, location, run FROM dl_archive "
        "WHERE digest = ANY($1::bytea[])",
    )


MYSQL_ROW = "(UNHEX(%s), %s, %s, %s, %s, %s)"
"""One archive row of MySQL's multi-row ``VALUES`` (digests travel as hex: the driver mangles bytes)."""
MYSQL_MARK = "UNHEX(%s)"

SETUP_LOCK = {
    "mysql": (
        "SELECT GET_LOCK('downloader_state_setup', 30)",
        "SELECT RELEASE_LOCK('downloader_state_setup')",
    ),
    "postgresql": ("SELECT pg_advisory_xact_lock(7318046112)", ""),
}
"""Many workers create the schema at once: one at a time (PostgreSQL's ``CREATE TABLE IF NOT EXISTS``
races on its catalogue otherwise). SQLite serialises with ``BEGIN IMMEDIATE``."""

DIALECTS = {"sqlite": _sqlite(), "mysql": _mysql(), "postgresql": _postgresql()}
