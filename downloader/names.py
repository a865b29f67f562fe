"""URLs and names: a URL's identity (``normalise``) and where its file goes (``relative_path``).

Both are pure: the same list and options always give the same keys and paths, so a rerun finds its files.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit

from .errors import InvalidURL
from .keys import digest64
from .models import SHARD_SIZE, Naming

DEFAULT_NAMING = Naming()
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


def normalise(url: str) -> str:
    """The URL's identity: lower-case scheme and host, no default port, no fragment; path and query
    kept as given (inner spaces become ``%20``). Raises ``InvalidURL`` with a reason."""
    return parse_url(url)[0]


def parse_url(url: str) -> tuple[str, str, str]:
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


def with_digest(path: str, digest: int) -> str:
    """``path`` with the URL's digest before its extension (``a/x.jpg`` → ``a/x.<hash>.jpg``): the name
    a URL gets when another URL already holds its plain name."""
    head, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if dot and stem and _EXT.match("." + ext):
        return f"{head}{slash}{stem}.{url_hash(digest)}.{ext}"
    return f"{path}.{url_hash(digest)}"


def with_extension(path: str, ext: str) -> str:
    """``path`` with its (URL-derived) extension replaced by ``ext`` (for ``--fix-ext``)."""
    head, slash, name = path.rpartition("/")
    stem, dot, old = name.rpartition(".")
    if dot and stem and _EXT.match("." + old):
        name = stem
    return f"{head}{slash}{name}{ext}"
