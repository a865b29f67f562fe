"""Dataset shards on disk: the plan, each shard's files, its rows, and the step that makes a shard final.

A shard is rows ``[k * shard_size, (k + 1) * shard_size)`` of the list, counted from 0 in input order;
its samples are keyed by their input row number (``line``, zero-padded to nine digits, no dots, as
``--layout shards`` names files). While it runs, a shard has a spool (``_shards/00000.spool``, a tar of
the samples so far) and a part manifest (``_shards/00000.part.jsonl``, their rows). ``finish`` makes it
final in this order, each file under a temporary name (ending ``.part``) renamed into place: for tars
the metadata Parquet (``_shards/00000.parquet``), the rows (``_shards/00000.jsonl``), the shard itself
(``00000.tar`` or ``00000.parquet``; for plain files in shards the folder ``00000/``, each of its files
published whole), and last the done marker (``_shards/00000.done.json``); then the spool goes. A kill
at any moment leaves no partial file at a final name, and a shard without its marker is run again from
its spool. Working files end in no shard's suffix, so a glob for ``*.tar`` or
``*.parquet``, recursive or not, never takes one for a shard; ``_``-prefixed folders are skipped by
Parquet dataset readers, so OUT reads as the dataset. A Parquet shard holds every row, so it has no
metadata Parquet beside it: a recursive ``**/*.parquet`` sees each row once in either format.

With a store (``-o s3://…``, ``ShardFiles.store``) ``out`` is the local work folder: each final file is
made there as above, then published to the store in the same order (``remote``), and the done marker is
read from the store.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..arrow import read_batches, write_table
from ..manifest import COLUMNS, MANIFEST, PART_GLOB, encode_row, read_manifest
from ..writers.spool import key_of, member_name
from ..writers.tar import MemberReader, TarAppender, scan, write_tar
from . import remote

if sys.platform != "win32":
    import fcntl

log = logging.getLogger(__name__)

SHARDS = "_shards"
PLAN = "plan.json"
CONTENT = "content.sqlite"
"""``--dedup content``'s index: sha256 → the first copy's path, for every shard of OUT, run after run."""
FINAL_EXT = {"webdataset": ".tar", "parquet": ".parquet", "files": ""}
"""A shard's final name after its number: a tar, a Parquet file, or (``files``) a folder of its files."""
Found = dict[str, tuple[str, tuple[str, int, int]]]
"""Key → (member name, where its bytes are) of each complete sample of a shard."""


def key(line: int) -> str:
    """A sample's key: its input row number, zero-padded."""
    return f"{line:09d}"


