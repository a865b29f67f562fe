"""The library: ``download`` and ``adownload``, assembled like the CLI's runs (``app.assemble``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..backends.base import Backend
from ..engine.engine import OnDone
from ..models import Stats
from ..sources import jobs_from_urls
from ..spec import RunSpec, options_doc
from .assemble import arun, build_engine


async def adownload(
    urls: Iterable[str],
    out: str | os.PathLike[str] = "downloads",
    *,
    on_done: OnDone | Sequence[OnDone] | None = None,
    backend: str | Backend = "aiohttp",
    **options: Any,
) -> Stats:
    """Download ``urls`` into ``out``; returns the statistics. Works inside an already running loop.

    ``backend`` is a name (``aiohttp``, ``executor``, ``threads``, ``curl``) or a ``Backend`` object;
    ``on_done`` (one callable or several) is called with each ``Result`` as it arrives, on the loop's
    thread; an ``async def`` one is run as a task, and every such task has ended when this returns.
    A callback that raises is logged (logger ``downloader``) and the run goes on. ``options`` are the
    settings below.
    """
    _refuse_one("adownload", urls)
    name = backend if isinstance(backend, str) else "aiohttp"
    spec = RunSpec.from_options(out=out, backend=name, **options)
    callbacks: list[OnDone] = [] if on_done is None else [on_done] if callable(on_done) else list(on_done)
    own = None if isinstance(backend, str) else backend
    engine = build_engine(spec, backend=own, on_done=callbacks)
    return await arun(engine, jobs_from_urls(urls, spec.naming))


def download(
    urls: Iterable[str],
    out: str | os.PathLike[str] = "downloads",
    *,
    on_done: OnDone | Sequence[OnDone] | None = None,
    **options: Any,
) -> Stats:
    """The synchronous form of ``adownload``; it runs its own event loop. Options are listed below."""
    _refuse_one("download", urls)
    if _loop_running():
        raise RuntimeError(
            "download() cannot run inside a running event loop (a notebook, an async app): "
            "use `await downloader.adownload(...)` there"
        )
    return asyncio.run(adownload(urls, out, on_done=on_done, **options))


def _loop_running() -> bool:
    """Asked apart from the run: a run started inside ``except RuntimeError`` would chain every error
    logged during it (a callback's, say) to "no running event loop"."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _refuse_one(name: str, urls: object) -> None:
    """A bare string (or bytes, or one row) is iterable too: taken as a list it would give one invalid
    row per character (per key), and no error."""
    if isinstance(urls, str | bytes | bytearray | Mapping):
        what = "row" if isinstance(urls, Mapping) else "url"
        raise TypeError(
            f"{name}() takes a list of URLs, not a single {type(urls).__name__}: call {name}([{what}], ...)"
        )


_OPTIONS = "\nOptions (keywords), each also a command-line flag:\n" + options_doc()
adownload.__doc__ = (adownload.__doc__ or "") + _OPTIONS
download.__doc__ = (download.__doc__ or "") + _OPTIONS
