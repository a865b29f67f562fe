"""The files writer: each sample is a file in OUT. Bodies go to ``NAME.part`` beside the target and are
renamed into place only when complete, so a final name never holds a partial or wrong body.

Two writers obey the same rules: ``AsyncWriter`` (aiofiles, for the event-loop backends) and
``SyncWriter`` (plain file I/O, for a worker thread). A body up to ``SMALL_BODY`` bytes is buffered and
handed whole to a ``WriteBatch``, which writes, renames and closes every small body that completed in the
same moment in one aiofiles thread hop; a larger one is streamed on a plain descriptor, at least a MiB a
hop, each hop hashing its pieces (when the checks hand the hash over) just before one ``writev`` of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import aiofiles
import aiofiles.os

from ..errors import RunAborted, WriteError
from ..models import Stored
from ..names import with_extension
from . import Hasher

T = TypeVar("T")
SMALL_BODY = 1 << 20
FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}
"""Write errors after which every further write would fail too: the run stops (exit 3)."""


def part_of(final: str) -> str:
    return final + ".part"


def write_error(exc: OSError, path: str) -> WriteError:
    """A ``WriteError`` with one clear sentence; ``fatal`` when the whole output is unusable."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    err = WriteError(f"cannot write {os.path.basename(path)}: {reason}")
    err.fatal = exc.errno in FATAL_ERRNOS
    return err


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # pragma: no cover - nothing more can be done; the .part is ignored by reruns
        pass


def _in_folder(opener: Callable[[str], T], part: str) -> T:
    """``opener(part)``, creating the folder only when it is missing (no mkdir call per file)."""
    try:
        return opener(part)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(part), exist_ok=True)
        return opener(part)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _create(part: str) -> int:
    return os.open(part, _CREATE, 0o666)


def write_whole(part: str, final: str, pieces: list[bytes]) -> None:
    """Write ``pieces`` to ``part`` and rename it to ``final``; on any error remove ``part``.

    Plain descriptors and string paths: for a small file, ``open()`` and ``pathlib`` cost more than the
    four system calls themselves."""
    try:
        try:
            fd = os.open(part, _CREATE, 0o666)
        except FileNotFoundError:
            fd = _in_folder(_create, part)
        try:
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            done = os.write(fd, data) if data else 0
            if done < len(data):  # a short write (a signal, a full pipe): the rest piece by piece
                _write_all(fd, memoryview(data)[done:])
        finally:
            os.close(fd)
        os.replace(part, final)
    except OSError as exc:
        _unlink_quietly(part)
        raise write_error(exc, final) from None


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """``data`` whole, however many writes it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


IOV_BATCH = 64
"""Pieces per ``writev``: well under what every system takes at once (1024 on Linux and macOS)."""


def write_pieces(fd: int, pieces: list[bytes]) -> None:
    """``pieces`` in order, never joined (a join copies them all): one ``writev`` for up to ``IOV_BATCH``
    of them; after a short write (a signal, a disk filling up) the rest from where it stopped."""
    if not hasattr(os, "writev"):  # pragma: no cover - Windows
        for piece in pieces:
            _write_all(fd, piece)
        return
    for at in range(0, len(pieces), IOV_BATCH):
        batch = pieces[at : at + IOV_BATCH]
        done = os.writev(fd, batch)
        if done < sum(map(len, batch)):
            _write_all(fd, memoryview(b"".join(batch))[done:])


def _hash(hasher: Hasher | None, pieces: list[bytes]) -> None:
    if hasher is not None:
        for piece in pieces:
            hasher.update(piece)  # releases the GIL for all but the smallest pieces


def spill(part: str, fd: int | None, pieces: list[bytes], hasher: Hasher | None = None) -> int:
    """Hash (if given ``hasher``) and append a large body's ``pieces`` to ``part``, created at the first
    spill (``fd`` None); its descriptor. On an error the descriptor is closed and ``part`` removed."""
    try:
        if fd is None:
            try:
                fd = os.open(part, _CREATE, 0o666)
            except FileNotFoundError:
                fd = _in_folder(_create, part)
        _hash(hasher, pieces)
        write_pieces(fd, pieces)
    except OSError as exc:
        drop(part, fd)
        raise write_error(exc, part) from None
    return fd


def finish(part: str, final: str, fd: int, pieces: list[bytes], hasher: Hasher | None = None) -> None:
    """The last ``pieces`` of a large body (hashed, if given ``hasher``), then ``part`` closed and renamed
    to ``final``; on an error ``part`` is removed."""
    try:
        try:
            _hash(hasher, pieces)
            write_pieces(fd, pieces)
        finally:
            os.close(fd)
        os.replace(part, final)
    except OSError as exc:
        _unlink_quietly(part)
        raise write_error(exc, final) from None


def drop(part: str, fd: int | None) -> None:
    """Close a body's descriptor (if open) and remove its ``part``."""
    if fd is not None:
        with contextlib.suppress(OSError):  # the descriptor is gone either way
            os.close(fd)
    _unlink_quietly(part)


