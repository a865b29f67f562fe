"""The writer seam: where a sample lands.

An ``Output`` opens one writer per sample; the writer takes the body piece by piece and then either
commits (the sample is complete at its final name, returned as a ``models.Stored``) or aborts (nothing of it
remains). A final name never holds a partial body. Today's one implementation is ``files.FilesOutput``
(a file per sample, ``.part`` and rename); dataset shards plug in here as further outputs. A writer
that also has ``hash_with(hasher)`` is given the body's hash to update itself, piece by piece, as it
writes (``StreamingBackend.fetch``); one without it leaves the hashing to the checks.
"""

from __future__ import annotations

from typing import Protocol

from ..models import Stored


class Hasher(Protocol):
    """A running hash (``hashlib``'s) that a writer may be given to update with the body as it writes it."""

    def update(self, data: bytes, /) -> None: ...


class SampleWriter(Protocol):
    """One sample's body, written from the event loop."""

    async def write(self, piece: bytes) -> None: ...

    async def commit(self, kind: str | None) -> Stored:
        """Finish the sample; ``kind`` is its sniffed type (``.png``) or None. Says where it is."""
        ...

    async def abort(self) -> None: ...


class SyncSampleWriter(Protocol):
    """One sample's body, written from a worker thread (the ``threads`` backend)."""

    def write(self, piece: bytes) -> None: ...

    def commit(self, kind: str | None) -> Stored: ...

    def abort(self) -> None: ...


class Output(Protocol):
    """Where a run's samples land."""

    def open(self, rel: str) -> SampleWriter: ...

    def open_sync(self, rel: str) -> SyncSampleWriter: ...
