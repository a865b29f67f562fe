"""The run's ledger of URLs: which rows need no request at all (an invalid row, a duplicate URL, a URL an
earlier run completed) and which path each job may take when plain names can collide.

It knows nothing of scheduling: the engine asks ``settle`` once per job as it reads the job ahead, and
queues only the jobs it returns None for. Its indexes are ``keys.DigestIndex`` (8-byte digests, spilled
to SQLite under OUT past a size), never sets of URL strings.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..keys import DigestIndex, PathClaims
from ..manifest import MANIFEST, earlier_outcomes
from ..models import BUCKETS, Job, Result, Stats, Status
from ..names import with_digest
from ..spec import RunSpec

log = logging.getLogger("downloader")

SHOWN_RENAMES = 5
"""Taken names warned about one by one; the rest in one line (each row's ``note`` says it anyway)."""


class Ledger:
    """Resume, duplicates and name claims for one run; ``open`` with the output folder, then ``settle``
    each job, then ``close``. Renames are counted in ``stats.renamed``."""

    def __init__(self, spec: RunSpec, stats: Stats) -> None:
        self.stats = stats
        self._overwrite = spec.output.overwrite
        self._part = spec.performance.part
        self._dedup = spec.dataset.dedup != "none"
        self._shared_names = spec.output.layout != BUCKETS and spec.output.names == "plain"
        self._claims: PathClaims | None = None
        self._seen = DigestIndex()
        self._done = DigestIndex()
        self._resuming = False
        """Whether an earlier run completed any URL: without, no row is looked up in ``_done``."""

    def open(self, out: Path) -> None:
        """The earlier run's outcomes (and the paths they hold), and an empty duplicate index."""
        self._claims = PathClaims(out) if self._shared_names else None
        if not self._overwrite:
            self._done = earlier_outcomes(out / MANIFEST, out, part=self._earlier_share, claims=self._claims)
        self._resuming = len(self._done) > 0
        self._seen = DigestIndex(out)

    @property
    def _earlier_share(self) -> tuple[int, int] | None:
        """Which earlier rows this process needs: its ``--procs`` share, or every row with plain names,
        which are dealt to the workers by path, not by URL digest (``sources.make_job``)."""
        return None if self._shared_names else self._part

    def settle(self, job: Job) -> Result | None:
        """A result without a request: an invalid row, a duplicate, or a URL an earlier run completed.
        None: the job is to be fetched (under another path if its plain name is another URL's)."""
        if job.error:
            return Result(
                job.url, job.line, Status.INVALID, kind=job.error_kind, error=job.error, extra=job.extra
            )
        if self._dedup and not self._seen.add(job.digest):
            if job.url_named:  # the same URL names the same file: the row points at it
                return Result(job.url, job.line, Status.DUPLICATE, path=job.path, extra=job.extra)
            note = "same URL as an earlier line"
            return Result(job.url, job.line, Status.DUPLICATE, error=note, extra=job.extra)
        if self._resuming and job.digest in self._done:
            return Result(job.url, job.line, Status.SKIPPED, path=job.path, extra=job.extra)
        if job.may_collide and self._claims is not None and not self._claims.claim(job.path, job.digest):
            self._rename(job)
        return None

    def _rename(self, job: Job) -> None:
        """Another URL holds this job's path: save it under the path plus its URL's digest, and say so."""
        planned = job.path
        job.path = with_digest(planned, job.digest)
        assert self._claims is not None
        self._claims.claim(job.path, job.digest)
        job.note = f"{planned} is another URL's file; saved as {job.path}"
        self.stats.renamed += 1
        if self.stats.renamed <= SHOWN_RENAMES:
            log.warning("name taken: %s (%s) saved as %s", planned, job.url, job.path)
        if self.stats.renamed == SHOWN_RENAMES + 1:
            log.warning("more names taken: each row's 'note' in the manifest says so")

    def close(self) -> None:
        """Drop the indexes' SQLite files and the claims' (if any spilled)."""
        self._seen.close()
        self._done.close()
        if self._claims is not None:
            self._claims.close()
