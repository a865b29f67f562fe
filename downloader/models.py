"""Plain data that flows through the pipeline: ``Job`` in, ``Result`` out, ``Stats`` summed. No I/O."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    NOT_STARTED = "not_started"
    """The run stopped (interrupted, or aborted) before this row was done: not a failure, and a rerun
    fetches it."""


BUCKETS = "shards"
"""The ``--layout`` value that files samples by input line into numbered folders, here called buckets
(the user's word for the value, ``shards``, stays; a shard is a dataset's row range)."""
BUCKET_SIZE = 10_000
"""Files per bucket folder (``--layout shards``)."""


_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(32), *range(127, 160)]} | {9: "\\t", 10: "\\n", 13: "\\r"}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029"}  # line and paragraph separators: lines to splitlines()


def one_line(text: str) -> str:
    """``text`` with its control characters and line separators escaped (``\\n``, ``\\t``, ``\\x00``,
    ``\\u2028``): a failed URL or a sentence from a bad list (a quote left open in a CSV swallows the next
    line into the URL) stays one line of the summary and of the failure log, and one field of
    ``downloader failures``' rows."""
    return text.translate(_ESCAPES)


@dataclass(frozen=True, slots=True)
class Naming:
    """How URLs map to paths: ``names`` (``hashed`` or ``plain``) and ``layout`` (``flat``, ``host`` or
    ``shards``)."""

    names: str = "hashed"
    layout: str = "flat"
    part: tuple[int, int] | None = None
    """(k, n): keep only the rows of ``--procs`` part k of n (by URL digest, so duplicates share a part);
    rows of other parts are dropped before a path is made, which is most of a row's cost."""


@dataclass(slots=True)
class Job:
    """One input row. ``key`` is the normalised URL; ``path`` is relative to the output folder.

    ``error`` is set when the row cannot be fetched at all (bad URL or malformed row); such a job still
    becomes exactly one manifest row.
    """

    url: str
    line: int
    key: str = ""
    digest: int = 0
    path: str = ""
    host: str = ""
    """host:port, for per-host scheduling."""
    error: str | None = None
    error_kind: str | None = None
    extra: dict[str, object] | None = None
    url_named: bool = True
    may_collide: bool = False
    """Another URL may have the same path (``--names plain``, with or without ``--name-column``)."""
    note: str | None = None
    """Said in the row's ``note``: why the path is not the one the naming rules give."""
    """The path depends on the URL alone, so a duplicate of this URL names the same file."""


class Deadline:
    """When one URL's time runs out (``time.monotonic``), and a way to move it later: a body still
    arriving fast enough may run past it. ``extend`` may be called from any thread."""

    __slots__ = ("at", "on_move")

    def __init__(self, at: float) -> None:
        self.at = at
        self.on_move: Callable[[float], None] | None = None
        """Told of each move (the engine reschedules the running attempt's timer)."""

    def extend(self, at: float) -> None:
        if at > self.at:
            self.at = at
            if self.on_move is not None:
                self.on_move(at)


@dataclass(slots=True)
class Stored:
    """Where a writer put a sample, relative to OUT; and, when a stage changed the body, the stored
    bytes' size and sha256 and what the stage learned (width, height...)."""

    path: str
    bytes: int | None = None
    sha256: str | None = None
    meta: dict[str, object] | None = None


@dataclass(slots=True)
class Fetched:
    """What one successful attempt produced."""

    http_status: int
    bytes: int
    sha256: str
    content_type: str | None
    ttfb_s: float
    path: str
    meta: dict[str, object] | None = None


@dataclass(slots=True)
class Result:
    """The outcome of one input row: one manifest row."""

    url: str
    line: int
    status: Status
    path: str | None = None
    kind: str | None = None
    http_status: int | None = None
    bytes: int = 0
    sha256: str | None = None
    content_type: str | None = None
    attempts: int = 0
    elapsed_s: float = 0.0
    ttfb_s: float | None = None
    error: str | None = None
    extra: dict[str, object] | None = None
    meta: dict[str, object] | None = None
    """What a stage learned of the stored sample; written after the manifest's own fields."""

    @property
    def ok(self) -> bool:
        return self.status in (Status.OK, Status.SKIPPED, Status.DUPLICATE)


