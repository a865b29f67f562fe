"""The per-host scheduler on its own: turns, fair shares, caps, down hosts, draining."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from downloader.engine.hosts import Hosts, Returning, limiter
from downloader.errors import ConnectError, HostDown, ServerError
from downloader.sources import make_job


def fill(hosts: Hosts, spec: dict[str, int]) -> None:
    line = 0
    for name, n in spec.items():
        for _ in range(n):
            line += 1
            hosts.push(name, make_job(line, f"http://{name}/{line}.jpg"))


def test_turns_rotate_and_fair_share_caps_a_busy_host() -> None:
    hosts = Hosts(4)
    fill(hosts, {"a": 10, "b": 10})
    order: list[str] = []
    while (chosen := hosts.next_job(len(order))) is not None:
        order.append(chosen[0])
    assert order == ["a", "b", "a", "b"]  # 4 slots, 2 hosts waiting: 2 each
    hosts.finished("a")
    chosen = hosts.next_job(3)
    assert chosen is not None and chosen[0] == "a"


def test_per_host_cap() -> None:
    hosts = Hosts(10, per_host=1)
    fill(hosts, {"a": 5})
    assert hosts.next_job(0) is not None
    assert hosts.next_job(1) is None
    hosts.finished("a")
    assert hosts.next_job(0) is not None


def test_down_host_returns_its_queue_and_later_pushes() -> None:
    hosts = Hosts(4, host_down_after=2)
    fill(hosts, {"dead": 3, "ok": 1})
    for _ in range(2):
        hosts.failed("dead", ConnectError("refused"))
    hosts.failed("dead", ServerError(503))  # not a connect failure: does not count, does not undo
    downed = list(hosts.down_jobs())
    assert len(downed) == 3 and all(e.kind == "host_down" for _, e in downed)
    assert hosts.next_job(0) is not None and hosts.next_job(1) is None  # only "ok" is left
    hosts.push("dead", make_job(9, "http://dead/9.jpg"))
    assert [j.line for j, _ in hosts.down_jobs()] == [9]
    assert hosts.queued == 0


def test_drain_empties_everything_and_idle_hosts_are_forgotten() -> None:
    hosts = Hosts(2)
    fill(hosts, {"a": 2, "b": 2})
    a = hosts.next_job(0)
    assert a is not None
    assert len(list(hosts.drain())) == 3 and hosts.queued == 0
    assert len(hosts) == 1  # only the host with a running job is remembered
    hosts.finished(a[0])
    assert len(hosts) == 0


def test_a_success_ends_the_failure_streak() -> None:
    """``host_down_after`` counts failures in a row: a host that answers in between is not down."""
    hosts = Hosts(4, host_down_after=2)
    fill(hosts, {"h": 3})
    hosts.failed("h", ConnectError("refused"))
    hosts.succeeded("h")
    hosts.failed("h", ConnectError("refused"))
    assert hosts.gate("h") == 0.0  # not down: it would raise HostDown
    assert list(hosts.down_jobs()) == []
    hosts.failed("h", ConnectError("refused"))  # now two in a row
    assert [e.kind for _, e in hosts.down_jobs()] == ["host_down"] * 3


def test_with_more_hosts_than_slots_no_host_takes_a_second_slot() -> None:
    """Five hosts wait for four slots: each host's share is one slot, even while the others back off, so
    the slots stay free for them instead of all going to the one host that may start now."""
    hosts = Hosts(4)
    fill(hosts, {"busy": 10, "b": 1, "c": 1, "d": 1, "e": 1})
    for name in "bcde":
        hosts.back_off(name, 60)
    chosen = hosts.next_job(0)
    assert chosen is not None and chosen[0] == "busy"
    assert hosts.next_job(1) is None
    assert 59 < (hosts.wake_in() or 0) <= 60


# -- what the mutation run asked for (docs/mutation.md) --------------------------------------------------


def test_turns_go_round_every_waiting_host() -> None:
    hosts = Hosts(6)
    fill(hosts, {"a": 3, "b": 3, "c": 3})
    order = [chosen[0] for n in range(6) if (chosen := hosts.next_job(n)) is not None]
    assert order == ["a", "b", "c", "a", "b", "c"]
    assert hosts.next_job(6) is None and hosts.queued == 3  # every slot is taken


def test_no_job_starts_when_every_slot_is_taken() -> None:
    """The engine's count of running tasks is the authority, even if no host is at its share."""
    hosts = Hosts(2)
    fill(hosts, {"a": 5})
    assert hosts.next_job(0) is not None
    assert hosts.next_job(2) is None


def test_per_host_counts_every_running_job() -> None:
    hosts = Hosts(10, per_host=2)
    fill(hosts, {"a": 5})
    assert hosts.next_job(0) is not None and hosts.next_job(1) is not None
    assert hosts.next_job(2) is None


