"""``downloader report OUT``: a run as one self-contained HTML page, built by streaming the manifest.

The time axis is each row's ``t`` (the wall clock when the row was written): it orders rows across
reruns appended to one manifest and across ``--procs`` workers' parts, which row order and ``elapsed_s``
alone cannot. Rows of a manifest from before ``t`` count everywhere but on that axis. A run still going on
is read as far as it has been written (a torn last line is skipped), ``--procs`` workers' part files
included, so the report of a partial run needs no pause of the run. (Parts merged into the manifest
while the report reads may be counted twice or not at all: the next report is exact.)
"""

from __future__ import annotations

import base64
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import runfile
from ..dataset.shardfiles import run_manifests
from ..errors import UsageError
from ..manifest import MANIFEST, PART_GLOB, STATS, read_manifests
from . import page
from .collect import Collected, collect
from .svg import bar_chart, fmt, line_chart

REPORT = "report.html"
THUMB_BOX = 128
THUMB_MAX_BYTES = 64 << 20
SHEET_HINT = "the contact sheet needs Pillow: pip install 'downloader[report]'"


def build(out: Path, dest: Path | None = None) -> Path:
    """Write the report of the run in ``out`` to ``dest`` (default ``out/report.html``), whole or not at
    all (a temporary name first), and return its path."""
    manifest = out / MANIFEST
    manifests = run_manifests(out)
    if not manifests:
        raise UsageError(f"no manifest at {manifest}: is {out} a run's output folder?")
    dest = dest or out / REPORT
    c = collect(read_manifests(manifests))
    html = render(out, c, _settings(out), _stats(out, manifests))
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, dest)
    return dest


def _settings(out: Path) -> dict[str, object] | str:
    """run.json's settings, or a sentence on why there are none."""
    try:
        found = runfile.read(out)
    except UsageError as exc:
        return str(exc)
    return "no run.json in this folder" if found is None else found


def _stats(out: Path, manifests: list[Path]) -> dict[str, object] | None:
    """The last invocation's statistics once it has ended (they are newer than every file of rows):
    ``stats.json``, or the static workers' ``stats.rank-I.json`` added up. They tell that invocation
    alone (a rerun that skipped every done shard says 0 ok): the run's totals are its rows'."""
    files = [out / STATS] if (out / STATS).is_file() else sorted(out.glob("stats.rank-*.json"))
    try:
        newest = max(m.stat().st_mtime for m in manifests)
        # the last worker to end writes its statistics after every row; the others may end earlier, by
        # any time (a rank with fewer shards), so only the newest file is held against the rows
        if not files or max(f.stat().st_mtime for f in files) + 1 < newest or any(out.glob(PART_GLOB)):
            return None
        found = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    except (OSError, ValueError):
        return None
    if not all(isinstance(d, dict) for d in found):
        return None
    added = {k: sum(int(d.get(k) or 0) for d in found) for k in _COUNTED}
    return {**found[0], **added, "wall_s": max(float(d.get("wall_s") or 0) for d in found)}


_COUNTED = ("ok", "failed", "invalid", "duplicate", "skipped", "not_started")


def render(
    out: Path, c: Collected, settings: dict[str, object] | str, stats: dict[str, object] | None
) -> str:
    """The page, section by section."""
    head = [page.para(f"{out} · {c.rows:,} manifest rows · made {time.strftime('%Y-%m-%d %H:%M:%S')}", True)]
    if stats is None:
        head.append(
            page.note(
                "No final stats.json (or stats.rank-I.json): the run may still be going on; this is what "
                "it has written."
            )
        )
    sections = [
        *head,
        _summary(c, stats),
        _over_time(c),
        _latency(c),
        _failures(c),
        _sizes(c),
        _contact_sheet(out, c),
        _settings_section(settings),
    ]
    return page.document("downloader report", sections)


