"""pyarrow, owned here: Parquet lists are read through ``parquet()``, dataset shards are written by
``write_table`` and read back by ``read_batches``. pyarrow is an optional extra, imported only when a
Parquet file is read or written."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    columns: Mapping[str, str],
    blobs: Callable[[dict[str, Any]], bytes | None] | None = None,
) -> None:
    """``rows`` as one Parquet file at ``path``, written whole under a temporary name, then renamed.
    With ``blobs``, each row's bytes go in an ``image`` column beside its fields (null where a row has
    none), read a row group at a time. The schema is fixed, so every shard of a dataset has the same one
    and they read as one dataset: ``columns`` (name → Arrow type alias) first, whatever the rows hold,
    then the other (carried) columns, typed from all the rows at once (``_carried``)."""
    pq = parquet()
    import pyarrow as pa

    carried = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in columns]
    fields, shape = _carried(rows, carried)
    schema = pa.schema([pa.field(k, pa.type_for_alias(t)) for k, t in columns.items()] + fields)
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


Shape = Callable[[dict[str, Any]], dict[str, Any]]


def _carried(rows: Sequence[dict[str, Any]], names: list[str]) -> tuple[list[Any], Shape]:
    """The carried columns' fields, and how a row is shaped for them. A column no row fills is text
    (not ``null``, a type no other shard's column would cast to); when a column's values disagree in
    type (a number in one row, text in another), the carried columns are stored as JSON text, so one
    odd row cannot fail a shard. Hazard: a carried column typed from its values may still differ from
    shard to shard (numbers in one, text in the next); the manifest's own columns never do."""
    import pyarrow as pa

    shape: Shape = dict
    try:
        inferred = pa.Table.from_pylist([{k: row.get(k) for k in names} for row in rows]).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        shape = functools.partial(_as_text, names=names)
        inferred = pa.schema([pa.field(k, pa.string()) for k in names])
    text = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in inferred]
    return text, shape


def _as_text(row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {**row, **{k: json.dumps(row[k]) for k in names if row.get(k) is not None}}


def read_batches(path: str, columns: list[str]) -> Iterator[list[dict[str, Any]]]:
    """A Parquet file's rows, some columns, a row group's worth at a time."""
    with parquet().ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=GROUP_ROWS, columns=columns):
            yield batch.to_pylist()


def concatenate(parts: Sequence[str], dest: str) -> None:
    """The rows of several Parquet files, in order, as one file at ``dest`` (a list kept in a bucket as
    parts: ``s3://b/parts/*.parquet``), a row group at a time, so memory holds one group. Parts whose
    columns differ from the first's are a usage error: their rows would not read as one list."""
    pq = parquet()
    writer = None
    try:
        for part in parts:
            with pq.ParquetFile(part) as pf:
                if writer is None:
                    writer = pq.ParquetWriter(dest, pf.schema_arrow)
                elif not pf.schema_arrow.equals(writer.schema):
                    raise UsageError(f"{os.path.basename(part)}: its columns differ from the first part's")
                for group in range(pf.num_row_groups):
                    writer.write_table(pf.read_row_group(group))
    finally:
        if writer is not None:
            writer.close()
