"""The runs a user asks for: a list file (on one loop or ``--procs`` processes), the failed rows of an
earlier run, and the demo against the embedded origin. The list file is checked and counted once here,
before any work, and each process then reads it once."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..arrow import concatenate
from ..dataset.runners.ranks import check_cluster, my_shards, rows_of, stats_name
from ..errors import StoreError, UsageError
from ..inputs import count_rows, rows_and_marks
from ..locations import locate
from ..loop import run_loop
from ..manifest import MANIFEST, jobs_from_manifest, write_stats
from ..models import Stats
from ..runfile import RUN_FILE, settle
from ..sources import jobs_from_urls
from ..spec import RunSpec
from ..stores import fetched
from ..writers.files import prepare_out
from .assemble import OnInterrupt, arun, build_engine, list_jobs
from .procs import default_procs, run_parts
from .progress import Reporter, Silent

# A dataset's machinery (its shards, the state database, Dask, the pool of processes) is imported by the
# functions that run one: a plain list's start-up, the common case, does not pay for it.


def _silent(total: int | None) -> Reporter:
    return Silent()


@dataclass(frozen=True)
class Ui:
    """What the caller (the CLI) plugs into a run: a progress reporter made once the total is known, and
    what to do on an interrupt. The application itself neither prints nor exits."""

    progress: Callable[[int | None], Reporter] = _silent
    on_interrupt: OnInterrupt | None = None
    announce: Callable[[str], None] = field(default=lambda text: None)


def fetch_list(spec: RunSpec, source: str, ui: Ui, explicit: Collection[str] = ()) -> Stats:
    """Download every row of ``source`` (a path, an ``s3://`` list or glob of Parquet parts, or ``-``
    for stdin) into the spec's OUT. ``explicit``: the settings the user gave, which must agree with what
    OUT's ``run.json`` records."""
    if source != "-":
        source = str(locate(source, "list"))  # an unsupported URL is refused here, never opened as a path
    check_cluster(spec)
    spec.check_store()  # before the store is asked anything: a list's run names its format
    if spec.output.store is not None:
        from ..dataset.remote import pull_records

        pull_records(spec.output)  # run.json and the plan, as the store has them
    spec = settle(spec, frozenset(explicit))
    if spec.in_shards:
        _push_run_file(spec)
        return run_shards(spec, source, ui, retry=False)
    _not_over_shards(spec)
    with local_list(source) as path:  # a list in a store: read from a local copy
        return _fetch_plain(spec, path, ui)


@contextlib.contextmanager
def local_list(source: str) -> Iterator[str]:
    """A local path to read ``source`` from: itself, or a copy of a list kept in a store; the Parquet
    parts a glob (``s3://b/parts/*.parquet``) matches are joined, in name order, into one list."""
    with _fetched(source) as path:
        if not path.is_dir():
            yield str(path)
            return
        parts = sorted(str(p) for p in path.iterdir())
        if not all(p.endswith(".parquet") for p in parts):
            raise UsageError(f"{source}: a glob of a list's parts matches Parquet files only (*.parquet)")
        concatenate(parts, str(path / "list.parquet"))
        yield str(path / "list.parquet")


@contextlib.contextmanager
def _fetched(source: str) -> Iterator[Path]:
    """``stores.fetched``, a list missing from its bucket told as a usage error, as a missing file is."""
    try:
        with fetched(source) as path:
            yield path
    except StoreError as exc:
        if exc.missing:
            raise UsageError(f"no such list: {source} ({exc})") from None
        raise


def _push_run_file(spec: RunSpec) -> None:
    """The run's record, settled, published to the store OUT names (if any) before any shard."""
    if spec.output.store is not None:
        from ..dataset.remote import push_record

        push_record(spec.output, RUN_FILE)


def _fetch_plain(spec: RunSpec, source: str, ui: Ui) -> Stats:
    """A run of files: on this loop, or on ``--procs`` processes."""
    jobs = list_jobs(spec, source)
    try:
        first = next(jobs, None)  # a missing column or an unreadable file is a usage error, before any work
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    rows = count_rows(source, spec.input.input_format)
    bar = ui.progress(rows)
    procs = choose_procs(spec, rows, source)
    if procs > 1:
        jobs.close()
        return run_parts(spec, source, procs=procs, bar=bar, on_interrupt=ui.on_interrupt)
    engine = build_engine(spec)
    try:
        chained = itertools.chain([first] if first else [], jobs)
        return run_loop(
            arun(engine, chained, progress=bar, on_interrupt=ui.on_interrupt), spec.performance.loop
        )
    finally:
        jobs.close()


def _not_over_shards(spec: RunSpec) -> None:
    """A run of files by digest over an OUT made in shards (by ``--dask``, ``--rank`` or ``--state``)
    would mix two layouts in one folder: the OUT is rerun as it was made."""
    from ..dataset.shardfiles import PLAN, SHARDS

    if (spec.output.out / SHARDS / PLAN).is_file():
        raise UsageError(
            f"{spec.output.out} holds a run made in shards (_shards/plan.json): run it again with the "
            "--dask, --rank or --state it was made with, or give another output folder"
        )


