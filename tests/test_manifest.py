"""The manifest's own parts: rows, their encoding, the writer and stats.json."""

from __future__ import annotations

import json
from pathlib import Path

from downloader.manifest import ManifestWriter, encode_row, read_manifest, row_of, write_stats
from downloader.models import Result, Stats, Status


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
    assert line.isascii() and b", " not in line and b": " not in line  # compact, as orjson writes it
    assert json.loads(line) == row


# -- what the mutation run asked for (docs/mutation.md) --------------------------------------------------


def test_a_row_holds_every_field_rounded_and_carried_columns_last() -> None:
    result = Result(
        "http://h/a.jpg",
        7,
        Status.OK,
        path="a.jpg",
        kind=None,
        http_status=200,
        bytes=10,
        sha256="ab",
        content_type="image/jpeg",
        attempts=2,
        elapsed_s=1.23456789,
        ttfb_s=0.00000049,
        meta={"width": 4, "url": "not this"},
        extra={"id": "cat", "width": "not this", "status": "nor this"},
    )
    row = row_of(result)
    assert row == {
        "url": "http://h/a.jpg",
        "line": 7,
        "path": "a.jpg",
        "status": "ok",
        "kind": None,
        "http_status": 200,
        "bytes": 10,
        "sha256": "ab",
        "content_type": "image/jpeg",
        "attempts": 2,
        "elapsed_s": 1.234568,
        "ttfb_s": 0.0,
        "error": None,
        "t": None,
        "width": 4,
        "id": "cat",
    }
    assert list(row)[-2:] == ["width", "id"]
    assert row_of(Result("u", 1, Status.FAILED, ttfb_s=0.1234567))["ttfb_s"] == 0.123457
    assert row_of(Result("u", 1, Status.FAILED))["ttfb_s"] is None


def test_the_writer_ends_a_torn_last_line_and_nothing_else(tmp_path: Path) -> None:
    for before, after in [(b"", b""), (b'{"a":1}\n', b'{"a":1}\n'), (b'{"a":1}', b'{"a":1}\n')]:
        path = tmp_path / "manifest.jsonl"
        path.write_bytes(before)
        ManifestWriter(path).close()
        assert path.read_bytes() == after


def test_the_writer_writes_every_256_rows(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter(path)
    for i in range(ManifestWriter.FLUSH_ROWS - 1):
        writer.write(Result(f"http://h/{i}", i, Status.OK))
    assert path.read_bytes() == b""  # within a second: still buffered
    writer.write(Result("http://h/last", 0, Status.OK))
    assert path.read_bytes().count(b"\n") == ManifestWriter.FLUSH_ROWS
    writer.write(Result("http://h/next", 0, Status.OK))  # the clock restarted at the flush
    writer.close()
    assert path.read_bytes().count(b"\n") == ManifestWriter.FLUSH_ROWS + 1 and writer.error is None


def test_a_full_disk_is_kept_as_the_writers_error_not_raised() -> None:
    writer = ManifestWriter(Path("/dev/full"))
    writer.write(Result("http://h/a.jpg", 1, Status.OK))
    writer.flush()
    assert writer.error == "cannot write full: No space left on device"
    writer.write(Result("http://h/b.jpg", 2, Status.OK))
    writer.close()
    assert writer.error == "cannot write full: No space left on device"  # the first error is kept


def test_stats_are_indented_json_with_a_final_newline(tmp_path: Path) -> None:
    stats = Stats(ok=2, failed=1)
    write_stats(tmp_path / "stats.json", stats)
    text = (tmp_path / "stats.json").read_text(encoding="utf-8")
    assert text == json.dumps(stats.as_dict(), indent=2) + "\n"
    assert json.loads(text)["ok"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_rows_orjson_refuses_are_read_back_through_json(tmp_path: Path) -> None:
    """What the writer fell back to json for reads back; invalid UTF-8 is replaced, a torn line skipped."""
    odd = {"url": "http://example.com/a.jpg", "id": 2**70, "note": "bad \udc80 text"}
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(
        encode_row(odd) + b"\n" + b'{"url":"http://example.com/\xff.jpg"}\n' + b"[1]\n" + b'{"url":"http://ex'
    )
    rows = list(read_manifest(path))
    assert rows == [odd, {"url": "http://example.com/\ufffd.jpg"}]
