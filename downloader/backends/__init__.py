"""The backend seam: one attempt at one URL, nothing more (no retries, no progress, no manifest).

``Backend`` is the protocol the engine drives. Two of the three implementations hand body pieces to the
event loop and share ``StreamingBackend.fetch`` (checks, then the aiofiles writer); ``threads`` does the
whole URL in a worker thread with the same checks and the output's sync writer. Every backend raises only
``downloader.errors``. Modules load lazily, so naming a backend imports nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from ..spec import Transport
    from ..writers import Output
    from .base import Backend

_REGISTRY: dict[str, tuple[str, str]] = {
    "aiohttp": ("downloader.backends.aio", "AiohttpBackend"),
    "executor": ("downloader.backends.sync", "ExecutorBackend"),
    "threads": ("downloader.backends.sync", "ThreadsBackend"),
    "curl": ("downloader.backends.curl", "CurlBackend"),
    "reqwest": ("downloader.backends.reqwest", "ReqwestBackend"),
}


def backend_names() -> list[str]:
    """The backends a user can choose; naming them imports nothing heavy (``--help`` stays fast)."""
    return list(_REGISTRY)


def create_backend(transport: Transport, output: Output) -> Backend:
    """The backend the transport names, built with its share of the spec and where samples land."""
    name = transport.network.backend
    if name not in _REGISTRY:
        raise UsageError(f"unknown backend {name!r}; choose from {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name]
    backend: Backend = getattr(importlib.import_module(module), cls)(transport, output)
    return backend
