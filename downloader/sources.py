"""URL lists in, ``Job`` objects out, lazily: memory does not grow with the length of the list.

Also the two pure functions every rerun relies on: ``normalise`` (the URL's identity for duplicates and
resume) and ``relative_path`` (where its file goes).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import InvalidURL
from .keys import DigestIndex, digest64
from .models import MANIFEST_FIELDS, SHARD_SIZE, Job, Naming

DEFAULT_NAMING = Naming()
NOT_MINE = Job(url="", line=0, error="another shard's row")
"""What ``make_job`` returns for a row of another shard; readers drop it."""
MAX_URL_LENGTH = 8192
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST = re.compile(r"^[\w.\-~!$&'()*+,;=]+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9.\-]+)(?::([0-9]{1,5}))?"  # scheme, host, port: lower case, no user, no IPv6
    r"(/[^?#\x00-\x20\x7f]*)?(?:\?([^#\x00-\x20\x7f]*))?(?:#[^\x00-\x1f\x7f]*)?"  # path, query, fragment
)

# Names: characters no common file system accepts, and names Windows reserves whatever the extension.
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}
_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
MAX_STEM_BYTES = 96


def read_lines(stream: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, text) of each URL line; blank lines and ``#`` comments skipped, whitespace stripped."""
    for number, raw in enumerate(stream, 1):
        text = raw.strip()
        if text and not text.startswith("#"):
            yield number, text


def normalise(url: str) -> str:
    """The URL's identity: lower-case scheme and host, no default port, no fragment; path and query
    kept as given (inner spaces become ``%20``). Raises ``InvalidURL`` with a reason."""
    return _parse(url)[0]


def _parse(url: str) -> tuple[str, str, str]:
    """(normalised URL, host:port, path); host:port is the engine's unit of per-host scheduling.
    Most URLs in a list are plain ``http(s)://host[:port]/path`` in lower case: one regular expression
    settles those; anything else goes through ``urlsplit``. A test holds both ways equal on thousands
    of odd URLs."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"URL longer than {MAX_URL_LENGTH} characters")
    m = _PLAIN_URL.fullmatch(url)
    if m is not None:
        scheme, host, port, path, query = m.groups()
        if port is not None:
            number = int(port)
            if number > 65535:
                return _parse_any(url)
            if number != _DEFAULT_PORTS[scheme]:
                host = f"{host}:{number}"
        path = path or "/"
        key = f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"
        return key, host, path
    return _parse_any(url)


def _parse_any(url: str) -> tuple[str, str, str]:
    if _CONTROL.search(url):
        raise InvalidURL("URL holds control characters")
    try:
        parts = urlsplit(url.replace(" ", "%20"))
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURL(f"scheme {scheme!r} is not http or https" if scheme else "not a URL (no http://)")
    host = parts.hostname or ""
    if not host:
        raise InvalidURL("URL has no host")
    if ":" in host:
        host = f"[{host}]"
    elif not _HOST.match(host):
        raise InvalidURL(f"not a valid host name: {host!r}")
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    hostport = netloc
    if "@" in parts.netloc:
        netloc = parts.netloc.rpartition("@")[0] + "@" + netloc
    query = f"?{parts.query}" if parts.query else ""
    path = parts.path or "/"
    return f"{scheme}://{netloc}{path}{query}", hostport, path


_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def url_hash(digest: int) -> str:
    """A URL's digest (``keys.digest64``) as 13 file-name-safe characters: lower-case RFC 4648 base32
    of its 8 big-endian bytes, unpadded, computed on the integer (``base64`` is pure Python and slow)."""
    n = digest << 1  # 65 bits: 13 groups of five
    p = _B32_PAIRS
    return (
        p[n >> 55]
        + p[(n >> 45) & 1023]
        + p[(n >> 35) & 1023]
        + p[(n >> 25) & 1023]
        + p[(n >> 15) & 1023]
        + p[(n >> 5) & 1023]
        + _B32[n & 31]
    )


def safe_component(text: str, fallback: str = "file") -> str:
    """One path component that Linux, macOS and Windows all accept, at most ``MAX_STEM_BYTES`` bytes."""
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE.sub("_", text).strip(" .")
    encoded = text.encode("utf-8")[:MAX_STEM_BYTES]
    text = encoded.decode("utf-8", "ignore").rstrip(" .")
    if not text:
        return fallback
    if text.split(".", 1)[0].lower() in _RESERVED:
        text = "_" + text
    return text


def split_name(key: str, path: str | None = None) -> tuple[str, str]:
    """The URL's basename split into (stem, extension); the extension only if it looks like one.
    ``path`` is the URL's path when the caller has it already."""
    if path is None:
        path = urlsplit(key).path
    base = unquote(path.rsplit("/", 1)[-1], errors="replace")
    stem, dot, ext = base.rpartition(".")
    if dot and stem and _EXT.match("." + ext):
        return stem, "." + ext
    return base, ""


