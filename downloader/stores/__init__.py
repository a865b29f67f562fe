"""Where a dataset's final files are published, chosen by the output's URL: a folder (a path or
``file://``) or a bucket prefix on any S3 service (``s3://bucket/prefix``; Google Cloud Storage and
others through their S3-compatible endpoint, ``AWS_ENDPOINT_URL``). One protocol (``Store``), two
implementations, so the dataset code has one publish path (``publish``); ``blocking`` gives the same
calls to synchronous code.

And the other way: ``fetched`` makes a list kept in a bucket (``s3://bucket/list.txt``, or a glob of
Parquet parts) a local path that ``inputs`` reads like any other list."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from ..errors import StoreError, UsageError
from .base import Store
from .blocking import BlockingStore
from .folder import LocalStore

__all__ = [
    "BlockingStore",
    "LocalStore",
    "Store",
    "StoreError",
    "blocking",
    "fetched",
    "is_remote",
    "open_store",
    "publish",
]
SCHEMES = ("s3://",)


def is_remote(url: str) -> bool:
    """Whether ``url`` names a bucket rather than a folder."""
    return url.startswith(SCHEMES)


def open_store(url: str) -> Store:
    """The store at ``url``: ``s3://bucket[/prefix]``, else a folder (a path or ``file://``). Another
    scheme (``gs://``, ``az://``...) is refused with the way to reach it."""
    if url.startswith("s3://"):
        if not url.removeprefix("s3://").split("/")[0]:
            raise UsageError(f"{url}: an s3:// URL names a bucket (s3://bucket/prefix)")
        from .s3 import S3Store

        return S3Store(url)
    scheme, sep, _rest = url.partition("://")
    if sep and scheme != "file":
        raise UsageError(
            f"{url}: {scheme}:// is not a store here; use s3:// with AWS_ENDPOINT_URL set to the service's "
            "S3-compatible endpoint (Google Cloud Storage, R2, MinIO, SeaweedFS), or a folder"
        )
    return LocalStore(Path(url.removeprefix("file://")))


def publish(store: BlockingStore, key: str, fill: Callable[[str], object], scratch: Path) -> None:
    """``shards.publish`` on any store: ``fill`` writes the file whole under a temporary name in
    ``scratch`` (a local folder; for a folder store on the same file system, the rename is the publish
    and nothing is copied), which then goes to ``key`` at once. Nothing is left in ``scratch``."""
    tmp = scratch / f".{PurePosixPath(key).name}.{os.getpid()}.part"
    try:
        fill(str(tmp))
        store.put_file(tmp, key, consume=True)
    finally:
        tmp.unlink(missing_ok=True)


def blocking(url: str) -> BlockingStore:
    """The store at ``url`` for synchronous code (``with blocking(url) as store: store.put_file(...)``)."""
    return BlockingStore(lambda: open_store(url))


@contextlib.contextmanager
def fetched(url: str) -> Iterator[Path]:
    """A local path to read the list at ``url`` from, for synchronous code before a run (``inputs``
    reads paths): itself for a local path; for ``s3://b/list.txt`` a temporary copy (its name kept, so
    the format is told by its suffix); for a glob (``s3://b/parts/*.parquet``) a temporary folder holding
    every match. Removed on the way out."""
    if not is_remote(url):
        yield Path(url)
        return
    folder, _, name = url.rpartition("/")
    with blocking(folder) as store, tempfile.TemporaryDirectory(prefix="downloader-list-") as scratch:
        keys = [name]
        if any(c in name for c in "*?["):
            keys = [k for k in store.list() if "/" not in k and fnmatch.fnmatchcase(k, name)]
            if not keys:
                raise StoreError(f"nothing in {folder}/ matches {name}", missing=True)
        for key in keys:
            store.get_file(key, Path(scratch) / PurePosixPath(key).name)
        yield Path(scratch) if keys != [name] else Path(scratch) / name
