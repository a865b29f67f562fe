"""The manifest: one module owns its row schema, its encoding, appending, reading, the resume indexes
built from it, and the merging of ``--procs`` workers' part files; also ``stats.json`` beside it.

``OUT/manifest.jsonl`` is appended, one JSON object per line; every input row the run reached gets exactly
one row, and the latest row for a URL wins (README, "What you get").
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from .errors import InvalidURL
from .keys import DigestIndex, PathClaims, digest64
from .memory import peak_rss_mb
from .models import Job, Naming, Result, Stats, Status
from .names import DEFAULT_NAMING, normalise
from .sources import make_job

MANIFEST = "manifest.jsonl"
STATS = "stats.json"
PART_GLOB = ".manifest-*.jsonl"
"""``--procs`` workers each append to a part file of their own, merged into the manifest afterwards."""


def part_name(k: int) -> str:
    return f".manifest-{k}.jsonl"


def row_of(result: Result, t: float | None = None) -> dict[str, object]:
    """The manifest row; what a stage learned and the carried input columns come last. ``t``: when the
    row was written (Unix seconds), the time axis of ``downloader report`` across appended runs.
    Durations are rounded to the microsecond as ``round(x * 1e6) / 1e6``: the same float as
    ``round(x, 6)`` but for a hair's breadth from a tie, at a quarter of its cost."""
    ttfb = result.ttfb_s
    row: dict[str, object] = {
        "url": result.url,
        "line": result.line,
        "path": result.path,
        "status": str(result.status),
        "kind": result.kind,
        "http_status": result.http_status,
        "bytes": result.bytes,
        "sha256": result.sha256,
        "content_type": result.content_type,
        "attempts": result.attempts,
        "elapsed_s": round(result.elapsed_s * 1e6) / 1e6,
        "ttfb_s": None if ttfb is None else round(ttfb * 1e6) / 1e6,
        "error": result.error,
        "t": t,
    }
    if result.meta:
        for k, v in result.meta.items():
            row.setdefault(k, v)
    if result.extra:
        for k, v in result.extra.items():
            row.setdefault(k, v)
    return row


MANIFEST_FIELDS = frozenset(row_of(Result("", 0, Status.OK)))
"""The manifest's own columns; anything else in a row was carried from the input."""
_SIZES = ("width", "height", "original_width", "original_height")
_TYPES = dict.fromkeys(("line", "http_status", "bytes", "attempts", *_SIZES), "int64")
_TYPES |= dict.fromkeys(("elapsed_s", "ttfb_s", "t"), "double")
_GAINED = ("key", "duplicate_of", "note", *_SIZES, "format")
COLUMNS = {k: _TYPES.get(k, "string") for k in (*row_of(Result("", 0, Status.OK)), *_GAINED)}
"""A row's columns in a dataset's Parquet, each of one Arrow type whatever a shard holds (a column no row
of a shard fills would be typed ``null`` there, and the shards would not read as one dataset): the
manifest's own, a shard's key, and what a row may gain (duplicates, notes, the image stage's sizes)."""


def encode_row(row: dict[str, object]) -> bytes:
    """One manifest line as UTF-8 JSON. orjson encodes a row in a twentieth of the time ``json`` takes
    (0.25 us against 4.5 us); what it refuses (an integer beyond 64 bits, a lone surrogate in a carried
    column) goes through ``json`` with every non-ASCII character escaped."""
    try:
        return orjson.dumps(row)
    except TypeError:
        return json.dumps(row, separators=(",", ":")).encode("ascii")


FLUSH_ROWS = 256


class ManifestWriter:
    """``manifest.jsonl``, appended. Rows are batched and written from the loop thread: a buffered append
    of a few KB to the page cache costs less than the thread hop aiofiles would add per row. A dataset
    shard's part manifest is written row by row (``batch=1``): each row says its spooled sample is
    complete, so a rerun after a kill reuses it.

    A failed write is kept in ``error`` instead of raised, so the engine can stop the run cleanly."""

    FLUSH_ROWS = FLUSH_ROWS
    FLUSH_SECONDS = 1.0

    def __init__(self, path: Path, batch: int = FLUSH_ROWS) -> None:
        self.path = path
        self.batch = batch
        self._fh = open(path, "ab")  # noqa: SIM115 - closed in close()
        self._end_torn_line()
        self._rows: list[bytes] = []
        self._last = time.monotonic()
        self.error: str | None = None

    def _end_torn_line(self) -> None:
        """A run killed mid-write can leave a last line without its newline; end it, so this run's first
        row is not glued onto it (the torn line is then skipped on reading, this row is not)."""
        if self._fh.tell() == 0:
            return
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                self._fh.write(b"\n")

    def write(self, result: Result) -> None:
        """Stamp the row with the wall clock as it is written (``time.time()`` to the millisecond): a row
        finishes when it is written, so ``t`` orders rows in time across runs and ``--procs`` workers."""
        self._rows.append(encode_row(row_of(result, round(time.time() * 1000) / 1000)))
        if len(self._rows) >= self.batch or time.monotonic() - self._last > self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        data = b"\n".join(self._rows) + b"\n" if self._rows else b""
        self._rows.clear()
        if self.error:
            return
        try:
            self._fh.write(data)
            self._fh.flush()
        except OSError as exc:
            self.error = f"cannot write {self.path.name}: {os.strerror(exc.errno) if exc.errno else exc}"

    def close(self) -> None:
        self.flush()
        try:
            self._fh.close()
        except OSError as exc:
            self.error = self.error or f"cannot write {self.path.name}: {exc}"


