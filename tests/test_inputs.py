"""Streaming URL lists in every format: real files in tmp_path, read through ``jobs_from_source``."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import os
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from downloader.inputs import (
    FORMATS,
    MAX_LINE,
    count_rows,
    detect_format,
    jobs_from_rows,
    jobs_from_source,
)
from downloader.models import Job, Naming

URLS = ["http://h/a.jpg", "http://h/b.png", "https://h/c.gif"]

TEXT = {
    "txt": "# a comment\nhttp://h/a.jpg\n\nhttp://h/b.png\nhttps://h/c.gif\n",
    "csv": "url,id\nhttp://h/a.jpg,1\nhttp://h/b.png,2\nhttps://h/c.gif,3\n",
    "tsv": "id\turl\n1\thttp://h/a.jpg\n2\thttp://h/b.png\n3\thttps://h/c.gif\n",
    "jsonl": "".join(json.dumps({"url": u, "id": i}) + "\n" for i, u in enumerate(URLS, 1)),
}
LINES = {"txt": [2, 4, 5], "csv": [2, 3, 4], "tsv": [2, 3, 4], "jsonl": [1, 2, 3]}


def write(path: Path, text: str | bytes) -> str:
    """Write ``text`` to ``path``, gzip'd when the name ends in ``.gz``; the path as a string."""
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return str(path)


def jobs(source: str, naming: Naming | None = None, **options: Any) -> list[Job]:
    return list(jobs_from_source(source, naming or Naming(), **options))


def invalid(found: list[Job]) -> dict[int, str]:
    """Line number to error sentence, for the jobs that carry an ``invalid_input`` error."""
    return {j.line: j.error or "" for j in found if j.error_kind == "invalid_input"}


def open_fds_on(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux: /proc)."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc/self/fd")
    count = 0
    for fd in fd_dir.iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:
            continue
    return count


# -- formats ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("urls.txt", "txt"),
        ("urls", "txt"),
        ("urls.list", "txt"),
        ("-", "txt"),
        ("urls.csv", "csv"),
        ("URLS.CSV.GZ", "csv"),
        ("urls.tsv.gz", "tsv"),
        ("urls.jsonl", "jsonl"),
        ("urls.ndjson.gz", "jsonl"),
        ("urls.parquet", "parquet"),
        ("urls.txt.gz", "txt"),
        ("dir.csv/urls", "txt"),
    ],
)
def test_format_comes_from_the_name(name: str, fmt: str) -> None:
    assert detect_format(name) == fmt


def test_a_forced_format_wins_and_an_unknown_one_says_what_exists() -> None:
    assert detect_format("urls.txt", "csv") == "csv"
    assert detect_format("-", "jsonl") == "jsonl"
    with pytest.raises(ValueError, match="unknown input format 'xml'; choose one of: txt, csv"):
        detect_format("urls.xml", "xml")
    assert set(FORMATS) == {"txt", "csv", "tsv", "jsonl", "parquet"}


@pytest.mark.parametrize("gz", ["", ".gz"])
@pytest.mark.parametrize("fmt", ["txt", "csv", "tsv", "jsonl"])
def test_each_text_format_plain_and_gzipped(tmp_path: Path, fmt: str, gz: str) -> None:
    source = write(tmp_path / f"urls.{fmt}{gz}", TEXT[fmt])
    found = jobs(source)
    assert [j.url for j in found] == URLS
    assert [j.line for j in found] == LINES[fmt]
    assert all(j.error is None and j.key and j.path and j.extra is None for j in found)


def test_forced_format_reads_a_file_whatever_its_name(tmp_path: Path) -> None:
    source = write(tmp_path / "export.dat.gz", TEXT["jsonl"])
    assert [j.url for j in jobs(source, input_format="jsonl")] == URLS
    as_text = jobs(write(tmp_path / "urls.csv", TEXT["csv"]), input_format="txt")
    assert [j.url for j in as_text] == ["url,id", "http://h/a.jpg,1", "http://h/b.png,2", "https://h/c.gif,3"]
    assert as_text[0].error_kind == "invalid_url"


