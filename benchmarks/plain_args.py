"""The command line every plain client loop takes, ``LIST OUT [CONCURRENCY]``, read one way for all."""

from __future__ import annotations

import os
import sys


def plain_args() -> tuple[list[str], str, int]:
    """The list's URLs, the output folder (created), and the concurrency (64 unless given)."""
    list_file, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    with open(list_file) as lines:
        urls = [line.strip() for line in lines if line.strip()]
    return urls, out_dir, int(sys.argv[3]) if len(sys.argv) > 3 else 64
