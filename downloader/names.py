"""URLs and names: a URL's identity (``normalise``) and where its file goes (``relative_path``).

Both are pure: the same list and options always give the same keys and paths, so a rerun finds its files.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote, urlsplit

from .errors import InvalidURL
from .keys import digest64
from .models import BUCKET_SIZE, BUCKETS, Naming

DEFAULT_NAMING = Naming()
MAX_URL_LENGTH = 8192
MAX_HOST_LENGTH = 253
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST = re.compile(r"^[\w.\-~!$&'()*+,;=]+$", re.ASCII)
_LABELS = re.compile(r"(?:[^.]{1,63}\.)*[^.]{1,63}\.?")  # no empty label but a final one, none over 63
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PCHAR = r"A-Za-z0-9\-._~!$&'()*+,;=:@%"  # RFC 3986: unreserved, sub-delims, ':' and '@', and escapes
_PLAIN_URL = re.compile(
    r"(https?)://((?:[a-z0-9\-]{1,63}\.)*[a-z0-9\-]{1,63}\.?)(?::([0-9]{1,5}))?"  # lower case, no user/IPv6
    rf"(/[{_PCHAR}/]*)?(?:\?([{_PCHAR}/?]*))?(?:#[^\x00-\x1f\x7f]*)?"  # path, query: nothing to encode
)
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What a URI may not hold as it is: a '%' that starts no escape, and runs of any other character.
_ENCODE_PATH = re.compile(rf"%(?![0-9A-Fa-f]{{2}})|[^{_PCHAR}/]+")
_ENCODE_QUERY = re.compile(rf"%(?![0-9A-Fa-f]{{2}})|[^{_PCHAR}/?]+")
_ENCODE_USER = re.compile(rf"%(?![0-9A-Fa-f]{{2}})|[^{_PCHAR.replace('@', '')}]+")

# Names: characters no common file system accepts, and names Windows reserves whatever the extension.
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]+')
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}
_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
MAX_STEM_BYTES = 96


def normalise(url: str) -> str:
    """The URL's identity: lower-case scheme and host, no default port, no fragment; path and query
    kept as given except that what a URI may not hold is percent-encoded (UTF-8), and the host in
    IDNA form. Raises ``InvalidURL`` with a reason."""
    return parse_url(url)[0]


def parse_url(url: str) -> tuple[str, str, str]:
    """(normalised URL, host:port, path); host:port is the engine's unit of per-host scheduling.
    The normalised URL is pure ASCII and is what every backend requests, so they all send the same
    bytes. Most URLs in a list are plain ``http(s)://host[:port]/path`` in lower case with nothing to
    encode: one regular expression settles those; anything else goes through ``urlsplit``. A test
    holds both ways equal on thousands of odd URLs."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"URL longer than {MAX_URL_LENGTH} characters")
    m = _PLAIN_URL.fullmatch(url)
    if m is None or ("%" in url and _LONE_PERCENT.search(url)):
        return _parse_any(url)
    scheme, host, port, path, query = m.groups()
    if len(host) > MAX_HOST_LENGTH or "xn--" in host:
        return _parse_any(url)
    if port is not None:
        number = int(port)
        if number > 65535:
            return _parse_any(url)
        if number != _DEFAULT_PORTS[scheme]:
            host = f"{host}:{number}"
    path = path or "/"
    key = f"{scheme}://{host}{path}?{query}" if query else f"{scheme}://{host}{path}"
    return key, host, path


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
    host = f"[{host}]" if ":" in host else _ascii_host(host)
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    hostport = netloc
    if "@" in parts.netloc:
        netloc = _encode(_ENCODE_USER, parts.netloc.rpartition("@")[0]) + "@" + netloc
    query = f"?{_encode(_ENCODE_QUERY, parts.query)}" if parts.query else ""
    path = _encode(_ENCODE_PATH, parts.path) or "/"
    key = f"{scheme}://{netloc}{path}{query}"
    if len(key) > MAX_URL_LENGTH:
        raise InvalidURL(f"URL longer than {MAX_URL_LENGTH} characters once percent-encoded")
    return key, hostport, path


def _encode(unsafe: re.Pattern[str], text: str) -> str:
    """``text`` with what ``unsafe`` matches percent-encoded as UTF-8, as browsers send it; escapes
    already there stay as they are (a '%' that starts none becomes ``%25``)."""
    try:
        return unsafe.sub(lambda m: quote(m[0], safe=""), text)
    except UnicodeEncodeError:
        raise InvalidURL("URL holds a lone surrogate, which is no Unicode text") from None


