"""Where a dataset run keeps its state when ``--state`` is not given: a SQLite file in OUT
(``OUT/_shards/state.sqlite``), unless OUT is on a network filesystem. SQLite's locks are not to be
trusted over NFS, SMB and their kin, so there the default is no database at all (the run goes on
without the archive and ``downloader status`` for it) and a log line says why."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
STATE_FILE = "state.sqlite"
NETWORK_FS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "fuse.sshfs", "sshfs", "lustre", "gpfs", "ceph",
        "fuse.ceph", "fuse.cephfs", "glusterfs", "fuse.glusterfs", "9p", "afs", "ncpfs", "beegfs",
        "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "fuse.juicefs", "fuse.lizardfs", "fuse.moosefs",
        "davfs", "fuse.davfs2", "panfs", "orangefs", "pvfs2", "ocfs2", "gfs2", "virtiofs",
    }
)  # fmt: skip
"""Filesystem types (``/proc/mounts``' third field) shared between machines or over a network."""


def _unescape(field: str) -> str:
    """``/proc/mounts`` writes a space in a mount point as ``\\040`` (and tab, newline, backslash alike)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def filesystem(path: Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem ``path`` lies on (its longest mount point), or None where the system
    does not say (not Linux)."""
    try:
        with open(mounts, encoding="utf-8", errors="replace") as fh:
            table = [line.split() for line in fh]
    except OSError:
        return None
    here = os.path.realpath(path)
    best = -1
    found = None
    for fields in table:
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = here == point or here.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best:
            best = len(point)
            found = fields[2]
    return found


def default_url(out: Path, mounts: str = "/proc/mounts") -> str | None:
    """``sqlite:///OUT/_shards/state.sqlite``, or None (said in a log line) when OUT is on a network
    filesystem."""
    kind = filesystem(out, mounts)
    if kind is not None and kind.lower() in NETWORK_FS:
        log.warning(
            "%s is on a network filesystem (%s): no state database by default (SQLite is not safe there); "
            "give --state mysql://… or postgresql://… for the archive and `downloader status`",
            out,
            kind,
        )
        return None
    return f"sqlite:///{(out / '_shards' / STATE_FILE).resolve()}"
