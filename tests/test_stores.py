"""The store layer's contract, held on a folder and on a real S3 server (SeaweedFS on loopback, started
once for the session): a published object is whole or absent, a failed, cancelled or killed upload leaves
nothing at its key, and ``abort_uploads`` clears what a killed writer left."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from downloader.errors import StoreError, UsageError
from downloader.inputs import jobs_from_source
from downloader.stores import LocalStore, Store, blocking, fetched, open_store, publish
from downloader.stores.s3 import S3Store
from tests.s3server import BUCKET, SeaweedS3, raw_client

MB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


def small_parts(store: Store) -> Store:
    """Multipart from 5 MB (the S3 minimum part), one part at a time: a large file is slow enough to be
    caught mid-upload."""
    if isinstance(store, S3Store):
        store.multipart_above, store.part_size, store.parts_in_flight = 5 * MB, 5 * MB, 1
    return store


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = str(tmp_path / "store") if request.param == "local" else request.getfixturevalue("s3_url")
    async with small_parts(open_store(url)) as opened:
        yield opened


def open_uploads(store: Store, server: SeaweedS3 | None = None) -> list[str]:
    """What a killed or failed writer could have left: unfinished uploads (S3) or temporary files."""
    if isinstance(store, S3Store):
        assert server is not None
        found = raw_client(server).list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
        return [u["Key"] for u in found.get("Uploads", [])]
    assert isinstance(store, LocalStore)
    return [p.name for p in store.root.rglob("*.part")] if store.root.is_dir() else []


def server_of(request: pytest.FixtureRequest, store: Store) -> SeaweedS3 | None:
    return request.getfixturevalue("seaweed_server") if isinstance(store, S3Store) else None


def blob(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


async def test_put_get_list_exists_delete(store: Store, tmp_path: Path) -> None:
    data = blob(tmp_path / "one.tar", 3000)
    await store.put_file(tmp_path / "one.tar", "00000.tar")
    await store.put_file(tmp_path / "one.tar", "_shards/00000.done.json")
    assert await store.exists("00000.tar") and not await store.exists("00001.tar")
    assert await store.get_bytes("00000.tar") == data
    assert await store.list() == ["00000.tar", "_shards/00000.done.json"]
    assert await store.list("_shards/") == ["_shards/00000.done.json"]
    await store.get_file("00000.tar", tmp_path / "back.tar")
    assert (tmp_path / "back.tar").read_bytes() == data
    await store.delete("00000.tar")
    await store.delete("00000.tar")  # already gone: no error
    assert await store.list() == ["_shards/00000.done.json"]
    with pytest.raises(StoreError, match=r"00000\.tar") as err:
        await store.get_bytes("00000.tar")
    assert err.value.missing and err.value.kind == "write"


async def test_consume_gives_the_file_away(store: Store, tmp_path: Path) -> None:
    data = blob(tmp_path / "shard.tar", 1000)
    await store.put_file(tmp_path / "shard.tar", "00000.tar", consume=True)
    assert not (tmp_path / "shard.tar").exists()
    assert await store.get_bytes("00000.tar") == data


async def test_a_large_file_is_whole(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Above the threshold the bucket gets a multipart upload (its ETag counts the parts)."""
    data = blob(tmp_path / "big.tar", 12 * MB + 5)
    await store.put_file(tmp_path / "big.tar", "00000.tar")
    assert await store.get_bytes("00000.tar") == data
    if isinstance(store, S3Store):
        head = raw_client(request.getfixturevalue("seaweed_server")).head_object(
            Bucket=store.bucket, Key=f"{store.prefix}00000.tar"
        )
        assert head["ETag"].strip('"').endswith("-3")


