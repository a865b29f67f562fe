"""The numbers of a report, gathered in one pass over the manifest in bounded memory.

Every structure here has a fixed size whatever the number of rows: log-spaced histograms (percentiles
come from them, to within a bin), time buckets whose width doubles when the run outgrows them, top-N
tables pruned back to N (their counts are exact unless ``approximate`` says otherwise) and a reservoir
sample. So a run of ten million rows reports in the memory of a run of ten.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
STATUSES = ("ok", "failed", "invalid", "skipped", "duplicate", "not_started")


class LogHistogram:
    """Counts in log-spaced bins from ``lo`` to ``hi`` (values outside land in the end bins)."""

    def __init__(self, lo: float, hi: float, bins: int) -> None:
        self.lo = lo
        self.hi = hi
        self.bins = bins
        self._scale = bins / math.log(hi / lo)
        self.counts = [0] * bins
        self.total = 0

    def add(self, value: float) -> None:
        i = int(math.log(value / self.lo) * self._scale) if value > self.lo else 0
        self.counts[i if i < self.bins else self.bins - 1] += 1
        self.total += 1

    def edge(self, i: int) -> float:
        """The lower edge of bin ``i`` (``bins``: the upper edge of the last)."""
        return self.lo * math.exp(i / self._scale)

    def quantile(self, q: float) -> float | None:
        """The geometric middle of the bin holding the q-th value: within a bin's width (±5 % at 96 bins
        over 1 ms to 100 s), which is finer than a latency is worth reading."""
        if not self.total:
            return None
        want = q * self.total
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= want and n:
                return math.sqrt(self.edge(i) * self.edge(i + 1))
        return self.edge(self.bins)


class TimeBuckets:
    """Files and bytes per time bucket; at most ``limit`` buckets, the width doubling (neighbours merged)
    whenever the span outgrows them. Rows may come out of order (``--procs`` workers' parts are appended
    one after another), so buckets are keyed by index from the first row's time."""

    def __init__(self, limit: int = 240, width: float = 0.25) -> None:
        self.limit = limit
        self.width = width
        self.anchor: float | None = None
        self.end = 0.0
        self.files: dict[int, int] = {}
        self.bytes: dict[int, int] = {}
        self.lo = self.hi = 0

    def add(self, t: float, size: int) -> None:
        if self.anchor is None:
            self.anchor = self.end = t
        self.end = max(self.end, t)
        k = math.floor((t - self.anchor) / self.width)
        self.files[k] = self.files.get(k, 0) + 1
        self.bytes[k] = self.bytes.get(k, 0) + size
        self.lo, self.hi = (k, k) if len(self.files) == 1 else (min(self.lo, k), max(self.hi, k))
        while self.hi - self.lo >= self.limit:
            self._widen()

    def _widen(self) -> None:
        self.width *= 2
        self.lo = self.lo // 2
        self.hi = self.hi // 2
        for table in (self.files, self.bytes):
            merged: dict[int, int] = {}
            for k, v in table.items():
                merged[k // 2] = merged.get(k // 2, 0) + v
            table.clear()
            table.update(merged)

    def series(self) -> list[tuple[float, float, float]]:
        """(seconds from the first bucket, files/s, bytes/s) for every bucket, empty ones included. The
        last bucket is divided by the time it has covered so far, so the curve does not dip at the end."""
        if self.anchor is None:
            return []
        covered = self.end - (self.anchor + self.hi * self.width)
        return [
            ((k - self.lo) * self.width, self.files.get(k, 0) / span, self.bytes.get(k, 0) / span)
            for k in range(self.lo, self.hi + 1)
            for span in ((max(covered, self.width / 8) if k == self.hi else self.width),)
        ]


@dataclass
class Top:
    """Counts per key with one sample (the first seen) each, kept to the ``limit`` largest: past twice
    that many keys the smallest are dropped, so a key dropped and seen again restarts its count."""

    limit: int = 200
    counts: dict[str, Count] = field(default_factory=dict)
    approximate: bool = False

    def add(self, key: str, sample: object = None, sub: str | None = None) -> None:
        entry = self.counts.get(key)
        if entry is None:
            self.counts[key] = entry = Count(sample)
            if len(self.counts) > 2 * self.limit:
                self._prune()
        entry.n += 1
        subs = entry.subs
        if sub is not None and (len(subs) < 16 or sub in subs):
            subs[sub] = subs.get(sub, 0) + 1

    def _prune(self) -> None:
        keep = sorted(self.counts.items(), key=lambda kv: -kv[1].n)[: self.limit]
        self.counts = dict(keep)
        self.approximate = True

    def most(self, n: int) -> list[tuple[str, int, object, dict[str, int]]]:
        """The ``n`` largest: (key, count, sample, counts of its sub-keys)."""
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1].n, kv[0]))[:n]
        return [(k, v.n, v.sample, v.subs) for k, v in ranked]