def choose_procs(spec: RunSpec, rows: int | None, source: str, most: int | None = None) -> int:
    """``--procs``, or by default one process per CPU (one with image options, fewer for a short list,
    at most ``most``: a dataset run's shard count)."""
    procs = spec.performance.procs or (1 if spec.images.active else default_procs(rows, source))
    procs = procs if most is None else max(1, min(procs, most))
    if procs > 1 and spec.images.active and spec.images.image_executor == "process":
        raise UsageError(
            "--procs above 1 with image options needs --image-executor thread or inline "
            "(the image processes already use every core; a --procs worker cannot start more)"
        )
    return procs


def run_shards(spec: RunSpec, source: str | None, ui: Ui, *, retry: bool) -> Stats:
    """Plan the shards of ``source`` (or, for ``--retry-failed``, the list OUT's plan names) and make
    each final, in order on this process or on a pool of ``--procs``. A list in a store is read from a
    local copy; the plan names it by its URL, so a rerun finds it the same list."""
    from ..dataset.shard import check_sharded
    from ..dataset.shardfiles import SHARDS, read_plan

    out = spec.output.out
    prepare_out(out)
    plan = read_plan(out)
    if source is None:
        if plan is None:
            raise UsageError(f"--retry-failed: no shard plan in {spec.output.shown}/{SHARDS}")
        source = str(plan["source"])
    check_sharded(spec, source, plan)
    with local_list(source) as path:
        return _run_planned(spec, source, path, ui, retry)


def _run_planned(spec: RunSpec, name: str, source: str, ui: Ui, retry: bool) -> Stats:
    """The shards of the list ``name`` (read from ``source``, a local path) planned, then made."""
    from ..dataset.remote import push_record
    from ..dataset.runners import RunnerContext, runner, runner_name
    from ..dataset.runners.leased import start_tracking
    from ..dataset.shard import ShardRun
    from ..dataset.shardfiles import PLAN, SHARDS, write_plan

    out = spec.output.out
    i = spec.input
    size = spec.dataset.shard_size
    rows, marks = rows_and_marks(source, size, input_format=i.input_format, url_column=i.url_column)
    count = write_plan(out, name, rows, size, marks)
    push_record(spec.output, f"{SHARDS}/{PLAN}")
    shards = my_shards(spec, count)
    tracking = start_tracking(spec, name, rows, count)
    run = ShardRun(spec, source, retry, tracking)
    procs = choose_procs(spec, rows, source, len(shards))
    bar = ui.progress(rows_of(shards, rows, spec.dataset.shard_size))
    started = time.monotonic()
    try:
        stats = runner(runner_name(run, procs))(run, shards, RunnerContext(procs, bar, ui.on_interrupt))
    finally:
        bar.close()
    stats.wall_s = time.monotonic() - started
    write_stats(out / stats_name(spec), stats)
    push_record(spec.output, stats_name(spec))
    return stats


def retry_failed(spec: RunSpec, ui: Ui, explicit: Collection[str] = ()) -> Stats:
    """Fetch again each URL whose latest row in OUT's manifest failed, named as OUT's first run named."""
    from ..dataset.shardfiles import PLAN, SHARDS

    if spec.output.store is not None:
        from ..dataset.remote import pull_records

        pull_records(spec.output)
    out = spec.output.out
    manifest = out / MANIFEST
    if spec.dataset.sharded or (out / SHARDS / PLAN).is_file():
        spec = settle(spec, frozenset(explicit))
        check_cluster(spec)
        _push_run_file(spec)
        return run_shards(spec, None, ui, retry=True)
    check_cluster(spec)
    spec.check_store()
    if not manifest.is_file():
        raise UsageError(f"--retry-failed: no manifest at {manifest}")
    spec = settle(spec, frozenset(explicit))
    jobs = jobs_from_manifest(manifest, out, spec.naming, spec.input.name_column)
    running = arun(build_engine(spec), jobs, progress=ui.progress(None), on_interrupt=ui.on_interrupt)
    return run_loop(running, spec.performance.loop)


def demo(spec: RunSpec, count: int, latency: float, ui: Ui) -> Stats:
    """Download ``count`` images from the embedded origin (loopback, a random port)."""
    from ..origin import Origin  # aiohttp's server: only the demo needs it

    async def go() -> Stats:
        async with Origin(latency=latency) as origin:
            ui.announce(
                f"origin: {origin.base} serving {len(origin.images)} images, "
                f"{latency * 1000:.0f} ms latency; {count} URLs → {spec.output.out}"
            )
            engine = build_engine(spec)
            jobs = jobs_from_urls(origin.urls(count), spec.naming)
            return await arun(engine, jobs, progress=ui.progress(count), on_interrupt=ui.on_interrupt)

    return run_loop(go(), spec.performance.loop)
