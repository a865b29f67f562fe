"""URL lists in richer formats than one URL a line: CSV, TSV, JSON Lines and Parquet, each also gzip'd;
and a library caller's rows (dicts), read by the same column rules.

Every format streams (memory does not grow with the list), and a malformed row becomes a job that
carries an ``invalid_input`` error, so it gets its manifest row and the run goes on. Problems with the
list as a whole (a missing column, an unknown format, pyarrow not installed) raise ``ValueError`` before
the first job: they are the user's to fix, not one row's. pyarrow is an optional extra, imported here
only when a Parquet list is read.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from .arrow import parquet
from .errors import InvalidInput, InvalidURL, UsageError
from .marks import Mark, mark_at, open_at
from .models import Job, Naming
from .names import DEFAULT_NAMING
from .sources import NOT_MINE, make_job, read_lines

if TYPE_CHECKING:
    from _csv import Reader

T = TypeVar("T")
FORMATS = ("txt", "csv", "tsv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_DIALECTS = {"csv": "excel", "tsv": "excel-tab"}

MAX_LINE = 1 << 20
"""Characters in one line (or CSV field): beyond it the row is invalid, and the rest of the line is skipped
without being held, so a runaway line (a whole JSON array on one line) cannot exhaust memory."""
MAX_COUNT_BYTES = 256 << 20
"""``count_rows`` counts newlines only in plain files up to this size; the bar does without a total above."""
PARQUET_BATCH = 8192
"""Rows decoded at once from Parquet: large enough to amortise Arrow's per-batch cost, small in memory."""
_PAGE_READS: dict[str, object] = {"pre_buffer": False, "buffer_size": 1 << 20}
"""Read column chunks a megabyte at a time: pyarrow's default pre-buffers a row group's whole chunks, which
for a list written as one row group means holding every URL in memory."""
_MAX_RAW = 1000  # characters of an unparsable line kept as the manifest row's ``url``


def detect_format(source: str, forced: str | None = None) -> str:
    """The list's format: ``forced`` when given, else from the name (``.gz`` looked through); stdin and
    unknown suffixes are plain text, one URL a line."""
    if forced is not None:
        if forced not in FORMATS:
            raise UsageError(f"unknown input format {forced!r}; choose one of: {', '.join(FORMATS)}")
        return forced
    if source == "-":
        return "txt"
    name = source.lower().removesuffix(".gz")
    return _SUFFIXES.get(os.path.splitext(name)[1], "txt")


def jobs_from_source(
    source: str,
    naming: Naming = DEFAULT_NAMING,
    *,
    input_format: str | None = None,
    url_column: str = "url",
    keep_columns: tuple[str, ...] = (),
    name_column: str | None = None,
    window: Window | None = None,
) -> Generator[Job, None, None]:
    """One job per row of ``source`` (a path, or ``-`` for stdin), read lazily.

    ``keep_columns`` are carried into the manifest row (``("*",)``: every column but the URL);
    ``name_column`` names the files; ``window`` keeps only a shard's rows. Nothing is opened before the
    first ``next()``, where usage errors (``ValueError``, ``OSError``) surface; the file is closed when
    the generator ends or is closed.
    """
    fmt = detect_format(source, input_format)
    columns = _Columns(url_column, keep_columns, name_column, window)
    if fmt == "txt" and url_column != "url":
        raise UsageError(
            f"--url-column {url_column} needs a csv, tsv, jsonl or parquet list; {source} is read as plain "
            "text, one URL a line (name it .csv, or pass --input-format csv)"
        )
    if fmt == "txt" and (keep_columns or name_column):
        raise UsageError(
            "keep_columns and name_column need a csv, tsv, jsonl or parquet list, not plain text"
        )
    part = naming.part
    jobs = _READERS[fmt](source, naming, columns)
    if fmt == "txt" and input_format is None and (window is None or window.start == 0):
        jobs = _not_a_table(jobs, source)
    for job in jobs:
        if job is NOT_MINE or (
            part and job.error_kind == InvalidInput.kind and job.line % part[1] != part[0]
        ):
            continue  # another part's row (--procs)
        yield job


