"""What a plain ``fetch`` imports: nothing it does not need (each module here is start-up CPU and memory
of every run; docs/performance.md has the figures)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import downloader.cli, downloader.app.run, downloader.app.assemble
print(json.dumps({"modules": sorted(sys.modules)}))
"""

NOT_ON_A_PLAIN_RUN = (
    "downloader.dataset.shardfiles",  # a dataset's machinery
    "downloader.dataset.shard",
    "downloader.dataset.runners.dask",
    "downloader.dataset.runners.leased",
    "downloader.state",
    "downloader.writers.tar",
    "pyarrow",
    "importlib.metadata",  # 20 ms and 3 MB (email, zipfile...): cloup's import paid it, our help does not
)


def test_plain_fetch_imports_leave_out_what_it_does_not_use() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    loaded = set(found["modules"])
    assert [m for m in NOT_ON_A_PLAIN_RUN if m in loaded] == []
