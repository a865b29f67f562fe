"""Where a shard's rows begin: a window that seeks to the plan's mark (text lists) or skips row groups
(Parquet) reads the same rows as one that counts its way there, in every format, gzip'd or not; a plan
without marks (an older OUT's) is still read by counting."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from downloader.dataset.shardfiles import plan_start, read_plan, write_plan
from downloader.inputs import Window, jobs_from_source, rows_and_marks
from downloader.marks import Mark

ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r"])
TEXT_ROWS = st.sampled_from(
    [
        b"http://a.test/x",
        b"",
        b"# a comment",
        b"  ",
        b"http://b.test/\xff",
        b"not a url",
        b"http://c.test/y #c",
    ]
)
JSON_ROWS = st.sampled_from(
    [b'{"url": "http://a.test/x"}', b"", b"not json", b"[1]", b'{"url": "http://b.test/\xc3\xa9"}', b"  "]
)
CSV_ROWS = st.sampled_from(
    [
        b"http://a.test/x,plain",
        b'http://a.test/y,"two\nlines"',
        b'http://a.test/z,"three\r\nlines\rhere"',
        b",",
        b"",
        b"only-one-field",
        b'"http://a.test/q","a ""quoted"" word"',
    ]
)


def lines_of(rows: list[bytes], endings: list[bytes]) -> bytes:
    return b"".join(r + endings[i % len(endings)] for i, r in enumerate(rows))


def rows_per_window(source: str, size: int, *, seek: bool) -> list[list[tuple[int, str, str | None]]]:
    """Each window's rows as (line, url, error), found by the plan's marks or by counting."""
    total, marks = rows_and_marks(source, size)
    assert marks is not None or not seek or source.endswith((".parquet", ".parquet.gz"))
    found = []
    for k in range(-(-total // size)):
        at = marks[k - 1] if seek and marks is not None and k else None
        window = Window(k * size, (k + 1) * size, at)
        found.append([(j.line, j.url, j.error) for j in jobs_from_source(source, window=window)])
    assert sum(map(len, found)) == total
    return found


def same_either_way(path: Path, data: bytes, size: int, gz: bool) -> None:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    source = str(path)
    whole = [(j.line, j.url, j.error) for j in jobs_from_source(source)]
    by_marks = rows_per_window(source, size, seek=True)
    assert by_marks == rows_per_window(source, size, seek=False)
    assert [r for w in by_marks for r in w] == whole


SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    rows=st.lists(TEXT_ROWS, max_size=40),
    endings=st.lists(ENDINGS, min_size=1, max_size=3),
    size=st.integers(1, 7),
    gz=st.booleans(),
    bom=st.booleans(),
)
def test_text_lists_give_each_shard_the_same_rows_by_mark(
    tmp_path: Path, *, rows: list[bytes], endings: list[bytes], size: int, gz: bool, bom: bool
) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + lines_of(rows, endings)
    same_either_way(tmp_path / "list.txt", data, size, gz)


@SETTINGS
@given(
    rows=st.lists(JSON_ROWS, max_size=40),
    endings=st.lists(ENDINGS, min_size=1, max_size=3),
    size=st.integers(1, 7),
    gz=st.booleans(),
)
def test_jsonl_lists_give_each_shard_the_same_rows_by_mark(
    tmp_path: Path, *, rows: list[bytes], endings: list[bytes], size: int, gz: bool
) -> None:
    same_either_way(tmp_path / "list.jsonl", lines_of(rows, endings), size, gz)


@SETTINGS
@given(
    rows=st.lists(CSV_ROWS, max_size=40),
    endings=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=1, max_size=2),
    size=st.integers(1, 7),
    gz=st.booleans(),
    tsv=st.booleans(),
)
def test_csv_and_tsv_lists_with_quoted_newlines_give_each_shard_the_same_rows_by_mark(
    tmp_path: Path, *, rows: list[bytes], endings: list[bytes], size: int, gz: bool, tsv: bool
) -> None:
    data = lines_of([b"url,caption", *rows], endings)
    name = "list.tsv" if tsv else "list.csv"
    same_either_way(tmp_path / name, data.replace(b",", b"\t") if tsv else data, size, gz)


@SETTINGS
@given(rows=st.integers(0, 60), group=st.integers(1, 9), size=st.integers(1, 13))
def test_parquet_shards_skip_whole_row_groups_and_read_the_same_rows(
    tmp_path: Path, rows: int, group: int, size: int
) -> None:
    path = tmp_path / "list.parquet"
    urls = [f"http://a.test/{n}" if n % 5 else "bad" for n in range(rows)]
    pq.write_table(pa.table({"url": urls}), path, row_group_size=group)
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-rows // group) or rows == 0
    by_groups = rows_per_window(str(path), size, seek=True)
    assert [r for w in by_groups for r in w] == [
        (j.line, j.url, j.error) for j in jobs_from_source(str(path))
    ]


def test_a_mark_inside_a_csv_record_is_never_taken(tmp_path: Path) -> None:
    """Shard 1 of a CSV whose first record spans three lines starts after all three."""
    path = tmp_path / "list.csv"
    path.write_bytes(b'url,caption\r\nhttp://a.test/1,"a\r\nb\nc"\r\nhttp://a.test/2,d\r\n')
    total, marks = rows_and_marks(str(path), 1)
    assert total == 2 and marks is not None
    assert marks[0] == Mark(len(b'url,caption\r\nhttp://a.test/1,"a\r\nb\nc"\r\n'), 4)
    [job] = jobs_from_source(str(path), window=Window(1, 2, marks[0]))
    assert (job.line, job.url) == (5, "http://a.test/2")


def test_the_plan_records_each_shards_start_and_an_older_plan_counts(tmp_path: Path) -> None:
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"http://a.test/{n}\n" for n in range(10)))
    out = tmp_path / "out"
    rows, marks = rows_and_marks(str(lst), 4)
    assert write_plan(out, str(lst), rows, 4, marks) == 3
    plan = read_plan(out)
    assert plan is not None and plan["starts"] == [None, [4 * 16, 4], [8 * 16, 8]]
    assert plan_start(out, 2, str(lst), 4) == (128, 8)
    assert plan_start(out, 2, str(lst), 5) is None  # a plan for another shard size says nothing
    assert plan_start(out, 2, str(tmp_path / "other.txt"), 4) is None
    older = {k: v for k, v in plan.items() if k != "starts"}  # what an earlier version wrote
    (out / "_shards" / "plan.json").write_text(json.dumps(older) + "\n")
    assert plan_start(out, 2, str(lst), 4) is None
    [job, *_] = jobs_from_source(str(lst), window=Window(8, 12, None))
    assert (job.line, job.url) == (9, "http://a.test/8")


def test_a_list_changed_since_its_plan_is_counted_not_read_from_a_stale_mark(tmp_path: Path) -> None:
    for name, head in (("list.txt", ""), ("list.csv", "url\n")):
        path = tmp_path / name
        path.write_text(head + "".join(f"http://a.test/{n}\n" for n in range(6)))
        _total, marks = rows_and_marks(str(path), 3)
        assert marks is not None and marks[0] is not None
        path.write_text(head + "".join(f"http://a.test/{n * 10}\n" for n in range(6)))  # longer lines
        [job, *_] = jobs_from_source(str(path), window=Window(3, 6, marks[0]))
        assert (job.line, job.url) == (4 + len(head) // 4, "http://a.test/30")
