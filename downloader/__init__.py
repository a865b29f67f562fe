"""downloader: fetch large lists of image URLs concurrently, politely, without losing or corrupting anything.

Library use::

    import downloader
    stats = downloader.download(["http://127.0.0.1:8080/a.jpg"], "out/", concurrency=32)
    stats = await downloader.adownload(urls, "out/", on_done=print)   # inside a running loop

The heavy modules (aiohttp, requests) load on first use, so ``import downloader`` and ``--help`` stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .version import __version__

__all__ = ["Result", "RunSpec", "Stats", "Status", "__version__", "adownload", "download"]

if TYPE_CHECKING:
    from .app.api import adownload, download
    from .models import Result, Stats, Status
    from .spec import RunSpec

_LAZY = {
    "download": "app.api",
    "adownload": "app.api",
    "RunSpec": "spec",
    "Result": "models",
    "Stats": "models",
    "Status": "models",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'downloader' has no attribute {name!r}")
