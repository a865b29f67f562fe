"""What a store is to the dataset code: the few calls that publish a shard's final files and read them
back, the same on a folder and on a bucket. A key is a relative, ``/``-separated name under the store's
root (``00000.tar``, ``_shards/00000.done.json``); what a call cannot do raises ``StoreError``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar

from ..errors import UsageError

Keys = list[str]
T = TypeVar("T")


class Store(Protocol):
    """A folder or a bucket prefix. ``put_file`` is the publish step: the object appears at ``key`` whole,
    or not at all (a failed or cancelled upload leaves nothing there, nor a half-made upload)."""

    url: str

    async def put_file(self, local: Path, key: str, *, consume: bool = False) -> None:
        """Publish ``local`` at ``key``. With ``consume`` the caller gives the file away: a folder on the
        same file system renames it in, a bucket removes it once uploaded."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def get_file(self, key: str, local: Path) -> None:
        """Copy the object at ``key`` into the local file ``local`` (made whole, then renamed)."""
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """The keys that start with ``prefix``, sorted; temporaries and unfinished uploads are not keys."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a key already gone is no error."""
        ...

    async def abort_uploads(self, prefix: str = "") -> int:
        """Clear what killed writers left under ``prefix`` (a folder's temporary files, a bucket's
        incomplete multipart uploads); how many. Run it only when no other writer is publishing there."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """A store that subclasses ``Store`` is closed on leaving ``async with``."""
        await self.aclose()


def check_key(key: str) -> str:
    """``key`` if it names an object under the root; a key that would climb out of it, or name the root
    itself, is the caller's mistake."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"{key!r} is not a store key: a relative name like 'a/b.tar' (no '.', '..' or '//')")
    return key


def join(prefix: str, key: str) -> str:
    """``key`` under the store's root ``prefix`` (which is empty or ends in ``/``)."""
    return f"{prefix}{key}"


async def unstoppable(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if this task is cancelled meanwhile; the caller re-raises the
    cancel after. For the clean-up of a publish: an abort cut short would leave an upload open, a copy
    cut short its temporary file."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    return task.result()
