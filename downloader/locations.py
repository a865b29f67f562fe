"""Where an output or a list lives, told apart from a local path: a URL is never a folder name.

``Path("s3://bucket/x")`` is the relative path ``s3:/bucket/x``, so without this check ``-o s3://bucket/x``
would quietly write into a local folder called ``s3:`` and the run would report success. Every output
folder and list file goes through ``local_path``: ``file://`` URLs map to the local path they name;
any other scheme is a usage error that names the schemes this build can store to or read from. An
object store's scheme (``s3://``, ``SCHEMES``) reaches the caller as the URL instead, through ``locate``:
this is the one place that decides. A dataset written to a store keeps its working files in a local
folder (``work_folder``), the same one run after run, so a rerun resumes from them.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import UsageError

Role = Literal["output", "list"]

SCHEMES: dict[Role, tuple[str, ...]] = {"output": ("s3",), "list": ("s3",)}
"""Schemes each role accepts besides local paths and ``file://``: an S3 bucket (any S3-compatible
service through ``AWS_ENDPOINT_URL``). Other stores (``gs://``, ``az://``) are refused by name."""

URL_LIKE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):/")
"""A scheme and at least one slash. One slash, not two, because ``pathlib`` folds ``s3://b`` into
``s3:/b`` before some callers see it; a Windows drive (``C:/``) has no place on the machines this
runs on, and would make a folder named ``C:`` here, so it is refused too."""

_WORDS: dict[Role, str] = {"output": "an output folder", "list": "a list file"}


def locate(location: str | os.PathLike[str], role: Role) -> Path | str:
    """The local path ``location`` names, or the store URL (``s3://bucket/prefix``, as typed even when
    ``pathlib`` folded it to ``s3:/bucket/prefix``); a ``UsageError`` for a URL this build cannot use
    for ``role``."""
    text = os.fspath(location)
    found = URL_LIKE.match(text)
    if found is None:
        return Path(text)
    scheme = found.group(1).lower()
    if scheme == "file":
        return _file_url(text, role)
    if scheme in SCHEMES[role]:
        after = text[len(scheme) + 1 :]
        rest = after[2:] if after.startswith("//") else after[1:]  # s3://b/x, or s3:/b/x folded by pathlib
        if not rest.split("/")[0]:
            raise UsageError(f"{text}: an {scheme}:// URL names a bucket ({scheme}://BUCKET/PREFIX)")
        return f"{scheme}://{rest}"
    accepted = ", ".join(f"{s}://" for s in SCHEMES[role])
    raise UsageError(
        f"{text}: {scheme}:// is not supported for {_WORDS[role]} (URL schemes supported for "
        f"{role}s: {accepted}); give a local path, or file:///ABSOLUTE/PATH"
    )


def local_path(location: str | os.PathLike[str], role: Role, why: str = "") -> Path:
    """The local path ``location`` names; a URL, even a store's, is a ``UsageError`` (``why`` says
    what needs a local folder)."""
    found = locate(location, role)
    if isinstance(found, str):
        raise UsageError(f"{found}: {why or 'this needs a local path'}; give a local path")
    return found


def work_folder(url: str) -> Path:
    """The local folder of a dataset written to the store at ``url``: its spools, working files, run
    record and default state database: ``~/.cache/downloader/out-HASH``, named by a hash of the URL,
    so every run to that URL on this machine finds it (not the temp folder, which a reboot empties)."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return Path("~/.cache/downloader").expanduser() / f"out-{digest}"


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
