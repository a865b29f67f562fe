"""The digest sets behind duplicate and resume checks: tombstones, growth, and the move to SQLite.

A wrong answer here is silent: a URL counted as done is never downloaded, one counted as new is fetched
twice. So the awkward corners are pinned: a digest in slot 0, discards before a growth or a spill, and
an index that lives in SQLite long enough to commit.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from downloader.keys import SPILL_AT, DigestIndex, DigestSet, PathClaims, digest64


def digests(n: int, tag: str = "") -> list[int]:
    return [digest64(f"http://h/{tag}{i}") for i in range(n)]


def test_digests_are_never_the_slot_markers() -> None:
    """0 and 1 mark empty and deleted slots, so no URL may hash to them."""
    assert all(d > 1 for d in digests(2000))


def test_a_digest_in_slot_zero_can_be_discarded() -> None:
    """Slot 0 is a slot like any other: ``discard`` must not take index 0 for "not found"."""
    s = DigestSet(capacity=4)  # 16 slots: digests that are multiples of 16 start at slot 0
    assert s.add(16) and s.add(32)  # 32 collides and lands in slot 1
    assert not s.add(16) and len(s) == 2  # found in slot 0: not added twice
    s.discard(16)
    assert 16 not in s and 32 in s and len(s) == 1  # the probe still walks past the tombstone
    assert list(s) == [32]
    assert s.add(16) and 16 in s and len(s) == 2


def test_discarding_what_is_absent_changes_nothing() -> None:
    s = DigestSet()
    s.add(5)
    s.discard(7)
    assert len(s) == 1 and list(s) == [5]


def test_tombstones_are_dropped_by_growth_and_never_listed() -> None:
    """A discarded slot holds a marker; iterating or rehashing must treat it as empty, not as a digest."""
    s = DigestSet(capacity=4)
    first = digests(6, "a")
    for d in first:
        s.add(d)
    for d in first[:4]:
        s.discard(d)
    assert sorted(s) == sorted(first[4:])
    more = digests(200, "b")
    assert all(s.add(d) for d in more)  # several growths, the first with tombstones in the table
    assert len(s) == 202 and sorted(s) == sorted(first[4:] + more)
    assert not any(d in s for d in first[:4])


def test_discards_before_the_move_to_sqlite_stay_discarded(tmp_path: Path) -> None:
    index = DigestIndex(tmp_path, spill_at=50)
    kept, dropped = digests(30, "k"), digests(10, "d")
    for d in kept + dropped:
        index.add(d)
    for d in dropped:
        index.discard(d)
    late = digests(40, "l")
    for d in late:
        index.add(d)
    assert index.spilled and len(index) == 70
    assert all(d in index for d in kept + late) and not any(d in index for d in dropped)
    assert 1 not in index  # the tombstone marker did not move along
    index.discard(dropped[0])  # absent: nothing to delete
    assert len(index) == 70
    index.close()


def test_the_sqlite_index_commits_every_few_thousand_writes(tmp_path: Path) -> None:
    """Once in SQLite, writes are grouped into transactions of 4096, so a long list does not hold one
    ever-growing transaction; another connection sees what was committed."""
    index = DigestIndex(tmp_path, spill_at=16)
    values = digests(16 + 4096 + 100, "s")
    for d in values:
        index.add(d)
    assert index.spilled and len(index) == len(values)
    (db,) = tmp_path.glob(".downloader-index-*.sqlite")
    reader = sqlite3.connect(db)
    try:
        (committed,) = reader.execute("SELECT count(*) FROM d").fetchone()
    finally:
        reader.close()
    assert 16 < committed < len(values)  # the spill and a batch of writes after it, not the last ones
    for d in values[:4096]:  # discards tick too, and keep working across a commit
        index.discard(d)
    assert len(index) == len(values) - 4096 and values[-1] in index and values[0] not in index
    index.close()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("spill_at", [None, 0])
def test_the_default_spill_size(tmp_path: Path, spill_at: int | None) -> None:
    """Below ``SPILL_AT`` digests the index stays in memory; at it, it moves to disk."""
    index = DigestIndex(tmp_path, spill_at=spill_at)
    values = digests(SPILL_AT, "z")
    for d in values[:-1]:
        index.add(d)
    assert not index.spilled
    index.add(values[-1])
    assert index.spilled and len(index) == SPILL_AT
    index.close()


# -- what the mutation run asked for (docs/mutation.md) --------------------------------------------------


@pytest.mark.parametrize("spilled", [False, True])
def test_the_whole_unsigned_range_and_only_integers_are_members(tmp_path: Path, spilled: bool) -> None:
    """SQLite stores signed 64-bit integers: 2**63 is the first digest that must be folded."""
    index = DigestIndex(tmp_path, spill_at=6)
    edges = [2, 2**63 - 1, 2**63, 2**64 - 1]
    for d in edges + (digests(4) if spilled else []):
        index.add(d)
    assert index.spilled is spilled
    assert all(d in index for d in edges) and len(index) == len(edges) + 4 * spilled
    assert "x" not in index and 2**63 + 1 not in index
    index.close()


def test_close_is_idempotent_and_tolerates_a_removed_file(tmp_path: Path) -> None:
    """The engine closes its indexes in ``finally`` blocks; a user may have cleaned the folder first."""
    index = DigestIndex(tmp_path, spill_at=4)
    for d in digests(8):
        index.add(d)
    (db,) = tmp_path.glob(".downloader-index-*.sqlite")
    db.unlink()
    index.close()
    index.close()
    assert not list(tmp_path.iterdir())


def test_digests_are_stable_across_versions_and_take_any_string() -> None:
    """File names and resume depend on the digest: it is blake2b-64 of the UTF-8 key, nothing else, and a
    key holding a lone surrogate (undecodable input bytes) still has one."""
    key = "http://example.com/a.jpg"
    assert digest64(key) == int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest())
    odd = digest64("http://h/\udcff.jpg")
    assert odd > 1 and odd != digest64("http://h/\ufffd.jpg")


# -- path claims: which URL holds a name two URLs may share ------------------------------------------------


def test_a_path_is_held_by_the_first_url_that_claims_it() -> None:
    claims = PathClaims()
    a, b = digest64("http://h/a/x.jpg"), digest64("http://h/b/x.jpg")
    assert claims.claim("x.jpg", a) and claims.claim("x.jpg", a)  # a rerun, a duplicate: still a's
    assert not claims.claim("x.jpg", b) and not claims.claim("X.JPG", b)  # one file where case is ignored
    assert claims.claim("X.JPG", a)
    assert claims.claim("straße.jpg", a) and claims.claim("STRASSE.jpg", b)  # two names, not case twins
    claims.close()


def test_urls_whose_digests_differ_in_one_bit_hold_a_path_apart() -> None:
    """A (path, URL) pair is kept as one 64-bit value: URLs whose mixed digests differ only in the lowest
    bit must still be told apart."""
    mix, full = PathClaims._MIX, (1 << 64) - 1
    path = next(p for p in (f"{i}.jpg" for i in range(100)) if digest64(p) % 2 == 0)
    first = digest64("http://h/a.jpg")
    second = (((first * mix) & full) ^ 1) * pow(mix, -1, 1 << 64) & full
    assert second != first and ((second * mix) & full) ^ ((first * mix) & full) == 1
    claims = PathClaims()
    assert claims.claim(path, first)
    assert not claims.claim(path, second)
    claims.close()
