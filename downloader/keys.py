"""Compact sets of URL identities: 8-byte digests in one ``array``, never a set of URL strings.

A Python set of a million URL strings costs well over 100 MB; this costs 16 MB at most per million
(open addressing, load factor at most one half).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

_EMPTY = 0
_GONE = 1


_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes


def digest64(key: str) -> int:
    """A 64-bit digest of a normalised URL (blake2b); 0 and 1 are reserved as slot markers."""
    value = _from_bytes(_blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest())
    return value if value > _GONE else value + 2


def claim_key(path: str) -> int:
    """The digest a path is claimed under: case folded, since two names that differ only in case are
    one file on a case-insensitive file system."""
    return digest64(path.lower())


class PathClaims:
    """Which URL holds each path, for names that two URLs may share: a path is free, held by this URL
    (a rerun, a duplicate), or held by another. Two digest sets, so memory stays flat as they spill."""

    _MIX = 0x9E3779B97F4A7C15

    def __init__(self, folder: Path | None = None) -> None:
        self._paths = DigestIndex(folder)
        self._owners = DigestIndex(folder)

    def claim(self, path: str, url_digest: int) -> bool:
        """True if ``path`` is now (or already was) this URL's; False if another URL holds it."""
        p = claim_key(path)
        pair = (p ^ (url_digest * self._MIX)) & (1 << 64) - 1 | 2  # never a reserved slot marker
        if pair in self._owners:
            return True
        if self._paths.add(p):
            self._owners.add(pair)
            return True
        return False

    def close(self) -> None:
        self._paths.close()
        self._owners.close()


