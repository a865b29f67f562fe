"""Where a shard's rows begin in a text list: the byte offset of a line and the lines before it, taken
during the plan's one counting pass, so a shard seeks to its rows instead of reading every row before
them (which costs more the later the shard: the whole plan's cost grows with the square of the list).

A mark is taken between two lines, never inside one, and only where a row has just ended: the rows
after it are then read exactly as from the start. The counting pass reads the list as every reader does
(a text stream), and asks the stream where it is only at a mark (``tell`` re-decodes a few kilobytes:
too dear for every row, nothing every shard); the lines before come from the reader's own count.
``open_at`` reopens a list at a mark. A gzip'd list cannot seek: its marks are offsets in the
decompressed stream, so reaching one still decompresses what comes before it, but parses none of it (see
docs/performance.md for what that costs).
"""

from __future__ import annotations

import gzip
import io
from typing import IO, NamedTuple

Raw = io.BufferedReader | gzip.GzipFile


class Mark(NamedTuple):
    """Where rows resume: the byte offset of a line, and how many lines (physical) come before it."""

    byte: int
    lines: int


def mark_at(stream: IO[str], lines: int) -> Mark | None:
    """The mark for where ``stream`` (a text stream of a list in a file) is now, after ``lines`` lines;
    None when its position is not a plain byte offset (a decoder holding a ``\\r`` it has not yet
    decided is a line's end): the shard after it is then found by counting."""
    try:
        cookie = stream.tell()  # after a whole line, the offset of the next byte; flags above bit 64
    except OSError:  # a position the stream cannot reconstruct
        return None
    return Mark(cookie, lines) if 0 <= cookie < 1 << 64 else None


def open_raw(source: str) -> Raw:
    """A list's bytes, decompressed when its name ends in ``.gz``."""
    if source.lower().endswith(".gz"):
        return gzip.open(source, "rb")
    return open(source, "rb")


def open_at(source: str, at: Mark, newline: str | None) -> IO[str] | None:
    """The list as text from ``at`` on (for a gzip'd list the bytes before it are decompressed and
    dropped); a BOM is only ever at the start, so from a mark none is looked for. None when the byte
    before the mark ends no line: the list changed since the plan, and its rows must be counted."""
    raw = open_raw(source)
    try:
        raw.seek(max(at.byte - 1, 0))
        if at.byte and raw.read(1) not in {b"\n", b"\r"}:
            raw.close()
            return None
    except BaseException:
        raw.close()
        raise
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=newline)