def test_a_host_that_went_down_leaves_the_turn() -> None:
    """Its stale turn would count as a waiting host and halve the share of the others."""
    hosts = Hosts(2, host_down_after=1)
    fill(hosts, {"dead": 1, "ok": 3})
    hosts.failed("dead", ConnectError("refused"))
    (downed,) = list(hosts.down_jobs())
    assert str(downed[1]) == "dead failed to connect 1 times in a row; not tried"
    assert [c[0] for n in range(2) if (c := hosts.next_job(n)) is not None] == ["ok", "ok"]
    with pytest.raises(HostDown, match=r"^dead failed to connect 1 times in a row; not tried$"):
        hosts.gate("dead")


def test_defaults_mark_no_host_down_and_limit_no_rate() -> None:
    hosts = Hosts(4)
    fill(hosts, {"a": 8})
    for _ in range(50):
        hosts.failed("a", ConnectError("refused"))
    assert hosts.gate("a") == 0.0 and hosts.rate is None and hosts.wake_in() is None
    assert [c[0] for n in range(4) if (c := hosts.next_job(n)) is not None] == ["a"] * 4


def test_gate_waits_out_a_back_off() -> None:
    hosts = Hosts(4)
    assert hosts.gate("unknown") == 0.0
    hosts.back_off("h", 5)
    assert 4 < hosts.gate("h") <= 5


def test_limiter_allows_a_burst_of_one_second() -> None:
    fast, slow = limiter(10), limiter(0.5)
    assert (fast.max_rate, fast.time_period) == (10, 1.0)
    assert (slow.max_rate, slow.time_period) == (1.0, 2.0)  # one request every two seconds


async def test_a_host_out_of_request_rate_waits_its_turn() -> None:
    """With ``rate_per_host`` 2, the burst is two requests; the third waits half a second."""
    hosts = Hosts(10, rate_per_host=2)
    fill(hosts, {"a": 5, "b": 1})
    started = []
    for n in range(4):
        chosen = hosts.next_job(n)
        if chosen is None:
            break
        started.append(chosen[0])
        await hosts.admit(chosen[0])
    assert started == ["a", "b", "a"]  # a's bucket is empty after two admits
    assert hosts.wake_in() == 0.5


async def test_admit_waits_for_the_overall_rate() -> None:
    hosts = Hosts(10, rate=20)
    t0 = time.monotonic()
    for _ in range(25):
        await hosts.admit("a")
    assert 0.2 <= time.monotonic() - t0 < 2  # 20 at once, then five more at 20 per second


def test_a_hosts_last_job_for_now_keeps_no_connection() -> None:
    """``keep_connection``: another job of the host queued or running beside the one asking (which is
    running); with no recent window, nothing else counts."""
    hosts = Hosts(4)
    fill(hosts, {"a": 2, "b": 1})
    assert hosts.keep_connection("a") and hosts.keep_connection("b")  # queued, not yet started
    taken = [hosts.next_job(n) for n in range(3)]
    assert [c[0] for c in taken if c is not None] == ["a", "b", "a"]
    assert hosts.keep_connection("a")  # two of a's run at once: neither is its last
    assert not hosts.keep_connection("b")  # b's only job runs alone with nothing queued
    hosts.finished("a")
    assert not hosts.keep_connection("a")  # the last of a burst
    assert not hosts.keep_connection("unknown")


def test_a_host_that_came_back_within_the_window_keeps_its_connection() -> None:
    """Nothing queued, but an attempt of the host started within ``recent`` seconds: kept. Its first
    visit, and a return after the window, are not; the hosts remembered are those of one window."""
    returning = Returning(1.0)
    assert not returning.came_back("a", 100.0)  # first seen
    assert returning.came_back("a", 100.5)
    assert not returning.came_back("b", 100.6)
    assert not returning.came_back("a", 101.6)  # 1.1 s after its last start
    assert not returning.came_back("c", 102.7)  # a and b expire from the front
    assert len(returning) == 1
    hosts = Hosts(4, recent=60.0)
    assert not hosts.keep_connection("a")
    assert hosts.keep_connection("a")


@given(
    window=st.floats(min_value=0.0, max_value=10.0),
    visits=st.lists(st.tuples(st.text(max_size=8), st.floats(min_value=0.0, max_value=3.0)), max_size=60),
)
def test_returning_matches_its_definition_and_forgets_the_old(
    window: float, visits: list[tuple[str, float]]
) -> None:
    """Any names at any pace: ``came_back`` is true exactly when the name's previous start is within the
    window, and what is remembered is never older than the window (nothing outlives it)."""
    returning = Returning(window)
    last: dict[str, float] = {}
    now = 0.0
    for name, step in visits:
        now += step
        expected = window > 0 and name in last and last[name] > now - window
        assert returning.came_back(name, now) == expected
        last[name] = now
        assert len(returning) == sum(at > now - window for at in last.values())
