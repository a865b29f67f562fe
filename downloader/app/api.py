"""The library: ``download`` and ``adownload``, assembled like the CLI's runs (``app.assemble``)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import fields
from typing import Any

from ..backends.base import Backend
from ..engine.engine import OnDone
from ..errors import UsageError
from ..inputs import jobs_from_rows
from ..models import Stats
from ..runfile import settle
from ..spec import DEFAULT_BACKEND, GROUPS, RunSpec, library_options, options_doc
from .assemble import arun, build_engine
from .progress import reporter_for

Row = str | Mapping[str, Any]
"""One item of ``urls``: a URL, or a dict of columns holding one (read like a CSV list's row)."""

_NOT_TAKEN = frozenset(f.name for g in GROUPS for f in fields(g)) - library_options()
"""The command line's settings of list files and processes (``input_format``, ``loop``, ``procs``,
``part``): refused by name rather than silently ignored."""


async def adownload(
    urls: Iterable[Row],
    out: str | os.PathLike[str] = "downloads",
    *,
    on_done: OnDone | Sequence[OnDone] | None = None,
    backend: str | Backend = DEFAULT_BACKEND,
    progress: bool = False,
    **options: Any,
) -> Stats:
    """Download ``urls`` into ``out``; returns the statistics. Runs on the caller's event loop."""
    _refuse_one("adownload", urls)
    spec = _files_only(settle(_files_only(_spec("adownload", out, backend, options)), frozenset(options)))
    callbacks: list[OnDone] = [] if on_done is None else [on_done] if callable(on_done) else list(on_done)
    own = None if isinstance(backend, str) else backend
    engine = build_engine(spec, backend=own, on_done=callbacks)
    i = spec.input
    jobs = jobs_from_rows(
        urls, spec.naming, url_column=i.url_column, keep_columns=i.keep_columns, name_column=i.name_column
    )
    total = len(urls) if isinstance(urls, Sized) else None
    bar = reporter_for(sys.stderr, not progress or not sys.stderr.isatty(), total)  # a bar or nothing
    return await arun(engine, jobs, progress=bar)


def download(
    urls: Iterable[Row],
    out: str | os.PathLike[str] = "downloads",
    *,
    on_done: OnDone | Sequence[OnDone] | None = None,
    backend: str | Backend = DEFAULT_BACKEND,
    progress: bool = False,
    **options: Any,
) -> Stats:
    """Download ``urls`` into ``out``; returns the statistics. Runs its own event loop, so it refuses to
    run inside one: there, ``await adownload(...)``, which takes the same arguments."""
    _refuse_one("download", urls)
    if _loop_running():
        raise RuntimeError(
            "download() cannot run inside a running event loop (a notebook, an async app): "
            "use `await downloader.adownload(...)` there"
        )
    return asyncio.run(adownload(urls, out, on_done=on_done, backend=backend, progress=progress, **options))


def _spec(name: str, out: str | os.PathLike[str], backend: str | Backend, options: dict[str, Any]) -> RunSpec:
    """The run spec from the caller's keywords; the list-file and process settings are named, not
    ignored, since the library reads no list file and runs on one loop."""
    refused = sorted(set(options) & _NOT_TAKEN)
    if refused:
        raise TypeError(
            f"{name}() does not take {', '.join(refused)}: those read a list file or spread a run over "
            "processes (`downloader fetch`); the library takes URLs or rows and runs on one event loop"
        )
    return RunSpec.from_options(
        out=out, backend=backend if isinstance(backend, str) else "aiohttp", **options
    )


def _files_only(spec: RunSpec) -> RunSpec:
    """The library writes files: a dataset format reads its rows from a list file by number (asked, or
    recorded in OUT's ``run.json`` by an earlier ``downloader fetch``)."""
    spec.check_store()
    if spec.dataset.sharded:
        raise UsageError(
            f"adownload() writes files, not --output-format {spec.dataset.output_format}, which reads its "
            "rows from a list file by number: `downloader fetch LIST --output-format ...`"
        )
    return spec


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


_ARGUMENTS = """

Arguments:
    urls: an iterable of URL strings or rows, read lazily (a generator of millions is fine); each gets
        exactly one manifest row and one ``Result``, a malformed URL an ``invalid`` one. A row is a dict
        read as a CSV list's row is: its URL under ``url_column``, the ``keep_columns`` carried into its
        manifest row (``("*",)``: every key but the URL), ``name_column`` naming its file. A row without
        a string URL is an ``invalid`` row (kind ``invalid_input``). Strings and rows may be mixed.
    out: the output folder, created when missing; it holds manifest.jsonl and stats.json. An earlier
        run's completed URLs are skipped (``overwrite=True`` fetches them again).
    on_done: one callable or several, called with each ``Result`` as it arrives, on the loop's thread.
        An ``async def`` one runs as a task, and every such task has ended when the run returns. A
        callback that raises is logged (logger ``downloader``) and the run goes on.
    backend: a backend's name (reqwest, aiohttp, executor, threads, curl; the default is reqwest where
        pyreqwest is installed, else aiohttp) or a ``Backend`` object.
    progress: draw the command line's bar (files, files/s, MB/s, failures) on stderr, when stderr is a
        terminal (otherwise nothing is drawn), with a total when ``urls`` has a ``len()``.

Options (keywords), also flags of `downloader fetch` (--max-size for max_size) unless marked:
"""
adownload.__doc__ = (adownload.__doc__ or "") + _ARGUMENTS + options_doc()
download.__doc__ = (download.__doc__ or "") + _ARGUMENTS + options_doc()
