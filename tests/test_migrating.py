"""docs/migrating.md holds: every img2dataset parameter has its row, every option the table names exists,
and every ``downloader`` command in its ``sh`` examples runs (against the loopback origin, the list files
generated under the names the examples use) and leaves its output."""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.helpers import invoke, manifest_rows

DOC = Path(__file__).resolve().parent.parent / "docs" / "migrating.md"
IMG2DATASET = [
    "url_list",
    "image_size",
    "output_folder",
    "processes_count",
    "resize_mode",
    "resize_only_if_bigger",
    "upscale_interpolation",
    "downscale_interpolation",
    "encode_quality",
    "encode_format",
    "skip_reencode",
    "output_format",
    "input_format",
    "url_col",
    "caption_col",
    "bbox_col",
    "thread_count",
    "number_sample_per_shard",
    "extract_exif",
    "save_additional_columns",
    "timeout",
    "enable_wandb",
    "wandb_project",
    "oom_shard_count",
    "compute_hash",
    "verify_hash",
    "distributor",
    "subjob_size",
    "retries",
    "disable_all_reencoding",
    "min_image_size",
    "max_image_area",
    "max_aspect_ratio",
    "incremental_mode",
    "max_shard_retry",
    "user_agent_token",
    "disallowed_header_directives",
    "ignore_ssl_certificate",
]
IMAGES = ["image-00.jpg", "image-03.jpg", "image-05.png", "image-09.jpg"]


def commands(text: str) -> list[list[str]]:
    """The ``downloader …`` commands of the ``sh`` blocks, continuation lines joined."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("downloader "):
                found.append(shlex.split(line)[1:])
    return found


def table_rows(text: str) -> dict[str, str]:
    """First column of the parameter table (each backquoted name in it) → the row's downloader column."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("| `") else []
        for name in re.findall(r"`([a-z_]+)`", cells[0] if cells else ""):
            rows[name] = cells[1]
    return rows


def test_every_img2dataset_parameter_has_a_row() -> None:
    rows = table_rows(DOC.read_text())
    assert [p for p in IMG2DATASET if p not in rows] == []


def test_every_option_the_table_names_exists() -> None:
    help_text = invoke("fetch", "--help").output
    named = {o for row in table_rows(DOC.read_text()).values() for o in re.findall(r"--[a-z][a-z-]+", row)}
    assert named and sorted(o for o in named if o not in help_text) == []


def write_lists(root: Path, origin: TestServer) -> None:
    urls = [str(origin.make_url(f"/img/{i}/{name}")) for i in range(2) for name in IMAGES]
    (root / "urls.txt").write_text("\n".join(urls) + "\n")
    rows = [f'{u},"a picture, number {n}"' for n, u in enumerate(urls)]
    (root / "images.csv").write_text("url,caption\n" + "\n".join(rows) + "\n")


async def test_the_downloader_examples_run(
    origin: TestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = commands(DOC.read_text())
    assert len(examples) >= 4 and all(args[0] == "fetch" for args in examples)
    monkeypatch.chdir(tmp_path)
    write_lists(tmp_path, origin)
    for args in examples:
        res = await asyncio.to_thread(invoke, *args, "-q")
        assert res.exit_code == 0, (args, res.output)
        out = tmp_path / args[args.index("-o") + 1]
        rows = manifest_rows(out) if (out / "manifest.jsonl").is_file() else []
        shards = sorted(out.glob("00000.*"))
        assert rows or shards, (args, sorted(p.name for p in out.iterdir()))
        assert all(r["status"] == "ok" for r in rows), rows
