"""The run's shared state: one database that workers on many machines coordinate through.

It holds three things, and the output stays the source of truth for all of them (shard manifests and done
markers next to the data), so a lost database loses no output and is rebuilt from OUT:

- the **run**: its settings (as ``run.json`` records them) and its shard plan;
- the **leases**: which worker holds which shard, until when; a lease not renewed by its heartbeat expires
  and the shard is claimed again by whoever is free (``SELECT … FOR UPDATE SKIP LOCKED`` where the database
  has it, so many workers never block or deadlock);
- the **archive**: URL digest → status, sha256 and where the body is stored, shared by every run and dataset
  that names the same database ("never download this URL, or this content, twice").

``state.drivers.open_state(url)`` picks the driver by the URL's scheme (``sqlite:///path``, ``mysql://``,
``postgresql://``); each driver is owned by one module, and the SQL lives in ``state.sql``. Every call is
asynchronous and batched: many rows per round trip. A database that fails or goes away raises
``StateError`` (exit 3): the run stops, and its output (the source of truth) keeps what was done.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self, TypeVar
from urllib.parse import unquote, urlsplit

from ..errors import RunAborted, UsageError

SCHEMA_VERSION = 1
T = TypeVar("T")
CHUNK = 1000
"""Rows per round trip for batched calls (``archive``, ``archived``, a plan's shards)."""
SCHEMES = {"sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}
SCHEMES["postgres"] = "postgresql"


class StateError(RunAborted):
    """The state database failed or went away: the run stops (exit 3); its output keeps what was done."""


@dataclass(frozen=True, slots=True)
class Archived:
    """One URL's entry in the archive: what became of it, and where its body is kept."""

    digest: bytes
    """The URL's digest (``keys.archive_digest`` of the normalised URL, 16 bytes)."""
    url: str
    status: str
    sha256: str | None = None
    where: str | None = None
    """Where the body is stored: ``/abs/OUT/00000.tar#000000012`` (a shard and a sample's key)."""
    run: str = ""


@dataclass(frozen=True, slots=True)
class Lease:
    """A shard a worker holds: since ``since``, until ``until`` (seconds since the epoch, the database's
    clock)."""

    run: str
    shard: int
    worker: str
    until: float
    attempts: int = 1
    since: float | None = None


@dataclass(slots=True)
class RunStatus:
    """What ``downloader status`` shows: shards done, running (by whom, since when), left; rows by
    status and failure kind; expired leases; the rate so far and what it makes of the rest."""

    run: str
    shards: int = 0
    done: int = 0
    running: list[Lease] = field(default_factory=list)
    expired: list[Lease] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    started: float | None = None
    updated: float | None = None
    """The database's clock when the status was read."""
    settings: dict[str, object] = field(default_factory=dict)
    last_finish: float | None = None
    ran: list[tuple[float, float]] = field(default_factory=list, repr=False)
    """Each done shard's last run, ``(since, finished)``: the time shards actually ran (a shard made
    done without a claim, as ``state rebuild`` records it, has none)."""
    ran_rows: int = 0
    """The rows of the done shards that have a run in ``ran``."""
    done_shards: set[int] = field(default_factory=set, repr=False)
    """Which shards are done (not shown: a run may have many thousands)."""

    @property
    def left(self) -> int:
        return self.shards - self.done

    @property
    def busy(self) -> float | None:
        """Seconds during which at least one shard ran (the union of the done shards' runs, across every
        worker): a pause between runs, or a wait for workers, is not counted; None without any run."""
        spent = 0.0
        end = float("-inf")
        for since, finished in sorted(self.ran):
            if finished > end:
                spent += finished - max(since, end)
                end = finished
        return spent if self.ran else None

    @property
    def rate(self) -> float | None:
        """Rows per second while shards ran (``busy``): N workers at once count N times the rows in the
        same seconds, so this is the run's throughput, not one worker's. With no recorded runs (or runs
        too short for the database's clock), over the run so far (from its start; once every shard is
        done, up to the last one's end)."""
        busy = self.busy
        if busy:
            return self.ran_rows / busy if self.ran_rows else None
        end = self.last_finish if self.left == 0 and self.last_finish else self.updated
        rows = self.rows.get("rows", 0)
        spent = (end or 0) - (self.started or 0)
        return rows / spent if rows and spent > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds until every shard is done, at the rate so far (the list's rows, when recorded)."""
        total = self.settings.get("rows")
        rate = self.rate
        if rate is None:
            return None
        if not isinstance(total, int):
            total = round(self.rows.get("rows", 0) / max(1, self.done) * self.shards)
        return max(0.0, (total - self.rows.get("rows", 0)) / rate)


class State(Protocol):
    """A connection to the state database, opened with ``async with``; every method is one round trip
    (or a few), whatever the number of rows given. Not for two tasks at once: one connection each."""

    url: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def setup(self) -> None:
        """Create the schema when missing (versioned); harmless to call again, from many workers at once."""

    async def start_run(self, run: str, settings: dict[str, object], shards: int) -> None:
        """Record the run and its plan (shards 0..shards-1, unclaimed); an existing run is left as is,
        except that a grown list adds shards."""

    async def claim(self, run: str, worker: str, lease: float, shard: int | None = None) -> int | None:
        """The next shard nobody holds (never claimed, or its lease expired), now ``worker``'s for
        ``lease`` seconds; None when every shard is done or held. With ``shard``: that one, whoever
        held it, done or not: the caller holds the shard's lock file (so any holder is gone) and its
        output says it must run."""

    async def renew(self, run: str, shard: int, worker: str, lease: float) -> bool:
        """The heartbeat: extend ``worker``'s lease; False when the shard is no longer its own."""

    async def finish(self, run: str, shard: int, worker: str, counts: dict[str, int]) -> bool:
        """Mark the shard done, with its rows' counts by status (and ``kind:NAME`` by failure kind);
        False when it was done already (and is left as it was)."""

    async def release(self, run: str, shard: int, worker: str) -> None:
        """Give a shard back unfinished (a clean stop), so another worker may claim it at once."""

    async def left(self, run: str) -> int:
        """How many of the run's shards are not done (held or not)."""

    async def runs(self) -> list[str]:
        """Every run the database knows, the oldest first."""

    async def archive(self, entries: Sequence[Archived]) -> None:
        """Add or update archive entries, many per round trip. An ``ok`` entry is kept: the first copy
        stays the reference; any other entry is replaced by a newer one."""

    async def archived(self, digests: Sequence[bytes]) -> dict[bytes, Archived]:
        """The archive's entries for these URL digests (those it has)."""

    async def status(self, run: str) -> RunStatus: ...


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True, slots=True)
class Where:
    """A state URL taken apart (the password is never shown: ``shown``)."""

    dialect: str
    path: str = ""
    host: str = "127.0.0.1"
    port: int | None = None
    user: str | None = None
    password: str | None = None
    database: str = ""
    shown: str = ""


def parse_url(url: str) -> Where:
    """A ``--state`` URL, or a usage error that says what is accepted."""
    parts = urlsplit(url)
    dialect = SCHEMES.get(parts.scheme.split("+")[0].lower())
    if dialect == "sqlite":
        path = unquote(url.split(":", 1)[1].removeprefix("///")) if "///" in url[:12] else ""
        if not path:
            raise UsageError(f"--state {url!r}: a SQLite URL names a file: sqlite:///PATH")
        return Where("sqlite", path=path, shown=url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    database = unquote(parts.path.lstrip("/"))
    if dialect is None or not parts.hostname or not database or port == -1:
        raise UsageError(
            f"--state {_hide(url)!r} is not a state database URL: sqlite:///PATH, "
            "mysql://USER[:PASS]@HOST[:PORT]/DB or postgresql://USER[:PASS]@HOST[:PORT]/DB"
        )
    user = unquote(parts.username or "")
    password = parts.password
    secret = None if password is None else unquote(password)
    return Where(dialect, "", parts.hostname, port, user or None, secret, database, _hide(url))


def _hide(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
