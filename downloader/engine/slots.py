"""``-c`` as a count several engines on one loop may share: a dataset process keeps its next shard's
rows starting while the last shard's slow URLs finish, and the two shards' engines draw on one budget.

An engine takes a slot as it starts a task and gives it back in the task's done callback, then ``wake``
pumps every engine that shares the count, oldest first, while slots are free: an engine whose queue is
empty returns at once, so the slot goes to the first one that has a job that may start."""

from __future__ import annotations

from collections.abc import Callable

Pump = Callable[[], None]


class Slots:
    """A slot count shared by the engines that joined it (one engine alone: its own)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self.by_host: dict[str, int] = {}
        """Running tasks per host:port over every engine: ``--per-host`` and the fair share hold across
        open shards (a slow host's stragglers in one count in the next). Only hosts with a task running."""
        self._pumps: list[Pump] = []

    def take(self, host: str) -> None:
        self.used += 1
        self.by_host[host] = self.by_host.get(host, 0) + 1

    def give(self, host: str) -> None:
        self.used -= 1
        left = self.by_host.pop(host) - 1
        if left:
            self.by_host[host] = left

    @property
    def full(self) -> bool:
        return self.used >= self.total

    def join(self, pump: Pump) -> None:
        """An engine's pump, called when a slot frees (after the engines that joined earlier)."""
        self._pumps.append(pump)

    def leave(self, pump: Pump) -> None:
        if pump in self._pumps:
            self._pumps.remove(pump)

    def wake(self) -> None:
        """A slot was given back: each engine in turn may take the free ones."""
        for pump in list(self._pumps):  # a pump may end its run, which leaves
            if self.full:
                return
            pump()