def rows_in(source: str, *, input_format: str | None = None, url_column: str = "url") -> int:
    """How many rows ``source`` has, as a shard plan counts them: every row read, none parsed, in
    constant memory (the rows' numbers, from 0, are what shards are cut by)."""
    return rows_and_marks(source, 0, input_format=input_format, url_column=url_column)[0]


def rows_and_marks(
    source: str, every: int, *, input_format: str | None = None, url_column: str = "url"
) -> tuple[int, list[Mark | None] | None]:
    """``rows_in``, and (``every`` > 0, a text list in a file) where each ``every`` rows end: the
    ``Mark`` a window of rows ``[n * every, ...)`` resumes at is ``marks[n - 1]``. None where the list
    gives none: stdin cannot be read twice, and Parquet's own metadata says where its row groups begin."""
    window = Window.counting(every)
    for _job in jobs_from_source(source, input_format=input_format, url_column=url_column, window=window):
        pass  # pragma: no cover - a counting window takes no row
    return window.seen, window.marks if window.lines is not None and source != "-" else None


def jobs_from_rows(
    rows: Iterable[str | Mapping[str, object]],
    naming: Naming = DEFAULT_NAMING,
    *,
    url_column: str = "url",
    keep_columns: Sequence[str] = (),
    name_column: str | None = None,
) -> Iterator[Job]:
    """Jobs for a library caller's items, lazily, line numbers counting every item from 1: a URL string,
    or a dict read as a list file's row is (its URL under ``url_column``, ``keep_columns`` carried into
    the manifest, ``name_column`` naming the file), so the two cannot drift apart. A dict without a
    usable URL becomes an ``invalid_input`` job; strings and dicts may be mixed."""
    columns = _Columns(url_column, tuple(keep_columns), name_column)
    for line, item in enumerate(rows, 1):
        if isinstance(item, Mapping):
            yield _row_job(line, f"row {line}", item, columns, naming)
        else:
            yield make_job(line, str(item).strip(), naming)


def _not_a_table(jobs: Iterator[Job], source: str) -> Iterator[Job]:
    """A list read as plain text whose first line is no URL but looks like a CSV or TSV header (``url,id``)
    is a table under another name: say so, instead of failing each row as an invalid URL."""
    first = next(jobs, None)
    if first is not None:
        head = first.url if first.error_kind == InvalidURL.kind else ""
        cell = head.replace("\t", ",").split(",")[0]
        if ("," in head or "\t" in head) and "://" not in cell:
            raise UsageError(
                f"{source} looks like a table (its first line is {head[:60]!r}) but is read as plain text, "
                "one URL a line: name it .csv or .tsv, or pass --input-format csv"
            )
        yield first
    yield from jobs


def count_rows(source: str, input_format: str | None = None) -> int | None:
    """A cheap total for the progress bar: Parquet's row count from metadata; newline count (minus a header
    for csv/tsv) for a plain file up to 256 MB; None for stdin, gzip or bigger files."""
    fmt = detect_format(source, input_format)
    if source == "-" or source.lower().endswith(".gz"):
        return None
    try:
        if fmt == "parquet":
            return _parquet_rows(source)
        lines = _count_lines(source, skip_blank_and_comments=fmt == "txt")
    except (OSError, ValueError):
        return None
    return None if lines is None else max(0, lines - (fmt in _DIALECTS))


# -- columns and rows, whatever the format ---------------------------------------------------------------


