"""The manifest's pure parts: rows as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

from downloader.manifest import encode_row, read_manifest


def test_rows_are_compact_utf8_json() -> None:
    row = {"url": "http://example.com/ü.jpg", "line": 3, "bytes": 10, "elapsed_s": 0.25, "error": None}
    line = encode_row(row)
    assert b"\n" not in line and b" " not in line
    assert "ü".encode() in line
    assert json.loads(line) == row


def test_what_orjson_refuses_is_still_written_as_json() -> None:
    """A carried column may hold an integer beyond 64 bits or a lone surrogate."""
    row = {"url": "http://example.com/a.jpg", "id": 2**70, "note": "bad \udc80 text"}
    line = encode_row(row)
    assert line.isascii()
    assert json.loads(line) == row


def test_rows_orjson_refuses_are_read_back_through_json(tmp_path: Path) -> None:
    """What the writer fell back to json for reads back; invalid UTF-8 is replaced, a torn line skipped."""
    odd = {"url": "http://example.com/a.jpg", "id": 2**70, "note": "bad \udc80 text"}
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(
        encode_row(odd) + b"\n" + b'{"url":"http://example.com/\xff.jpg"}\n' + b"[1]\n" + b'{"url":"http://ex'
    )
    rows = list(read_manifest(path))
    assert rows == [odd, {"url": "http://example.com/\ufffd.jpg"}]