def _summary(c: Collected, stats: dict[str, object] | None) -> str:
    s = c.statuses
    wall = c.wall_s
    failed = ", ".join(f"{k} {n:,}" for k, n in sorted(c.kinds.items(), key=lambda kv: -kv[1])) or "none"

    def rate(n: float) -> str:
        return f"{n / wall:,.1f}" if wall else "–"

    items = [
        ("ok", f"{s['ok']:,}"),
        ("failed", f"{s['failed']:,}"),
        ("invalid", f"{s['invalid']:,}"),
        ("not started", f"{s['not_started']:,}"),
        ("duplicates", f"{s['duplicate']:,}"),
        ("skipped (already done)", f"{s['skipped']:,}"),
        ("stored", f"{fmt(c.bytes)}B"),
        ("wall time", f"{wall:,.1f} s" if wall is not None else "–"),
        ("files/s", rate(s["ok"])),
        ("MB/s", rate(c.bytes / 1e6)),
        *((f"latency p{round(q * 100)}", _ms(c.latency.quantile(q))) for q in (0.5, 0.9, 0.99)),
        ("first byte p50", _ms(c.ttfb.quantile(0.5))),
    ]
    text = (
        f"Failures by kind: {failed}. The figures are the run's totals over every invocation, from its "
        f"rows (a dataset's: each shard's own). Wall time spans the rows' own times (a rerun adds its gap)."
        f"{_last_invocation(stats)}"
    )
    return page.section("Summary", page.cards(items), page.para(text), id_="summary")


def _last_invocation(stats: dict[str, object] | None) -> str:
    """A sentence on the last invocation alone (``stats.json``), said as that: not the run's totals."""
    if stats is None:
        return ""
    counts = ", ".join(
        f"{int(n):,} {k.replace('_', ' ')}" for k in _COUNTED if isinstance(n := stats.get(k), int) and n
    )
    wall = stats.get("wall_s")
    took = (
        ""
        if not isinstance(wall, int | float)
        else f" in {wall:,.1f} s"
        if wall >= 1
        else f" in {wall:.2g} s"
    )
    return f" The last invocation alone (its stats.json) did {counts or 'nothing'}{took}."


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _over_time(c: Collected) -> str:
    series = c.timeline.series()
    if not series:
        return page.section("Over time", page.para("No row carries a time (t) yet.", True), id_="time")
    width = c.timeline.width
    files = [(x, n) for x, n, _b in series]
    megabytes = [(x, b / 1e6) for x, _n, b in series]
    parts = [
        line_chart(
            "files per second over time", [("files/s", files)], "seconds since the first row", "files/s"
        ),
        line_chart(
            "megabytes per second over time", [("MB/s", megabytes)], "seconds since the first row", "MB/s"
        ),
        page.para(f"Buckets of {width:g} s.", True),
    ]
    if c.untimed:
        parts.append(page.para(f"{c.untimed:,} rows from before t was recorded are not on this axis.", True))
    return page.section("Over time", *parts, id_="time")


def _latency(c: Collected) -> str:
    h = c.latency
    if not h.total:
        return page.section("Latency", page.para("No downloads yet.", True), id_="latency")
    used = [i for i, n in enumerate(h.counts) if n]
    bars = [(_ms(h.edge(i)), float(h.counts[i])) for i in range(used[0], used[-1] + 1)]
    chart = bar_chart("latency histogram", bars, "time per download (lower edge of each bin)", "downloads")
    return page.section("Latency", chart, id_="latency")


def _failures(c: Collected) -> str:
    if not c.kinds:
        return page.section("Failures", page.para("No failures.", True), id_="failures")
    kinds = sorted(c.kinds.items(), key=lambda kv: -kv[1])
    chart = bar_chart("failures by kind", [(k, float(n)) for k, n in kinds], "kind", "rows")
    hosts = [
        (host, n, ", ".join(f"{k} {m}" for k, m in sorted(sub.items(), key=lambda kv: -kv[1])), sample)
        for host, n, sample, sub in c.hosts.most(50)
    ]
    table = page.table(
        ("host", "failures", "kinds", "a sample error"), hosts, numeric=(1,), id_="failure-table"
    )
    parts = [chart, page.para("The worst hosts first (at most 50)."), table]
    if c.hosts.approximate:
        parts.append(page.para("More hosts failed than the report keeps: the counts are lower bounds.", True))
    return page.section("Failures", *parts, id_="failures")


