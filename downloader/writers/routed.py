"""An ``Output`` that hands each sample to the output its key was given to: one backend (one session,
one pool) writes the samples of several dataset shards open at once, each into its own spool."""

from __future__ import annotations

from . import Output, SampleWriter, SyncSampleWriter
from .spool import key_of


class RoutedOutput:
    """Keys (``KEY`` of ``KEY.EXT``) to the outputs that take their samples; a key is given before its
    job is fetched and dropped when its shard ends, so the map holds the open shards' keys only."""

    def __init__(self) -> None:
        self._to: dict[str, Output] = {}

    def give(self, key: str, output: Output) -> None:
        self._to[key] = output

    def drop(self, key: str) -> None:
        self._to.pop(key, None)

    def open(self, rel: str) -> SampleWriter:
        return self._to[key_of(rel)].open(rel)

    def open_sync(self, rel: str) -> SyncSampleWriter:
        return self._to[key_of(rel)].open_sync(rel)  # a worker thread: a dict read is atomic
