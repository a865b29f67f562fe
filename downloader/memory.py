"""The process's own peak memory, for ``stats.json`` and the summary: a web-scale run is judged by it
as much as by its speed (docs/performance.md, "Memory at web scale")."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MB (10^6 bytes): what the kernel counted, native
    memory (the HTTP clients' buffers in Rust or C) included, which Python's own tracing does not see."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux counts ru_maxrss in KiB, macOS in bytes
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6
