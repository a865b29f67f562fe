"""The two seams later features plug into: a stage between the checks and the writer, and the output a
backend writes through. Both are exercised for real, on every backend, with a toy stage."""

from __future__ import annotations

import hashlib
from pathlib import Path

from aiohttp.test_utils import TestServer

from downloader.app.assemble import arun, build_engine
from downloader.errors import NotImage
from downloader.sources import jobs_from_urls
from downloader.spec import RunSpec
from downloader.stages import Passthrough, Sample
from tests.faults import JPEG, PNG
from tests.helpers import manifest_rows

TAG = b"staged:"


class Tagging:
    """A stage that changes the bytes (so the test can see they went through it) and their type."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def process(self, sample: Sample) -> Sample:
        self.seen.append(len(sample.body))
        if sample.body.startswith(b"\x89PNG"):
            raise NotImage("this stage takes no PNG")
        return Sample(TAG + sample.body, ".tagged", {"tagged": True})

    async def aprocess(self, sample: Sample) -> Sample:
        return self.process(sample)


async def _run(
    backend: str, out: Path, urls: list[str], stage: Tagging | Passthrough, **options: object
) -> None:
    spec = RunSpec.from_options(out=out, backend=backend, backoff=0.01, **options)
    await arun(build_engine(spec, stage=stage), jobs_from_urls(urls, spec.naming))


async def test_a_stage_gets_each_whole_body_and_its_output_lands(
    backend: str, origin: TestServer, tmp_path: Path
) -> None:
    stage, out = Tagging(), tmp_path / "out"
    urls = [str(origin.make_url("/img/a/image-00.jpg")), str(origin.make_url("/img/b/image-02.png"))]
    await _run(backend, out, urls, stage, fix_ext=True)
    assert sorted(stage.seen) == sorted([len(JPEG), len(PNG)])  # whole bodies, once each
    rows = {r["url"]: r for r in manifest_rows(out)}
    ok, rejected = rows[urls[0]], rows[urls[1]]
    assert ok["status"] == "ok" and ok["path"].endswith(".tagged")  # the stage's type names the file
    stored = (out / ok["path"]).read_bytes()
    assert stored == TAG + JPEG
    assert ok["bytes"] == len(stored) and ok["sha256"] == hashlib.sha256(stored).hexdigest()
    assert ok["tagged"] is True  # what the stage learned lands in the row
    assert rejected["status"] == "failed" and rejected["kind"] == "not_image"
    assert "no PNG" in rejected["error"]
    assert sorted(p.name for p in out.iterdir() if p.suffix not in (".jsonl", ".json")) == [
        Path(ok["path"]).name
    ]  # the rejected body left nothing, not even a .part


async def test_the_passthrough_stage_changes_nothing(
    backend: str, origin: TestServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    url = str(origin.make_url("/img/a/image-00.jpg"))
    await _run(backend, out, [url], Passthrough())
    (row,) = manifest_rows(out)
    assert row["status"] == "ok" and (out / row["path"]).read_bytes() == JPEG
