"""A bucket prefix on any S3 service as a store, through aiobotocore (imported here alone, lazily: the
``s3`` extra). Chosen over obstore by docs/performance.md's "Object stores": the server bounds the upload
rate either way, and only the S3 API itself lets us abort a multipart upload on cancel and list the ones a
killed run left, which obstore does not expose.

Where and who come from where every AWS tool looks: ``AWS_ENDPOINT_URL`` (another S3 service than AWS),
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_PROFILE`` and the config files.
A file below ``multipart_above`` goes in one PUT; a larger one in parts of ``part_size``, ``parts_in_flight``
at a time, and the upload is aborted on any failure or cancel, so no object ever sits at a final key
partially: S3 shows an object only once its upload completes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError, UsageError
from .base import Store, check_key, join, unstoppable

MB = 1 << 20
MAX_PARTS = 10_000
MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchUpload")
Parts = list[dict[str, Any]]
Pairs = list[tuple[str, str]]
"""(key, upload id) of unfinished uploads."""
FATAL = ("NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403")


@contextlib.contextmanager
def _door(what: str) -> Iterator[None]:
    """Map botocore's exceptions (and the local file's) to ``StoreError`` with a sentence: a missing
    bucket or refused credentials stop the run; a missing key is marked ``missing``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = exc.response.get("Error", {}).get("Message") or code
        raise StoreError(f"{what}: {message}", fatal=code in FATAL, missing=code in MISSING) from exc
    except BotoCoreError as exc:  # no connection, a timeout, no credentials
        raise StoreError(f"{what}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"{what}: {exc.strerror or exc}") from exc


def _read_at(fd: int, offset: int, size: int, end: int) -> bytes:
    """One part of the local file; short means the file changed under us, which must not be published."""
    want = min(size, end - offset)
    data = os.pread(fd, want, offset)
    if len(data) != want:
        raise OSError(
            f"the file shrank while it was uploaded (part at {offset}: {len(data)} of {want} bytes)"
        )
    return data


def _split(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (bucket, ``some/prefix/``)."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3Store(Store):
    """The objects under ``s3://bucket/prefix``; one aiobotocore client, made on first use and bound to
    the event loop that made it (``aclose`` it on that loop)."""

    def __init__(
        self, url: str, *, multipart_above: int = 64 * MB, part_size: int = 16 * MB, parts_in_flight: int = 4
    ) -> None:
        try:
            import aiobotocore  # noqa: F401  (told now, not at the first upload)
        except ImportError as exc:
            raise UsageError("s3:// needs the s3 extra: pip install 'downloader[s3]'") from exc
        self.url = url
        self.bucket, self.prefix = _split(url)
        self.multipart_above = multipart_above
        self.part_size = part_size
        self.parts_in_flight = parts_in_flight
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def _s3(self) -> Any:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(retries={"mode": "standard", "max_attempts": 5}, read_timeout=120)
            # botocore reads AWS_DEFAULT_REGION and the config files, not AWS_REGION (what other tools set)
            region = os.environ.get("AWS_REGION") or None
            make = get_session().create_client("s3", region_name=region, config=config)
            with _door(f"could not open {self.url}"):
                self._client = await self._stack.enter_async_context(make)
        return self._client

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{join(self.prefix, key)}"

    async def put_file(self, local: Path, key: str, *, consume: bool = False) -> None:
        name = join(self.prefix, check_key(key))
        with _door(f"could not upload {local} to {self._where(key)}"):
            size = await asyncio.to_thread(os.path.getsize, local)
            if size <= self.multipart_above:
                body = await asyncio.to_thread(local.read_bytes)
                await (await self._s3()).put_object(Bucket=self.bucket, Key=name, Body=body)
            else:
                await self._multipart(local, name, size)
            if consume:
                await asyncio.to_thread(local.unlink)

    async def _multipart(self, local: Path, name: str, size: int) -> None:
        """Parts of the file, then complete; on any failure or cancel the upload is aborted before the
        exception goes on (a cancel waits for the abort: an upload left open is storage paid for)."""
        s3 = await self._s3()
        made = await s3.create_multipart_upload(Bucket=self.bucket, Key=name)
        upload = made["UploadId"]
        try:
            parts = await self._parts(local, name, upload, size)
            done = {"Parts": parts}
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload, MultipartUpload=done
            )
        except BaseException:  # a cancel too: an upload left open keeps its parts (and their cost)
            await unstoppable(self._abort(name, upload))
            raise

    async def _parts(self, local: Path, name: str, upload: str, size: int) -> Parts:
        """Every part, ``parts_in_flight`` at a time; the first failure cancels the others. Parts grow past
        ``part_size`` for a file that would need more than S3's 10,000."""
        s3 = await self._s3()
        gate = asyncio.Semaphore(self.parts_in_flight)
        step = max(self.part_size, -(-size // MAX_PARTS))

        async def one(number: int, offset: int) -> dict[str, Any]:
            async with gate:
                body = await asyncio.to_thread(_read_at, fd, offset, step, size)
                sent = await s3.upload_part(
                    Bucket=self.bucket, Key=name, UploadId=upload, PartNumber=number, Body=body
                )
                return {"PartNumber": number, "ETag": sent["ETag"]}

        fd = os.open(local, os.O_RDONLY)
        try:
            async with asyncio.TaskGroup() as group:
                offsets = range(0, size, step)
                tasks = [group.create_task(one(n, off)) for n, off in enumerate(offsets, 1)]
        except BaseExceptionGroup as failed:  # the first part's failure is the news, mapped at the door
            raise failed.exceptions[0] from None
        finally:
            os.close(fd)
        return [t.result() for t in tasks]

    async def _abort(self, name: str, upload: str) -> None:
        with contextlib.suppress(Exception):  # the upload may be gone already; the first error is the news
            await (await self._s3()).abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload)

    async def exists(self, key: str) -> bool:
        try:
            with _door(f"could not look at {self._where(key)}"):
                await (await self._s3()).head_object(
                    Bucket=self.bucket, Key=join(self.prefix, check_key(key))
                )
        except StoreError as err:
            if err.missing:
                return False
            raise
        return True

    async def get_bytes(self, key: str) -> bytes:
        with _door(f"could not read {self._where(key)}"):
            got = await (await self._s3()).get_object(
                Bucket=self.bucket, Key=join(self.prefix, check_key(key))
            )
            async with got["Body"] as body:
                data: bytes = await body.read()
        return data

    async def get_file(self, key: str, local: Path) -> None:
        """Stream the object into ``local`` through a temporary name beside it."""
        tmp = local.with_name(f".{local.name}.{os.getpid()}.part")
        with _door(f"could not copy {self._where(key)} to {local}"):
            got = await (await self._s3()).get_object(
                Bucket=self.bucket, Key=join(self.prefix, check_key(key))
            )
            try:
                with tmp.open("wb") as out:
                    async with got["Body"] as body:
                        async for chunk in body.iter_chunks(MB):
                            out.write(chunk)
                os.replace(tmp, local)  # whole or not at all: no reader sees a half copy
            finally:
                tmp.unlink(missing_ok=True)

    async def list(self, prefix: str = "") -> list[str]:
        keys = []
        with _door(f"could not list {self._where(prefix)}"):
            async for page in self._pages("list_objects_v2", prefix):
                keys += [o["Key"].removeprefix(self.prefix) for o in page.get("Contents", [])]
        return sorted(keys)

    async def _pages(self, operation: str, prefix: str) -> AsyncIterator[dict[str, Any]]:
        pages = (await self._s3()).get_paginator(operation)
        async for page in pages.paginate(Bucket=self.bucket, Prefix=join(self.prefix, prefix)):
            yield page

    async def delete(self, key: str) -> None:
        with _door(f"could not delete {self._where(key)}"):
            await (await self._s3()).delete_object(Bucket=self.bucket, Key=join(self.prefix, check_key(key)))

    async def abort_uploads(self, prefix: str = "") -> int:
        """Abort the incomplete multipart uploads under ``prefix`` (S3 lists them: ListMultipartUploads)."""
        left: Pairs = []
        with _door(f"could not list the unfinished uploads under {self._where(prefix)}"):
            async for page in self._pages("list_multipart_uploads", prefix):
                left += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
            for name, upload in left:
                await (await self._s3()).abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload)
        return len(left)

    async def aclose(self) -> None:
        self._client = None
        await self._stack.aclose()
