"""The ledger alone: which rows need no request (invalid, duplicate, done before) and which path a job
takes when plain names collide, over real output folders and manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from downloader.engine.ledger import Ledger
from downloader.manifest import MANIFEST, ManifestWriter
from downloader.models import Job, Result, Stats, Status
from downloader.sources import jobs_from_urls, make_job
from downloader.spec import RunSpec


def _open(out: Path, **options: Any) -> tuple[Ledger, RunSpec]:
    spec = RunSpec.from_options(out=out, **options)
    ledger = Ledger(spec, Stats())
    ledger.open(out)
    return ledger, spec


def _jobs(spec: RunSpec, *urls: str) -> list[Job]:
    return list(jobs_from_urls(urls, spec.naming))


def _earlier_run(out: Path, job: Job, *, on_disk: bool = True) -> None:
    """A manifest whose row says ``job`` was stored, and (with ``on_disk``) its file."""
    writer = ManifestWriter(out / MANIFEST)
    writer.write(Result(job.url, job.line, Status.OK, path=job.path))
    writer.close()
    if on_disk:
        (out / job.path).parent.mkdir(parents=True, exist_ok=True)
        (out / job.path).write_bytes(b"stored")


def test_a_bad_row_is_settled_with_its_kind_and_sentence(tmp_path: Path) -> None:
    ledger, spec = _open(tmp_path)
    (bad,) = _jobs(spec, "not a url")
    row = ledger.settle(bad)
    assert row is not None and row.status is Status.INVALID
    assert row.kind == bad.error_kind and row.error == bad.error and row.kind


def test_a_url_seen_before_is_a_duplicate_that_names_the_first_copy(tmp_path: Path) -> None:
    ledger, spec = _open(tmp_path)
    first, again, other = _jobs(spec, "http://a.test/x.jpg", "HTTP://A.TEST/x.jpg", "http://a.test/y.jpg")
    assert ledger.settle(first) is None and ledger.settle(other) is None
    row = ledger.settle(again)
    assert row is not None and row.status is Status.DUPLICATE
    assert row.path == first.path and row.error is None and row.line == 2
    ledger.close()


def test_a_duplicate_named_by_its_row_points_nowhere_and_says_why(tmp_path: Path) -> None:
    ledger, spec = _open(tmp_path)
    first = make_job(1, "http://a.test/x.jpg", spec.naming, stem="cat")
    again = make_job(2, "http://a.test/x.jpg", spec.naming, stem="dog")
    assert ledger.settle(first) is None
    row = ledger.settle(again)
    assert row is not None and row.status is Status.DUPLICATE
    assert row.path is None and row.error == "same URL as an earlier line"


def test_a_url_an_earlier_run_stored_is_skipped_while_its_file_is_there(tmp_path: Path) -> None:
    spec = RunSpec.from_options(out=tmp_path)
    done, missing, new = _jobs(spec, "http://a.test/1.jpg", "http://a.test/2.jpg", "http://a.test/3.jpg")
    _earlier_run(tmp_path, done)
    _earlier_run(tmp_path, missing, on_disk=False)
    ledger, spec = _open(tmp_path)
    row = ledger.settle(_jobs(spec, done.url)[0])
    assert row is not None and row.status is Status.SKIPPED and row.path == done.path
    assert ledger.settle(_jobs(spec, missing.url)[0]) is None  # its file is gone: fetched again
    assert ledger.settle(_jobs(spec, new.url)[0]) is None
    overwriting, spec = _open(tmp_path, overwrite=True)
    assert overwriting.settle(_jobs(spec, done.url)[0]) is None


def test_a_plain_name_another_url_holds_takes_the_digest(tmp_path: Path) -> None:
    spec = RunSpec.from_options(out=tmp_path, names="plain")
    (stored,) = _jobs(spec, "http://a.test/old/cat.jpg")
    _earlier_run(tmp_path, stored)  # an earlier run's file holds cat.jpg
    ledger, spec = _open(tmp_path, names="plain")
    first, second = _jobs(spec, "http://b.test/cat.jpg", "http://c.test/dog.jpg")
    assert ledger.settle(first) is None and ledger.settle(second) is None
    assert first.path != "cat.jpg" and first.path.startswith("cat.") and first.path.endswith(".jpg")
    assert first.note == f"cat.jpg is another URL's file; saved as {first.path}"
    assert second.path == "dog.jpg" and second.note is None
    assert ledger.stats.renamed == 1
    ledger.close()