class Window:
    """Rows ``[start, end)`` of a list by their place in it, from 0: a dataset shard's rows. Rows before
    it are counted, never made into jobs (parsing a URL and making its path is most of a row's cost), and
    reading stops at its end; with ``at`` (where row ``start`` resumes in a text list, from the plan) the
    rows before it are not even read. ``Window.counting()`` takes no row: its ``seen`` is then the list's
    rows, and with ``every`` its ``marks`` say where each ``every`` rows end."""

    __slots__ = ("at", "end", "every", "lines", "marks", "seen", "start")

    def __init__(self, start: int, end: int, at: Mark | None = None) -> None:
        self.start = start
        self.end = end
        self.seen = 0
        self.at = at
        self.every = 0
        self.marks: list[Mark | None] = []
        self.lines: _Lines | None = None  # the lines of the list being counted

    @classmethod
    def counting(cls, every: int = 0) -> Window:
        window = cls(1 << 62, 1 << 62)
        window.every = every
        return window

    def take(self) -> bool:
        """Count one row; True when it is in the window."""
        self.seen += 1
        if self.every and self.lines is not None and self.seen % self.every == 0:
            self.marks.append(mark_at(self.lines.stream, self.lines.count))  # the row just read ends here
        return self.start < self.seen <= self.end

    def skip(self, rows: int) -> bool:
        """Count ``rows`` at once when all of them come before the window."""
        if self.seen + rows > self.start:
            return False
        self.seen += rows
        return True

    @property
    def past(self) -> bool:
        return self.seen >= self.end


def _windowed(items: Iterable[T], window: Window | None) -> Iterator[T]:
    """The items in ``window`` (all without one), reading none past its end."""
    if window is None:
        yield from items
        return
    for item in items:
        if window.take():
            yield item
        if window.past:
            return


@dataclass(frozen=True, slots=True)
class _Columns:
    """Which columns a list's rows are read for (and, for a shard, which rows)."""

    url: str
    keep: tuple[str, ...] = ()
    name: str | None = None
    window: Window | None = None

    @property
    def keep_all(self) -> bool:
        return self.keep == ("*",)

    def resolve(self, names: Sequence[str], where: str) -> _Columns:
        """Check the columns against a header or schema, expanding ``*``; raise ``ValueError`` when one
        is missing, since then every row would fail the same way."""
        wanted = (self.url,) + (() if self.keep_all else self.keep) + ((self.name,) if self.name else ())
        for column in wanted:
            if column not in names:
                shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
                raise UsageError(f"no column {column!r} in the {where}; columns are: {shown}")
        if self.keep_all:
            return replace(self, keep=tuple(n for n in names if n != self.url))
        return self

    def needed(self, names: Sequence[str]) -> list[str]:
        """The columns to decode (Parquet reads no others), in the file's order."""
        wanted = {self.url, *self.keep, *((self.name,) if self.name else ())}
        return [n for n in names if n in wanted]

    def extra(self, row: Mapping[str, object]) -> dict[str, object] | None:
        names = [k for k in row if k != self.url] if self.keep_all else list(self.keep)
        if self.name and not self.keep_all and self.name not in names:
            names.append(self.name)  # the name column is carried too, so --retry-failed names alike
        return {str(k): _jsonable(row.get(k)) for k in names} or None  # a dict row's keys may be anything

    def stem(self, row: Mapping[str, object]) -> str | None:
        """The file name's stem from ``name_column``; a missing or empty value falls back to the URL's."""
        value = row.get(self.name) if self.name else None
        text = "" if value is None else str(_jsonable(value)).strip()
        return text or None


