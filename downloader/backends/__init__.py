"""The backend seam: one attempt at one URL, nothing more (no retries, no progress, no manifest).

``Backend`` is the protocol the engine drives. Two of the three implementations hand body pieces to the
event loop and share ``StreamingBackend.fetch`` (checks, then the aiofiles writer); ``threads`` does the
whole URL in a worker thread with the same checks and the sink's sync writer. Every backend raises only
``downloader.errors``. Modules load lazily, so naming a backend imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from .base import Backend

_REGISTRY: dict[str, tuple[str, str]] = {
    "aiohttp": ("downloader.backends.aio", "AiohttpBackend"),
    "executor": ("downloader.backends.sync", "ExecutorBackend"),
    "threads": ("downloader.backends.sync", "ThreadsBackend"),
    "curl": ("downloader.backends.curl", "CurlBackend"),
}


def backend_names() -> list[str]:
    """The backends a user can choose; naming them imports nothing heavy (``--help`` stays fast)."""
    return list(_REGISTRY)


def create_backend(config: Config) -> Backend:
    if config.backend not in _REGISTRY:
        raise ValueError(f"unknown backend {config.backend!r}; choose from {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[config.backend]
    backend: Backend = getattr(importlib.import_module(module), cls)(config)
    return backend
