"""``downloader status`` and ``downloader state rebuild``: a run's progress read from its state database
(while it runs, from any machine), and the database rebuilt from the output, which is the source of
truth (each shard's done marker and final rows)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..runfile import read, run_id
from ..state import Lease, RunStatus
from ..state.local import STATE_FILE, default_url
from .shardfiles import ShardFiles, read_plan
from .statedb import StateThread
from .tracking import recorded

REBUILDER = "rebuild"


def find_state(out: Path | None, url: str | None) -> str:
    """The state URL to read: ``--state``, or the default SQLite file of OUT."""
    if url is not None:
        return url
    if out is None:
        raise UsageError("give OUT, or --state URL (with --run ID to choose among its runs)")
    found = default_url(out)
    if found is None or not (out / "_shards" / STATE_FILE).is_file():
        raise UsageError(f"{out} has no state database of its own: give --state URL (the one its run used)")
    return found


def read_status(out: Path | None, url: str | None, run: str | None) -> RunStatus:
    """The status of OUT's run (or ``run``, or the database's latest run)."""
    with StateThread(find_state(out, url)) as db:
        if run is None and out is not None:
            run = run_id(out)
        if run is None:
            runs = db.runs()
            if not runs:
                raise UsageError(f"{db.url} holds no run yet")
            run = runs[-1]
        status = db.status(run)
    if not status.shards:
        raise UsageError(f"{db.url} knows no run {run!r}")
    return status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    return (
        f"{s // 3600} h {s % 3600 // 60} min"
        if s >= 3600
        else f"{s // 60} min {s % 60} s"
        if s >= 60
        else f"{s} s"
    )


def _lease_line(lease: Lease, now: float) -> str:
    since = "" if lease.since is None else f", since {_duration(now - lease.since)}"
    if lease.until >= now:
        left = f"lease {_duration(lease.until - now)} left"
    else:
        left = f"expired {_duration(now - lease.until)} ago, to be taken over"
    return f"  {lease.shard:05d}  {lease.worker}{since}, {left} (attempt {lease.attempts})"


def _over(s: RunStatus, now: float) -> str:
    """The time the rate is over: while shards ran (pauses left out), else since the run's start."""
    busy = s.busy
    if busy:
        return f"over {_duration(busy)} of shards running"
    return f"over {_duration(now - (s.started or now))} since the start"


def render(s: RunStatus) -> str:
    """The status in lines a person reads."""
    now = s.updated or 0.0
    rows = s.rows.get("rows", 0)
    total = s.settings.get("rows")
    lines = [f"run {s.run}" + (f": {s.settings['out']}" if "out" in s.settings else "")]
    lines.append(
        f"shards: {s.done:,} done, {len(s.running):,} running, {s.left - len(s.running):,} left"
        f" (of {s.shards:,})"
    )
    by = " · ".join(f"{k} {v:,}" for k, v in sorted(s.rows.items()) if k != "rows")
    lines.append(
        f"rows in done shards: {rows:,}"
        + (f" of {total:,}" if isinstance(total, int) else "")
        + (f" ({by})" if by else "")
    )
    if s.kinds:
        lines.append(
            "failed by kind: "
            + " · ".join(f"{k} {v:,}" for k, v in sorted(s.kinds.items(), key=lambda kv: -kv[1]))
        )
    rate = "–" if s.rate is None else f"{s.rate:,.1f} rows/s"
    eta = "done" if not s.left else _duration(s.eta)
    lines.append(f"rate: {rate} {_over(s, now)} · ETA {eta}")
    for title, leases in (("running", s.running), ("expired leases", s.expired)):
        if leases:
            lines.append(f"{title}:")
            lines += [_lease_line(lease, now) for lease in leases]
    return "\n".join(lines)


def as_json(s: RunStatus) -> dict[str, Any]:
    found = dataclasses.asdict(s)
    del found["done_shards"]
    del found["ran"]
    found.update(left=s.left, rate=s.rate, eta=s.eta, busy=s.busy)
    return found


def rebuild(out: Path, url: str | None) -> RunStatus:
    """Record OUT's run in the state database again from OUT itself: the run and its plan, each done
    shard (its counts, its rows in the archive); a shard the database thought done but OUT does not
    hold is opened again. Run it while no worker writes OUT."""
    plan = read_plan(out)
    settings = read(out)
    if plan is None or settings is None:
        raise UsageError(f"{out} holds no dataset run (no _shards/plan.json or run.json)")
    url = url or default_url(out)
    if url is None:
        raise UsageError(f"{out} is on a network filesystem: give --state URL")
    run = run_id(out)
    count = int(plan["shards"])
    info = {**settings, "out": str(out.resolve()), "source": plan["source"], "rows": plan["rows"]}
    fmt = str(settings.get("output_format") or "webdataset")
    with StateThread(url) as db:
        db.setup()
        db.start_run(run, info, count)
        for k in range(count):
            files = ShardFiles(out, k, fmt)
            if files.marker() is not None:
                counts, entries = recorded(files, run)
                db.archive(entries)
                db.finish(run, k, REBUILDER, counts)
            else:  # not done, whatever the database said: free to claim
                db.claim(run, REBUILDER, 1.0, k)
                db.release(run, k, REBUILDER)
        status = db.status(run)
    return status
