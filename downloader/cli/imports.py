"""cloup, imported without ``importlib.metadata``.

On import cloup asks ``importlib.metadata.version("click")`` for click's version, and importing that module
(email, zipfile, csv and the rest) costs a fetch about 20 ms of CPU and 3.4 MB of memory that nothing else
a run does needs. The version is read from click's ``dist-info`` folder beside its package instead, and
handed to cloup through a stand-in module that lives only while cloup is imported. Where that folder is
not found (an unusual install), or ``importlib.metadata`` is loaded already, cloup is imported as usual.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

import click

__all__ = ["cloup"]  # for the CLI's modules, imported first here

_DIST_INFO = re.compile(r"click-(\d+(?:\.\d+)*[0-9A-Za-z.+]*)\.dist-info")


def click_version() -> str | None:
    """click's version as its installed ``dist-info`` folder names it; None unless exactly one is found."""
    site = os.path.dirname(os.path.dirname(os.path.abspath(click.__file__ or "")))
    try:
        found = [m.group(1) for name in os.listdir(site) if (m := _DIST_INFO.fullmatch(name))]
    except OSError:
        return None
    return found[0] if len(found) == 1 else None


@contextmanager
def _metadata_knowing(click_at: str) -> Iterator[None]:
    """``importlib.metadata`` as a stand-in that knows click's version (any other look-up imports the
    real module and asks it), removed again afterwards unless the real one was imported meanwhile."""
    stub = types.ModuleType("importlib.metadata")

    def version(name: str) -> str:
        if name == "click":
            return click_at
        _drop(stub)
        import importlib.metadata as real

        return real.version(name)

    stub.version = version  # type: ignore[attr-defined]
    sys.modules["importlib.metadata"] = stub
    setattr(importlib, "metadata", stub)  # noqa: B010  (a module attribute, as the import system sets it)
    try:
        yield
    finally:
        _drop(stub)


def _drop(stub: types.ModuleType) -> None:
    if sys.modules.get("importlib.metadata") is stub:
        del sys.modules["importlib.metadata"]
    if getattr(importlib, "metadata", None) is stub:
        delattr(importlib, "metadata")


def _first_import() -> None:
    at = None if "cloup" in sys.modules or "importlib.metadata" in sys.modules else click_version()
    if at is not None:
        with _metadata_knowing(at):
            import cloup  # noqa: F401


_first_import()

import cloup  # noqa: E402  (loaded above)
