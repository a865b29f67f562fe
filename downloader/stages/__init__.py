"""The stage seam: work on a complete, checked body before it lands (bytes in, bytes and metadata out).

A ``Stage`` sees the whole body of one sample once every check passed, and returns the bytes to store
(the same, or re-encoded) and its type. ``StagedOutput`` wraps any ``Output`` with a stage, so every
backend, sync or async, gets it without knowing: its writer keeps the body in memory, runs the stage at
commit, and hands the result to the wrapped writer. With no stage nothing is wrapped and nothing costs.
The CPU-heavy stages run ``process`` in worker processes; ``aprocess`` is how the loop awaits them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from ..models import Stored
from ..writers import Output, SampleWriter, SyncSampleWriter


@dataclass(slots=True)
class Sample:
    """A complete body, its sniffed type (``.jpg``, or None) and what a stage learned of it."""

    body: bytes
    kind: str | None
    meta: dict[str, object] = field(default_factory=dict)


class Stage(Protocol):
    def process(self, sample: Sample) -> Sample:
        """Synchronous form, for worker threads and processes. Raises ``DownloadError`` to reject."""
        ...

    async def aprocess(self, sample: Sample) -> Sample:
        """The loop's form: must not block the loop (hand CPU work to an executor)."""
        ...


class Passthrough:
    """The stage of a run without one: the body as it came."""

    def process(self, sample: Sample) -> Sample:
        return sample

    async def aprocess(self, sample: Sample) -> Sample:
        return sample


class _StagedWriter:
    def __init__(self, inner: SampleWriter, stage: Stage) -> None:
        self._inner = inner
        self._stage = stage
        self._pieces = list[bytes]()

    async def write(self, piece: bytes) -> None:
        self._pieces.append(piece)

    async def commit(self, kind: str | None) -> Stored:
        body = b"".join(self._pieces)
        try:
            sample = await self._stage.aprocess(Sample(body, kind))
        except BaseException:  # a cancel too: the inner writer's part file must not stay behind
            await self._inner.abort()
            raise
        await self._inner.write(sample.body)
        return _described(await self._inner.commit(sample.kind), body, sample)

    async def abort(self) -> None:
        self._pieces.clear()
        await self._inner.abort()


class _StagedSyncWriter:
    def __init__(self, inner: SyncSampleWriter, stage: Stage) -> None:
        self._inner = inner
        self._stage = stage
        self._pieces = list[bytes]()

    def write(self, piece: bytes) -> None:
        self._pieces.append(piece)

    def commit(self, kind: str | None) -> Stored:
        body = b"".join(self._pieces)
        try:
            sample = self._stage.process(Sample(body, kind))
        except BaseException:  # an interrupt too: the inner writer's part file must not stay behind
            self._inner.abort()
            raise
        self._inner.write(sample.body)
        return _described(self._inner.commit(sample.kind), body, sample)

    def abort(self) -> None:
        self._pieces.clear()
        self._inner.abort()


def _described(stored: Stored, original: bytes, sample: Sample) -> Stored:
    """``stored`` with the stored body's own size and sha256 when the stage changed it, and its meta."""
    if sample.body is not original:  # identity, not equality: an unchanged body is not hashed twice
        stored.bytes = len(sample.body)
        stored.sha256 = hashlib.sha256(sample.body).hexdigest()
    stored.meta = {**(sample.meta or {}), **(stored.meta or {})} or None  # the writer's word last
    return stored


class StagedOutput:
    """``inner`` with ``stage`` run on each complete body before it lands."""

    def __init__(self, inner: Output, stage: Stage) -> None:
        self.inner = inner
        self.stage = stage

    def open(self, rel: str) -> SampleWriter:
        return _StagedWriter(self.inner.open(rel), self.stage)

    def open_sync(self, rel: str) -> SyncSampleWriter:
        return _StagedSyncWriter(self.inner.open_sync(rel), self.stage)
