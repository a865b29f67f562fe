"""The run's shared state: one database that workers on many machines coordinate through.

It holds three things, and the output stays the source of truth for all of them (shard manifests and done
markers next to the data), so a lost database loses no output and is rebuilt from OUT:

- the **run**: its settings (as ``run.json`` records them) and its shard plan;
- the **leases**: which worker holds which shard, until when; a lease not renewed by its heartbeat expires
  and the shard is claimed again by whoever is free (``SELECT … FOR UPDATE SKIP LOCKED`` where the database
  has it, so many workers never block or deadlock);
- the **archive**: URL digest → status, sha256 and where the body is stored, shared by every run and dataset
  that names the same database ("never download this URL, or this content, twice").

``open_state(url)`` picks the driver by the URL's scheme (``sqlite:///path``, ``mysql://``,
``postgresql://``); each driver is owned by one module, and the SQL lives in ``state.sql``. Every call is
asynchronous and batched: many rows per round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Archived:
    """One URL's entry in the archive: what became of it, and where its body is kept."""

    digest: bytes
    """The URL's digest (``keys`` digest of the normalised URL, 16 bytes)."""
    url: str
    status: str
    sha256: str | None = None
    where: str | None = None
    """Where the body is stored: ``OUT/00000.tar#000000012`` or a file path."""
    run: str = ""


@dataclass(frozen=True, slots=True)
class Lease:
    """A shard a worker holds: until ``until`` (seconds since the epoch, the database's clock)."""

    run: str
    shard: int
    worker: str
    until: float
    attempts: int = 1


@dataclass(slots=True)
class Status:
    """What ``downloader status`` shows: shards done, running (by whom, since when), left; rows by
    status and failure kind; expired leases."""

    run: str
    shards: int = 0
    done: int = 0
    running: list[Lease] = field(default_factory=list)
    expired: list[Lease] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    started: float | None = None
    updated: float | None = None


class State(Protocol):
    """A connection to the state database, opened with ``async with``; every method is one round trip
    (or a few), whatever the number of rows given."""

    url: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def setup(self) -> None:
        """Create the schema when missing (versioned); harmless to call again."""

    async def start_run(self, run: str, settings: dict[str, Any], shards: int) -> None:
        """Record the run and its plan (shards 0..shards-1, unclaimed); an existing run is left as is,
        except that a grown list adds shards."""

    async def claim(self, run: str, worker: str, lease: float) -> int | None:
        """The next shard nobody holds (never claimed, or its lease expired), now ``worker``'s for
        ``lease`` seconds; None when every shard is done or held."""

    async def renew(self, run: str, shard: int, worker: str, lease: float) -> bool:
        """The heartbeat: extend ``worker``'s lease; False when the shard is no longer its own."""

    async def finish(self, run: str, shard: int, worker: str, counts: dict[str, int]) -> None:
        """Mark the shard done, with its rows' counts by status (and ``kind:NAME`` by failure kind)."""

    async def release(self, run: str, shard: int, worker: str) -> None:
        """Give a shard back unfinished (a clean stop), so another worker may claim it at once."""

    async def archive(self, entries: Sequence[Archived]) -> None:
        """Add or update archive entries, many per round trip."""

    async def archived(self, digests: Sequence[bytes]) -> dict[bytes, Archived]:
        """The archive's entries for these URL digests (those it has)."""

    async def status(self, run: str) -> Status: ...