def _jsonable(value: object) -> object:
    """``value`` as JSON the manifest can hold: dates as ISO text, bytes as UTF-8 text, NaN and infinity
    as null (they are not JSON), anything else unknown as its ``str``."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _invalid(line: int, problem: str, url: str = "", extra: dict[str, object] | None = None) -> Job:
    return Job(url=url, line=line, error=problem, error_kind=InvalidInput.kind, extra=extra)


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _url_problem(row: Mapping[str, object], column: str) -> str | None:
    """Why a row has no usable URL, or None when it has one."""
    if column not in row:
        return f"has no {column!r} field"
    value = row[column]
    if value is None:
        return f"has a null {column!r}"
    if not isinstance(value, str):
        return f"has {_json_type(value)} as {column!r}, not a string"
    return None if value.strip() else f"has an empty {column!r}"


def _row_job(line: int, where: str, row: Mapping[str, object], columns: _Columns, naming: Naming) -> Job:
    """The job for one parsed row (a dict of column to value); ``where`` names it for an error."""
    extra = columns.extra(row)
    problem = _url_problem(row, columns.url)
    url = row.get(columns.url)
    if problem or not isinstance(url, str):  # a URL without a problem is a string: said for mypy
        return _invalid(line, f"{where} {problem}", url if isinstance(url, str) else "", extra)
    return make_job(line, url.strip(), naming, stem=columns.stem(row), extra=extra)


# -- text: opening, bounded lines ----------------------------------------------------------------------


def _first_line(window: Window | None) -> int:
    """The number of the first line read: after the lines before the window's mark, if it has one."""
    return 1 if window is None or window.at is None else window.at.lines + 1


@contextmanager
def _open_text(source: str, newline: str | None = None, window: Window | None = None) -> Iterator[IO[str]]:
    """A list as text: gzip by name, UTF-8 with stray bytes replaced (one bad byte spoils one row, not the
    run), a BOM dropped. Stdin is detached rather than closed: it is the process's, not ours. A window
    with a mark starts there (its rows before counted as seen), or counts its way when the list no
    longer fits the mark."""
    resumed = (
        None if window is None or window.at is None or source == "-" else open_at(source, window.at, newline)
    )
    if window is not None and resumed is not None:
        with resumed:
            window.seen = window.start
            yield resumed
        return
    if window is not None:
        window.at = None  # no mark, or one the list no longer fits: its rows are counted
    if source == "-":
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace", newline=newline)
        try:
            yield stream
        finally:
            stream.detach()
        return
    opener: Callable[..., IO[str]] = gzip.open if source.lower().endswith(".gz") else open
    with opener(source, "rt", encoding="utf-8-sig", errors="replace", newline=newline) as fh:
        yield fh


class _Lines:
    """The lines of a text stream, each at most ``MAX_LINE`` characters: a longer one is cut and the rest
    of it read past in pieces; ``cut`` says it happened (the reader clears it). ``count`` is the lines
    read; a counting ``window`` that marks is lent them, to take its marks from."""

    def __init__(self, stream: IO[str], window: Window | None = None, limit: int = MAX_LINE) -> None:
        self.stream = stream
        self._limit = limit
        self.cut = False
        self.count = 0
        if window is not None and window.every and stream.seekable():  # stdin: no marks
            window.lines = self

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        text = self.stream.readline(self._limit + 1)
        if not text:
            raise StopIteration
        self.count += 1
        if len(text) > self._limit and not text.endswith(("\n", "\r")):
            self.cut = True
            while (rest := self.stream.readline(1 << 16)) and not rest.endswith(("\n", "\r")):
                pass
        return text


# -- the readers ------------------------------------------------------------------------------------------


def _txt_jobs(source: str, naming: Naming, columns: _Columns) -> Iterator[Job]:
    """One URL a line; an overlong line is cut and then fails as an overlong URL."""
    with _open_text(source, None, columns.window) as stream:
        lines = read_lines(_Lines(stream, columns.window), _first_line(columns.window))
        for line, text in _windowed(lines, columns.window):
            yield make_job(line, text, naming)


def _csv_jobs(fmt: str, source: str, naming: Naming, columns: _Columns) -> Iterator[Job]:
    """Rows of a CSV or TSV list with a header; rows with only blank fields are skipped. A window with
    a mark reads the header from the start, then its rows from the mark (a mark is only ever taken where
    a record ends, never inside a quoted field that spans lines)."""
    if csv.field_size_limit() < MAX_LINE:
        csv.field_size_limit(MAX_LINE)  # process-wide, so only ever raised
    window = columns.window
    resume = window is not None and window.at is not None
    with _open_text(source, "", None if resume else window) as stream:
        lines = _Lines(stream, window)
        reader = csv.reader(lines, _DIALECTS[fmt])
        header = _header(reader, fmt)
        if not header:
            return
        columns = columns.resolve(header, "header")
        if not resume:
            yield from _csv_table(fmt, reader, lines, header=header, columns=columns, naming=naming)
            return
    with _open_text(source, "", window) as stream:
        lines = _Lines(stream)
        reader = csv.reader(lines, _DIALECTS[fmt])
        if window is None or window.at is None:  # the list changed since its plan: read from its start
            _header(reader, fmt)
        yield from _csv_table(fmt, reader, lines, header=header, columns=columns, naming=naming)


