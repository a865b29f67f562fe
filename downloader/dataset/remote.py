"""A dataset whose OUT is an object store (``-o s3://bucket/prefix``): its shards are made in a local
work folder exactly as in a folder OUT (spool, part manifest, lock, state database), and each final file
is then published to the store at the same relative key, whole or not at all (one PUT, or a multipart
upload completed, or aborted). The store is the truth: a shard is done when its done marker is there,
and that marker is published last. The run's record (``run.json``), its plan and its totals go there too,
written whole, and are read back by a rerun or a worker on another machine.

Each process keeps one connection per store (an S3 client is slow to make, a shard makes several calls);
a forked worker opens its own, since a client cannot cross a fork.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..spec import Output
from ..stores import BlockingStore, blocking

_OPEN: dict[tuple[int, str], BlockingStore] = {}
_OPENING = threading.Lock()
"""Two threads of one process (two runs in one program) asking at once must not open two connections."""


def store_at(url: str) -> BlockingStore:
    """This process's connection to the store at ``url``, opened on first use, closed at exit."""
    with _OPENING:
        found = _OPEN.get((os.getpid(), url))
        if found is None:
            if not _OPEN:
                atexit.register(_close_all)
            found = _OPEN[(os.getpid(), url)] = blocking(url)
    return found


def _close_all() -> None:
    for (pid, url), store in list(_OPEN.items()):
        if pid == os.getpid():  # a forked child's copy of its parent's connection is not its own
            store.close()
        del _OPEN[(pid, url)]


def key_of(out: Path, path: Path) -> str:
    """The key of a file of the work folder ``out`` in the store: its relative path."""
    return path.relative_to(out).as_posix()


def put_copy(url: str, out: Path, path: Path) -> None:
    """Publish a small final file (a shard's rows, its metadata, its marker; the run's record) that
    stays in the work folder too: ``downloader failures``, the archive and a rerun read it there."""
    store_at(url).put_file(path, key_of(out, path))


def put_moved(url: str, out: Path, temp: Path, final: Path) -> None:
    """Publish the filled ``temp`` as ``final``'s key, the local file given away (a shard is large: the
    work folder does not keep a second copy of the dataset)."""
    try:
        store_at(url).put_file(temp, key_of(out, final), consume=True)
    finally:
        temp.unlink(missing_ok=True)


def read_json(url: str, out: Path, path: Path) -> dict[str, Any] | None:
    """The JSON object stored at ``path``'s key, or None when there is none (or it is not JSON)."""
    try:
        data = store_at(url).get_bytes(key_of(out, path))
    except StoreError as exc:
        if exc.missing:
            return None
        raise
    try:
        found: dict[str, Any] = json.loads(data)
    except ValueError:
        return None
    return found


def pull(url: str, out: Path, path: Path) -> bool:
    """Copy ``path``'s object from the store into the work folder, when the store has it; whether it did."""
    try:
        store_at(url).get_file(key_of(out, path), path)
    except StoreError as exc:
        if exc.missing:
            return False
        raise
    return True


def abort_shard(url: str, name: str, own: str) -> int:
    """Clear what a killed upload of shard ``name`` left in the store (incomplete multipart uploads of
    ``NAME.*`` and ``OWN/NAME.*``); how many. Called under the shard's lock, so no live upload is hit."""
    store = store_at(url)
    return store.abort_uploads(f"{name}.") + store.abort_uploads(f"{own}/{name}.")


RECORDS = ("run.json", "_shards/plan.json")
"""The run's own files a store keeps beside the shards: what decides paths and contents, and the plan."""


def pull_records(output: Output) -> None:
    """Before a run to a store: its record and plan as the store has them, copied into the work folder
    (another machine, or an emptied work folder, sees the run the store holds)."""
    if output.store is None:
        return
    for name in RECORDS:
        (output.out / name).parent.mkdir(parents=True, exist_ok=True)
        pull(output.store, output.out, output.out / name)


def push_record(output: Output, name: str) -> None:
    """A run file of the work folder (``run.json``, the plan, ``stats.json``) published to the store."""
    if output.store is not None and (output.out / name).is_file():
        put_copy(output.store, output.out, output.out / name)