@dataclass(frozen=True, slots=True)
class ShardFiles:
    """Where shard ``k`` of a run in ``out`` keeps its files."""

    out: Path
    k: int
    fmt: str
    store: str | None = None
    """The store the final files are published to (``out`` is then the local work folder), or None."""

    @property
    def name(self) -> str:
        return f"{self.k:05d}"

    @property
    def final(self) -> Path:
        return self.out / f"{self.name}{FINAL_EXT[self.fmt]}"

    @property
    def temp(self) -> Path:
        """The shard being written; a dot hides it from ``*.tar`` globs."""
        return self.out / f".{self.final.name}.{os.getpid()}.part"

    def _own(self, suffix: str) -> Path:
        return self.out / SHARDS / f"{self.name}{suffix}"

    @property
    def spool(self) -> Path:
        """A tar, named for no reader to take as a shard (an earlier version's ``.spool.tar`` is taken
        over by ``clear_temporaries``, so a rerun over its OUT resumes)."""
        return self._own(".spool")

    @property
    def old_spool(self) -> Path:
        return self._own(".spool.tar")

    @property
    def part(self) -> str:
        """The part manifest, relative to OUT (the engine's manifest name)."""
        return f"{SHARDS}/{self.name}.part.jsonl"

    @property
    def rows(self) -> Path:
        return self._own(".jsonl")

    @property
    def meta(self) -> Path:
        return self._own(".parquet")

    @property
    def done(self) -> Path:
        return self._own(".done.json")

    @property
    def lock(self) -> Path:
        return self._own(".lock")

    @property
    def where(self) -> str:
        """The shard file as a reader finds it: its path, or its URL in the store."""
        if self.store is not None:
            return f"{self.store.rstrip('/')}/{self.final.name}"
        return str(self.final.resolve())

    def marker(self) -> dict[str, Any] | None:
        """The done marker's counts, or None while the shard is unfinished (read from the store, if any)."""
        if self.store is not None:
            return remote.read_json(self.store, self.out, self.done)
        try:
            found: dict[str, Any] = json.loads(self.done.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        return found


def run_manifests(out: Path) -> list[Path]:
    """Every file of rows a run in ``out`` keeps, in the order they were written: the manifest, its
    ``--procs`` parts, then each dataset shard's rows (final, or the part of a shard not yet done)."""
    found = [out / MANIFEST] if (out / MANIFEST).is_file() else []
    found += sorted(out.glob(PART_GLOB))
    own = out / SHARDS
    for rows in sorted(own.glob("[0-9]*.jsonl")):
        name = rows.name.split(".")[0]
        if rows.name == f"{name}.jsonl" or not (own / f"{name}.done.json").is_file():
            found.append(rows)
    return found


@contextlib.contextmanager
def exclusive(files: ShardFiles, wait: float | None = None) -> Iterator[bool]:
    """Hold the shard's lock (an ``flock`` on ``_shards/00000.lock``) while it is written, so two
    processes never write one shard at once: a task Dask started again while its first run still goes,
    two workers given the same rank, a worker whose lease was taken over. Yields whether it is held:
    after ``wait`` seconds at most, or (None) once the holder is done. The kernel lets go of a killed
    holder's lock; the file itself stays (removing it would let a third process lock another). Windows
    has no ``flock``: there the runner (and the lease) alone keep shards apart."""
    if sys.platform == "win32":  # pragma: no cover
        yield True
        return
    fd = os.open(files.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        yield _flock(fd, files.name, wait)
    finally:
        os.close(fd)


def _flock(fd: int, name: str, wait: float | None) -> bool:
    if _try_flock(fd):
        return True
    log.warning("shard %s is being written by another process: waiting for it", name)
    if wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    until = time.monotonic() + wait
    while time.monotonic() < until:
        time.sleep(0.1)
        if _try_flock(fd):
            return True
    return False


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def publish(final: Path, fill: Callable[[str], object], temp: Path | None = None) -> None:
    """The one way a final file of a shard is made: ``fill`` writes it whole under a temporary name
    (``temp``, or the final name plus ``.PID.part``), which then becomes ``final`` at once. A reader never
    sees part of it; an object store would put the filled file in one request here."""
    tmp = temp or final.with_name(f"{final.name}.{os.getpid()}.part")
    fill(str(tmp))
    os.replace(tmp, final)


def put(files: ShardFiles, final: Path, fill: Callable[[str], object]) -> None:
    """``publish`` a final file of the shard, then, with a store, publish it there: the shard file moved
    (the work folder keeps no second copy of the dataset), the small files copied."""
    if files.store is None:
        publish(final, fill, files.temp if final == files.final else None)
    elif final == files.final:
        fill(str(files.temp))
        remote.put_moved(files.store, files.out, files.temp, final)
    else:
        publish(final, fill)
        remote.put_copy(files.store, files.out, final)


def clear_temporaries(files: ShardFiles) -> None:
    """Remove what a killed process left under temporary names while it made the shard final; with a
    store, the uploads it left unfinished too, and a done shard's files fetched back for a rewrite."""
    if files.store is not None:
        remote.abort_shard(files.store, files.name, SHARDS)
        if files.marker() is not None:  # --retry-failed rewrites it from its final files
            for path in (files.rows, files.final):
                if not path.exists():
                    remote.pull(files.store, files.out, path)
    for left in [
        *files.out.glob(f".{files.final.name}.*.part"),
        *(files.out / SHARDS).glob(f"{files.name}.*.part"),
        *(files.final.glob(".*.part") if files.fmt == "files" else []),
    ]:
        left.unlink(missing_ok=True)
    if files.old_spool.exists() and not files.spool.exists():  # an OUT an earlier version left
        os.replace(files.old_spool, files.spool)


def write_plan(
    out: Path, source: str, rows: int, size: int, marks: Sequence[Sequence[int] | None] | None = None
) -> int:
    """Record the shards as row ranges in ``_shards/plan.json`` (never a copy of the list); how many.
    With ``marks`` (where each ``size`` rows end in a text list), ``starts`` says where each shard's rows
    begin (``[byte offset, lines before]``; null: found by counting), so a shard seeks to them."""
    count = -(-rows // size)
    (out / SHARDS).mkdir(parents=True, exist_ok=True)
    tmp = out / SHARDS / f".{PLAN}.{os.getpid()}.part"
    with open(tmp, "w", encoding="utf-8") as fh:
        head = {"source": source_name(source), "rows": rows, "shard_size": size, "shards": count}
        fh.write(json.dumps(head)[:-1] + ', "ranges": [')
        for k in range(count):
            fh.write(("," if k else "") + json.dumps([k * size, min(rows, (k + 1) * size)]))
        if marks is not None:
            starts = [None, *(None if m is None else list(m) for m in marks[: max(0, count - 1)])]
            fh.write('], "starts": ' + json.dumps(starts[:count]) + "}\n")
        else:
            fh.write("]}\n")
    os.replace(tmp, out / SHARDS / PLAN)
    return count


def source_name(source: str) -> str:
    """A list as the plan records it: its absolute path, or its URL (``s3://…``) as given."""
    return source if "://" in source else os.path.abspath(source)


def read_plan(out: Path) -> dict[str, Any] | None:
    try:
        plan: dict[str, Any] = json.loads((out / SHARDS / PLAN).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return plan


def plan_start(out: Path, k: int, source: str, size: int) -> tuple[int, int] | None:
    """Where shard ``k``'s rows begin in the list (byte offset, lines before), as the plan recorded it;
    None when it did not (an older plan, stdin, Parquet) or was made for another list or shard size: the
    shard then counts its way to its rows."""
    path = out / SHARDS / PLAN
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    plan = _plan_starts(str(path), stat.st_mtime_ns, stat.st_size)
    if plan is None or plan[0] != (os.path.abspath(source), size) or not 0 <= k < len(plan[1]):
        return None
    start = plan[1][k]
    return None if start is None else (int(start[0]), int(start[1]))


@functools.lru_cache(maxsize=4)
def _plan_starts(path: str, _mtime: int, _size: int) -> tuple[tuple[str, int], list[Any]] | None:
    """A plan's list, shard size and starts, read once per process and plan version (a plan of 10,000
    shards is some 300 kB of JSON: read for every shard it would cost more than the seek saves)."""
    try:
        plan = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    starts = plan.get("starts")
    return (plan.get("source"), plan.get("shard_size")), starts if isinstance(starts, list) else []


def latest_rows(files: ShardFiles, done: bool) -> dict[int, dict[str, Any]]:
    """Each row number's latest row: the final rows of a done shard, then its part manifest's."""
    rows: dict[int, dict[str, Any]] = {}
    for path in ([files.rows] if done else []) + [files.out / files.part]:
        for row in read_manifest(path):
            line = row.get("line")
            if isinstance(line, int):
                rows[line] = row
    return rows


def samples(files: ShardFiles, done: bool) -> Found:
    """Key → (member name, where its bytes are) of each complete sample of the shard so far. A done
    shard being reopened (``--retry-failed``) first has its samples copied into the spool."""
    if done:
        reopen(files)
    found: Found = {}
    for name, where in scan(str(files.spool), repair=True).items():  # KEY.EXT, or an earlier KEY.HASH.EXT
        found[key_of(name)] = (member_name(name, os.path.splitext(name)[1]), where)
    return found


def reopen(files: ShardFiles) -> None:
    """Copy a done shard's samples into its spool, so it is rewritten like an unfinished one."""
    have = {key_of(n) for n in scan(str(files.spool), repair=True)}
    spool = TarAppender(str(files.spool))
    reader = MemberReader()
    try:
        if files.fmt == "files":
            _reopen_folder(files, have, spool)
        elif files.fmt == "webdataset":
            for name, where in scan(str(files.final)).items():
                if not name.endswith((".json", ".txt")) and key_of(name) not in have:
                    spool.append(name, reader.read(where))
        else:
            for batch in read_batches(str(files.final), ["path", "image"]):
                for row in batch:
                    name = os.path.basename(row["path"] or "")
                    if row["image"] is not None and key_of(name) not in have:
                        spool.append(name, row["image"])
    finally:
        spool.close()
        reader.close()


def _reopen_folder(files: ShardFiles, have: set[str], spool: TarAppender) -> None:
    """A done folder shard's files back into its spool (not its rows' ``KEY.json``/``KEY.txt``, which
    the shard writes again, nor a hidden ``.part`` a kill left)."""
    for path in sorted(files.final.iterdir()) if files.final.is_dir() else []:
        name = path.name
        if not name.startswith(".") and not name.endswith((".json", ".txt")) and key_of(name) not in have:
            spool.append(name, path.read_bytes())


def finish(
    files: ShardFiles,
    rows: Sequence[dict[str, Any]],
    found: Found,
    caption: str | None,
) -> dict[str, int]:
    """Make the shard final from its rows (in input order, one per row) and its spooled samples."""
    rows = [_located(row, found, files.final.name) for row in rows]
    if files.fmt != "parquet":  # a Parquet shard is its own metadata, images beside
        put(files, files.meta, lambda tmp: write_table(tmp, rows, COLUMNS))
    put(files, files.rows, lambda tmp: _write_rows(tmp, rows))
    reader = MemberReader()

    def fill(tmp: str) -> None:
        if files.fmt == "webdataset":
            write_tar(tmp, _tar_members(rows, found, caption, reader))
        else:
            write_table(tmp, rows, COLUMNS, blobs=lambda row: _blob(row, found, reader))

    try:
        if files.fmt == "files":  # a store holds datasets only (RunSpec.check_store): a local folder
            publish_folder(files.final, _tar_members(rows, found, caption, reader))
        else:
            put(files, files.final, fill)
    finally:
        reader.close()
    counts = {"rows": len(rows)}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    put(files, files.done, lambda tmp: Path(tmp).write_text(json.dumps(counts) + "\n", encoding="utf-8"))
    drop_leftovers(files)
    return counts


def publish_folder(folder: Path, members: Iterable[tuple[str, bytes]]) -> None:
    """A folder shard's files, each published whole (a hidden ``.NAME.PID.part``, then renamed): the
    members a tar would hold (``KEY.EXT``, ``KEY.json``, ``KEY.txt``). Written again whole on a rerun
    after a kill here, since the folder means nothing until the shard's done marker is written."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in members:
        publish(folder / name, _writer(body), folder / f".{name}.{os.getpid()}.part")


def _writer(body: bytes) -> Callable[[str], object]:
    return lambda tmp: Path(tmp).write_bytes(body)


def drop_leftovers(files: ShardFiles) -> None:
    """A done shard needs neither its spool nor its part manifest any more (nor, with a store, a copy
    of its shard file fetched back for a rewrite)."""
    if files.store is not None:
        files.final.unlink(missing_ok=True)
    files.spool.unlink(missing_ok=True)
    files.old_spool.unlink(missing_ok=True)
    (files.out / files.part).unlink(missing_ok=True)


def _write_rows(path: str, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "wb") as fh:
        for row in rows:
            fh.write(encode_row(row) + b"\n")


def _located(row: dict[str, Any], found: Found, shard: str) -> dict[str, Any]:
    """An ok row's path names the member its sample is stored as (one an earlier version spooled too)."""
    sample = found.get(row["key"]) if row["status"] == "ok" else None
    return row if sample is None else {**row, "path": f"{shard}/{sample[0]}"}


def _blob(row: dict[str, Any], found: Found, reader: MemberReader) -> bytes | None:
    sample = found.get(row["key"]) if row["status"] == "ok" else None
    return None if sample is None else reader.read(sample[1])


def _tar_members(
    rows: Sequence[dict[str, Any]], found: Found, caption: str | None, reader: MemberReader
) -> Iterator[tuple[str, bytes]]:
    """Per stored sample, in row order: KEY.EXT, KEY.json (its row) and, with a caption column, KEY.txt."""
    for row in rows:
        if row["status"] != "ok":
            continue
        name, where = found[row["key"]]
        yield name, reader.read(where)
        yield f"{row['key']}.json", encode_row(row)
        if caption is not None:
            value = row.get(caption)
            yield f"{row['key']}.txt", ("" if value is None else str(value)).encode("utf-8")