def _ascii_host(host: str) -> str:
    """A lower-case host name as it goes on the wire. A name with non-ASCII letters goes through
    IDNA (UTS #46 mapping, then IDNA 2008 per label) with the ``idna`` package: that is how browsers
    (the WHATWG URL standard) and aiohttp's and requests' own URL code encode it, where the standard
    library's ``encodings.idna`` is IDNA 2003 (``ß`` becomes ``ss``, rules long retired). ASCII labels
    stay as they are (browsers accept ``_``, which IDNA 2008 forbids), but an ``xn--`` label must decode.
    Whatever IDNA or DNS would refuse later (empty labels, a label over 63 characters) is refused here,
    so no backend meets it."""
    if not host.isascii() or "xn--" in host:
        host = _idna(host)
    if not _HOST.match(host):
        raise InvalidURL(f"not a valid host name: {host!r}")
    if len(host.removesuffix(".")) > MAX_HOST_LENGTH:
        raise InvalidURL(f"host name longer than {MAX_HOST_LENGTH} characters")
    if not _LABELS.fullmatch(host):
        raise InvalidURL(f"not a valid host name (an empty label, or one over 63 characters): {host!r}")
    return host


def _idna(host: str) -> str:
    import idna  # 13 ms to import, for the few lists that have such hosts

    try:
        labels = idna.uts46_remap(host, std3_rules=False, transitional=False).split(".")
        for i, label in enumerate(labels):
            if not label.isascii():
                labels[i] = idna.alabel(label).decode("ascii")
            elif label.startswith("xn--"):
                idna.ulabel(label)
    except UnicodeError as exc:  # idna.IDNAError is one
        raise InvalidURL(f"not a valid international host name: {exc}") from None
    return ".".join(labels)


def _readable_host(host: str) -> str:
    """A host in IDNA form as people write it (``xn--bcher-kva.example`` as ``bücher.example``)."""
    if "xn--" not in host:
        return host
    import idna

    try:
        return ".".join(
            idna.ulabel(label) if label.startswith("xn--") else label for label in host.split(".")
        )
    except UnicodeError:
        return host  # not valid IDNA: shown as it came


_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def url_hash(digest: int) -> str:
    """A URL's digest (``keys.digest64``) as 13 file-name-safe characters: lower-case RFC 4648 base32
    of its 8 big-endian bytes, unpadded, computed on the integer (``base64`` is pure Python and slow):
    two 30-bit halves of the 65-bit padded value give six letter pairs, the last 5 bits one letter."""
    a = digest >> 34  # small ints: no multi-digit arithmetic
    b = (digest >> 4) & 0x3FFFFFFF
    p = _B32_PAIRS
    return (
        f"{p[a >> 20]}{p[(a >> 10) & 1023]}{p[a & 1023]}"
        f"{p[b >> 20]}{p[(b >> 10) & 1023]}{p[b & 1023]}{_B32[(digest & 15) << 1]}"
    )


def safe_component(text: str, fallback: str = "file") -> str:
    """One path component that Linux, macOS and Windows all accept, at most ``MAX_STEM_BYTES`` bytes.
    ASCII text (most names) is its own NFC form and has as many bytes as characters."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    text = _UNSAFE.sub("_", text).strip(" .")
    if len(text) > MAX_STEM_BYTES or not text.isascii():
        text = text.encode("utf-8")[:MAX_STEM_BYTES].decode("utf-8", "ignore").rstrip(" .")
    if not text:
        return fallback
    dot = text.find(".")
    first = len(text) if dot < 0 else dot  # reserved names (CON, COM1...) have 3 or 4 letters
    if 3 <= first <= 4 and text[:first].lower() in _RESERVED:
        text = "_" + text
    return text


def split_name(key: str, path: str | None = None) -> tuple[str, str]:
    """The URL's basename split into (stem, extension); the extension only if it looks like one.
    ``path`` is the URL's path when the caller has it already."""
    if path is None:
        path = urlsplit(key).path
    base = path[path.rfind("/") + 1 :]
    if "%" in base:
        base = unquote(base, errors="replace")
    stem, dot, ext = base.rpartition(".")
    if dot and stem and _is_ext(ext):
        return stem, "." + ext
    return base, ""


_EXTS: dict[str, bool] = {}
"""``_EXT``'s verdict on each extension seen (a list has a handful: the regular expression is run once)."""


def _is_ext(ext: str) -> bool:
    known = _EXTS.get(ext)
    if known is None:
        known = _EXT.match("." + ext) is not None
        if len(_EXTS) < 4096:
            _EXTS[ext] = known
    return known


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
    the URL's basename; ``shards`` (``BUCKETS``) names files by input line, 10,000 a bucket folder.
    """
    url_stem, ext = split_name(key, url_path)
    if naming.layout == BUCKETS:
        return f"{line // BUCKET_SIZE:05d}/{line:09d}{ext}"
    stem = url_stem if stem is None else stem
    if naming.names == "plain":
        name = safe_component(stem + ext, fallback="index")
    else:
        name = f"{safe_component(stem, fallback='index')}.{url_hash(digest or digest64(key))}{ext}"
    if naming.layout == "host":
        host = _readable_host(urlsplit(key).netloc.rpartition("@")[2])
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
