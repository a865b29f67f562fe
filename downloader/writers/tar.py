"""Tar files written member by member, for dataset shards.

A shard's samples are appended to a spool as they complete (``TarAppender``), each member whole or not at
all as far as a reader is concerned: ``scan`` finds the complete members of a spool that a crash cut short
and cuts off the torn tail, so a rerun appends after the last complete sample. The final tar is written
whole by ``write_tar`` under a temporary name; the caller renames it into place. Members are plain USTAR
entries with fixed owner, mode and time, so the same samples always make the same bytes.
"""

from __future__ import annotations

import os
import tarfile
import threading
from collections.abc import Iterable

BLOCK = 512
END = bytes(2 * BLOCK)
"""Two zero blocks end an archive."""


def member(name: str, data: bytes) -> bytes:
    """One regular-file member: its header, its bytes and the padding to a whole block."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    return header + data + bytes(-len(data) % BLOCK)


class TarAppender:
    """A spool: members appended to one file from the loop or from worker threads (one lock). Each
    append is one write and a flush, so a killed process leaves at most the last member torn."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh = open(path, "ab")  # noqa: SIM115 - closed in close()

    def append(self, name: str, data: bytes) -> None:
        chunk = member(name, data)
        with self._lock:
            self._fh.write(chunk)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


Members = dict[str, tuple[str, int, int]]
"""Member name → (tar file, offset of its bytes, size)."""


def scan(path: str, *, repair: bool = False) -> Members:
    """The complete members of ``path`` (the last of a name wins); nothing when there is no such file.
    With ``repair``, a torn tail (a member cut short by a kill) is cut off, so appends follow the last
    complete member."""
    found: Members = {}
    try:
        fh = open(path, "r+b" if repair else "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return found
    with fh:
        size = os.fstat(fh.fileno()).st_size
        pos = 0
        while pos + BLOCK <= size:
            fh.seek(pos)
            block = fh.read(BLOCK)
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
            except tarfile.HeaderError:  # zero blocks (the end) or a torn header
                break
            end = pos + BLOCK + info.size + (-info.size % BLOCK)
            if end > size:
                break
            found[info.name] = (path, pos + BLOCK, info.size)
            pos = end
        if repair and pos < size:
            fh.truncate(pos)
    return found


def read_member(where: tuple[str, int, int]) -> bytes:
    path, offset, size = where
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(size)


def write_tar(path: str, members: Iterable[tuple[str, bytes]]) -> None:
    """A whole archive at ``path`` (a temporary name: the caller renames it when this returns)."""
    with open(path, "wb") as fh:
        for name, data in members:
            fh.write(member(name, data))
        fh.write(END)
