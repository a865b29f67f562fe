"""The files output's small-body path: batched writes, a cancel that waits for its write, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from downloader.errors import WriteError
from downloader.models import Stored
from downloader.writers.files import FilesOutput


async def save(output: FilesOutput, rel: str, body: bytes) -> Stored:
    writer = output.open(rel)
    await writer.write(body[:3])
    await writer.write(body[3:])
    return await writer.commit(".png")


async def test_small_bodies_finishing_together_all_land(tmp_path: Path) -> None:
    output = FilesOutput(tmp_path)
    stored = await asyncio.gather(*(save(output, f"d{i % 3}/f{i}.png", b"body%d" % i) for i in range(50)))
    assert [s.path for s in stored] == [f"d{i % 3}/f{i}.png" for i in range(50)]
    for i in range(50):
        assert (tmp_path / f"d{i % 3}/f{i}.png").read_bytes() == b"body%d" % i
    assert not list(tmp_path.rglob("*.part"))


async def test_a_cancel_during_the_write_waits_for_it_and_keeps_the_file(tmp_path: Path) -> None:
    output = FilesOutput(tmp_path)
    task = asyncio.create_task(save(output, "a.png", b"0123456789"))
    for _ in range(3):  # into commit: the body is queued, its hop not yet landed
        await asyncio.sleep(0)
    task.cancel()
    stored = await task  # as before: the cancel is absorbed once the file is complete
    assert stored.path == "a.png"
    assert (tmp_path / "a.png").read_bytes() == b"0123456789"
    assert not (tmp_path / "a.png.part").exists()


async def test_a_failed_write_raises_and_leaves_no_part(tmp_path: Path) -> None:
    (tmp_path / "taken.png").mkdir()  # a folder where the file should go: the rename fails
    (tmp_path / "taken.png" / "x").write_bytes(b"")
    with pytest.raises(WriteError, match=r"cannot write taken\.png"):
        await save(FilesOutput(tmp_path), "taken.png", b"0123456789")
    assert not list(tmp_path.rglob("*.part"))
