"""The summary a person reads at the end of a run (the CLI prints it)."""

from __future__ import annotations

from ..models import Stats


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


def summary(stats: Stats) -> str:
    """One line a person can read, plus failures by kind when there are any."""
    q = stats.latency.quantile
    done = f"{stats.ok} ok"
    for label, n in (
        ("failed", stats.failed),
        ("invalid", stats.invalid),
        ("skipped", stats.skipped),
        ("duplicate", stats.duplicate),
    ):
        if n or label == "failed":
            done += f", {n} {label}"
    line = (
        f"{done} · {_size(stats.bytes)} in {stats.wall_s:.2f} s · {stats.files_per_s:,.0f} files/s · "
        f"{stats.mb_per_s:.2f} MB/s · latency p50 {_ms(q(0.5))}, p95 {_ms(q(0.95))}, p99 {_ms(q(0.99))}"
        f" · {stats.backend}, -c {stats.concurrency}"
    )
    if stats.failures:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.failures.items(), key=lambda kv: -kv[1]))
        line += f"\nfailures by kind: {kinds}"
    if stats.aborted:
        line += f"\nrun aborted: {stats.aborted}"
    elif stats.interrupted:
        line += "\ninterrupted: rerun the same command to resume"
    return line