def _csv_table(
    fmt: str, reader: Reader, lines: _Lines, *, header: list[str], columns: _Columns, naming: Naming
) -> Iterator[Job]:
    """The jobs of a CSV or TSV list's rows after its header, in the window if any."""
    first = _first_line(columns.window)
    rows = (
        (n, r)
        for n, r in _csv_rows(reader, lines, fmt, first)
        if isinstance(r, str) or any(map(str.strip, r))
    )
    for line, row in _windowed(rows, columns.window):
        if isinstance(row, str):
            yield _invalid(line, row)
        else:
            yield _csv_row_job(line, row, header, columns, naming, sep=reader.dialect.delimiter)


def _header(reader: Reader, fmt: str) -> list[str]:
    """The first row that is not blank, names trimmed; ``[]`` for an empty list."""
    try:
        for row in reader:
            if any(name.strip() for name in row):
                return [name.strip() for name in row]
    except csv.Error as exc:
        raise UsageError(f"the header is not valid {fmt.upper()}: {exc}") from None
    return []


def _csv_rows(reader: Reader, lines: _Lines, fmt: str, first: int) -> Iterator[tuple[int, list[str] | str]]:
    """(line, fields) of each row, or (line, problem) for a row the parser rejects. ``line`` is the
    physical line where the row starts (the header is line 1; the reader's first line is ``first``): a
    quoted field spanning lines does not shift the numbers of the rows after it."""
    while True:
        line = reader.line_num + first
        lines.cut = False
        try:
            row: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, f"line {line} is not valid {fmt.upper()}: {exc}"
            continue
        yield line, f"line {line} is longer than {MAX_LINE} characters" if lines.cut else row


def _csv_row_job(
    line: int, row: list[str], header: list[str], columns: _Columns, naming: Naming, *, sep: str
) -> Job:
    if len(row) != len(header):
        problem = f"line {line} has {_fields(len(row))} but the header has {len(header)}"
        return _invalid(line, problem, sep.join(row)[:_MAX_RAW])
    return _row_job(line, f"line {line}", dict(zip(header, row, strict=True)), columns, naming)


def _fields(n: int) -> str:
    return f"{n} field{'' if n == 1 else 's'}"


def _jsonl_jobs(source: str, naming: Naming, columns: _Columns) -> Iterator[Job]:
    """One JSON object a line; blank lines skipped."""
    with _open_text(source, None, columns.window) as stream:
        lines = _jsonl_lines(_Lines(stream, columns.window), _first_line(columns.window))
        for line, text, cut in _windowed(lines, columns.window):
            if cut:
                yield _invalid(line, f"line {line} is longer than {MAX_LINE} characters")
            else:
                yield _jsonl_job(line, text, columns, naming)


def _jsonl_lines(lines: _Lines, first: int) -> Iterator[tuple[int, str, bool]]:
    """(line, text, cut) of each line that is a row (the first numbered ``first``): blank lines are none."""
    for line, text in enumerate(lines, first):
        if lines.cut:
            lines.cut = False
            yield line, "", True
        elif text.strip():
            yield line, text.strip(), False


def _jsonl_job(line: int, text: str, columns: _Columns, naming: Naming) -> Job:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"line {line} is not valid JSON ({exc.msg} at column {exc.colno})"
        return _invalid(line, problem, text[:_MAX_RAW])
    except RecursionError:
        return _invalid(line, f"line {line} is JSON nested too deeply", text[:_MAX_RAW])
    if not isinstance(row, dict):
        return _invalid(line, f"line {line} is {_json_type(row)}, not a JSON object", text[:_MAX_RAW])
    return _row_job(line, f"line {line}", row, columns, naming)