class Histogram:
    """Latency quantiles in constant memory: log buckets 1 % wide, from 10 µs up.

    A list of every latency would grow with the URL list; 1 % buckets are finer than anyone reads.
    """

    _FLOOR = 1e-5
    _STEP = math.log(1.01)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0

    def add(self, seconds: float) -> None:
        b = 0 if seconds <= self._FLOOR else int(math.log(seconds / self._FLOOR) / self._STEP) + 1
        self.counts[b] = self.counts.get(b, 0) + 1
        self.n += 1

    def absorb(self, other: Histogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.n += other.n

    def quantile(self, q: float) -> float | None:
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return self._FLOOR * math.exp(self._STEP * (b - 0.5)) if b else self._FLOOR
        return None  # pragma: no cover - unreachable: counts sum to n


SHOWN_FAILURES = 10


@dataclass
class Stats:
    """Running totals for a run; ``as_dict`` is ``stats.json``."""

    backend: str = ""
    concurrency: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    duplicate: int = 0
    invalid: int = 0
    not_started: int = 0
    renamed: int = 0
    """Rows whose plain name another URL held, saved under the name plus the URL's digest."""
    bytes: int = 0
    wall_s: float = 0.0
    aborted: str | None = None
    interrupted: bool = False
    failures: dict[str, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)
    first_failures: list[tuple[str, str, str]] = field(default_factory=list)
    """(url, kind, sentence) of the first ``SHOWN_FAILURES`` failed or invalid rows, to show a person."""
    peak_rss_mb: float = 0.0
    """The largest peak resident set of the run's processes (one process: its own), in MB."""
    peak_rss_sum_mb: float = 0.0
    """The processes' peaks added (``--procs``: the workers'): an upper bound of the run's memory, since
    their peaks need not coincide. One process: its own peak."""

    def add(self, r: Result) -> None:
        if r.status is Status.OK:
            self.ok += 1
            self.bytes += r.bytes
            self.latency.add(r.elapsed_s)
        elif r.status is Status.SKIPPED:
            self.skipped += 1
        elif r.status is Status.DUPLICATE:
            self.duplicate += 1
        elif r.status is Status.NOT_STARTED:
            self.not_started += 1
        else:
            if r.status is Status.INVALID:
                self.invalid += 1
            else:
                self.failed += 1
            kind = r.kind or "unknown"
            self.failures[kind] = self.failures.get(kind, 0) + 1
            if len(self.first_failures) < SHOWN_FAILURES:
                self.first_failures.append((r.url, kind, r.error or ""))

    def absorb(self, other: Stats) -> None:
        """Add another process's totals (``--procs``); wall time stays this run's own."""
        for name in ("ok", "failed", "skipped", "duplicate", "invalid", "not_started", "renamed", "bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind, count in other.failures.items():
            self.failures[kind] = self.failures.get(kind, 0) + count
        self.latency.absorb(other.latency)
        room = SHOWN_FAILURES - len(self.first_failures)
        self.first_failures.extend(other.first_failures[: max(0, room)])
        self.aborted = self.aborted or other.aborted
        self.interrupted = self.interrupted or other.interrupted
        self.peak_rss_mb = max(self.peak_rss_mb, other.peak_rss_mb)
        self.peak_rss_sum_mb += other.peak_rss_sum_mb

    def note_memory(self, own_mb: float) -> None:
        """Count this process's own peak (idempotent: stats written twice count it once). A parent that
        absorbed its workers keeps their sum, which its own small peak does not join."""
        self.peak_rss_mb = max(self.peak_rss_mb, own_mb)
        self.peak_rss_sum_mb = max(self.peak_rss_sum_mb, own_mb)

    @property
    def total(self) -> int:
        return self.ok + self.failed + self.skipped + self.duplicate + self.invalid + self.not_started

    @property
    def all_ok(self) -> bool:
        return not (self.failed or self.invalid)

    @property
    def files_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        q = self.latency.quantile
        return {
            "backend": self.backend,
            "concurrency": self.concurrency,
            "ok": self.ok,
            "failed": self.failed,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "duplicate": self.duplicate,
            "not_started": self.not_started,
            "renamed": self.renamed,
            "bytes": self.bytes,
            "wall_s": round(self.wall_s, 4),
            "files_per_s": round(self.files_per_s, 2),
            "mb_per_s": round(self.mb_per_s, 3),
            "latency_s": {name: _round(q(v)) for name, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
            "failures": dict(sorted(self.failures.items())),
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_rss_sum_mb": round(self.peak_rss_sum_mb, 1),
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 5)
