"""Sans-I/O checks shared by every backend, sync or async: status codes, Retry-After, and a ``BodyCheck``
fed each piece of a body (size, minimum speed, deadline, magic bytes, sha256).

The magic-byte table is small enough to own: a dozen fixed prefixes, no dependency, no file I/O.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping

from .errors import NotImage, OptedOut, RedirectError, Timeout, TooLarge, TooSlow, Truncated, http_error
from .models import Deadline
from .spec import Transport
from .writers import Hasher

SNIFF_BYTES = 1024
"""Enough for every binary signature and for finding ``<svg`` after an XML prolog."""

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, ".jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, ".png"),
    (b"GIF87a", 0, ".gif"),
    (b"GIF89a", 0, ".gif"),
    (b"BM", 0, ".bmp"),
    (b"II*\x00", 0, ".tif"),
    (b"MM\x00*", 0, ".tif"),
    (b"\x00\x00\x01\x00", 0, ".ico"),
    (b"\x00\x00\x02\x00", 0, ".cur"),
    (b"\xff\x0a", 0, ".jxl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, ".jxl"),
)
_FTYP_BRANDS = {b"avif": ".avif", b"avis": ".avif", b"heic": ".heic", b"heix": ".heic", b"mif1": ".heic"}


def sniff(head: bytes) -> str | None:
    """The image type of a body from its first bytes, as an extension (``.jpg``), or None."""
    for magic, offset, ext in _SIGNATURES:
        if head.startswith(magic, offset):
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[4:8] == b"ftyp" and head[8:12] in _FTYP_BRANDS:
        return _FTYP_BRANDS[head[8:12]]
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (
        text.startswith((b"<?xml", b"<!--", b"<!doctype svg")) and b"<svg" in text
    ):
        return ".svg"
    return None


def needs_more(head: bytes) -> bool:
    """True while ``head`` is too short to decide (only markup needs more than a few bytes)."""
    if len(head) >= SNIFF_BYTES:
        return False
    if len(head) < 12:
        return True
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return not text or (text[:1] == b"<" and sniff(head) is None)  # white space so far: markup may follow


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    import email.utils  # an HTTP-date is rare: the email package is 3 ms of a run's start-up otherwise

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_status(status: int, reason: str, headers: Mapping[str, str]) -> None:
    """Raise the right ``HTTPError`` for anything but 2xx (a 3xx here was not followed)."""
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise RedirectError(f"HTTP {status} redirect not followed (no usable Location)")
    raise http_error(status, reason, parse_retry_after(headers.get("Retry-After")))


_VALUED = frozenset(("unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"))
"""Directives written ``name: value``: their colon does not name an agent."""


def header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of a repeated header: each client's multi-map (aiohttp's ``getall``, urllib3's
    ``getlist``, curl's), else the one value."""
    for many in ("getall", "getlist"):
        method = getattr(headers, many, None)
        if method is not None:
            return list(method(name, []) if many == "getall" else method(name))
    value = headers.get(name)
    return [value] if value else []


def robots_directives(values: list[str], agent: str) -> set[str]:
    """The X-Robots-Tag directives that apply to ``agent`` (lower case): each header value is a comma
    list, optionally led by ``agent:``; a list led by another agent's name is that agent's alone."""
    found: set[str] = set()
    for value in values:
        scope: str | None = None
        for part in value.split(","):
            name, colon, rest = part.partition(":")
            name = name.strip().lower()
            if colon and name not in _VALUED:
                scope = name
                name = rest.strip().lower()
            if scope is None or scope == agent:
                found.add(name.split(":")[0].strip())
    return found


