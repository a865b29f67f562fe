"""Compact sets of URL identities: 8-byte digests in one ``array``, never a set of URL strings.

A Python set of a million URL strings costs well over 100 MB; this costs 16 MB at most per million
(open addressing, load factor at most one half).
"""

from __future__ import annotations

import hashlib
from array import array

_EMPTY, _GONE = 0, 1


def digest64(key: str) -> int:
    """A 64-bit digest of a normalised URL (blake2b); 0 and 1 are reserved as slot markers."""
    value = int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest())
    return value if value > _GONE else value + 2


class DigestSet:
    """A set of 64-bit digests with add, discard and membership, in ``array('Q')``."""

    def __init__(self, capacity: int = 1024) -> None:
        size = 1 << max(4, (capacity * 2 - 1).bit_length())
        self._slots = array("Q", bytes(8 * size))
        self._mask = size - 1
        self._used = 0  # live entries plus tombstones
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def _find(self, digest: int) -> int:
        """The slot holding ``digest``, or -1."""
        slots, i = self._slots, digest & self._mask
        while True:
            v = slots[i]
            if v == digest:
                return i
            if v == _EMPTY:
                return -1
            i = (i + 1) & self._mask

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, int) and self._find(digest) >= 0

    def add(self, digest: int) -> bool:
        """Add ``digest``; True when it was not there before."""
        if self._find(digest) >= 0:
            return False
        if (self._used + 1) * 2 > len(self._slots):
            self._grow()
        slots, i = self._slots, digest & self._mask
        while slots[i] not in (_EMPTY, _GONE):
            i = (i + 1) & self._mask
        if slots[i] == _EMPTY:
            self._used += 1
        slots[i] = digest
        self._live += 1
        return True

    def discard(self, digest: int) -> None:
        i = self._find(digest)
        if i >= 0:
            self._slots[i] = _GONE
            self._live -= 1

    def _grow(self) -> None:
        old = self._slots
        size = len(old) * (2 if self._live * 4 > len(old) else 1)
        self._slots = array("Q", bytes(8 * size))
        self._mask = size - 1
        self._used = self._live = 0
        for v in old:
            if v > _GONE:
                self.add(v)
