"""Where an output or a list lives, told apart from a local path: a URL is never a folder name.

``Path("s3://bucket/x")`` is the relative path ``s3:/bucket/x``, so without this check ``-o s3://bucket/x``
would quietly write into a local folder called ``s3:`` and the run would report success. Every output
folder and list file goes through ``local_path``: ``file://`` URLs map to the local path they name;
any other scheme is a usage error that names the schemes this build can store to or read from (none
yet beyond local files). When an object store lands, its schemes join ``SCHEMES`` here and the caller
receives the URL instead of a ``Path``: this is the one place that decides.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import UsageError

Role = Literal["output", "list"]

SCHEMES: dict[Role, tuple[str, ...]] = {"output": (), "list": ()}
"""Schemes each role accepts besides local paths and ``file://``: none until an object store lands."""

URL_LIKE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):/")
"""A scheme and at least one slash. One slash, not two, because ``pathlib`` folds ``s3://b`` into
``s3:/b`` before some callers see it; a Windows drive (``C:/``) has no place on the machines this
runs on, and would make a folder named ``C:`` here, so it is refused too."""

_WORDS: dict[Role, str] = {"output": "an output folder", "list": "a list file"}


def local_path(location: str | os.PathLike[str], role: Role) -> Path:
    """The local path ``location`` names, or a ``UsageError`` when it is a URL this build cannot use
    for ``role``."""
    text = os.fspath(location)
    found = URL_LIKE.match(text)
    if found is None:
        return Path(text)
    scheme = found.group(1).lower()
    if scheme == "file":
        return _file_url(text, role)
    accepted = ", ".join(f"{s}://" for s in SCHEMES[role]) or "none yet"
    raise UsageError(
        f"{text}: {scheme}:// is not supported for {_WORDS[role]} (URL schemes supported for "
        f"{role}s: {accepted}); give a local path, or file:///ABSOLUTE/PATH"
    )


def _file_url(text: str, role: Role) -> Path:
    """``file:///p``, ``file://localhost/p`` and ``file:/p`` name the local ``/p``; another host is a
    usage error (this build reads and writes this machine's disks only)."""
    parts = urlsplit(text)
    if parts.netloc not in ("", "localhost"):
        raise UsageError(
            f"{text} names a file on host {parts.netloc!r}; {_WORDS[role]} must be on this machine"
        )
    if not parts.path:
        raise UsageError(f"{text} names no path; give file:///ABSOLUTE/PATH")
    return Path(unquote(parts.path))
