"""The run's configuration, built once (by the CLI or by ``download(**options)``) and never read from the
environment by the library itself."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from . import __version__
from .models import Naming

DEFAULT_USER_AGENT = f"downloader/{__version__}"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """``100MB`` → 100_000_000; ``8MiB`` → 8_388_608; ``0`` means no limit."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (try 100MB, 512KiB or 0)")
    unit = (m.group(2) or "").lower()
    binary = "i" in unit
    letter = unit[:1] if unit[:1] in "kmgt" and unit else ""
    scale = 1024 ** "_kmgt".index(letter) if binary and letter else _UNITS[letter]
    return int(float(m.group(1)) * scale)


def parse_min_speed(text: str) -> tuple[int, float]:
    """``1024:30`` → at least 1024 bytes/s over any 30 s window; ``0`` switches the rule off."""
    if text.strip() == "0":
        return (0, 30.0)
    rate, sep, window = text.partition(":")
    try:
        pair = (parse_size(rate), float(window) if sep else 30.0)
    except ValueError:
        raise ValueError(f"not a minimum speed: {text!r} (try 1024:30, bytes per second : window)") from None
    if pair[1] <= 0:
        raise ValueError(f"the minimum-speed window must be positive: {text!r}")
    return pair


def parse_header(text: str) -> tuple[str, str]:
    """``'Referer: http://x/'`` → ``('Referer', 'http://x/')``."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
        raise ValueError(f"not a header: {text!r} (try 'Name: value')")
    if "\n" in value or "\r" in value:
        raise ValueError(f"a header value cannot hold a line break: {text!r}")
    return (name.strip(), value.strip())


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    """Everything a run needs. Field names double as ``download(**options)`` keywords."""

    out: Path = Path("downloads")
    """Output folder; created when missing."""
    concurrency: int = 64
    """Downloads in flight at once."""
    backend: str = "aiohttp"
    """``aiohttp``, ``executor`` or ``threads`` (see ``downloader.backends``)."""
    connect_timeout: float = 10.0
    """Seconds to open a connection."""
    read_timeout: float = 30.0
    """Seconds of silence allowed between two pieces of a body."""
    timeout: float = 120.0
    """Seconds for one attempt, whole."""
    deadline: float = 600.0
    """Seconds for one URL, all attempts and waits together."""
    retries: int = 3
    """Further attempts after a retryable failure."""
    backoff: float = 0.5
    """Base of the exponential backoff, in seconds; each wait is jittered by ±50 %."""
    retry_after_max: float = 120.0
    """A longer Retry-After fails the URL as ``rate_limited`` instead of stalling the run."""
    min_speed: tuple[int, float] = (1024, 30.0)
    """(bytes/s, window s): a body slower than this over a window fails as ``too_slow``; 0 bytes/s: off."""
    max_size: int = 100_000_000
    """Bytes; a larger body fails as ``too_large``; 0: no limit."""
    max_redirects: int = 10
    per_host: int = 0
    """Connections per host:port; 0: no cap (each host still gets only its fair share of the slots
    while other hosts have work waiting)."""
    rate: float = 0.0
    """Requests per second, overall; 0: no limit."""
    rate_per_host: float = 0.0
    """Requests per second to each host:port; 0: no limit."""
    lookahead: int = 1024
    """Jobs read ahead of the free slots, so the next job can come from another host; 0: read a row
    only when a slot is free."""
    host_down_after: int = 5
    """Consecutive connect/DNS failures after which a host's remaining URLs fail fast; 0: never."""
    accept: Literal["images", "any"] = "images"
    """``images``: the first bytes must be an image (magic numbers decide); ``any``: keep every body."""
    fix_ext: bool = False
    """Give each file the extension of its real type."""
    names: Literal["hashed", "plain"] = "hashed"
    """``hashed``: ``cat.3f9a1c2e.jpg``, collision-free; ``plain``: the URL's basename as it is."""
    layout: Literal["flat", "host", "shards"] = "flat"
    """``flat``: OUT/NAME; ``host``: OUT/HOST/NAME; ``shards``: OUT/00000/000000123.jpg, 10,000 a folder."""
    overwrite: bool = False
    """Download again even when an earlier run completed the URL."""
    user_agent: str = DEFAULT_USER_AGENT
    headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers."""
    proxy: str | None = None
    """Proxy URL for every request; otherwise the usual proxy environment variables apply."""
    trust_env: bool = True
    """Honour HTTP(S)_PROXY / NO_PROXY from the environment."""
    insecure: bool = False
    """Skip TLS certificate checks."""
    ca_bundle: str | None = None
    """A PEM file of trusted certificate authorities."""
    chunk_size: int = 256 * 1024
    """Bytes per read for the thread backends, and per write for large bodies."""
    shard: tuple[int, int] | None = None
    """(k, n): this process downloads shard k of n of the list (set by ``--procs`` for each worker)."""

    def __post_init__(self) -> None:
        if not isinstance(self.out, Path):
            object.__setattr__(self, "out", Path(self.out))
        positive = ("concurrency", "connect_timeout", "read_timeout", "timeout", "deadline", "chunk_size")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)!r}")
        for name in (
            "retries",
            "backoff",
            "retry_after_max",
            "max_size",
            "max_redirects",
            "per_host",
            "host_down_after",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} cannot be negative, not {getattr(self, name)!r}")
        if self.accept not in ("images", "any"):
            raise ValueError(f"accept must be 'images' or 'any', not {self.accept!r}")
        if self.names not in ("hashed", "plain"):
            raise ValueError(f"names must be 'hashed' or 'plain', not {self.names!r}")
        if self.layout not in ("flat", "host", "shards"):
            raise ValueError(f"layout must be 'flat', 'host' or 'shards', not {self.layout!r}")
        if self.ca_bundle is not None and not os.path.isfile(self.ca_bundle):
            raise ValueError(f"no such CA bundle: {self.ca_bundle}")

    @classmethod
    def from_options(cls, out: str | os.PathLike[str], **options: Any) -> Config:
        """Build from keyword options, naming any unknown one (the library's ``**options``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(unknown)}")
        if isinstance(options.get("max_size"), str):
            options["max_size"] = parse_size(options["max_size"])
        if isinstance(options.get("min_speed"), str):
            options["min_speed"] = parse_min_speed(options["min_speed"])
        if isinstance(options.get("headers"), dict):
            options["headers"] = tuple(options["headers"].items())
        return cls(out=Path(out), **options)

    @property
    def naming(self) -> Naming:
        return Naming(self.names, self.layout, self.shard)

    def request_headers(self) -> dict[str, str]:
        """Headers sent with every request: honest UA, identity encoding, then the user's own."""
        base = {"User-Agent": self.user_agent, "Accept-Encoding": "identity", "Accept": "image/*,*/*;q=0.8"}
        for name, value in self.headers:
            base[name] = value
        return base
