"""The output of a dataset shard while it runs: each complete sample is appended to the shard's spool
(a tar, ``writers.tar.TarAppender``) at commit, as ``KEY.EXT``. Nothing else is written per sample; the
shard's final tar or Parquet is made from the spool when every row is done (``dataset.shardfiles.finish``).

A sample is buffered until commit (a shard's samples go to one file, so no two may interleave), and
an aborted one leaves nothing. A member is always ``KEY.EXT`` (``member_name``): the key up to its first
dot, and the extension of the stored bytes' sniffed type, never the URL's (``/p/17``, ``/x.php?id=3`` or
a PNG served as ``.jpg`` would otherwise give names readers split wrongly); ``.bin`` when the type is
unknown (``--accept any``), so a body never takes a name of the sample's own (``KEY.json``, ``KEY.txt``).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading

from ..keys import ContentIndex
from ..models import Stored
from .tar import TarAppender

UNKNOWN = ".bin"
_KIND = re.compile(r"\.[a-z0-9]{1,8}")
"""What a sniffed or encoded type looks like (``.jpg``, ``.webp``, ``.tif``): one dot, lower case."""


class Spool:
    """The shard's samples, appended to its spool; ``where`` names the shard's final file in each
    stored path (``00000.tar/000000123.jpg``). With a content index (``--dedup content``), a body
    whose sha256 is already stored elsewhere in OUT is not stored again: its ``Stored`` names the first
    copy (``meta["duplicate_of"]``), and the shard records the row as a duplicate."""

    def __init__(self, appender: TarAppender, where: str, index: ContentIndex | None = None) -> None:
        self.appender = appender
        self.where = where
        self.index = index
        self._lock = threading.Lock()

    def store(self, rel: str, kind: str | None, pieces: list[bytes]) -> Stored:
        name = member_name(rel, kind)
        path = f"{self.where}/{name}"
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        try:
            with self._lock:  # a claim and its append go together (worker threads commit too)
                if self.index is not None and (first := self.index.claim(_sha(body), path)) is not None:
                    return Stored(first, meta={"duplicate_of": first})
                self.appender.append(name, body)
        except OSError as exc:
            from .files import write_error

            raise write_error(exc, self.appender.path) from None
        return Stored(path)


def _sha(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


class _Sample:
    """One sample's pieces, held until commit; the part both writers share (one sync, one async)."""

    def __init__(self, spool: Spool, rel: str) -> None:
        self._spool = spool
        self._rel = rel
        self._pieces = list[bytes]()

    def _store(self, kind: str | None) -> Stored:
        stored = self._spool.store(self._rel, kind, self._pieces)
        self._pieces = []
        return stored


class _Writer(_Sample):
    """A worker thread's writer (``SyncSampleWriter``)."""

    def write(self, piece: bytes) -> None:
        self._pieces.append(piece)

    def commit(self, kind: str | None) -> Stored:
        return self._store(kind)

    def abort(self) -> None:
        self._pieces = []


class _AsyncWriter(_Sample):
    """The loop's writer (``SampleWriter``): the append is a buffered write to the page cache, cheaper
    than a thread hop."""

    async def write(self, piece: bytes) -> None:
        self._pieces.append(piece)

    async def commit(self, kind: str | None) -> Stored:
        return self._store(kind)

    async def abort(self) -> None:
        self._pieces = []


class SpoolOutput:
    """The ``Output`` of a shard's run."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def open(self, rel: str) -> _AsyncWriter:
        return _AsyncWriter(self.spool, rel)

    def open_sync(self, rel: str) -> _Writer:
        return _Writer(self.spool, rel)


def member_name(rel: str, kind: str | None) -> str:
    """``KEY.EXT``: the sample's key (``rel`` up to its first dot) and its type's extension, the one
    dot in the name, as every WebDataset reader splits it."""
    return key_of(rel) + (kind if kind and _KIND.fullmatch(kind) else UNKNOWN)


def key_of(name: str) -> str:
    """A member's key: its name up to the first dot, as WebDataset reads it."""
    return os.path.basename(name).split(".", 1)[0]
