"""One shallow error tree; each class knows its manifest ``kind`` and whether a retry may help.

::

    DownloadError                      one URL failed (recorded, the run goes on)
     ├── InvalidURL         invalid_url     not http(s), no host, absurd length
     ├── InvalidInput       invalid_input   a malformed input row
     ├── DNSError           dns             retryable, unless the resolver said the name has no address
     ├── Blocked            blocked         the address is one the run may not reach (metadata, private...)
     ├── ConnectError       connect         retryable (refused, reset before a response)
     ├── TLSError           tls
     ├── Timeout            timeout         retryable (connect, read or total)
     ├── TooSlow            too_slow        retryable (below --min-speed)
     ├── Truncated          truncated       retryable (fewer bytes than announced, reset mid-body)
     ├── HTTPError          http_4xx / http_5xx; retryable for 408, 429 and 5xx
     │    └── RateLimited   rate_limited    429, or a Retry-After beyond the cap
     ├── RedirectError      redirect        too many, a loop, or to a scheme other than http(s)
     ├── TooLarge           too_large
     ├── NotImage           not_image       the bytes are not an image
     ├── CorruptImage       corrupt_image   an image that does not decode (truncated, corrupt, unknown)
     ├── TooManyPixels      too_many_pixels more pixels than --max-pixels (a decompression bomb)
     ├── ImageTooSmall      image_too_small shorter side under --min-image-size
     ├── ImageTooLarge      image_too_large area over --max-image-area
     ├── AspectRatio        aspect_ratio    longer side over shorter side beyond --max-aspect-ratio
     ├── OptedOut           opted_out       the site said no (X-Robots-Tag); its body is never read
     ├── HostDown           host_down       the host failed to connect too often in a row
     ├── WriteError         write           the file could not be written
     │    └── StoreError    write           an object store (or the folder standing for one) refused a call
     ├── Cancelled          cancelled       the run was interrupted
     └── (base)             internal        a bug: an exception no backend mapped

    UsageError (ValueError)                 the user asked for something impossible (exit 2)
    RunAborted                              the whole run stops (exit 3): output not writable, disk full
    OSError, reaching the command line      the machine failed the run (exit 3): a folder gone, a bad disk
    any other exception                     a bug (exit 4)

Exit codes live here, on the classes, so the CLI only reads them: ``ExitCode``.

Backends translate their library's exceptions into these at the door, so the engine sees only this tree.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """What the process returns (README, "Failures")."""

    OK = 0
    FAILED = 1
    """Some URLs failed."""
    USAGE = 2
    ABORTED = 3
    """The run stopped: the output is not writable, the disk filled up, the state database went away."""
    INTERNAL = 4
    """A bug: an exception nothing expected (``--debug`` shows its traceback, to report)."""
    INTERRUPTED = 130


class DownloadError(Exception):
    """One URL failed; ``str(err)`` is the human sentence for the manifest."""

    kind: ClassVar[str] = "internal"
    retryable: bool = False
    stall: bool = False
    """The server went quiet or slow mid-answer: retried only ``--stall-retries`` times."""
    host_level: bool = False
    """The host itself could not be reached (counts towards ``host_down``)."""
    http_status: int | None = None
    retry_after: float | None = None
    content_type: str | None = None
    """What the server said the body was, when the failure came after the headers."""


class InvalidURL(DownloadError):
    kind = "invalid_url"


class InvalidInput(DownloadError):
    kind = "invalid_input"


class DNSError(DownloadError):
    kind = "dns"
    retryable = True
    host_level = True

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Blocked(DownloadError):
    """The URL, or a redirect, leads to an address the address policy refuses (``addresses``): decided
    before connecting, by the address connected to; never retried."""

    kind = "blocked"


class ConnectError(DownloadError):
    kind = "connect"
    retryable = True
    host_level = True


class TLSError(DownloadError):
    kind = "tls"


class Timeout(DownloadError):
    kind = "timeout"
    retryable = True

    def __init__(self, message: str, *, connecting: bool = False) -> None:
        super().__init__(message)
        self.host_level = connecting
        self.stall = not connecting


class TooSlow(DownloadError):
    kind = "too_slow"
    retryable = True
    stall = True


class Truncated(DownloadError):
    kind = "truncated"
    retryable = True


class HTTPError(DownloadError):
    """A non-2xx answer. 408, 429 and 5xx may succeed later; other 4xx will not."""

    kind = "http_4xx"

    def __init__(self, status: int, reason: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}{' ' + reason if reason else ''}")
        self.http_status = status
        self.retry_after = retry_after
        self.retryable = status in (408, 429) or status >= 500


class ServerError(HTTPError):
    kind = "http_5xx"


class RateLimited(HTTPError):
    kind = "rate_limited"


class RedirectError(DownloadError):
    kind = "redirect"


class TooLarge(DownloadError):
    kind = "too_large"


class NotImage(DownloadError):
    kind = "not_image"


class CorruptImage(DownloadError):
    kind = "corrupt_image"


class TooManyPixels(DownloadError):
    kind = "too_many_pixels"


class ImageTooSmall(DownloadError):
    kind = "image_too_small"


class ImageTooLarge(DownloadError):
    kind = "image_too_large"


class AspectRatio(DownloadError):
    kind = "aspect_ratio"


class OptedOut(DownloadError):
    """The response's headers opt the URL out of datasets: not retried, body never read."""

    kind = "opted_out"


class HostDown(DownloadError):
    kind = "host_down"


class WriteError(DownloadError):
    kind = "write"
    fatal: bool = False
    """Every further write would fail too (disk full, read-only): the run stops."""


class StoreError(WriteError):
    """An object store, or the folder standing for one, failed a call (``downloader.stores``): the
    library's exception is mapped here at the door, with a sentence that names the object."""

    missing: bool = False
    """The object is not there (a read of a key never written): not worth retrying."""

    def __init__(self, message: str, *, fatal: bool = False, missing: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.missing = missing


class Cancelled(DownloadError):
    kind = "cancelled"


def _tree(cls: type[DownloadError]) -> list[type[DownloadError]]:
    """``cls`` and the classes below it, parents before children, in the order they are defined here."""
    return [cls, *(sub for child in cls.__subclasses__() for sub in _tree(child))]


KINDS: tuple[str, ...] = tuple(dict.fromkeys(cls.kind for cls in _tree(DownloadError)))
"""The closed set of failure kinds written to the manifest, read off the classes above (``internal`` is the
base's), so a kind is written once: a class added here brings its kind."""


class UsageError(ValueError):
    """A setting, list or option the run cannot work with; the user's to fix (exit code 2). A
    ``ValueError`` so library callers can catch bad arguments the usual way."""

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE


class RunAborted(Exception):
    """The whole run must stop (exit code 3): every further write would fail too."""

    exit_code: ClassVar[ExitCode] = ExitCode.ABORTED


def http_error(status: int, reason: str = "", retry_after: float | None = None) -> HTTPError:
    """The error for a non-2xx status, with the right kind."""
    cls = RateLimited if status == 429 else ServerError if status >= 500 else HTTPError
    return cls(status, reason, retry_after)
