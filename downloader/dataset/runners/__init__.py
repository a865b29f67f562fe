"""Where a run's shards are made: one runner per module, each with one signature, picked by name from
the settings. A new runner is a module and an entry here. Modules load lazily: a runner that is not
picked imports nothing (Dask, ``multiprocessing``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...app.assemble import OnInterrupt
    from ...app.progress import Reporter
    from ...models import Stats
    from ..shard import ShardRun


@dataclass(frozen=True)
class RunnerContext:
    """What a runner is lent by the run: how many processes it may start here, the run's bar and what
    to do on an interrupt."""

    procs: int
    bar: Reporter
    on_interrupt: OnInterrupt | None = None


Runner = Callable[["ShardRun", Sequence[int], RunnerContext], "Stats"]
"""Make the given shards of a run final; the summed statistics."""

_REGISTRY: dict[str, tuple[str, str]] = {
    "leased": ("downloader.dataset.runners.leased", "run_leased"),
    "dask": ("downloader.dataset.runners.dask", "run_dask"),
    "pool": ("downloader.dataset.runners.pool", "run_pool"),
    "local": ("downloader.dataset.runners.serial", "run_local"),
}


def runner_name(run: ShardRun, procs: int) -> str:
    """The runner the settings name: claimed from the state database (static workers with ``--state``),
    on Dask, on a pool of ``--procs``, or one after another here."""
    cluster = run.spec.cluster
    if cluster.claims and run.tracking is not None:
        return "leased"
    if cluster.dask is not None:
        return "dask"
    return "pool" if procs > 1 else "local"


def runner(name: str) -> Runner:
    """The runner registered as ``name``, its module imported now."""
    module, function = _REGISTRY[name]
    found: Runner = getattr(importlib.import_module(module), function)
    return found