async def test_a_missing_source_leaves_nothing(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with pytest.raises(StoreError, match="could not"):
        await store.put_file(tmp_path / "absent.tar", "00000.tar")
    assert await store.list() == [] and open_uploads(store, server_of(request, store)) == []


async def wait_mid_upload(store: Store, server: SeaweedS3 | None, timeout: float = 20.0) -> None:
    """Until a bucket shows the unfinished upload (the store is mid-upload); a folder's copy is too quick
    to catch, so there it is one turn of the loop."""
    if server is None:
        await asyncio.sleep(0)
        return
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(open_uploads, store, server):
        assert time.monotonic() < deadline, "the upload never started"
        await asyncio.sleep(0.02)


async def test_a_cancel_mid_upload_leaves_nothing(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = server_of(request, store)
    blob(tmp_path / "big.tar", 40 * MB)
    task = asyncio.create_task(store.put_file(tmp_path / "big.tar", "00000.tar"))
    await wait_mid_upload(store, server)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.list() == [] and open_uploads(store, server) == []


async def test_a_source_that_shrinks_mid_upload_is_not_published(
    s3_url: str, tmp_path: Path, seaweed_server: SeaweedS3
) -> None:
    """The local file changes under the upload (its later parts read short): the upload is aborted."""
    blob(tmp_path / "big.tar", 40 * MB)
    async with small_parts(open_store(s3_url)) as store:
        task = asyncio.create_task(store.put_file(tmp_path / "big.tar", "00000.tar"))
        await wait_mid_upload(store, seaweed_server)
        os.truncate(tmp_path / "big.tar", 6 * MB)
        with pytest.raises(StoreError, match="shrank") as err:
            await task
        assert err.value.kind == "write"
        assert await store.list() == [] and open_uploads(store, seaweed_server) == []


async def test_abort_uploads_clears_what_a_killed_writer_left(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = server_of(request, store)
    leave_unfinished(store, server, "a/00000.tar")
    leave_unfinished(store, server, "b/00001.tar")
    assert len(open_uploads(store, server)) == 2
    assert await store.abort_uploads("a/") == 1
    assert len(open_uploads(store, server)) == 1
    assert await store.abort_uploads() == 1
    assert open_uploads(store, server) == [] and await store.list() == []


def leave_unfinished(store: Store, server: SeaweedS3 | None, key: str) -> None:
    """What a writer killed mid-publish leaves: an upload begun with a part sent, or a temporary file."""
    if isinstance(store, S3Store):
        assert server is not None
        s3, name = raw_client(server), f"{store.prefix}{key}"
        upload = s3.create_multipart_upload(Bucket=store.bucket, Key=name)["UploadId"]
        s3.upload_part(Bucket=store.bucket, Key=name, UploadId=upload, PartNumber=1, Body=b"x" * MB)
        return
    assert isinstance(store, LocalStore)
    final = store.root / key
    final.parent.mkdir(parents=True, exist_ok=True)
    final.with_name(f".{final.name}.4242.part").write_bytes(b"x" * MB)


KILLED = """
import asyncio, sys
from pathlib import Path
from downloader.stores import open_store

async def main():
    store = open_store(sys.argv[1])
    store.multipart_above, store.part_size, store.parts_in_flight = 5 << 20, 5 << 20, 1
    await store.put_file(Path(sys.argv[2]), "00000.tar")

asyncio.run(main())
"""


async def test_a_kill_mid_upload_then_abort_uploads_leaves_nothing(
    s3_url: str, tmp_path: Path, seaweed_server: SeaweedS3
) -> None:
    blob(tmp_path / "big.tar", 60 * MB)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = textwrap.dedent(KILLED)
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, s3_url, str(tmp_path / "big.tar"), env=env
    )
    async with S3Store(s3_url) as store:
        try:
            await wait_mid_upload(store, seaweed_server)
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            await writer.wait()
        assert open_uploads(store, seaweed_server) == [f"{store.prefix}00000.tar"]
        assert await store.abort_uploads() == 1
        assert await store.list() == [] and open_uploads(store, seaweed_server) == []


def test_a_list_in_a_bucket_is_read_as_a_local_file(s3_url: str, tmp_path: Path) -> None:
    (tmp_path / "urls.txt").write_text("http://127.0.0.1:9/a.jpg\nhttp://127.0.0.1:9/b.jpg\n")
    (tmp_path / "p.parquet").write_bytes(b"PAR1")
    with blocking(s3_url) as store:
        store.put_file(tmp_path / "urls.txt", "lists/urls.txt")
        for name in ("part-0.parquet", "part-1.parquet", "other.txt"):
            store.put_file(tmp_path / "p.parquet", f"lists/{name}")
    with fetched(f"{s3_url}/lists/urls.txt") as path:
        assert path.name == "urls.txt"
        assert [job.url for job in jobs_from_source(str(path))] == [
            "http://127.0.0.1:9/a.jpg",
            "http://127.0.0.1:9/b.jpg",
        ]
    assert not path.exists()
    with fetched(f"{s3_url}/lists/part-*.parquet") as folder:
        assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet", "part-1.parquet"]
    with pytest.raises(StoreError, match="matches"), fetched(f"{s3_url}/lists/*.csv"):
        pass
    with fetched(str(tmp_path / "urls.txt")) as local:
        assert local == tmp_path / "urls.txt"


async def test_refused_credentials_and_a_missing_bucket_stop_the_run(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob(tmp_path / "one.tar", 100)
    async with open_store(s3_url.replace(BUCKET, "no-such-bucket", 1)) as store:
        with pytest.raises(StoreError, match="no-such-bucket") as err:
            await store.put_file(tmp_path / "one.tar", "00000.tar")
        assert err.value.fatal
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    async with open_store(s3_url) as store:
        with pytest.raises(StoreError) as err:
            await store.put_file(tmp_path / "one.tar", "00000.tar")
        assert err.value.fatal


def test_urls_and_keys_are_checked(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    with pytest.raises(UsageError, match="S3-compatible"):
        open_store("gs://bucket/prefix")
    with pytest.raises(UsageError, match="names a bucket"):
        open_store("s3:///prefix")
    store = open_store(str(tmp_path))
    for bad in ("", "/abs", "../up", "a//b", "a/./b"):
        with pytest.raises(UsageError, match="not a store key"):
            asyncio.run(store.exists(bad))


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_blocking_calls_from_synchronous_code(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = str(tmp_path / "store") if kind == "local" else request.getfixturevalue("s3_url")
    data = blob(tmp_path / "one.tar", 2000)
    with blocking(url) as store:
        store.put_file(tmp_path / "one.tar", "_shards/00000.jsonl")
        assert store.exists("_shards/00000.jsonl") and store.list() == ["_shards/00000.jsonl"]
        assert store.get_bytes("_shards/00000.jsonl") == data
        store.delete("_shards/00000.jsonl")
        assert store.list() == [] and store.abort_uploads() == 0
        with pytest.raises(StoreError):
            store.get_bytes("_shards/00000.jsonl")


def test_an_interrupt_mid_upload_aborts_it(s3_url: str, tmp_path: Path, seaweed_server: SeaweedS3) -> None:
    """Ctrl-C while a synchronous caller waits: the upload is aborted before the interrupt goes on."""
    blob(tmp_path / "big.tar", 40 * MB)
    with blocking(s3_url) as store:
        small_parts(store.store)

        def interrupt_once_begun() -> None:
            for _ in range(1000):  # only once begun: an interrupt outside pytest.raises stops the session
                if open_uploads(store.store, seaweed_server):
                    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                    return
                time.sleep(0.02)

        threading.Thread(target=interrupt_once_begun, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            store.put_file(tmp_path / "big.tar", "00000.tar")
        assert store.list() == [] and open_uploads(store.store, seaweed_server) == []


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_publish_fills_then_puts_at_once(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The dataset's publish step on either store: the file is filled aside, then appears whole; a fill
    that fails publishes nothing and leaves nothing."""
    url = str(tmp_path / "out") if kind == "local" else request.getfixturevalue("s3_url")
    scratch = tmp_path / "out" / "_shards"  # beside the final files, as a shard's spool is
    scratch.mkdir(parents=True)

    def broken(path: str) -> None:
        Path(path).write_bytes(b"half")
        raise OSError("the disk went away")

    with blocking(url) as store:
        publish(store, "_shards/00000.done.json", lambda path: Path(path).write_text("{}"), scratch)
        with pytest.raises(OSError, match="went away"):
            publish(store, "00000.tar", broken, scratch)
        assert store.get_bytes("_shards/00000.done.json") == b"{}"
        assert store.list() == ["_shards/00000.done.json"] and store.abort_uploads() == 0
    assert [p.name for p in scratch.iterdir()] == (["00000.done.json"] if kind == "local" else [])