class _Target:
    """Where a sample goes: ``out/rel``, or with ``fix_ext`` the extension of its real type."""

    __slots__ = ("fix_ext", "out", "rel")

    def __init__(self, out: str, rel: str, fix_ext: bool) -> None:
        self.out = out
        self.rel = rel
        self.fix_ext = fix_ext

    def final(self, kind: str | None) -> str:
        if self.fix_ext and kind:
            self.rel = with_extension(self.rel, kind)
        return f"{self.out}/{self.rel}"


class SyncWriter:
    """The writer for a worker thread: same ``.part`` and rename rules as ``AsyncWriter``."""

    def __init__(self, target: _Target, chunk_size: int) -> None:
        self.target = target
        self.part = part_of(f"{target.out}/{target.rel}")
        self._chunk = max(chunk_size, 1)  # no hop to save here: written while still in the cache
        self._buf: list[bytes] = []
        self._size = 0
        self._fd: int | None = None

    def write(self, piece: bytes) -> None:
        self._buf.append(piece)
        self._size += len(piece)
        if self._size >= SMALL_BODY or (self._fd is not None and self._size >= self._chunk):
            self._spill()

    def _spill(self) -> None:
        try:
            self._fd = spill(self.part, self._fd, self._buf)
        except WriteError:
            self._fd = None
            self._buf.clear()
            raise
        self._buf.clear()
        self._size = 0

    def commit(self, kind: str | None) -> Stored:
        """Put the complete body at its final name (returned relative to OUT)."""
        final = self.target.final(kind)
        if self._fd is None:
            write_whole(self.part, final, self._buf)
            return Stored(self.target.rel)
        fd = self._fd
        self._fd = None
        finish(self.part, final, fd, self._buf)
        return Stored(self.target.rel)

    def abort(self) -> None:
        self._buf.clear()
        fd = self._fd
        self._fd = None
        drop(self.part, fd)


def write_many(items: list[tuple[str, str, list[bytes]]]) -> list[WriteError | None]:
    """``write_whole`` for each item, in one call (one thread hop); each item's error or None."""
    errors: list[WriteError | None] = []
    for part, final, pieces in items:
        try:
            write_whole(part, final, pieces)
        except WriteError as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return errors


_write_many_async = aiofiles.os.wrap(write_many)
_spill_async = aiofiles.os.wrap(spill)
_finish_async = aiofiles.os.wrap(finish)
_drop_async = aiofiles.os.wrap(drop)


class Landing(asyncio.Future[None]):
    """A small body's write, done once it is at its final name. A task waiting for it that is cancelled
    cannot cancel it: ``Task.cancel`` then lets the task wait on and throws ``CancelledError`` into it only
    once the write has landed, what ``asyncio.shield`` did at the cost of a second future and two
    callbacks per file."""

    def cancel(self, msg: object = None) -> bool:
        return False


class WriteBatch:
    """Small bodies completed at the same moment go to disk together: one aiofiles thread hop writes,
    renames and closes all of them. A thread hop costs more than writing a small file to the page cache,
    so under load (many bodies finishing per loop turn) this saves most of the hops; at a trickle each
    body still gets a hop of its own at once, since up to ``IN_FLIGHT`` hops may run side by side."""

    IN_FLIGHT = 4

    def __init__(self) -> None:
        self._pending: list[tuple[str, str, list[bytes]]] = []
        self._waiters: list[Landing] = []
        self._in_flight = 0
        self._scheduled = False

    def save(self, part: str, final: str, pieces: list[bytes]) -> Landing:
        """Queue a whole body; the future is done once it is at ``final`` (or failed as ``WriteError``)."""
        loop = asyncio.get_running_loop()
        done = Landing(loop=loop)
        self._pending.append((part, final, pieces))
        self._waiters.append(done)
        if not self._scheduled and self._in_flight < self.IN_FLIGHT:
            self._scheduled = True
            loop.call_soon(self._launch)  # after this loop turn, so bodies finishing with it join in
        return done

    def _launch(self) -> None:
        self._scheduled = False
        if not self._pending or self._in_flight >= self.IN_FLIGHT:
            return
        items = self._pending
        waiters = self._waiters
        self._pending = []
        self._waiters = []
        self._in_flight += 1
        hop = asyncio.ensure_future(_write_many_async(items))
        hop.add_done_callback(lambda h: self._landed(h, waiters))

    def _landed(self, hop: asyncio.Future[list[WriteError | None]], waiters: list[Landing]) -> None:
        self._in_flight -= 1
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._launch)
        if hop.cancelled() or hop.exception() is not None:  # pragma: no cover - write_many catches OSError
            error: BaseException = hop.exception() or asyncio.CancelledError()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        for waiter, err in zip(waiters, hop.result(), strict=True):
            if waiter.done():
                continue
            if err is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(err)


