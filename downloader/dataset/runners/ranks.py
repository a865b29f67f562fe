"""Static workers without a database (``--rank I --world N``): worker I makes the shards k with
``k % N == I``, in order, and nothing else; N such processes, started anywhere OUT is shared (a SLURM
array, a Kubernetes indexed job, plain ssh), make the whole dataset with no coordinator and nothing
installed beyond the tool. A worker that dies leaves its shards to its own rerun (the same command):
each shard resumes from its spool. Its totals go to ``stats.rank-I.json``, so workers never overwrite
each other's.

Shards are the unit of work beyond one process: a run of plain files (``--output-format files``) with
``--dask`` or ``--rank`` is made in shards too, each shard's files in a folder of its own (``00000/``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import UsageError
from ...manifest import STATS
from ...spec import RunSpec


def check_cluster(spec: RunSpec) -> None:
    """Usage errors of ``--dask`` and ``--rank``, before any work."""
    c = spec.cluster
    if not c.active:
        return
    if c.dask is not None and (spec.performance.procs or 1) > 1:
        raise UsageError(
            "--procs counts processes on this machine; with --dask the cluster's workers are the "
            "processes (--dask local:N for N of them here)"
        )
    if c.dask is not None and spec.images.active and spec.images.image_executor == "process":
        raise UsageError(
            "--dask with image options needs --image-executor thread or inline (a Dask worker is a "
            "daemon process, which cannot start the image processes)"
        )


def my_shards(spec: RunSpec, count: int) -> Sequence[int]:
    """The shards this process makes: every one, or with ``--rank I --world N`` and no ``--state`` those
    ``k % N == I`` (with a state database, static workers claim whichever shard is free)."""
    c = spec.cluster
    if c.rank is None or c.world is None or c.claims:
        return range(count)
    return range(c.rank, count, c.world)


def rows_of(shards: Sequence[int], rows: int, size: int) -> int:
    """How many rows of a ``rows``-row list the given shards hold (the progress bar's total)."""
    return sum(max(0, min(size, rows - k * size)) for k in shards)


def stats_name(spec: RunSpec) -> str:
    """Where this process's totals go: ``stats.json``, or ``stats.rank-I.json`` for a static worker."""
    rank = spec.cluster.rank
    return STATS if rank is None else f"stats.rank-{rank}.json"
