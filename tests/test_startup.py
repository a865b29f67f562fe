"""What a plain ``fetch`` imports: nothing it does not need (each module here is start-up CPU and memory
of every run; docs/performance.md has the figures)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

from downloader.cli.imports import click_version

PROBE = """
import json, sys
import downloader.cli, downloader.app.run, downloader.app.assemble
import cloup._util
print(json.dumps({"modules": sorted(sys.modules), "click": list(cloup._util.click_version_tuple)}))
"""

NOT_ON_A_PLAIN_RUN = (
    "importlib.metadata",  # cloup's look-up of click's version (cli.imports)
    "email",  # checks reads an HTTP-date only for a Retry-After
    "downloader.shards",  # a dataset's machinery
    "downloader.app.shards",
    "downloader.app.dask",
    "downloader.app.leased",
    "downloader.state",
    "downloader.writers.tar",
    "pyarrow",
)


def test_click_version_is_the_installed_one() -> None:
    assert click_version() == importlib.metadata.version("click")


def test_plain_fetch_imports_leave_out_what_it_does_not_use() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    loaded = set(found["modules"])
    assert [m for m in NOT_ON_A_PLAIN_RUN if m in loaded] == []
    assert tuple(found["click"]) == tuple(importlib.metadata.version("click").split("."))
