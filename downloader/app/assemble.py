"""A run assembled from the spec: the output, the backend and the engine are built here and nowhere else,
for the CLI, the library and ``--procs`` workers alike; and the one way a run is awaited (progress fed,
signals turned into a clean stop)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Self

from ..backends import create_backend
from ..backends.base import Backend, Page, PageReader, closing
from ..engine.engine import Engine, OnDone
from ..engine.slots import Slots
from ..inputs import jobs_from_source
from ..loop import with_signals
from ..manifest import MANIFEST, STATS
from ..models import Deadline, Fetched, Job, Stats
from ..spec import RunSpec
from ..stages import Stage, StagedOutput
from ..writers import Output
from ..writers.files import FilesOutput
from .progress import Reporter, Silent

if TYPE_CHECKING:
    from ..stages.images import ImageStage

OnInterrupt = Callable[[int], None]
"""Told of the n-th SIGINT/SIGTERM (n from 1) after the run has reacted: the first stops it cleanly."""


class StopFlag:
    """Set from any thread to stop a run within a second: with a reason the run is aborted (exit 3),
    without one it ends as interrupted. How a shard's heartbeat stops a shard whose lease was lost."""

    is_set: bool = False
    reason: str | None = None

    def set(self, reason: str | None = None) -> None:
        self.reason = reason
        self.is_set = True


def build_output(spec: RunSpec, stage: Stage | None = None, base: Output | None = None) -> Output:
    """Where samples land: files in OUT (or ``base``, a dataset shard's spool), behind the stage when
    there is one. The image stage may re-encode, so with it every file is named by its type."""
    out = spec.output
    fix_ext = out.fix_ext or spec.images.active
    files = base or FilesOutput(out.out, fix_ext=fix_ext, chunk_size=spec.network.chunk_size)
    return files if stage is None else StagedOutput(files, stage)


class _Forwarding:
    """A backend in front of another: its fetches and page reads go to the inner one, the host's-last-URL
    hint (``keep_alive``) with them when the inner backend takes it."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self._closing = closing(backend)

    async def fetch(
        self, url: str, rel: str, deadline: Deadline | None = None, *, keep_alive: bool = True
    ) -> Fetched:
        if self._closing is None:
            return await self.backend.fetch(url, rel, deadline)
        return await self._closing.fetch(url, rel, deadline, keep_alive=keep_alive)

    async def read(self, url: str, limit: int) -> Page:
        assert isinstance(self.backend, PageReader)  # every backend of the registry reads pages
        return await self.backend.read(url, limit)


class _WithImages(_Forwarding):
    """The backend of a run with image options: the image pool starts and ends with it."""

    def __init__(self, backend: Backend, stage: ImageStage) -> None:
        super().__init__(backend)
        self.stage = stage

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.stage.start)
        try:
            await self.backend.__aenter__()
        except BaseException:  # the stage's pool must not outlive a backend that did not start
            await asyncio.to_thread(self.stage.close)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.backend.__aexit__(et, ev, tb)
        finally:
            await asyncio.to_thread(self.stage.close)


def build_backend(spec: RunSpec, output: Output | None = None) -> Backend:
    """The backend the spec names, writing to ``output`` (or files in OUT), behind the image stage when
    there are image options (nothing of it is even imported without)."""
    if spec.images.active:
        from ..stages.images import ImageStage

        images = ImageStage(spec.images)
        staged = build_output(spec, images, output)
        return _WithImages(create_backend(spec.transport(), staged), images)
    return create_backend(spec.transport(), build_output(spec, None, output))


class Borrowed(_Forwarding):
    """A backend lent to an engine by whoever opened it (the open shards of a dataset process share
    one session): ``async with`` neither opens nor closes it."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


def build_engine(
    spec: RunSpec,
    *,
    backend: Backend | None = None,
    stage: Stage | None = None,
    on_done: Sequence[OnDone] = (),
    manifest: str = MANIFEST,
    stats_file: str | None = STATS,
    output: Output | None = None,
    slots: Slots | None = None,
) -> Engine:
    """The engine for ``spec``; ``backend`` replaces the one the spec names (a library caller's own),
    ``output`` the files in OUT (a dataset shard's spool), ``slots`` the count of ``-c`` it shares with
    other engines on the loop (a dataset process's open shards). Image options bring the image stage
    (``build_backend``)."""
    if backend is None and stage is None:
        backend = build_backend(spec, output)
    backend = backend or create_backend(spec.transport(), build_output(spec, stage, output))
    return Engine(spec, backend, on_done=on_done, manifest=manifest, stats_file=stats_file, slots=slots)


def list_jobs(spec: RunSpec, source: str) -> Generator[Job, None, None]:
    """The jobs of a list file (or ``-``), read lazily with the spec's input settings."""
    i = spec.input
    return jobs_from_source(
        source,
        spec.naming,
        input_format=i.input_format,
        url_column=i.url_column,
        keep_columns=i.keep_columns,
        name_column=i.name_column,
    )


async def arun(
    engine: Engine,
    jobs: Iterable[Job],
    *,
    progress: Reporter | None = None,
    on_interrupt: OnInterrupt | None = None,
    signals: tuple[str, ...] = ("SIGINT", "SIGTERM"),
    stop: StopFlag | None = None,
) -> Stats:
    """Run ``engine`` over ``jobs``. With ``on_interrupt``, the named signals stop the run cleanly (the
    first) and are reported to it; without, no handler is installed (a library caller's loop).
    ``stop``, once set, stops it too (looked at once a second)."""
    bar = progress or Silent()
    engine.on_done.insert(0, bar.update)
    ticker = _Ticker(bar, engine, stop)

    def interrupted(n: int) -> None:
        if n == 1:
            engine.stop()
        if on_interrupt is not None:
            on_interrupt(n)

    try:
        if on_interrupt is None:
            return await engine.run(jobs)
        return await with_signals(engine.run(jobs), interrupted, signals)
    finally:
        ticker.cancel()
        bar.close()


class _Ticker:
    """Calls ``bar.tick()`` once a second on the running loop, so progress shows in a quiet spell, and
    stops the engine once ``stop`` is set."""

    def __init__(self, bar: Reporter, engine: Engine, stop: StopFlag | None) -> None:
        self._bar = bar
        self._engine = engine
        self._stop = stop
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(1.0, self._tick)

    def _tick(self) -> None:
        self._bar.tick()
        if self._stop is not None and self._stop.is_set:
            self._engine.stop(self._stop.reason)
            self._stop = None
        self._handle = self._loop.call_later(1.0, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()