class AsyncWriter:
    """The writer for the event loop: a small body goes whole to the ``WriteBatch``; a large one is
    gathered and written ``chunk_size`` bytes (at least a MiB) a thread hop, on a plain descriptor."""

    __slots__ = ("_batch", "_buf", "_chunk", "_fd", "_hasher", "_size", "part", "target")

    def __init__(self, target: _Target, chunk_size: int, batch: WriteBatch) -> None:
        self.target = target
        self.part = part_of(f"{target.out}/{target.rel}")
        self._chunk = max(chunk_size, SMALL_BODY)  # each hop is a thread wake-up: 4x fewer than at 256 KiB
        self._batch = batch
        self._buf: list[bytes] = []
        self._size = 0
        self._fd: int | None = None
        self._hasher: Hasher | None = None

    def hash_with(self, hasher: Hasher) -> None:
        """Update ``hasher`` with the body: a large one in each thread hop, just before the pieces are
        written (one pass over bytes still in the cache, off the event loop); a small one on commit."""
        self._hasher = hasher

    async def write(self, piece: bytes) -> None:
        self._buf.append(piece)
        self._size += len(piece)
        if self._size >= SMALL_BODY or (self._fd is not None and self._size >= self._chunk):
            await self._spill()

    async def _spill(self) -> None:
        """One hop appends what is gathered. A cancel waits for the hop (a write of a MiB or so), so
        that its descriptor is not lost: ``abort`` then closes it."""
        pieces = self._buf
        fd = self._fd
        self._buf = []  # the hop owns the descriptor until it is back
        self._size = 0
        self._fd = None
        hop = asyncio.ensure_future(_spill_async(self.part, fd, pieces, self._hasher))
        try:
            self._fd = await asyncio.shield(hop)
        except asyncio.CancelledError:
            with contextlib.suppress(WriteError):  # the hop closed it and removed the part
                self._fd = await hop
            raise

    async def commit(self, kind: str | None) -> Stored:
        """Put the complete body at its final name (returned, relative to OUT). A cancel that arrives now
        waits for the last write and the rename (milliseconds) instead of abandoning them, so a file on
        disk always has its ``ok`` row."""
        final = self.target.final(kind)
        if self._fd is None:  # a small body: the batch writes it; no task of its own
            _hash(self._hasher, self._buf)
            landing = self._batch.save(self.part, final, self._buf)
            try:
                await landing
            except asyncio.CancelledError:
                await landing  # landed already: a cancel waits for the write (``Landing``)
            return Stored(self.target.rel)
        fd = self._fd
        self._fd = None
        saving = asyncio.ensure_future(_finish_async(self.part, final, fd, self._buf, self._hasher))
        try:
            await asyncio.shield(saving)
        except asyncio.CancelledError:
            await saving
        return Stored(self.target.rel)

    async def abort(self) -> None:
        self._buf.clear()
        fd = self._fd
        self._fd = None
        await _drop_async(self.part, fd)


def prepare_out(out: Path) -> None:
    """Create the output folder and prove it is writable; raises ``RunAborted`` (exit 3) when it is not."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".downloader-write-test-{os.getpid()}"  # per process: --procs workers probe at once
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunAborted(f"output folder {out} is not writable: {exc.strerror or exc}") from None


class FilesOutput:
    """Samples as files in OUT (today's output): ``open`` gives a sample's writer, for the event loop or
    for a worker thread. Small bodies finishing together share one ``WriteBatch`` hop."""

    def __init__(self, out: Path, *, fix_ext: bool = False, chunk_size: int = 256 * 1024) -> None:
        self.out = str(out)
        self.fix_ext = fix_ext
        self.chunk_size = chunk_size
        self._batch: WriteBatch | None = None

    def open(self, rel: str) -> AsyncWriter:
        if self._batch is None:
            self._batch = WriteBatch()
        return AsyncWriter(_Target(self.out, rel, self.fix_ext), self.chunk_size, self._batch)

    def open_sync(self, rel: str) -> SyncWriter:
        return SyncWriter(_Target(self.out, rel, self.fix_ext), self.chunk_size)