@dataclass(slots=True)
class Count:
    """One key of a ``Top``: how often it was seen, its first sample, and counts of its sub-keys."""

    sample: object
    n: int = 0
    subs: dict[str, int] = field(default_factory=dict)


class Reservoir(Generic[T]):
    """A uniform sample of ``k`` items from a stream of unknown length, seeded (the same manifest gives
    the same contact sheet). Algorithm L: once full, it draws how many items to skip before the next
    replacement, so a long stream costs a counter per item, not a random number."""

    def __init__(self, k: int, seed: int = 17) -> None:
        self.k = k
        self.seen = 0
        self.items: list[T] = []
        self._rng = random.Random(seed)
        self._w = 1.0
        self._next = k

    def add(self, item: T) -> None:
        self.seen += 1
        if len(self.items) < self.k:
            self.items.append(item)
            if len(self.items) == self.k:
                self._skip()
        elif self.seen == self._next:
            self.items[self._rng.randrange(self.k)] = item
            self._skip()

    def _skip(self) -> None:
        rng = self._rng
        self._w *= math.exp(math.log(rng.random() or 1e-300) / self.k)
        gap = math.floor(math.log(rng.random() or 1e-300) / math.log1p(-self._w)) if self._w < 1 else 0
        self._next = self.seen + gap + 1


@dataclass
class Collected:
    """Everything a report shows, from one pass."""

    rows: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    kinds: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    first: float | None = None
    last: float | None = None
    untimed: int = 0
    latency: LogHistogram = field(default_factory=lambda: LogHistogram(0.001, 100.0, 96))
    ttfb: LogHistogram = field(default_factory=lambda: LogHistogram(0.001, 100.0, 96))
    sizes: LogHistogram = field(default_factory=lambda: LogHistogram(100.0, 1e9, 70))
    timeline: TimeBuckets = field(default_factory=TimeBuckets)
    hosts: Top = field(default_factory=Top)
    dims: Top = field(default_factory=lambda: Top(limit=50))
    sample: Reservoir[str] = field(default_factory=lambda: Reservoir[str](48))

    @property
    def wall_s(self) -> float | None:
        """From the first row's start to the last row's end, as ``t`` and ``elapsed_s`` tell."""
        return None if self.first is None or self.last is None else max(self.last - self.first, 0.0)


def collect(rows: Iterable[Mapping[str, object]]) -> Collected:
    """One pass over manifest rows (about 1.5 us a row on top of reading it)."""
    c = Collected()
    statuses = c.statuses
    for row in rows:
        c.rows += 1
        status = row.get("status")
        if type(status) is str:
            statuses[status] = statuses.get(status, 0) + 1
        if status == "ok":
            _ok(c, row)
        elif status in {"failed", "invalid"}:
            _failed(c, row)
        t: Any = row.get("t")
        if type(t) in NUMBER:
            _when(c, t, row.get("elapsed_s"))
        else:
            c.untimed += 1
    return c


NUMBER = (int, float)
"""The types of a number in a parsed row (``type(x) in NUMBER`` leaves out ``bool``, and is quick). mypy
does not narrow by it, so the values it tests are typed ``Any``: ``isinstance`` would cost every row."""


def _ok(c: Collected, row: Mapping[str, object]) -> None:
    size: Any = row.get("bytes")
    size = size if type(size) in NUMBER and size > 0 else 0
    c.bytes += size
    if size:
        c.sizes.add(size)
    elapsed: Any = row.get("elapsed_s")
    ttfb: Any = row.get("ttfb_s")
    if type(elapsed) in NUMBER:
        c.latency.add(elapsed)
    if type(ttfb) in NUMBER:
        c.ttfb.add(ttfb)
    width = row.get("width")
    height = row.get("height")
    if type(width) is int and type(height) is int:
        c.dims.add(f"{width}×{height}")
    path = row.get("path")
    kind = row.get("content_type")
    if type(path) is str and (type(kind) is not str or kind.startswith("image/")):
        c.sample.add(path)
    t: Any = row.get("t")
    if type(t) in NUMBER:
        c.timeline.add(t, int(size))


def _failed(c: Collected, row: Mapping[str, object]) -> None:
    kind = str(row.get("kind") or row.get("status"))
    c.kinds[kind] = c.kinds.get(kind, 0) + 1
    url = row.get("url")
    host = (_host(url) if isinstance(url, str) else "") or "(no host)"
    c.hosts.add(host, row.get("error") or kind, sub=kind)


def _host(url: str) -> str:
    """The host, with its port when the URL names one (two services on one machine fail apart)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return ""  # a port that is no number: the row counts under no host
    return f"{host}:{port}" if host and port else host


def _when(c: Collected, t: float, elapsed: Any) -> None:
    start = t - elapsed if type(elapsed) in NUMBER else t
    if c.first is None or start < c.first:
        c.first = start
    if c.last is None or t > c.last:
        c.last = t