def relative_path(
    key: str,
    naming: Naming = DEFAULT_NAMING,
    digest: int | None = None,
    *,
    line: int = 0,
    stem: str | None = None,
    url_path: str | None = None,
) -> str:
    """Where a URL's file goes, relative to the output folder. Pure: the same list and options give the
    same path, so a rerun finds it.

    ``hashed`` names append a digest of the whole URL, so ``/a/x.jpg``, ``/b/x.jpg`` and ``x.jpg?s=2``
    never share a file, also on case-insensitive file systems. ``stem`` (from ``--name-column``) replaces
    the URL's basename; ``shards`` names files by input line, 10,000 a folder.
    """
    url_stem, ext = split_name(key, url_path)
    if naming.layout == "shards":
        return f"{line // SHARD_SIZE:05d}/{line:09d}{ext}"
    stem = url_stem if stem is None else stem
    if naming.names == "plain":
        name = safe_component(stem + ext, fallback="index")
    else:
        name = f"{safe_component(stem, fallback='index')}.{url_hash(digest or digest64(key))}{ext}"
    if naming.layout == "host":
        host = urlsplit(key).netloc.rpartition("@")[2]
        return f"{safe_component(host.replace(':', '_'), fallback='host')}/{name}"
    return name


def with_extension(path: str, ext: str) -> str:
    """``path`` with its (URL-derived) extension replaced by ``ext`` (for ``--fix-ext``)."""
    head, slash, name = path.rpartition("/")
    stem, dot, old = name.rpartition(".")
    if dot and stem and _EXT.match("." + old):
        name = stem
    return f"{head}{slash}{name}{ext}"


def make_job(
    line: int,
    text: str,
    naming: Naming = DEFAULT_NAMING,
    *,
    stem: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Job:
    """A ``Job`` for one input row; a bad URL becomes a job that carries its error instead."""
    shard = naming.shard
    try:
        key, host, url_path = _parse(text)
    except InvalidURL as exc:
        if shard is not None and line % shard[1] != shard[0]:
            return NOT_MINE
        return Job(url=text, line=line, error=str(exc), error_kind=exc.kind, extra=extra)
    digest = digest64(key)
    if shard is not None and digest % shard[1] != shard[0]:
        return NOT_MINE
    path = relative_path(key, naming, digest, line=line, stem=stem, url_path=url_path)
    url_named = stem is None and naming.layout != "shards"
    return Job(text, line, key, digest, path, host=host, extra=extra, url_named=url_named)


def jobs_from_urls(urls: Iterable[str], naming: Naming = DEFAULT_NAMING) -> Iterator[Job]:
    """Jobs for a library caller's iterable of URL strings; line numbers count every item from 1."""
    for line, text in enumerate(urls, 1):
        yield make_job(line, str(text).strip(), naming)


# -- an earlier run's manifest ------------------------------------------------------------------------


def read_manifest(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of an earlier manifest, skipping a torn last line or anything that is not a JSON object."""
    try:
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("url"), str):
                yield row


def _row_digest(row: dict[str, Any]) -> int | None:
    try:
        return digest64(normalise(row["url"]))
    except InvalidURL:
        return None


def earlier_outcomes(
    manifest: Path, out: Path, *, failed: bool = False, shard: tuple[int, int] | None = None
) -> DigestIndex:
    """Digests of the URLs an earlier run completed (latest row ok or skipped, and its file on disk), or
    with ``failed`` of those whose latest row failed. The latest row for a URL wins. With ``shard``, only
    that shard's. A large set spills to disk under ``out``; the caller closes it."""
    found = DigestIndex(out)
    for row in read_manifest(manifest):
        status = row.get("status")
        if status not in ("ok", "skipped", "failed"):
            continue
        d = _row_digest(row)
        if d is None or (shard is not None and d % shard[1] != shard[0]):
            continue
        if failed:
            wanted = status == "failed"
        else:
            path = row.get("path")
            wanted = status != "failed" and isinstance(path, str) and (out / path).is_file()
        if wanted:
            found.add(d)
        else:
            found.discard(d)
    return found


def jobs_from_manifest(manifest: Path, out: Path, naming: Naming = DEFAULT_NAMING) -> Iterator[Job]:
    """Jobs for ``--retry-failed``: each URL whose latest manifest row failed, once, with its old line."""
    failed = earlier_outcomes(manifest, out, failed=True)
    try:
        yield from _failed_jobs(manifest, failed, naming)
    finally:
        failed.close()


def _failed_jobs(manifest: Path, failed: DigestIndex, naming: Naming) -> Iterator[Job]:
    for row in read_manifest(manifest):
        d = _row_digest(row)
        if d is not None and d in failed and row.get("status") == "failed":
            failed.discard(d)
            line = row.get("line")
            extra = {k: v for k, v in row.items() if k not in MANIFEST_FIELDS}
            yield make_job(line if isinstance(line, int) else 0, row["url"], naming, extra=extra or None)
