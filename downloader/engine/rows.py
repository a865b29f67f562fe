"""The rows a job can end as once the engine took it up: stored, failed, or not started. Plain functions of
the job and what happened to it, so the scheduler and the attempts build a row the same way."""

from __future__ import annotations

import time

from ..errors import DownloadError
from ..models import Fetched, Job, Result, Status


def success(job: Job, fetched: Fetched, attempts: int, start: float) -> Result:
    """The row of a stored URL. Positional (in ``Result``'s field order): half the cost of keywords."""
    note = job.note
    meta = fetched.meta
    return Result(
        job.url,
        job.line,
        Status.OK,
        fetched.path,
        None,  # kind
        fetched.http_status,
        fetched.bytes,
        fetched.sha256,
        fetched.content_type,
        attempts,
        time.monotonic() - start,  # elapsed_s
        fetched.ttfb_s,
        None,  # error
        job.extra,
        meta if note is None else {**(meta or {}), "note": note},
    )


def failure(job: Job, err: DownloadError, attempts: int, elapsed: float) -> Result:
    """The row of a URL given up on: the error's kind and sentence, and the path note if it had one."""
    return Result(
        job.url,
        job.line,
        Status.FAILED,
        path=None,
        kind=err.kind,
        http_status=err.http_status,
        content_type=err.content_type,
        attempts=attempts,
        elapsed_s=elapsed,
        error=str(err),
        extra=job.extra,
        meta=None if job.note is None else {"note": job.note},
    )


def not_started(job: Job, why: str) -> Result:
    """The row of a URL the run reached but stopped before (or while) fetching: not a failure."""
    return Result(job.url, job.line, Status.NOT_STARTED, error=why, extra=job.extra)