def _sizes(c: Collected) -> str:
    h = c.sizes
    parts = []
    if h.total:
        used = [i for i, n in enumerate(h.counts) if n]
        bars = [(f"{fmt(h.edge(i))}B", float(h.counts[i])) for i in range(used[0], used[-1] + 1)]
        parts.append(bar_chart("sizes of the stored files", bars, "bytes (lower edge of each bin)", "files"))
    if c.dims.counts:
        dims = [(key, n) for key, n, _s, _sub in c.dims.most(20)]
        parts.append(page.table(("width × height", "files"), dims, numeric=(1,)))
    return page.section("Sizes", *(parts or [page.para("No files stored yet.", True)]), id_="sizes")


def _contact_sheet(out: Path, c: Collected) -> str:
    items = sorted(c.sample.items)
    if not items:
        return ""
    from ..stages import images

    if not images.available():
        return page.section("Contact sheet", page.note(SHEET_HINT), id_="sheet")
    bodies = dict(_bodies(out, items))
    thumbs = [(p, uri) for p in items if p in bodies and (uri := _thumb(bodies[p], images.thumbnail))]
    text = f"{len(thumbs)} of {c.sample.seen:,} stored images, sampled at random."
    return page.section("Contact sheet", page.para(text, True), page.sheet(thumbs), id_="sheet")


def _bodies(out: Path, paths: list[str]) -> Iterator[tuple[str, bytes]]:
    """The bytes of each sampled path: a file in OUT, or a member of a WebDataset shard
    (``00000.tar/000000123.jpg``), each tar read once; what is gone or too large is left out."""
    in_tars: dict[str, dict[str, str]] = {}
    for p in paths:
        shard, sep, member = p.partition("/")
        if sep and shard.endswith(".tar"):
            in_tars.setdefault(shard, {})[member] = p
            continue
        try:
            if (out / p).stat().st_size <= THUMB_MAX_BYTES:
                yield p, (out / p).read_bytes()
        except OSError:
            continue
    for shard, wanted in in_tars.items():
        yield from _members(out / shard, wanted)


def _members(tar_path: Path, wanted: dict[str, str]) -> Iterator[tuple[str, bytes]]:
    """The ``wanted`` members (name → sampled path) of one tar, in one pass over its headers."""
    try:
        with tarfile.open(tar_path) as tar:
            for member in tar:
                p = wanted.pop(member.name, None)
                body = tar.extractfile(member) if p is not None and member.size <= THUMB_MAX_BYTES else None
                if p is not None and body is not None:
                    yield p, body.read()
                if not wanted:
                    return
    except (OSError, tarfile.TarError):  # a shard gone or damaged since its rows were written
        return


def _thumb(body: bytes, thumbnail: Callable[[bytes, int], bytes]) -> str | None:
    """A data URI of a small JPEG of ``body``, or None when it is not an image the library reads."""
    try:
        small: bytes = thumbnail(body, THUMB_BOX)
    except Exception:  # any file the library cannot read is left off the sheet
        return None
    return "data:image/jpeg;base64," + base64.b64encode(small).decode("ascii")


def _settings_section(settings: dict[str, object] | str) -> str:
    if isinstance(settings, str):
        return page.section("Settings", page.para(settings, True), id_="settings")
    rows = [(k, json.dumps(v, ensure_ascii=False)) for k, v in settings.items()]
    return page.section("Settings (run.json)", page.table(("setting", "value"), rows), id_="settings")
