"""pyarrow, owned here: Parquet lists are read through ``parquet()``, dataset shards are written by
``write_table`` and read back by ``read_batches``. pyarrow is an optional extra, imported only when a
Parquet file is read or written."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .errors import UsageError

PARQUET_HINT = "reading or writing Parquet needs pyarrow: pip install 'downloader[parquet]'"
GROUP_ROWS = 256
"""Rows per row group of a shard with image bytes: a group is built in memory, so memory stays at a few
hundred images, not a shard."""
BLOB = "image"


def parquet() -> Any:
    """``pyarrow.parquet``, or a usage error that says how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(PARQUET_HINT) from None
    return pq


def write_table(
    path: str,
    rows: Sequence[dict[str, Any]],
    text_columns: frozenset[str],
    blobs: Callable[[dict[str, Any]], bytes | None] | None = None,
) -> None:
    """``rows`` as one Parquet file at ``path``, written whole under a temporary name, then renamed.
    With ``blobs``, each row's bytes go in an ``image`` column beside its fields, read a row group at a
    time. The schema is inferred from all the rows at once (so a column that is null in one group has
    the type the others give it); when a column's values disagree in type (a carried input column that
    is a number in one row and text in another), the columns outside ``text_columns`` are stored as JSON
    text, so one odd row cannot fail a shard."""
    pq = parquet()
    import pyarrow as pa

    names = list(dict.fromkeys(k for row in rows for k in row))
    shape: Callable[[dict[str, Any]], dict[str, Any]] = functools.partial(_as_is, names=names)
    try:
        schema = pa.Table.from_pylist([shape(row) for row in rows]).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        shape = functools.partial(_as_text, names=names, keep=text_columns)
        schema = pa.Table.from_pylist([shape(row) for row in rows]).schema
    if blobs is not None:
        schema = schema.append(pa.field(BLOB, pa.binary()))
    tmp = f"{path}.{os.getpid()}.part"
    with pq.ParquetWriter(tmp, schema) as writer:
        for at in range(0, max(len(rows), 1), GROUP_ROWS):
            group = [shape(row) for row in rows[at : at + GROUP_ROWS]]
            if blobs is not None:
                for shaped, row in zip(group, rows[at : at + GROUP_ROWS], strict=True):
                    shaped[BLOB] = blobs(row)
            writer.write_table(pa.Table.from_pylist(group, schema=schema))
    os.replace(tmp, path)


def _as_is(row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {k: row.get(k) for k in names}


def _as_text(row: dict[str, Any], names: list[str], keep: frozenset[str]) -> dict[str, Any]:
    return {k: row.get(k) if k in keep or row.get(k) is None else json.dumps(row[k]) for k in names}


def read_batches(path: str, columns: list[str]) -> Iterator[list[dict[str, Any]]]:
    """A Parquet file's rows, some columns, a row group's worth at a time."""
    with parquet().ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=GROUP_ROWS, columns=columns):
            yield batch.to_pylist()
