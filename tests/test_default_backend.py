"""Which backend runs when none is named: reqwest where pyreqwest is installed, else aiohttp with a note.
The absent case is a real process in which pyreqwest cannot be imported."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from aiohttp.test_utils import TestServer

from downloader import spec

WITHOUT_PYREQWEST = "import sys; sys.modules['pyreqwest'] = None; from downloader.cli import main; main()"
"""The command line in a process where ``import pyreqwest`` fails, as on a machine without the extra."""


def run_without_pyreqwest(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", WITHOUT_PYREQWEST, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_the_default_is_reqwest_where_it_is_installed() -> None:
    assert spec.DEFAULT_BACKEND == "reqwest" == spec.Network().backend


async def test_without_pyreqwest_the_default_falls_back_to_aiohttp(
    origin: TestServer, tmp_path: Path
) -> None:
    lst, out = tmp_path / "urls.txt", tmp_path / "out"
    lst.write_text("".join(f"{origin.make_url(f'/img/{i}/image-00.jpg')}\n" for i in range(3)))
    done = await asyncio.to_thread(run_without_pyreqwest, "fetch", str(lst), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "stats.json").read_text())["backend"] == "aiohttp"
    assert "pip install 'downloader[reqwest]'" in done.stdout + done.stderr
    asked = await asyncio.to_thread(
        run_without_pyreqwest, "fetch", str(lst), "-o", str(out), "--backend", "reqwest"
    )
    assert asked.returncode == 2
    assert "the reqwest backend needs pyreqwest: pip install 'downloader[reqwest]'" in asked.stderr
    assert "Traceback" not in asked.stderr
