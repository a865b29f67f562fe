"""A folder as a store: what the dataset pipeline does today (a temporary file beside the final name,
then a rename, so a reader never sees part of a file), behind the same calls as a bucket. The file work
runs on a worker thread so a large copy does not stall the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import StoreError
from .base import Keys, Store, check_key, unstoppable

PART = ".part"
STOPS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)
"""Errors after which every further write would fail too: the run stops."""
BLOCK = 1 << 20


def _temp(final: Path) -> Path:
    """The temporary name of ``final`` while it is written: hidden by the dot, marked by the suffix so
    ``abort_uploads`` knows it, and owned by this process."""
    return final.with_name(f".{final.name}.{os.getpid()}{PART}")


def _is_temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(PART)


def _stood_for(path: Path) -> Path:
    """The final name a temporary file was written for (``.NAME.PID.part`` → ``NAME``)."""
    return path.with_name(path.name[1:].rsplit(".", 2)[0])


@contextlib.contextmanager
def _door(what: str) -> Iterator[None]:
    """Map the file system's errors to ``StoreError``: a full disk or a read-only folder stops the run."""
    try:
        yield
    except FileNotFoundError as exc:
        raise StoreError(f"{what}: no such file ({exc.filename})", missing=True) from exc
    except OSError as exc:
        fatal = exc.errno in STOPS
        raise StoreError(f"{what}: {exc.strerror or exc}", fatal=fatal) from exc


def _copy(local: Path, tmp: Path, stop: threading.Event) -> None:
    """``local`` into ``tmp`` a block at a time, giving up when ``stop`` is set (the caller cancelled)."""
    with local.open("rb") as src, tmp.open("wb") as dst:
        while block := src.read(BLOCK):
            if stop.is_set():
                raise StoreError(f"the copy of {local} was cancelled")
            dst.write(block)


def _place(local: Path, final: Path, consume: bool, stop: threading.Event) -> None:
    """``local`` at ``final`` at once; a copy goes through a temporary name, removed if the copy fails
    or is cancelled."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if consume:
        with contextlib.suppress(OSError):  # another file system: copy below instead
            os.replace(local, final)
            return
    tmp = _temp(final)
    try:
        _copy(local, tmp, stop)
        if stop.is_set():
            raise StoreError(f"the copy of {local} was cancelled")
        os.replace(tmp, final)
    except BaseException:  # a cancel too: no temporary file stays behind
        tmp.unlink(missing_ok=True)
        raise
    if consume:
        local.unlink()


async def _in_thread(local: Path, final: Path, consume: bool) -> None:
    """``_place`` on a worker thread; a cancel stops the copy and waits until its temporary file is gone,
    so nothing appears at ``final`` after the cancel."""
    stop = threading.Event()
    work = asyncio.ensure_future(asyncio.to_thread(_place, local, final, consume, stop))
    try:
        await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(Exception):  # the cancel is the news, not how the copy ended
            await unstoppable(work)
        raise


class LocalStore(Store):
    """The folder ``root`` (made on the first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put_file(self, local: Path, key: str, *, consume: bool = False) -> None:
        final = self._path(key)
        with _door(f"could not publish {local} as {final}"):
            await _in_thread(local, final, consume)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with _door(f"could not read {path}"):
            return await asyncio.to_thread(path.read_bytes)

    async def get_file(self, key: str, local: Path) -> None:
        path = self._path(key)
        with _door(f"could not copy {path} to {local}"):
            await _in_thread(path, local, False)

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> Keys:
        if not self.root.is_dir():
            return []
        found = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix) and not _is_temp(Path(k)))

    async def delete(self, key: str) -> None:
        path = self._path(key)
        with _door(f"could not delete {path}"):
            path.unlink(missing_ok=True)

    async def abort_uploads(self, prefix: str = "") -> int:
        """Remove the temporary files that killed writers left under ``prefix``."""
        if not self.root.is_dir():
            return 0
        left = [p for p in self.root.rglob("*" + PART) if _is_temp(p)]
        left = [p for p in left if _stood_for(p).relative_to(self.root).as_posix().startswith(prefix)]
        for path in left:
            path.unlink(missing_ok=True)
        return len(left)

    async def aclose(self) -> None:
        return None