def write_stats(path: Path, stats: Stats) -> None:
    """``stats.json``, with the writing process's peak memory counted in."""
    stats.note_memory(peak_rss_mb())
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(stats.as_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def merge_parts(out: Path) -> None:
    """Append the workers' manifests to ``manifest.jsonl`` and remove them."""
    parts = sorted(out.glob(PART_GLOB))
    if not parts:
        return
    with (out / MANIFEST).open("ab") as whole:
        for part in parts:
            with part.open("rb") as fh:
                shutil.copyfileobj(fh, whole)
            part.unlink()


# -- an earlier run's manifest ------------------------------------------------------------------------


def read_manifest(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of an earlier manifest, skipping a torn last line or anything that is not a JSON object.

    orjson parses a row in a third of ``json``'s time (a report of ten million rows is mostly this); what
    it refuses and ``json`` takes (a lone surrogate escape, a number beyond 64 bits, invalid UTF-8 read
    with replacement) goes through ``json``."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                try:
                    row = json.loads(line.decode("utf-8", "replace"))
                except ValueError:
                    continue  # no row (a line a kill tore, or an edit): skipped, never fatal
            if isinstance(row, dict) and isinstance(row.get("url"), str):
                yield row


def _row_digest(row: dict[str, Any]) -> int | None:
    try:
        return digest64(normalise(row["url"]))
    except InvalidURL:
        return None


def read_manifests(manifests: Path | Sequence[Path]) -> Iterator[dict[str, Any]]:
    """The rows of one manifest, or of several in turn (a run's parts, a dataset's shards)."""
    for path in [manifests] if isinstance(manifests, Path) else manifests:
        yield from read_manifest(path)


def earlier_outcomes(
    manifest: Path | Sequence[Path],
    out: Path,
    *,
    failed: bool = False,
    part: tuple[int, int] | None = None,
    claims: PathClaims | None = None,
) -> DigestIndex:
    """Digests of the URLs an earlier run completed (latest row ok or skipped, and its file on disk), or
    with ``failed`` of those whose latest row failed. The latest row for a URL wins. With ``part``, only
    that ``--procs`` part's. With ``claims``, each completed file's path is claimed for its URL. A large
    set spills to disk under ``out``; the caller closes it."""
    found = DigestIndex(out)
    for row in read_manifests(manifest):
        status = row.get("status")
        if status not in ("ok", "skipped", "failed"):
            continue
        d = _row_digest(row)
        if d is None or (part is not None and d % part[1] != part[0]):
            continue
        if failed:
            wanted = status == "failed"
        else:
            path = row.get("path")
            wanted = status != "failed" and isinstance(path, str) and (out / path).is_file()
        if wanted:
            found.add(d)
            if claims is not None:
                claims.claim(row["path"], d)
        else:
            found.discard(d)
    return found


def jobs_from_manifest(
    manifest: Path, out: Path, naming: Naming = DEFAULT_NAMING, name_column: str | None = None
) -> Iterator[Job]:
    """Jobs for ``--retry-failed``: each URL whose latest manifest row failed, once, with its old line,
    its carried columns, and its name from ``name_column`` (carried into every row for this)."""
    failed = earlier_outcomes(manifest, out, failed=True)
    try:
        yield from _failed_jobs(manifest, failed, naming, name_column)
    finally:
        failed.close()


def _failed_jobs(
    manifest: Path, failed: DigestIndex, naming: Naming, name_column: str | None
) -> Iterator[Job]:
    for row in read_manifest(manifest):
        d = _row_digest(row)
        if d is not None and d in failed and row.get("status") == "failed":
            failed.discard(d)
            line = row.get("line")
            extra = {k: v for k, v in row.items() if k not in MANIFEST_FIELDS}
            named = extra.get(name_column) if name_column else None
            stem = str(named).strip() or None if named is not None else None
            number = line if isinstance(line, int) else 0
            yield make_job(number, row["url"], naming, stem=stem, extra=extra or None)


def failed_rows(manifest: Path | Sequence[Path], out: Path) -> Iterator[dict[str, Any]]:
    """The rows to show a person as failures: each URL whose latest row failed (once), and each invalid
    input row (once per line, however many runs met it). Streams, in bounded memory."""
    failed = earlier_outcomes(manifest, out, failed=True)
    shown = DigestIndex(out)
    try:
        for row in read_manifests(manifest):
            status = row.get("status")
            if status == "failed":
                d = _row_digest(row)
                if d is None or d not in failed:
                    continue
                failed.discard(d)
            elif status == "invalid":
                if not shown.add(digest64(f"{row.get('line')}\x00{row['url']}")):
                    continue
            else:
                continue
            yield row
    finally:
        failed.close()
        shown.close()
