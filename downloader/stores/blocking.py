"""A store's calls from synchronous code (a shard made final after its event loop has ended, a worker
thread): the store lives on an event loop of its own, on a thread of its own, since an S3 client is bound
to the loop that made it. An interrupt while a call waits cancels that call and waits for its clean-up
(an upload's abort) before it goes on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .base import Keys, Store

T = TypeVar("T")


class BlockingStore:
    """``open_store``'s store, called without ``await``; ``close`` (or ``with``) ends its thread."""

    def __init__(self, make: Callable[[], Store]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="store", daemon=True)
        self._thread.start()
        self.store = make()
        self.url = self.store.url

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the store's loop and wait. An interrupt here (Ctrl-C raises in a wait) cancels
        it and waits again, for its clean-up, before the interrupt goes on."""
        done = threading.Event()
        box = []

        def start() -> None:
            task = self._loop.create_task(work)
            task.add_done_callback(lambda _t: done.set())
            box.append(task)

        self._loop.call_soon_threadsafe(start)
        try:
            done.wait()
        except BaseException:
            # a lambda: box is filled by start, which the loop runs first (it keeps the order of calls)
            self._loop.call_soon_threadsafe(lambda: box[0].cancel())  # noqa: PLW0108
            done.wait()
            raise
        return box[0].result()

    def put_file(self, local: Path, key: str, *, consume: bool = False) -> None:
        self._call(self.store.put_file(local, key, consume=consume))

    def exists(self, key: str) -> bool:
        return self._call(self.store.exists(key))

    def get_bytes(self, key: str) -> bytes:
        return self._call(self.store.get_bytes(key))

    def get_file(self, key: str, local: Path) -> None:
        self._call(self.store.get_file(key, local))

    def list(self, prefix: str = "") -> Keys:
        return self._call(self.store.list(prefix))

    def delete(self, key: str) -> None:
        self._call(self.store.delete(key))

    def abort_uploads(self, prefix: str = "") -> int:
        return self._call(self.store.abort_uploads(prefix))

    def close(self) -> None:
        """Close the store on its loop, then stop the loop and its thread."""
        if self._loop.is_closed():
            return
        self._call(self.store.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
