"""The summary a person reads at the end of a run (the CLI prints it)."""

from __future__ import annotations

from ..models import Stats, one_line
from ..spec import DEFAULT_BACKEND

FALLBACK_NOTE = (
    "\nbackend aiohttp, as pyreqwest is not installed: pip install 'downloader[reqwest]' for the faster"
    " default, the reqwest backend"
)
"""Said where the default fell back, so the slower run is not a mystery."""


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def summary(stats: Stats, out: str | None = None) -> str:
    """The run in a few lines a person can read: the counts and rates, failures by kind, the first
    failures themselves, and where the rest are (``out``: the run's output folder)."""
    q = stats.latency.quantile
    line = (
        f"{_counts(stats)} · {_size(stats.bytes)} in {stats.wall_s:.2f} s · {stats.files_per_s:,.0f} files/s"
        f" · {stats.mb_per_s:.2f} MB/s · latency p50 {_ms(q(0.5))}, p95 {_ms(q(0.95))}, p99 {_ms(q(0.99))}"
        f" · {stats.backend}, -c {stats.concurrency}{_memory(stats)}"
    )
    if stats.backend == DEFAULT_BACKEND == "aiohttp":
        line += FALLBACK_NOTE
    if stats.renamed:
        line += (
            f"\nnames taken by another URL: {stats.renamed:,} (saved with the URL's digest added;"
            " each row's note says which)"
        )
    if stats.failures:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.failures.items(), key=lambda kv: -kv[1]))
        line += f"\nfailures by kind: {kinds}"
        line += _first_failures(stats, out)
    if stats.aborted:
        line += f"\nrun aborted: {stats.aborted}"
    elif stats.interrupted:
        line += "\ninterrupted: rerun the same command to resume"
    return line


def _memory(stats: Stats) -> str:
    """`` · peak RSS 140 MB``; with worker processes, the largest one's and their sum."""
    if not stats.peak_rss_mb:
        return ""
    if stats.peak_rss_sum_mb > stats.peak_rss_mb + 0.5:
        return f" · peak RSS {stats.peak_rss_mb:.0f} MB a process, {stats.peak_rss_sum_mb:.0f} MB in all"
    return f" · peak RSS {stats.peak_rss_mb:.0f} MB"


def _counts(stats: Stats) -> str:
    """``948 ok, 0 failed, 1,052 not started (interrupted)``: ok and failed always, the rest when any."""
    done = f"{stats.ok:,} ok"
    for label, n in (
        ("failed", stats.failed),
        ("invalid", stats.invalid),
        ("skipped", stats.skipped),
        ("duplicate", stats.duplicate),
        ("not started", stats.not_started),
    ):
        if n or label == "failed":
            done += f", {n:,} {label}"
    if stats.not_started:
        done += " (interrupted)" if stats.interrupted else " (run aborted)"
    return done


def _first_failures(stats: Stats, out: str | None) -> str:
    shown = stats.first_failures
    total = stats.failed + stats.invalid
    text = "\nfirst failures:" if total > len(shown) else "\nfailures:"
    for url, kind, sentence in shown:
        text += f"\n  {_clip(one_line(url), 80)}  {kind}: {_clip(one_line(sentence), 100)}"
    if out is not None:
        more = f"all {total:,}" if total > len(shown) else "them again"
        text += f"\nto list {more}: downloader failures {out}"
    return text


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