def test_jobs_are_named_as_the_plain_list_names_them(tmp_path: Path) -> None:
    naming = Naming("plain", "host")
    from_csv = jobs(write(tmp_path / "urls.csv", TEXT["csv"]), naming)
    from_txt = jobs(write(tmp_path / "urls.txt", TEXT["txt"]), naming)
    assert [j.path for j in from_csv] == [j.path for j in from_txt] == ["h/a.jpg", "h/b.png", "h/c.gif"]


# -- carried columns and names ------------------------------------------------------------------------------


def test_csv_keeps_columns_and_names_files(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.csv", "id,url,caption\n7,http://h/a.jpg,a cat\n8,http://h/b.jpg,\n")
    (a, b) = jobs(source, keep_columns=("caption",), name_column="id")
    # the name column is carried too, so that --retry-failed can name a retried file the same way
    assert a.extra == {"caption": "a cat", "id": "7"} and b.extra == {"caption": "", "id": "8"}
    assert a.path.startswith("7.") and a.path.endswith(".jpg") and not a.url_named
    (a, _) = jobs(source, keep_columns=("*",))
    assert a.extra == {"id": "7", "caption": "a cat"}


def test_a_library_row_is_read_as_a_csv_row_is(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.csv", "id,url,caption\n7,http://h/a.jpg,a cat\n,http://h/b.jpg,\n")
    rows = [
        {"id": "7", "url": "http://h/a.jpg", "caption": "a cat"},
        {"id": "", "url": "http://h/b.jpg", "caption": ""},
    ]
    for options in ({"keep_columns": ("caption",), "name_column": "id"}, {"keep_columns": ("*",)}):
        from_csv, from_rows = jobs(source, **options), list(jobs_from_rows(rows, Naming(), **options))
        assert [(j.line - 1, j.path, j.extra) for j in from_csv] == [
            (j.line, j.path, j.extra) for j in from_rows
        ]
    (bad,) = jobs_from_rows([{"caption": "x"}], keep_columns=("*",))
    assert bad.error_kind == "invalid_input" and bad.extra == {"caption": "x"}


def test_header_names_are_trimmed_and_a_bom_dropped(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.csv", "\ufeff url , id\r\nhttp://h/a.jpg,1\r\n")
    (job,) = jobs(source, keep_columns=("id",))
    assert job.url == "http://h/a.jpg" and job.extra == {"id": "1"}
    (job,) = jobs(write(tmp_path / "late.tsv", "\n\t\nurl\tid\nhttp://h/a.jpg\t1\n\n"))
    assert job.line == 4  # blank lines before the header are passed over, not taken for it


def test_jsonl_keeps_columns_as_json_and_names_from_any_scalar(tmp_path: Path) -> None:
    rows = [
        {"url": "http://h/a.jpg", "id": 42, "tags": ["x"], "meta": {"w": 3}},
        {"url": "http://h/b.jpg", "id": None},
        {"url": "http://h/c.jpg"},
    ]
    source = write(tmp_path / "urls.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    a, b, c = jobs(source, keep_columns=("*",), name_column="id")
    assert a.extra == {"id": 42, "tags": ["x"], "meta": {"w": 3}} and a.path.startswith("42.")
    assert b.extra == {"id": None} and b.path.startswith("b.")  # no name: the URL's
    assert c.extra is None and c.path.startswith("c.")
    (a, b, c) = jobs(source, keep_columns=("tags",))
    assert a.extra == {"tags": ["x"]} and b.extra == c.extra == {"tags": None}


def test_a_name_column_value_cannot_escape_the_folder(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.csv", "url,name\nhttp://h/a.jpg,../../etc/passwd\n")
    (job,) = jobs(source, name_column="name")
    assert "/" not in job.path and not job.path.startswith(".") and job.path.endswith(".jpg")


def test_plain_text_has_no_columns_to_keep(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.txt", TEXT["txt"])
    with pytest.raises(ValueError, match="need a csv"):
        jobs(source, keep_columns=("id",))
    with pytest.raises(ValueError, match="need a csv"):
        jobs(source, name_column="id")


# -- malformed rows become invalid_input jobs; a missing column is a usage error ---------------------------


def test_malformed_csv_rows_are_reported_on_their_physical_line(tmp_path: Path) -> None:
    text = (
        "url,caption\n"  # 1
        'http://h/1.jpg,"two\nlines"\n'  # 2-3
        "http://h/2.jpg\n"  # 4: too few fields
        "\n"  # 5: blank, skipped
        "http://h/x.jpg,a,b\n"  # 6: too many fields
        ", \n"  # 7: only blank fields, skipped
        " ,caption\n"  # 8: empty URL
        "http://h/3.jpg,ok\n"  # 9
    )
    found = jobs(write(tmp_path / "urls.csv", text), keep_columns=("caption",))
    assert [j.line for j in found] == [2, 4, 6, 8, 9]
    assert found[0].extra == {"caption": "two\nlines"} and found[-1].error is None
    assert invalid(found) == {
        4: "line 4 has 1 field but the header has 2",
        6: "line 6 has 3 fields but the header has 2",
        8: "line 8 has an empty 'url'",
    }
    assert (
        found[1].url == "http://h/2.jpg"
        and found[2].extra is None
        and found[3].extra == {"caption": "caption"}
    )


def test_a_runaway_csv_field_is_one_invalid_row(tmp_path: Path) -> None:
    endless = 'http://h/x.jpg,"' + ("a" * 1000 + "\n") * (MAX_LINE // 1000 + 50)
    found = jobs(write(tmp_path / "urls.csv", "url,c\nhttp://h/1.jpg,ok\n" + endless))
    assert found[0].error is None
    assert found[1].line == 3 and found[1].error_kind == "invalid_input"
    assert "line 3 is not valid CSV: field larger than field limit" in (found[1].error or "")
    with pytest.raises(ValueError, match="the header is not valid CSV: field larger"):
        jobs(write(tmp_path / "header.csv", endless))


def test_overlong_lines_are_invalid_and_reading_goes_on(tmp_path: Path) -> None:
    huge = "x" * (2 * MAX_LINE)
    found = jobs(write(tmp_path / "urls.csv", f"url,c\nhttp://h/1.jpg,{huge}\nhttp://h/2.jpg,ok\n"))
    assert invalid(found) == {2: f"line 2 is longer than {MAX_LINE} characters"}
    assert found[1].url == "http://h/2.jpg" and found[1].line == 3
    found = jobs(write(tmp_path / "urls.jsonl", f'{{"url": "{huge}"}}\n{{"url": "http://h/2.jpg"}}\n'))
    assert invalid(found) == {1: f"line 1 is longer than {MAX_LINE} characters"}
    assert found[1].url == "http://h/2.jpg" and found[1].line == 2
    (too_long,) = jobs(write(tmp_path / "urls.txt", f"http://h/{huge}\n"))
    assert too_long.error_kind == "invalid_url" and "longer" in (too_long.error or "")


def test_malformed_json_lines_say_what_is_wrong(tmp_path: Path) -> None:
    text = (
        '{"url": "http://h/1.jpg"}\n'  # 1
        "not json\n"  # 2
        "[1, 2]\n"  # 3
        "\n"  # 4: blank, skipped
        '{"link": "http://h/x.jpg", "id": 5}\n'  # 5
        '{"url": 17}\n'  # 6
        '{"url": null}\n'  # 7
        '{"url": "  "}\n'  # 8
        '"http://h/x.jpg"\n'  # 9
        + "[" * 100_000  # 10
        + "\n"
        + '{"url": "http://h/2.jpg"}'  # 11, no final newline
    )
    found = jobs(write(tmp_path / "urls.jsonl", text), keep_columns=("id",))
    assert [j.line for j in found] == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11]
    assert invalid(found) == {
        2: "line 2 is not valid JSON (Expecting value at column 1)",
        3: "line 3 is an array, not a JSON object",
        5: "line 5 has no 'url' field",
        6: "line 6 has a number as 'url', not a string",
        7: "line 7 has a null 'url'",
        8: "line 8 has an empty 'url'",
        9: "line 9 is a string, not a JSON object",
        10: "line 10 is JSON nested too deeply",
    }
    assert found[1].url == "not json" and found[3].extra == {"id": 5} and found[-1].error is None


def test_bad_urls_in_good_rows_are_invalid_url(tmp_path: Path) -> None:
    (job,) = jobs(write(tmp_path / "urls.csv", "url\nftp://h/a.jpg\n"))
    assert job.error_kind == "invalid_url" and job.line == 2


def test_non_utf8_bytes_are_replaced_not_fatal(tmp_path: Path) -> None:
    data = b"url,caption\nhttp://h/a.jpg,caf\xe9\nhttp://h/\xff.jpg,x\n"
    for name in ("urls.csv", "urls.csv.gz"):
        a, b = jobs(write(tmp_path / name, data), keep_columns=("caption",))
        assert a.extra == {"caption": "caf\ufffd"} and a.error is None
        assert b.url == "http://h/\ufffd.jpg"
    (job,) = jobs(write(tmp_path / "urls.jsonl", b'{"url": "http://h/\xff.jpg"}\n'))
    assert job.url == "http://h/\ufffd.jpg"


@pytest.mark.parametrize(
    ("name", "text", "options", "message"),
    [
        ("u.csv", "link,id\nhttp://h/a.jpg,1\n", {}, "no column 'url' in the header; columns are: link, id"),
        (
            "u.tsv.gz",
            "id\tlink\n1\thttp://h/a.jpg\n",
            {},
            "no column 'url' in the header; columns are: id, link",
        ),
        ("u.csv", "link\nhttp://h/a.jpg\n", {"url_column": "src"}, "no column 'src' in the header"),
        ("u.csv", "url\nhttp://h/a.jpg\n", {"keep_columns": ("alt",)}, "no column 'alt'"),
        ("u.csv", "url\nhttp://h/a.jpg\n", {"name_column": "id"}, "no column 'id'"),
    ],
)
def test_a_missing_column_is_a_usage_error_before_any_job(
    tmp_path: Path, name: str, text: str, options: dict[str, Any], message: str
) -> None:
    found = jobs_from_source(write(tmp_path / name, text), **options)
    with pytest.raises(ValueError, match=message):
        next(found)


def test_another_url_column_and_an_empty_file(tmp_path: Path) -> None:
    source = write(tmp_path / "urls.tsv", "id\timage\n1\thttp://h/a.jpg\n")
    assert [j.url for j in jobs(source, url_column="image")] == ["http://h/a.jpg"]
    assert jobs(write(tmp_path / "empty.csv", "")) == []
    assert jobs(write(tmp_path / "empty.jsonl.gz", "")) == []


# -- streaming ----------------------------------------------------------------------------------------------


def test_nothing_is_opened_before_the_first_job(tmp_path: Path) -> None:
    found = jobs_from_source(str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError):
        next(found)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_long_list_streams_and_closes(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"big.{fmt}"
    with path.open("w") as fh:
        fh.write("url,id\n" if fmt == "csv" else "")
        for i in range(200_000):
            fh.write(f"http://h/{i}.jpg,{i}\n" if fmt == "csv" else f'{{"url": "http://h/{i}.jpg"}}\n')
    found = jobs_from_source(str(path))
    tracemalloc.start()
    try:
        first = list(itertools.islice(found, 10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [j.url for j in first] == [f"http://h/{i}.jpg" for i in range(10)]
    assert peak < 5 << 20, f"{peak} bytes for 10 jobs"
    assert open_fds_on(path) == 1
    found.close()
    assert open_fds_on(path) == 0


def test_an_exhausted_list_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "urls.csv.gz"
    found = jobs_from_source(write(path, TEXT["csv"]))
    assert len(list(found)) == 3 and open_fds_on(path) == 0


# -- counting -----------------------------------------------------------------------------------------------


def test_count_rows(tmp_path: Path) -> None:
    assert count_rows(write(tmp_path / "urls.txt", TEXT["txt"])) == 3  # the URLs, not comments or blanks
    assert count_rows(write(tmp_path / "urls.csv", TEXT["csv"])) == 3
    assert count_rows(write(tmp_path / "urls.tsv", TEXT["tsv"].rstrip("\n"))) == 3  # no final newline
    assert count_rows(write(tmp_path / "urls.jsonl", TEXT["jsonl"])) == 3
    assert count_rows(write(tmp_path / "urls.dat", TEXT["csv"]), "csv") == 3
    assert count_rows(write(tmp_path / "empty.csv", "")) == 0
    assert count_rows(write(tmp_path / "urls.csv.gz", TEXT["csv"])) is None
    assert count_rows("-") is None
    assert count_rows(str(tmp_path / "missing.txt")) is None


def test_count_rows_gives_up_on_a_huge_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as fh:
        fh.truncate(300 << 20)  # sparse: nothing written
    assert count_rows(str(path)) is None


# -- Parquet ----------------------------------------------------------------------------------------------


def write_parquet(path: Path, columns: dict[str, list[Any]], **options: Any) -> str:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(columns)
    if path.suffix == ".gz":
        plain = path.with_suffix("")
        pq.write_table(table, plain, **options)
        return write(path, plain.read_bytes())
    pq.write_table(table, path, **options)
    return str(path)


@pytest.mark.parametrize("name", ["urls.parquet", "urls.parquet.gz"])
def test_parquet_plain_and_gzipped(tmp_path: Path, name: str) -> None:
    source = write_parquet(tmp_path / name, {"id": [1, 2, 3], "url": URLS}, row_group_size=2)
    found = jobs(source, keep_columns=("id",))
    assert [(j.line, j.url, j.extra) for j in found] == [(i, u, {"id": i}) for i, u in enumerate(URLS, 1)]
    assert all(j.error is None for j in found)
    assert count_rows(source) == (3 if name.endswith(".parquet") else None)


def test_parquet_rows_carry_json_safe_columns_and_names(tmp_path: Path) -> None:
    source = write_parquet(
        tmp_path / "urls.parquet",
        {
            "url": ["http://h/a.jpg", None, "", "http://h/d.jpg"],
            "key": ["k1", "k2", "k3", None],
            "when": [dt.datetime(2024, 1, 2, 3, 4, 5)] * 4,
            "blob": [b"ab\xff"] * 4,
            "score": [0.5, float("nan"), None, 1.0],
            "meta": [{"w": 1, "tags": ["x"]}] * 4,
        },
    )
    found = jobs(source, keep_columns=("*",), name_column="key")
    assert invalid(found) == {2: "row 2 has a null 'url'", 3: "row 3 has an empty 'url'"}
    assert found[0].path.startswith("k1.") and found[3].path.startswith("d.")
    assert found[0].extra == {
        "key": "k1",
        "when": "2024-01-02T03:04:05",
        "blob": "ab\ufffd",
        "score": 0.5,
        "meta": {"w": 1, "tags": ["x"]},
    }
    assert found[1].extra is not None and found[1].extra["score"] is None  # NaN is not JSON
    for job in found:
        json.dumps(job.extra, allow_nan=False)


def test_parquet_missing_column_and_forced_format(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "urls.bin", {"link": URLS})
    with pytest.raises(ValueError, match="no column 'url' in the Parquet schema; columns are: link"):
        jobs(source, input_format="parquet")
    assert [j.url for j in jobs(source, input_format="parquet", url_column="link")] == URLS


def test_parquet_streams_a_large_row_group_and_closes(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    path = tmp_path / "big.parquet"
    # one row group, uncompressed: its URL column chunk alone is about 7 MB
    write_parquet(path, {"url": [f"http://h/{i:08d}.jpg" for i in range(300_000)]}, compression="none")
    found = jobs_from_source(str(path))
    first = list(itertools.islice(found, 10))
    assert [j.line for j in first] == list(range(1, 11))
    assert pa.total_allocated_bytes() < 5 << 20
    assert open_fds_on(path) == 1
    found.close()
    assert open_fds_on(path) == 0


def test_without_pyarrow_parquet_asks_for_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    source = str(tmp_path / "urls.parquet")
    with pytest.raises(ValueError, match=r"pip install 'downloader\[parquet\]'"):
        jobs(source)
    assert count_rows(source) is None


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("# a list\nhttp://a/1\nhttp://a/2\n\n", 2),
        ("\n\nhttp://a/1\n#c\nhttp://a/2", 2),
        ("http://a/1", 1),
        ("", 0),
        ("#only\n", 0),
        ("a\n\n\n\nb\n", 2),
    ],
)
def test_a_text_list_counts_its_urls_not_its_blank_or_comment_lines(
    tmp_path: Path, text: str, rows: int
) -> None:
    path = tmp_path / "urls.txt"
    path.write_text(text)
    assert count_rows(str(path)) == rows