def _parquet_jobs(source: str, naming: Naming, columns: _Columns) -> Iterator[Job]:
    """Rows of a Parquet file, a batch at a time, decoding only the columns needed; ``line`` is the
    1-based row index."""
    with _parquet_file(source) as pf:
        columns = columns.resolve(pf.schema_arrow.names, "Parquet schema")
        needed = columns.needed(pf.schema_arrow.names)
        window = columns.window
        group, line = _first_group(pf, window)
        groups = list(range(group, pf.metadata.num_row_groups))
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH, columns=needed, row_groups=groups):
            if window is not None and (window.past or window.skip(batch.num_rows)):
                if window.past:
                    return
                line += batch.num_rows
                continue
            for n, row in _windowed(enumerate(batch.to_pylist(), line + 1), window):
                yield _row_job(n, f"row {n}", row, columns, naming)
            line += batch.num_rows


def _first_group(pf: Any, window: Window | None) -> tuple[int, int]:
    """The first row group holding a row of ``window`` and the rows before it (counted as the window's
    seen), from the file's metadata: a shard decodes none of the row groups before its rows."""
    group = 0
    before = 0
    if window is None:
        return group, before
    meta = pf.metadata
    while group < meta.num_row_groups and before + meta.row_group(group).num_rows <= window.start:
        before += meta.row_group(group).num_rows
        group += 1
    window.seen = before
    return group, before


@contextmanager
def _parquet_file(source: str) -> Iterator[Any]:
    """An open ``ParquetFile``. Parquet is read from its end, so gzip'd files and stdin are first
    decompressed into an anonymous temporary file: seeking inside a gzip stream restarts it each time."""
    pq = parquet()
    if source != "-" and not source.lower().endswith(".gz"):
        with pq.ParquetFile(source, **_PAGE_READS) as pf:
            yield pf
        return
    with tempfile.TemporaryFile() as spool:
        if source == "-":
            shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
        else:
            with gzip.open(source, "rb") as raw:
                shutil.copyfileobj(raw, spool, 1 << 20)
        spool.seek(0)
        with pq.ParquetFile(spool, **_PAGE_READS) as pf:
            yield pf


_READERS: dict[str, Callable[[str, Naming, _Columns], Iterator[Job]]] = {
    "txt": _txt_jobs,
    "csv": lambda s, n, c: _csv_jobs("csv", s, n, c),
    "tsv": lambda s, n, c: _csv_jobs("tsv", s, n, c),
    "jsonl": _jsonl_jobs,
    "parquet": _parquet_jobs,
}


# -- counting -------------------------------------------------------------------------------------------


def _parquet_rows(source: str) -> int | None:
    try:
        pq = parquet()
    except ValueError:
        return None
    with pq.ParquetFile(source) as pf:
        rows: int = pf.metadata.num_rows
        return rows


_SKIPPED_LINE = re.compile(rb"\n(?=[\n#])")
"""A newline that starts a blank or comment line: such lines are no rows of a text list."""


def _count_lines(source: str, *, skip_blank_and_comments: bool = False) -> int | None:
    """Lines in a plain file (a last line without a newline counts), or None when it is too big to count
    quickly. For a text list, blank lines and ``#`` comments at the start of a line are not counted, so
    the bar's total is the number of URLs (a line of spaces, rare, still counts)."""
    path = Path(source)
    if path.stat().st_size > MAX_COUNT_BYTES:
        return None
    lines = 0
    last = b"\n"
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            lines += block.count(b"\n")
            if skip_blank_and_comments:  # ``last`` joins the blocks; at the start it stands for line 1
                lines -= len(_SKIPPED_LINE.findall(last + block))
            last = block[-1:]
    return lines + (last != b"\n")
