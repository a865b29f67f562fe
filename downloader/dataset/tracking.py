"""A shard's life in the state database, around ``process_shard``'s own work: taken (a lease, held by a
heartbeat) before it runs, its URLs looked up in the shared archive in one call, and at its end its rows
archived and the shard marked done, with its counts. Every runner gets this by giving the run a state
URL; all of it is per shard and batched, never per URL.

Two guards keep two processes from ever writing one shard: the lease (a worker whose lease was taken
over stops that shard within a second of its next heartbeat) and an exclusive ``flock`` on the shard's
lock file (``_shards/00000.lock``), held while the shard runs, which a process killed mid-shard gives up
with its life. The output stays the source of truth: a done marker is what makes a shard done, and the
database only learns of it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ..app.assemble import StopFlag
from ..errors import DownloadError
from ..keys import archive_digest
from ..manifest import read_manifest
from ..models import Job, Stats
from ..names import normalise
from ..state import Archived, StateError
from .shardfiles import SHARDS, ShardFiles, exclusive, key
from .statedb import Heartbeat, StateThread, worker_id

log = logging.getLogger(__name__)


class Work(Protocol):
    """A shard's own work, as its record in the state database drives it (``shard.ShardWork``)."""

    @property
    def files(self) -> ShardFiles: ...

    @property
    def redo(self) -> bool:
        """A done shard with failed rows is made again."""
        ...

    def jobs(self) -> Iterable[Job]:
        """The shard's input jobs (read only when another run shares the archive)."""
        ...

    def make(self, known: dict[int, Archived], stop: StopFlag | None) -> Stats:
        """The shard made final, given the rows another run already stored and the flag that stops it."""
        ...


@dataclass(frozen=True, slots=True)
class Tracking:
    """Where a run's shards are recorded: the state URL, the run's id, the lease in seconds."""

    url: str
    run: str
    lease: float = 60.0
    claimed: bool = False
    """The runner claimed the shard already (``leased``): not claimed again."""
    done: frozenset[int] = frozenset()
    """Shards the database had as done when the run started: a rerun passes them by without a word to it."""


def tracked(t: Tracking, work: Work) -> Stats:
    """Run ``work`` as the state database's record of its shard. A database that fails stops the shard
    (``aborted``) with what it had done kept."""
    marker = work.files.marker()
    finished = marker is not None and not (work.redo and marker.get("failed"))
    if finished and work.files.k in t.done:
        return work.make({}, None)
    try:
        with StateThread(t.url) as db:
            record = _Record(t, work, db, worker_id())
            return record.finished() if finished else record.held()
    except StateError as exc:
        return Stats(aborted=str(exc))


@dataclass(frozen=True)
class _Record:
    """One shard's record in the state database while this process makes it."""

    t: Tracking
    work: Work
    db: StateThread
    me: str

    def finished(self) -> Stats:
        """A shard done already: counted, and recorded done should the database not know it yet."""
        stats = self.work.make({}, None)
        counts, entries = recorded(self.work.files, self.t.run)
        if self.db.finish(self.t.run, self.work.files.k, self.me, counts):
            self.db.archive(entries)  # a shard the database had not seen done
        return stats

    def held(self) -> Stats:
        """The shard under its lock and lease, then recorded (done) or given back (stopped)."""
        t = self.t
        files = self.work.files
        db = self.db
        (files.out / SHARDS).mkdir(parents=True, exist_ok=True)
        with self._ours() as beat:
            if beat is None:
                return self._busy()
            stats = self.work.make(self._stored_elsewhere(), beat.stop)
            beat.end()
            if beat.lost is not None:
                stats.interrupted = False  # this process stopped it, for its new holder: not an interruption
            if files.marker() is None:
                with contextlib.suppress(StateError):
                    db.release(t.run, files.k, self.me)
                return stats
            counts, entries = recorded(files, t.run)
            db.archive(entries)
            db.finish(t.run, files.k, self.me, counts)
        return stats

    @contextlib.contextmanager
    def _ours(self) -> Iterator[Heartbeat | None]:
        """The shard's lease (renewed by a heartbeat) and lock, both held; None when another process
        holds the lock. A shard the runner claimed has its heartbeat run while the lock is awaited; any
        other is locked first, then taken over from whoever held its lease (gone, since the lock was free)."""
        t = self.t
        files = self.work.files
        beat = Heartbeat(t.url, t.run, files.k, self.me, t.lease)
        if t.claimed:
            with beat, exclusive(files, t.lease) as locked:
                yield beat if locked else None
            return
        with exclusive(files) as locked:
            if not locked:
                yield None
                return
            self.db.claim(t.run, self.me, t.lease, files.k)
            with beat:
                yield beat

    def _busy(self) -> Stats:
        """Another live process writes the shard: a claimed shard is given back (to be claimed again once
        that process is done or gone); a shard this run was told to make is an error."""
        name = self.work.files.name
        said = f"shard {name}: another process holds its lock file ({name}.lock) and writes it"
        if not self.t.claimed:
            return Stats(aborted=said)
        log.warning("%s; given back", said)
        self.db.release(self.t.run, self.work.files.k, self.me)
        return Stats()

    def _stored_elsewhere(self) -> dict[int, Archived]:
        """The shard's rows whose URL another run stored (ok, outside this OUT): one lookup for the
        shard, made only when the database knows another run."""
        t = self.t
        if self.db.runs() == [t.run]:
            return {}
        lines: dict[bytes, int] = {}
        for job in self.work.jobs():
            if not job.error:
                lines.setdefault(archive_digest(job.key), job.line)
        here = str(self.work.files.out.resolve()) + "/"
        found: dict[int, Archived] = {}
        for digest, entry in self.db.archived(list(lines)).items():
            if entry.status == "ok" and entry.run != t.run and not (entry.where or "").startswith(here):
                found[lines[digest]] = entry
        return found


def recorded(files: ShardFiles, run: str) -> tuple[dict[str, int], list[Archived]]:
    """What the database learns of a done shard, from its final rows (read once): its rows counted by
    status and by failure kind (``kind:NAME``), and its archive entries: each URL it stored (where: the
    shard file and the sample's key) or failed; rows it did not fetch (duplicates, invalid) have none."""
    counts = {"rows": 0}
    entries = []
    final = files.where
    for row in read_manifest(files.rows):
        status = row["status"]
        kind = row.get("kind")
        counts["rows"] += 1
        counts[status] = counts.get(status, 0) + 1
        if kind:
            counts[f"kind:{kind}"] = counts.get(f"kind:{kind}", 0) + 1
        if status in ("ok", "failed"):
            try:
                digest = archive_digest(normalise(row["url"]))
            except DownloadError:
                continue
            where = f"{final}#{row.get('key') or key(row['line'])}" if status == "ok" else None
            entries.append(Archived(digest, row["url"], status, row.get("sha256"), where, run))
    return counts, entries