def check_opt_out(headers: Mapping[str, str], transport: Transport) -> None:
    """Raise ``OptedOut`` when the response's X-Robots-Tag forbids what --disallowed-header-directives
    names (``none`` counts as ``noindex``). Free when the header is absent: one lookup."""
    disallowed = transport.content.disallowed_header_directives
    if not disallowed or headers.get("X-Robots-Tag") is None:  # as the rest reads headers: by get
        return
    values = header_values(headers, "X-Robots-Tag")
    if not values:
        return
    found = robots_directives(values, transport.network.agent)
    if "none" in found:
        found.add("noindex")
    hit = sorted(found.intersection(disallowed))
    if hit:
        raise OptedOut(f"X-Robots-Tag: {', '.join(hit)} (the site opts out; body not read)")


class BodyCheck:
    """Watches one body as it streams: raises the moment a rule is broken, hashes what it sees.

    ``start`` is the attempt's start on ``time.monotonic``; the total timeout counts from there.
    """

    __slots__ = (
        "_deadline",
        "_fast",
        "_hash",
        "_hashing",
        "_min_rate",
        "_url_deadline",
        "_win_bytes",
        "_win_start",
        "_window",
        "accept_any",
        "expected",
        "head",
        "kind",
        "max_size",
        "received",
    )

    def __init__(
        self, transport: Transport, start: float, expected: int | None, deadline: Deadline | None = None
    ) -> None:
        self.max_size = transport.content.max_size
        if self.max_size and expected is not None and expected > self.max_size:
            raise TooLarge(f"Content-Length {expected} exceeds --max-size {self.max_size}")
        self.expected = expected
        self.accept_any = transport.content.accept == "any"
        t = transport.timeouts
        self._min_rate, self._window = t.min_speed
        self._deadline = start + t.timeout if t.timeout else math.inf
        self._url_deadline, self._fast = (deadline, t.deadline_speed) if t.deadline_speed else (None, 0)
        now = time.monotonic()
        self._win_start = now
        self._win_bytes = 0
        self._hash = hashlib.sha256()
        self._hashing = True
        self.received = 0
        self.head = b""
        self.kind: str | None = None

    def feed(self, piece: bytes) -> None:
        self.received += len(piece)
        if self.max_size and self.received > self.max_size:
            raise TooLarge(f"body exceeds --max-size {self.max_size} bytes")
        if self.kind is None and len(self.head) < SNIFF_BYTES:
            self.head += piece[: SNIFF_BYTES - len(self.head)]
            if not needs_more(self.head):
                self._decide()
        if self._hashing:
            self._hash.update(piece)
        self._clock()

    def _clock(self) -> None:
        now = time.monotonic()
        if now > self._deadline:
            raise Timeout("attempt exceeded its total timeout")
        elapsed = now - self._win_start
        if elapsed >= self._window and (self._min_rate or self._url_deadline is not None):
            rate = (self.received - self._win_bytes) / elapsed
            if rate < self._min_rate:
                raise TooSlow(f"{rate:.0f} B/s over {elapsed:.0f} s, below --min-speed {self._min_rate} B/s")
            if self._url_deadline is not None and rate >= self._fast:
                self._url_deadline.extend(now + 2 * self._window)  # still healthy: it may run on
            self._win_start = now
            self._win_bytes = self.received

    def _decide(self) -> None:
        self.kind = sniff(self.head) or ""
        if not self.kind and not self.accept_any:
            if not self.head:
                raise NotImage("body is empty")
            preview = self.head[:24].decode("latin-1")
            raise NotImage(f"body is not an image (starts with {preview!r})")

    def finish(self) -> None:
        """The body ended: check it is complete and, unless ``accept any``, an image."""
        if self.expected is not None and self.received < self.expected:
            raise Truncated(f"got {self.received} of {self.expected} bytes")
        if self.kind is None:
            self._decide()

    def hashed_elsewhere(self) -> Hasher:
        """The body's running hash, for a writer that updates it with every piece it is given, in its own
        thread and just before it writes them (one pass over bytes still in the cache); ``feed`` stops
        hashing. ``sha256`` is then right once the writer has committed."""
        self._hashing = False
        return self._hash

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()
