"""Where a shard's rows begin in a text list: the byte offset of a line and the lines before it, taken
during the plan's one counting pass, so a shard seeks to its rows instead of reading every row before
them (which costs more the later the shard: the whole plan's cost grows with the square of the list).

A mark is taken between two lines, never inside one, and only where a row has just ended: the rows
after it are then read exactly as from the start. ``Tracked`` is the counting pass's text stream: it
gives the lines ``io.TextIOWrapper`` would give (universal newlines, UTF-8 with stray bytes replaced, a
BOM dropped), and knows the byte offset and number of the next line. ``open_at`` reopens a list at a
mark. A gzip'd list cannot seek: its marks are offsets in the decompressed stream, so reaching one still
decompresses what comes before it (no parsing: see docs/performance.md for what that costs).
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
from collections import deque
from typing import IO, NamedTuple

Raw = io.BufferedReader | gzip.GzipFile

_PIECE = 1 << 24
"""Bytes read at once from one line: a runaway line comes in pieces, so memory stays bounded."""
_SEGMENT = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
"""A line and its ending: ``\\r\\n``, a lone ``\\r`` or ``\\n`` each end one, as universal newlines do."""
_BOM = "\ufeff"


class Mark(NamedTuple):
    """Where rows resume: the byte offset of a line, and how many lines (physical) come before it."""

    byte: int
    lines: int


class Tracked:
    """A binary list read as text lines, the byte offset of each line known. ``translate`` turns every
    line ending into ``\\n`` (``newline=None``); without it endings are kept (``newline=""``)."""

    def __init__(self, raw: Raw, *, translate: bool) -> None:
        self._raw, self._translate = raw, translate
        self._decode = codecs.getincrementaldecoder("utf-8")("replace").decode
        self._queue: deque[tuple[str, int, bool]] = deque()  # text, its end's offset, ends a line
        self._rest = ""  # what is left of the line being handed out
        self._end, self._whole = 0, True  # that line's end's offset, and whether it ends there
        self._byte = 0  # the offset the queue ends at
        self.mid = False  # inside a line: no mark here
        self.next_byte = 0
        self.lines = 0

    def mark(self) -> Mark | None:
        """Where the next line begins; None inside a line (the rows after it are then found by counting)."""
        return None if self.mid or self._rest else Mark(self.next_byte, self.lines)

    def readline(self, limit: int = -1) -> str:
        """The next line (or its next ``limit`` characters), as ``TextIOWrapper.readline`` gives it."""
        if not self._rest:
            if not self._queue and not self._fill():
                return ""
            text, end, whole = self._queue.popleft()
            self.lines += not self.mid
            self._rest, self._end, self._whole = text, end, whole
        text = self._rest if limit < 0 else self._rest[:limit]
        self._rest = self._rest[len(text) :]
        if not self._rest:
            self.mid, self.next_byte = not self._whole, self._end
        else:
            self.mid = True
        return text

    def _fill(self) -> bool:
        """Queue the segments of the next piece of the list; False at its end."""
        chunk = self._raw.readline(_PIECE)
        if chunk.endswith(b"\r") and self._raw.peek(1)[:1] == b"\n":
            chunk += self._raw.read(1)  # a ``\r\n`` a piece's end would split
        if not chunk:
            return False
        start = self._byte
        for found in _SEGMENT.finditer(chunk):
            seg = found.group()
            text = self._decode(seg)
            if start == 0 and text.startswith(_BOM):
                text = text[1:]
            whole = seg.endswith((b"\n", b"\r"))
            if whole and self._translate:
                text = text.rstrip("\r\n") + "\n"
            start += len(seg)
            self._queue.append((text, start, whole))
        self._byte = start
        return True


def open_raw(source: str) -> Raw:
    """A list's bytes, decompressed when its name ends in ``.gz``."""
    if source.lower().endswith(".gz"):
        return gzip.open(source, "rb")
    return open(source, "rb")


def open_at(source: str, at: Mark, newline: str | None) -> IO[str]:
    """The list as text from ``at`` on (for a gzip'd list the bytes before it are decompressed and
    dropped); a BOM is only ever at the start, so from a mark none is looked for."""
    raw = open_raw(source)
    raw.seek(at.byte)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=newline)
