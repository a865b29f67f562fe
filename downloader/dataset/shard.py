"""A run in dataset shards (``--output-format webdataset|parquet``): the shard is the unit of work,
of resume and of ``--procs``.

``process_shard(run, k)`` is a plain function of the run's settings and a shard id, idempotent: a done
shard is left alone (or, with ``--retry-failed`` and failed rows, rewritten); an unfinished one is run
from its spool, its complete samples reused, not fetched again, and every other row of it fetched; then
it is made final (``files.finish``). One event loop runs over the shard's rows. Duplicates of a URL
are decided by the shard itself, in row order (the engine never sees them): so a shard's contents do not
depend on timing, on other shards, or on how many processes run them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..app.assemble import OnInterrupt, StopFlag, arun, build_engine
from ..app.progress import Reporter, Silent
from ..errors import UsageError
from ..inputs import Window, jobs_from_source
from ..keys import ContentIndex
from ..loop import run_loop
from ..manifest import row_of
from ..marks import Mark
from ..models import Job, Result, Stats, Status
from ..spec import RunSpec
from ..state import Archived
from ..writers.spool import Spool, SpoolOutput, key_of
from ..writers.tar import TarAppender
from .lanes import Lane
from .shardfiles import (
    CONTENT,
    SHARDS,
    Found,
    ShardFiles,
    clear_temporaries,
    drop_leftovers,
    exclusive,
    finish,
    key,
    latest_rows,
    plan_start,
    samples,
    source_name,
)
from .tracking import Tracking, tracked


@dataclass(frozen=True)
class ShardRun:
    """What every shard of a run needs (picklable, for worker processes): the settled spec, the list,
    whether done shards with failed rows are rewritten, and the state database that records them."""

    spec: RunSpec
    source: str
    retry_failed: bool = False
    tracking: Tracking | None = None

    def files(self, k: int) -> ShardFiles:
        out = self.spec.output
        return ShardFiles(out.out, k, self.spec.dataset.output_format, out.store)


class _Kept:
    """The run's reporter lent to one shard: a shard's end does not close it."""

    def __init__(self, bar: Reporter) -> None:
        self.bar = bar
        self.update = bar.update
        self.advance = bar.advance
        self.tick = bar.tick

    def close(self) -> None:
        return None


@dataclass
class _Rows:
    """A shard's rows as its jobs are read: their numbers in order, the duplicates it settles itself,
    and how many earlier samples it reuses."""

    work: ShardWork
    earlier: dict[int, dict[str, Any]]
    found: Found
    known: dict[int, Archived] = field(default_factory=dict)
    """Rows whose URL another run stored (from the shared archive): duplicates, not fetched."""
    lines: list[int] = field(default_factory=list)
    dups: dict[int, tuple[int, Job]] = field(default_factory=dict)
    stored: dict[int, Job] = field(default_factory=dict)
    reused: int = 0

    def jobs(self) -> Iterator[Job]:
        """The jobs the engine must run: not the duplicates, not the samples already in the spool."""
        dedup = self.work.run.spec.dataset.dedup
        bar = self.work.bar
        first: dict[int, int] = {}
        for job in self.work.jobs():
            self.lines.append(job.line)
            if not job.error and dedup != "none":
                if job.digest in first:
                    self.dups[job.line] = (first[job.digest], job)
                    bar.advance(1, 0, 0)
                    continue
                first[job.digest] = job.line
            if not job.error and self._reusable(job):
                self.reused += 1
                bar.advance(0, 0, 0, 1)
                continue
            if job.line in self.known:
                self.stored[job.line] = job
                bar.advance(1, 0, 0)
                continue
            job.path = key(job.line)  # the member is KEY.EXT, EXT from the stored bytes (spool.member_name)
            yield job

    def _reusable(self, job: Job) -> bool:
        """Its row says ok and its sample is in the spool (or, a duplicate by content, elsewhere)."""
        old = self.earlier.get(job.line)
        return (
            old is not None
            and old.get("status") == "ok"
            and old.get("url") == job.url
            and (key(job.line) in self.found or bool(old.get("duplicate_of")))
        )

    def final(self, rows: dict[int, dict[str, Any]]) -> list[dict[str, Any]] | None:
        """One row per input row, in order, each with its key; None when some row is not done."""
        done = []
        for line in self.lines:
            if line in self.dups:
                row = self._duplicate(line, rows)
            elif line in self.stored:
                row = self._stored(line)
            elif (found := rows.get(line)) is not None and found.get("status") != "not_started":
                row = _by_content(found)
            else:
                return None
            done.append({**row, "key": key(line)})
        return done

    def _duplicate(self, line: int, rows: dict[int, dict[str, Any]]) -> dict[str, Any]:
        at, job = self.dups[line]
        first = rows.get(at) or {}
        path = first.get("path") if first.get("status") == "ok" else None
        note = f"same URL as row {at}"
        row = row_of(Result(job.url, line, Status.DUPLICATE, path=path, error=note, extra=job.extra))
        return {**row, "duplicate_of": key(at)}

    def _stored(self, line: int) -> dict[str, Any]:
        """A row whose URL another run stored: a duplicate of that copy, which the archive locates."""
        job = self.stored[line]
        entry = self.known[line]
        note = f"already stored by run {entry.run} at {entry.where}"
        result = Result(job.url, line, Status.DUPLICATE, error=note, sha256=entry.sha256, extra=job.extra)
        return {**row_of(result), "duplicate_of": entry.where}


def _by_content(row: dict[str, Any]) -> dict[str, Any]:
    """A row whose body was already stored elsewhere in OUT (``--dedup content``) is a duplicate: its
    path is the first copy's, ``duplicate_of`` that copy's key."""
    first = row.get("duplicate_of")
    if row.get("status") != "ok" or not first:
        return row
    return {**row, "status": "duplicate", "duplicate_of": key_of(first)}


def _shard_jobs(run: ShardRun, window: Window) -> Iterator[Job]:
    i = run.spec.input
    keep = i.keep_columns
    caption = run.spec.dataset.caption_column
    if caption is not None and keep != ("*",) and caption not in keep:
        keep = (*keep, caption)  # carried into the row, whence KEY.txt
    return jobs_from_source(
        run.source,
        run.spec.naming,
        input_format=i.input_format,
        url_column=i.url_column,
        keep_columns=keep,
        name_column=i.name_column,
        window=window,
    )


def process_shard(
    run: ShardRun,
    k: int,
    *,
    progress: Reporter | None = None,
    on_interrupt: OnInterrupt | None = None,
    signals: tuple[str, ...] = ("SIGINT", "SIGTERM"),
    lane: Lane | None = None,
) -> Stats:
    """Make shard ``k`` of ``run`` final, doing only what is not done yet; its statistics. With a state
    database, the shard is recorded there (``tracked``): leased, looked up, archived, done. With a
    ``lane`` (called on a thread of ``lanes.overlapped``), its rows are fetched on that process's loop
    beside the other open shards', and the lane's bar and signals stand in for the given ones."""
    if lane is not None:
        progress = lane.bar
        on_interrupt = None
    work = ShardWork(run, run.files(k), progress or Silent(), on_interrupt, signals, lane)
    if run.tracking is None:
        return work.locked()
    return tracked(run.tracking, work)


@dataclass(frozen=True)
class ShardWork:
    """One shard's own work: its files, the run's bar lent to it and how it is stopped. ``make`` is what
    the state database's record of the shard (``tracking.tracked``) wraps, or ``locked`` without one."""

    run: ShardRun
    files: ShardFiles
    bar: Reporter
    on_interrupt: OnInterrupt | None
    signals: tuple[str, ...]
    lane: Lane | None = None

    @property
    def redo(self) -> bool:
        """A done shard with failed rows is made again (``--retry-failed``)."""
        return self.run.retry_failed

    def jobs(self) -> Iterator[Job]:
        """The shard's input rows as jobs, read from the list by row number."""
        size = self.run.spec.dataset.shard_size
        k = self.files.k
        at = plan_start(self.files.out, k, self.run.source, size)
        return _shard_jobs(self.run, Window(k * size, (k + 1) * size, None if at is None else Mark(*at)))

    def locked(self) -> Stats:
        """The shard made under its lock file alone (no state database)."""
        (self.files.out / SHARDS).mkdir(parents=True, exist_ok=True)
        with exclusive(self.files):
            return self.make({}, None)

    def make(self, known: dict[int, Archived], stop: StopFlag | None) -> Stats:
        """The shard made final, given the rows another run already stored (line → archive entry) and
        the flag that stops it."""
        files = self.files
        marker = files.marker()
        if marker is not None and not (self.redo and marker.get("failed")):
            return self._already_done(marker)
        clear_temporaries(files)
        done = marker is not None
        plan = _Rows(self, latest_rows(files, done), samples(files, done), known)
        stats = self._fetch(plan, stop)
        stats.skipped += plan.reused
        stats.duplicate += len(plan.dups) + len(plan.stored)
        if not (stats.interrupted or stats.aborted):
            self._make_final(plan, stats, done)
        return stats

    def _fetch(self, plan: _Rows, stop: StopFlag | None) -> Stats:
        """The rows ``plan`` lets through, run by one engine on one event loop into the shard's spool."""
        spec = self.run.spec
        files = self.files
        appender = TarAppender(str(files.spool))
        index = ContentIndex(files.out / SHARDS / CONTENT) if spec.dataset.dedup == "content" else None
        try:
            running = self._run(SpoolOutput(Spool(appender, files.final.name, index)), plan.jobs(), stop)
            if self.lane is None:
                return run_loop(running, spec.performance.loop)
            return self.lane.run(running)
        finally:
            appender.close()
            if index is not None:
                index.close()

    async def _run(self, output: SpoolOutput, jobs: Iterator[Job], stop: StopFlag | None) -> Stats:
        """One engine over the jobs, on its own loop, or on the lane's beside the other open shards'."""
        spec = self.run.spec
        lane = self.lane
        part = self.files.part
        if lane is None:
            engine = build_engine(spec, output=output, manifest=part, stats_file=None)
        else:  # the process's backend, lent: the shard's samples reach its spool by key
            engine = build_engine(
                spec, backend=lane.backend, manifest=part, stats_file=None, slots=lane.slots
            )
            jobs = lane.routed(jobs, output)
            lane.opened(engine)
        try:
            return await arun(
                engine,
                jobs,
                progress=_Kept(self.bar),
                on_interrupt=self.on_interrupt,
                signals=self.signals,
                stop=stop,
            )
        finally:
            if lane is not None:
                lane.closed()

    def _already_done(self, marker: dict[str, Any]) -> Stats:
        """A shard with its done marker: counted as skipped; what a kill right after the marker left goes."""
        drop_leftovers(self.files)
        self.bar.advance(0, 0, 0, int(marker.get("rows", 0)))
        return Stats(backend=self.run.spec.network.backend, skipped=int(marker.get("rows", 0)))

    def _make_final(self, plan: _Rows, stats: Stats, done: bool) -> None:
        """Every row done: the shard's final files; duplicates found by content are counted as such."""
        files = self.files
        rows = plan.final(latest_rows(files, done))
        if rows is None:
            stats.aborted = f"shard {files.name}: some rows were not done"
            return
        finish(files, rows, samples(files, False), self.run.spec.dataset.caption_column)
        by_content = sum(1 for r in rows if r["status"] == "duplicate" and r["line"] not in plan.dups)
        stats.ok = stats.ok - by_content
        stats.duplicate = stats.duplicate + by_content


def check_sharded(spec: RunSpec, source: str, plan: dict[str, Any] | None) -> None:
    """Usage errors of a dataset run, before any work. OUT's shards are row ranges of one list: another
    list would find them done (the same list may grow: its new rows make new shards)."""
    if plan is not None and plan.get("source") != source_name(source):
        raise UsageError(
            f"{spec.output.shown} holds the shards of {plan.get('source')}: use another output folder for "
            f"{source}"
        )
    if source == "-":
        raise UsageError(
            f"--output-format {spec.dataset.output_format} needs a list file: its shards are read from it "
            "by row number, and stdin cannot be read twice"
        )