class DigestSet:
    """A set of 64-bit digests with add, discard and membership, in ``array('Q')``."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1 << max(4, (capacity * 2 - 1).bit_length())
        self._slots = array("Q", bytes(8 * size))
        self._mask = size - 1
        self._used = 0  # live entries plus tombstones
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def _find(self, digest: int) -> int:
        """The slot holding ``digest``, or -1."""
        slots = self._slots
        i = digest & self._mask
        while True:
            v = slots[i]
            if v == digest:
                return i
            if v == _EMPTY:
                return -1
            i = (i + 1) & self._mask

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, int) and self._find(digest) >= 0

    def add(self, digest: int) -> bool:
        """Add ``digest``; True when it was not there before. One probe finds it or the slot it takes
        (the first tombstone on its way, else the empty slot that ended the probe)."""
        slots = self._slots
        mask = self._mask
        i = digest & mask
        free = -1
        while True:
            v = slots[i]
            if v == digest:
                return False
            if v == _EMPTY:
                break
            if v == _GONE and free < 0:
                free = i
            i = (i + 1) & mask
        if free < 0:
            if (self._used + 1) * 2 > len(slots):
                self._grow()
                return self.add(digest)
            free = i
            self._used += 1
        slots[free] = digest
        self._live += 1
        return True

    def __iter__(self) -> Iterator[int]:
        return (v for v in self._slots if v > _GONE)

    def discard(self, digest: int) -> None:
        i = self._find(digest)
        if i >= 0:
            self._slots[i] = _GONE
            self._live -= 1

    def _grow(self) -> None:
        old = self._slots
        size = len(old) * (2 if self._live * 4 > len(old) else 1)
        slots = self._slots = array("Q", bytes(8 * size))
        mask = self._mask = size - 1
        live = 0
        for v in old:
            if v > _GONE:
                i = v & mask
                while slots[i] != _EMPTY:
                    i = (i + 1) & mask
                slots[i] = v
                live += 1
        self._used = self._live = live


SPILL_AT = 1 << 16
"""Digests held in memory (a 1 MB table) before an index moves them to an SQLite file."""


class DigestIndex:
    """A set of digests that keeps memory flat: a ``DigestSet`` while small; past ``spill_at`` entries it
    moves them into an SQLite table in a hidden file under ``folder`` (removed by ``close``), where a
    lookup costs a few microseconds and memory stays at SQLite's 2 MB page cache, whatever the list length.
    Without a ``folder`` it never spills."""

    def __init__(self, folder: Path | None = None, spill_at: int | None = None) -> None:
        self._memory: DigestSet | None = DigestSet()
        self._folder = folder
        self._spill_at = spill_at or SPILL_AT
        self._db: sqlite3.Connection | None = None
        self._path: Path | None = None
        self._live = 0
        self._pending = 0

    def __len__(self) -> int:
        return len(self._memory) if self._memory is not None else self._live

    @property
    def spilled(self) -> bool:
        return self._db is not None

    def add(self, digest: int) -> bool:
        if self._memory is not None:
            added = self._memory.add(digest)
            if added and self._folder is not None and self._memory._live >= self._spill_at:
                self._spill()
            return added
        assert self._db is not None
        added = self._db.execute("INSERT OR IGNORE INTO d VALUES (?)", (_signed(digest),)).rowcount == 1
        self._live += added
        self._tick()
        return added

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, int):
            return False
        if self._memory is not None:
            return digest in self._memory
        assert self._db is not None
        return self._db.execute("SELECT 1 FROM d WHERE k = ?", (_signed(digest),)).fetchone() is not None

    def discard(self, digest: int) -> None:
        if self._memory is not None:
            self._memory.discard(digest)
            return
        assert self._db is not None
        self._live -= self._db.execute("DELETE FROM d WHERE k = ?", (_signed(digest),)).rowcount
        self._tick()

    def _tick(self) -> None:
        """Commit now and then: one transaction per few thousand writes, not one per write."""
        self._pending += 1
        if self._pending >= 4096:
            assert self._db is not None
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._pending = 0

    def _spill(self) -> None:
        assert self._memory is not None
        assert self._folder is not None
        fd, name = tempfile.mkstemp(prefix=".downloader-index-", suffix=".sqlite", dir=self._folder)
        os.close(fd)
        self._path = Path(name)
        import sqlite3  # only a list past the spill size needs it (2 ms of start-up otherwise)

        db = sqlite3.connect(name, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-2048", "temp_store=FILE"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("CREATE TABLE d (k INTEGER PRIMARY KEY)")
        db.execute("BEGIN")
        db.executemany("INSERT INTO d VALUES (?)", ((_signed(v),) for v in self._memory))
        self._live = len(self._memory)  # counted before the set is dropped
        self._memory = None
        self._db = db

    def close(self) -> None:
        """Drop the SQLite file, if there is one."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None


def _signed(digest: int) -> int:
    """SQLite integers are signed 64-bit."""
    return digest - (1 << 64) if digest >= 1 << 63 else digest


class ContentIndex:
    """sha256 → where the first copy of a body is stored, for ``--dedup content``: an SQLite table in a
    file in OUT, so it holds across runs, is shared by ``--procs`` workers (SQLite locks the file; a
    busy writer is waited for) and keeps memory at SQLite's page cache however many images there are.
    A file, not a hidden temporary, so that a later step can move it into a shared database."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        self._db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-2048"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE IF NOT EXISTS c (sha BLOB PRIMARY KEY, path TEXT) WITHOUT ROWID")

    def claim(self, sha256: bytes, path: str) -> str | None:
        """None when ``path`` holds the first copy of this body (recorded now, or by an earlier attempt
        at the same path); else where the first copy is."""
        db = self._db
        if db.execute("INSERT OR IGNORE INTO c VALUES (?, ?)", (sha256, path)).rowcount == 1:
            return None
        row = db.execute("SELECT path FROM c WHERE sha = ?", (sha256,)).fetchone()
        first: str = row[0]
        return None if first == path else first

    def close(self) -> None:
        self._db.close()


def archive_digest(key: str) -> bytes:
    """A normalised URL's identity in the shared archive: 16 bytes of blake2b, since an archive shared by
    many runs may hold billions of URLs (64 bits would collide)."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
