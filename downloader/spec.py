"""The typed run spec: every setting of a run, written once, in small frozen groups.

Each field carries its own metadata (help, short flag, how text is parsed, the smallest value), from which
the CLI generates its options, grouped by topic, and ``help(downloader.download)`` its list of keywords:
a setting's name, default and meaning live here and nowhere else. Each group goes only where it is
needed: a backend gets a ``Transport`` (network, timeouts, content rules, pool sizes), never the naming
rules; the engine gets the limits and retries. The library never reads the environment: the CLI passes
environment variables in through click.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import ipaddress
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from .errors import UsageError
from .locations import locate, work_folder
from .models import Naming
from .version import __version__

DEFAULT_USER_AGENT = f"downloader/{__version__}"
DEFAULT_BACKEND = "reqwest" if importlib.util.find_spec("pyreqwest") else "aiohttp"
"""The fastest backend (docs/performance.md) where its extra is installed (``make install`` installs
it); else aiohttp, which needs no extra, so the default always runs. Found without importing it."""
NO_STATE = "none"
"""``--state none``: no state database at all."""
T = TypeVar("T")

OPT_OUT_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
"""The X-Robots-Tag directives a site uses to keep its images out of datasets."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str) -> int:
    """``100MB`` → 100_000_000; ``8MiB`` → 8_388_608; ``0`` means no limit."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"not a size: {text!r} (try 100MB, 512KiB or 0)")
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
        raise UsageError(f"not a minimum speed: {text!r} (try 1024:30, bytes per second : window)") from None
    if pair[1] <= 0:
        raise UsageError(f"the minimum-speed window must be positive: {text!r}")
    return pair


def parse_header(text: str) -> tuple[str, str]:
    """``'Referer: http://x/'`` → ``('Referer', 'http://x/')``."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
        raise UsageError(f"not a header: {text!r} (try 'Name: value')")
    if "\n" in value or "\r" in value:
        raise UsageError(f"a header value cannot hold a line break: {text!r}")
    return (name.strip(), value.strip())


def parse_words(text: str) -> tuple[str, ...]:
    """``'noai, NoIndex'`` → ``('noai', 'noindex')``; an empty text is an empty set."""
    return tuple(w.strip().lower() for w in text.split(",") if w.strip())


def parse_columns(text: str) -> tuple[str, ...]:
    """``'caption, id'`` → ``('caption', 'id')``; ``*`` keeps every column."""
    return tuple(c.strip() for c in text.split(",") if c.strip())


# -- name resolution and the address policy (issue 16) ----------------------------------------------------

PRIVATE_NETWORKS = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fec0::/10",
)
"""What counts as private unless ``private_networks`` says otherwise: this host ("this network" 0/8, which
reaches it, and loopback), RFC 1918, carrier-grade NAT, the benchmarking range, unique and site-local."""


def parse_dns_server(text: str) -> tuple[str, int]:
    """``'1.1.1.1'`` → ``('1.1.1.1', 53)``; ``'127.0.0.1:5353'``; IPv6 as ``'[::1]:5353'`` or ``'::1'``."""
    addr = text.strip()
    port = "53"
    if addr.startswith("["):
        addr, closed, rest = addr[1:].partition("]")
        addr = addr if closed else "[" + addr
        port = rest.removeprefix(":") if rest else port
    elif addr.count(":") == 1:
        addr, _, port = addr.partition(":")
    try:
        server = (str(ipaddress.ip_address(addr)), int(port))
    except ValueError:
        hint = "try 1.1.1.1, 127.0.0.1:5353, [::1]:53"
        raise UsageError(f"not a DNS server address: {text!r} ({hint})") from None
    if not 0 < server[1] < 65536:
        raise UsageError(f"not a port: {port!r} in {text!r}")
    return server


def parse_networks(text: str) -> tuple[str, ...]:
    """``'default, 203.0.113.0/24'`` → the built-in list plus that network; each one checked."""
    found: list[str] = []
    for word in parse_words(text):
        if word == "default":
            found.extend(PRIVATE_NETWORKS)
            continue
        try:
            found.append(str(ipaddress.ip_network(word, strict=False)))
        except ValueError:
            raise UsageError(f"not a network: {word!r} (try 10.0.0.0/8 or fd00::/8)") from None
    return tuple(found)


# -- field metadata ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """What a field needs to become a command-line option and a documented keyword."""

    help: str
    short: str | None = None
    """A one-letter flag such as ``-o``."""
    parse: Callable[[str], object] | None = None
    """Turns the option's text into the field's value (sizes, headers...)."""
    text_default: str | None = None
    """The default as a user types it, when ``parse`` is set."""
    minimum: float | None = None
    above_minimum: bool = False
    """The value must be strictly greater than ``minimum``."""
    choices: tuple[str, ...] | None = None
    """``("@backends",)``: the CLI asks the backend registry (the ground floor cannot)."""
    cli: bool = True
    """False: a library-only setting (or one the run sets itself)."""
    flag: str | None = None
    """The option's name when it is not the field's (``--header`` for ``headers``)."""
    multiple: bool = False
    """The option may be given many times; each value is parsed and the tuple collects them."""
    library: bool = True
    """False: a setting of list files or processes, which ``download()`` refuses: it reads no file and
    runs on one loop."""
    envvar: str | None = None
    recorded: bool = False
    """It decides paths or contents: the first run in OUT records it in ``run.json`` for the reruns."""


def setting(
    default: T,
    help: str,
    *,
    short: str | None = None,
    parse: Callable[[str], object] | None = None,
    text_default: str | None = None,
    minimum: float | None = None,
    above_minimum: bool = False,
    choices: tuple[str, ...] | None = None,
    cli: bool = True,
    flag: str | None = None,
    multiple: bool = False,
    library: bool = True,
    envvar: str | None = None,
    recorded: bool = False,
) -> T:
    """A field with a default and its ``Setting``; mutable defaults are not used, so no factory. The
    default's type is the field's (``x: int = setting("a", ...)`` fails mypy): a default is checked."""
    meta = Setting(
        help,
        short=short,
        parse=parse,
        text_default=text_default,
        minimum=minimum,
        above_minimum=above_minimum,
        choices=choices,
        cli=cli,
        flag=flag,
        multiple=multiple,
        library=library,
        envvar=envvar,
        recorded=recorded,
    )
    return field(default=default, metadata={"setting": meta})


class Group(Protocol):
    """A group of the spec (``Output``, ``Limits``...): a dataclass of ``setting`` fields under a title."""

    TITLE: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


def setting_of(f: dataclasses.Field[Any]) -> Setting:
    found: Setting = f.metadata["setting"]
    return found


def _check(group: Group) -> None:
    """Enforce each field's ``minimum`` and ``choices`` for library callers (click does it for the CLI)."""
    for f in fields(group):
        s = setting_of(f)
        value = getattr(group, f.name)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        low = s.minimum
        if number and low is not None and (value < low or (s.above_minimum and value == low)):
            word = "positive" if s.above_minimum and low == 0 else f"at least {low:g}"
            raise UsageError(f"{f.name} must be {word}, not {value!r}")
        if s.choices and s.choices[0] != "@backends" and value is not None and value not in s.choices:
            raise UsageError(f"{f.name} must be one of {', '.join(s.choices)}, not {value!r}")


# -- the groups --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Output:
    """Where files go and how they are named."""

    TITLE: ClassVar[str] = "Output"
    out: Path = setting(
        Path("downloads"),
        "Output folder; created when missing. s3://BUCKET/PREFIX for a dataset (webdataset, parquet).",
        short="-o",
    )
    names: Literal["hashed", "plain"] = setting(
        "hashed",
        "hashed: NAME.<url-digest>.EXT, never colliding; plain: the URL's basename.",
        choices=("hashed", "plain"),
        recorded=True,
    )
    layout: Literal["flat", "host", "shards"] = setting(
        "flat",
        "flat: OUT/NAME; host: OUT/HOST/NAME; shards: OUT/00000/000000123.jpg, 10,000 a folder.",
        choices=("flat", "host", "shards"),
        recorded=True,
    )
    fix_ext: bool = setting(False, "Give each file the extension of its real type.", recorded=True)
    overwrite: bool = setting(False, "Download again what an earlier run completed.")
    work_dir: Path | None = setting(
        None,
        "With -o s3://: the local folder of spools and working files [default: "
        "~/.cache/downloader/out-<hash of OUT>].",
        library=False,
    )
    store: str | None = setting(
        None, "The store a dataset is published to (set from an s3:// OUT).", cli=False, library=False
    )

    def __post_init__(self) -> None:
        where = locate(self.out, "output")  # never a folder called "s3:"
        if isinstance(where, str):  # a store: OUT becomes the local work folder, the URL is kept
            object.__setattr__(self, "store", where)
            where = self.work_dir or work_folder(where)
        elif self.work_dir is not None and self.store is None:
            raise UsageError("--work-dir is the local folder of a dataset written to a store: give -o s3://…")
        object.__setattr__(self, "out", where)
        _check(self)

    @property
    def shown(self) -> str:
        """OUT as the user named it: the store's URL, or the folder."""
        return self.store or str(self.out)


@dataclass(frozen=True, kw_only=True, slots=True)
class Input:
    """How a list file is read (the CLI's ``fetch``; library callers pass URLs or rows)."""

    TITLE: ClassVar[str] = "Input"
    input_format: Literal["txt", "csv", "tsv", "jsonl", "parquet"] | None = setting(
        None,
        "Format of LIST (default: from its name; stdin is txt).",
        choices=("txt", "csv", "tsv", "jsonl", "parquet"),
        library=False,
    )
    url_column: str = setting("url", "CSV/TSV/JSONL/Parquet column of URLs.", recorded=True)
    keep_columns: tuple[str, ...] = setting(
        (),
        "Columns to carry into the manifest, comma-separated (* for all).",
        parse=parse_columns,
        text_default="",
        recorded=True,
    )
    name_column: str | None = setting(None, "Column whose value names each file (sanitised).", recorded=True)

    def __post_init__(self) -> None:
        if self.input_format is not None:
            _check(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Network:
    """How requests go out: the client, its identity, proxies and TLS."""

    TITLE: ClassVar[str] = "Network"
    backend: str = setting(
        DEFAULT_BACKEND,
        "Download strategy (default: reqwest where pyreqwest is installed, else aiohttp).",
        choices=("@backends",),
    )
    user_agent: str = setting(DEFAULT_USER_AGENT, "User-Agent header (honest by default).")
    headers: tuple[tuple[str, str], ...] = setting(
        (),
        "Extra request header 'Name: value' (repeatable).",
        short="-H",
        parse=parse_header,
        flag="--header",
        multiple=True,
    )
    proxy: str | None = setting(None, "Proxy URL (else HTTP(S)_PROXY from the environment).")
    trust_env: bool = setting(True, "Honour HTTP(S)_PROXY / NO_PROXY from the environment.", cli=False)
    insecure: bool = setting(False, "Do not verify TLS certificates.")
    ca_bundle: str | None = setting(None, "PEM file of trusted certificate authorities.")
    max_redirects: int = setting(10, "Redirects followed before a URL fails as redirect.", minimum=0)
    chunk_size: int = setting(
        256 * 1024,
        "Bytes per read for the thread backends, and per write (at least 1 MiB) for large bodies.",
        minimum=0,
        above_minimum=True,
        cli=False,
    )
    # name resolution and the address policy: docs/dns.md
    dns_servers: tuple[tuple[str, int], ...] = setting(
        (),
        "DNS server ADDR[:PORT] to ask instead of the system resolver (repeatable; IPv6 as [ADDR]:PORT).",
        parse=parse_dns_server,
        flag="--dns-server",
        multiple=True,
    )
    dns_timeout: float = setting(
        2.0, "Seconds to wait for a --dns-server's answer before trying again.", minimum=0, above_minimum=True
    )
    dns_tries: int = setting(3, "Tries of a lookup that timed out or met SERVFAIL.", minimum=1)
    dns_lookups: int = setting(32, "DNS lookups in flight.", minimum=1)
    dns_ttl: float = setting(
        300.0, "Seconds the system resolver's answers are kept (it gives no TTL).", minimum=0
    )
    allow_private: bool = setting(
        False, "Let any URL or redirect reach private, loopback and link-local addresses (never metadata)."
    )
    deny_private: bool = setting(
        False, "Refuse private and loopback addresses, even in URLs listed by address."
    )
    private_networks: tuple[str, ...] = setting(
        PRIVATE_NETWORKS,
        "Networks that count as private, comma-separated ('default': loopback, RFC 1918, CGNAT, ULA...).",
        parse=parse_networks,
        text_default="default",
    )

    def __post_init__(self) -> None:
        _check(self)
        if self.ca_bundle is not None and not os.path.isfile(self.ca_bundle):
            raise UsageError(f"no such CA bundle: {self.ca_bundle}")
        if self.allow_private and self.deny_private:
            raise UsageError("--allow-private and --deny-private contradict each other: choose one")

    @property
    def agent(self) -> str:
        """The User-Agent's product token, lower case (``downloader``): the name robots rules use for us."""
        return self.user_agent.split("/")[0].split(" ")[0].strip().lower()

    def request_headers(self) -> dict[str, str]:
        """Headers sent with every request: honest UA, identity encoding, then the user's own."""
        base = {"User-Agent": self.user_agent, "Accept-Encoding": "identity", "Accept": "image/*,*/*;q=0.8"}
        for name, value in self.headers:
            base[name] = value
        return base


@dataclass(frozen=True, kw_only=True, slots=True)
class Timeouts:
    """How long an attempt and a URL may take. The defaults let a run end: a stall, a trickle or a dead
    host holds a URL well under a minute in all, while a body still arriving at ``deadline_speed`` or
    faster may finish however large it is."""

    TITLE: ClassVar[str] = "Retries and timeouts"
    connect_timeout: float = setting(10.0, "Seconds to connect.", minimum=0, above_minimum=True)
    read_timeout: float = setting(
        10.0,
        "Seconds of silence allowed, waiting for the answer or within a body.",
        minimum=0,
        above_minimum=True,
    )
    timeout: float = setting(0.0, "Seconds for one attempt, whole (0: no limit but --deadline).", minimum=0)
    deadline: float = setting(
        60.0,
        "Seconds for one URL, all attempts and waits; only a body arriving at --deadline-speed or faster "
        "runs past it.",
        minimum=0,
        above_minimum=True,
    )
    deadline_speed: int = setting(
        512_000,
        "BYTES per second a body must keep up to run past --deadline (0: the deadline is strict).",
        parse=parse_size,
        text_default="512KB",
        minimum=0,
    )
    idle_timeout: float = setting(
        5.0,
        "Seconds an idle connection is kept for the next URL of its host: longer saves handshakes, shorter "
        "saves memory on lists of many hosts.",
        minimum=0,
        above_minimum=True,
    )
    min_speed: tuple[int, float] = setting(
        (1024, 10.0),
        "BYTES:SECONDS; slower bodies fail as too_slow (0: off).",
        parse=parse_min_speed,
        text_default="1024:10",
    )

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Retries:
    """When a failed attempt is tried again."""

    TITLE: ClassVar[str] = "Retries and timeouts"
    retries: int = setting(
        3, "Retries after a retryable failure (connection, timeout, 408, 429, 5xx).", minimum=0
    )
    stall_retries: int = setting(
        1,
        "Of those, retries after a stall or a trickle (read timeout, too_slow): a strong sign that the "
        "next attempt stalls too.",
        minimum=0,
    )
    backoff: float = setting(0.5, "Base of the exponential backoff (seconds, jittered).", minimum=0)
    retry_after_max: float = setting(120.0, "A longer Retry-After fails the URL as rate_limited.", minimum=0)

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Content:
    """What a body must be to be kept."""

    TITLE: ClassVar[str] = "Content"
    accept: Literal["images", "any"] = setting(
        "images",
        "images: the first bytes must be an image; any: keep every body.",
        choices=("images", "any"),
        recorded=True,
    )
    max_size: int = setting(
        100_000_000,
        "Larger bodies fail as too_large (0: no limit).",
        parse=parse_size,
        text_default="100MB",
        minimum=0,
    )
    disallowed_header_directives: tuple[str, ...] = setting(
        OPT_OUT_DIRECTIVES,
        "X-Robots-Tag directives that opt a URL out (read before its body; comma-separated, empty: off).",
        parse=parse_words,
        text_default=",".join(OPT_OUT_DIRECTIVES),
        recorded=True,
    )
    robots_txt: bool = setting(
        False,
        "Fetch each host's /robots.txt once and fail the URLs it disallows for our User-Agent as "
        "opted_out, unrequested.",
        recorded=True,
    )

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """How much runs at once, and how politely."""

    TITLE: ClassVar[str] = "Politeness and limits"
    concurrency: int = setting(64, "Downloads in flight.", short="-c", minimum=1)
    per_host: int = setting(0, "Connections per host:port (0: no cap).", minimum=0)
    rate: float = setting(0.0, "Requests per second, overall (0: no limit).", minimum=0)
    rate_per_host: float = setting(0.0, "Requests per second to each host:port (0: no limit).", minimum=0)
    lookahead: int = setting(
        1024, "Rows read ahead of the free slots, so one slow host cannot hold every slot.", minimum=0
    )
    host_down_after: int = setting(
        5, "Consecutive connect failures before a host's other URLs fail fast (0: never).", minimum=0
    )

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Performance:
    """How the run uses the machine."""

    TITLE: ClassVar[str] = "Performance"
    loop: Literal["auto", "uvloop", "asyncio"] = setting(
        "auto",
        "Event loop (auto: uvloop when installed).",
        choices=("auto", "uvloop", "asyncio"),
        library=False,
    )
    procs: int | None = setting(
        None,
        "Worker processes, each an event loop over a part of the list; -c is split among them "
        "[default: the usable CPUs, fewer for lists under 10,000 rows per process, 1 for stdin].",
        minimum=1,
        library=False,
    )
    part: tuple[int, int] | None = setting(
        None,
        "(k, n): this process downloads part k of n of the list (set by --procs).",
        cli=False,
        library=False,
    )

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Images:
    """What becomes of each image: checked, filtered, resized, re-encoded. With none of the options that
    change a body or reject one set, no image library is loaded and no worker starts."""

    TITLE: ClassVar[str] = "Images"
    verify: Literal["header", "decode"] = setting(
        "header",
        "header: the first bytes must be an image; decode: decode it whole (corrupt_image when it fails).",
        choices=("header", "decode"),
        recorded=True,
    )
    max_pixels: int = setting(
        89_478_485,
        "Images with more pixels fail as too_many_pixels, read from the header, never decoded (0: no limit).",
        minimum=0,
        recorded=True,
    )
    image_size: int = setting(
        0, "Resize to this many pixels (see --resize-mode; 0: no resize).", minimum=0, recorded=True
    )
    resize_mode: Literal["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"] = setting(
        "border",
        "keep_ratio: the shorter side becomes N; keep_ratio_largest: the longer; center_crop: shorter side "
        "N, then the centred NxN; border: longer side N, padded (white) to NxN.",
        choices=("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"),
        recorded=True,
    )
    resize_only_if_bigger: bool = setting(
        False,
        "Only shrink: an image whose side the mode sets to N (shorter for keep_ratio and center_crop, "
        "longer for the others) is within N stays as it is, neither cropped nor padded (as img2dataset).",
        recorded=True,
    )
    downscale_interpolation: Literal["linear", "cubic", "lanczos"] = setting(
        "cubic",
        "The filter that finishes a shrink, after the JPEG decoder's own reduction to twice the target: "
        "cubic, lanczos, or linear (a web image's resize 1.2 ms faster, softer, and fine patterns near the "
        "new resolution alias a little more). Each is antialiased.",
        choices=("linear", "cubic", "lanczos"),
        recorded=True,
    )
    encode_format: Literal["jpg", "png", "webp"] | None = setting(
        None,
        "Re-encode every image in this format [default: keep the format; a resized image is re-encoded "
        "in it when it is jpg, png or webp, else as png].",
        choices=("jpg", "png", "webp"),
        recorded=True,
    )
    encode_quality: int = setting(95, "Quality of jpg and webp encoding (1-100).", minimum=1, recorded=True)
    skip_reencode: bool = setting(
        False,
        "Keep the original bytes when no resize is needed and the format already matches.",
        recorded=True,
    )
    min_image_size: int = setting(
        0,
        "Images whose shorter side is smaller fail as image_too_small (0: none).",
        minimum=0,
        recorded=True,
    )
    max_image_area: int = setting(
        0,
        "Images with a larger width x height fail as image_too_large (0: no limit).",
        minimum=0,
        recorded=True,
    )
    max_aspect_ratio: float = setting(
        0.0,
        "Images whose longer side over shorter side is larger fail as aspect_ratio (0: any).",
        minimum=0,
        recorded=True,
    )
    image_workers: int | None = setting(
        None, "Processes (or threads) that decode and resize [default: the usable CPUs].", minimum=1
    )
    image_executor: Literal["process", "thread", "inline"] = setting(
        "process",
        "process: a process pool (every core); thread: a thread pool (as far as the library releases the "
        "GIL); inline: on the event loop, which then waits for each image (for comparison).",
        choices=("process", "thread", "inline"),
    )

    def __post_init__(self) -> None:
        if self.encode_quality > 100:
            raise UsageError(f"encode_quality must be at most 100, not {self.encode_quality!r}")
        _check(self)

    @property
    def active(self) -> bool:
        """True when some option checks, rejects or changes images: the stage runs."""
        return bool(
            self.verify == "decode"
            or self.image_size
            or self.encode_format
            or self.min_image_size
            or self.max_image_area
            or self.max_aspect_ratio
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Dataset:
    """Dataset shards instead of loose files: the list is cut into shards of ``shard_size`` input rows,
    each written whole (a tar or a Parquet file) and renamed into place when complete. A list file's
    setting: ``download()`` takes the keywords but writes files only (it refuses another format)."""

    TITLE: ClassVar[str] = "Dataset"
    output_format: Literal["files", "webdataset", "parquet"] = setting(
        "files",
        "files: a file per URL; webdataset: OUT/00000.tar per shard (KEY.jpg, KEY.json, KEY.txt); "
        "parquet: OUT/00000.parquet per shard, the image bytes beside the row.",
        choices=("files", "webdataset", "parquet"),
        recorded=True,
    )
    shard_size: int = setting(10_000, "Input rows per shard (webdataset, parquet).", minimum=1, recorded=True)
    caption_column: str | None = setting(
        None, "Column stored as each sample's KEY.txt (webdataset) or caption.", recorded=True
    )
    dedup: Literal["url", "content", "none"] = setting(
        "url",
        "url: a URL seen before in the shard is a duplicate; content: also an image whose sha256 is "
        "already stored in OUT (webdataset, parquet); none: store every row.",
        choices=("url", "content", "none"),
        recorded=True,
    )

    def __post_init__(self) -> None:
        _check(self)
        if self.output_format == "files" and self.dedup != "url":
            raise UsageError(f"--dedup {self.dedup} needs --output-format webdataset or parquet")

    @property
    def sharded(self) -> bool:
        """True for the dataset formats, whose unit of work is the shard."""
        return self.output_format != "files"


DASK_ADDRESS = re.compile(
    r"local:(?P<workers>[1-9][0-9]{0,3})"
    r"|(?:tcp|tls)://(?:\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(?::[0-9]{1,5})?/?"
)
"""``--dask``: local:N (N worker processes here) or a scheduler's address."""


def _check_cluster(c: Cluster) -> None:
    if (c.rank is None) != (c.world is None):
        raise UsageError("--rank and --world go together (worker RANK of WORLD workers)")
    if c.rank is not None and c.world is not None and c.rank >= c.world:
        raise UsageError(f"--rank counts from 0: it must be below --world {c.world}, not {c.rank}")
    if c.dask is not None and c.rank is not None:
        raise UsageError("--dask and --rank are two ways to run shards elsewhere: choose one")
    if c.dask is not None and not DASK_ADDRESS.fullmatch(c.dask):
        raise UsageError(
            f"--dask takes a scheduler's address (tcp://HOST:PORT or tls://HOST:PORT) or local:N for N "
            f"worker processes on this machine, not {c.dask!r}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Cluster:
    """Where a dataset run's shards run beyond this machine's processes, and the database they share."""

    TITLE: ClassVar[str] = "Cluster and state"
    dask: str | None = setting(
        None,
        "Run the shards on a Dask cluster: tcp://HOST:8786 (an existing scheduler) or local:N (a "
        "LocalCluster of N worker processes on this machine).",
        library=False,
    )
    rank: int | None = setting(
        None, "This worker's number among --world static workers, from 0.", minimum=0, library=False
    )
    world: int | None = setting(None, "How many static workers share the run.", minimum=1, library=False)
    state: str | None = setting(
        None,
        "The run's shared state: sqlite:///PATH, mysql://USER:PASS@HOST[:PORT]/DB (MySQL, MariaDB) or "
        "postgresql://USER[:PASS]@HOST[:PORT]/DB, or none [default: sqlite in OUT/_shards/state.sqlite "
        "when OUT is on a local filesystem].",
        library=False,
    )
    lease: float = setting(
        60.0,
        "Seconds a claimed shard stays a worker's without its heartbeat; then another worker takes it over.",
        minimum=1,
        library=False,
    )

    def __post_init__(self) -> None:
        _check(self)
        _check_cluster(self)

    @property
    def active(self) -> bool:
        """True when shards run on Dask or as static workers."""
        return self.dask is not None or self.rank is not None

    @property
    def claims(self) -> bool:
        """Static workers that claim shards from a state database (``--rank`` with ``--state``, not
        ``none``), instead of taking the shards ``k % world == rank``."""
        return self.rank is not None and self.state not in (None, NO_STATE)


GROUPS: tuple[type[Group], ...] = (
    Output,
    Input,
    Network,
    Timeouts,
    Retries,
    Content,
    Images,
    Limits,
    Performance,
    Dataset,
    Cluster,
)
"""Every group, in the order the help shows them."""


@dataclass(frozen=True, slots=True)
class Transport:
    """A backend's share of the spec: the network, the timeouts, the content rules and its pool sizes."""

    network: Network
    timeouts: Timeouts
    content: Content
    slots: int
    per_host: int


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSpec:
    """Everything a run needs, built once (by the CLI, by ``download(**options)``, or in a worker)."""

    output: Output = field(default_factory=Output)
    input: Input = field(default_factory=Input)
    network: Network = field(default_factory=Network)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: Retries = field(default_factory=Retries)
    content: Content = field(default_factory=Content)
    images: Images = field(default_factory=Images)
    limits: Limits = field(default_factory=Limits)
    performance: Performance = field(default_factory=Performance)
    dataset: Dataset = field(default_factory=Dataset)
    cluster: Cluster = field(default_factory=Cluster)

    @property
    def in_shards(self) -> bool:
        """Whether the run is made in shards: a dataset format always; plain files (a folder per shard)
        when shards run elsewhere or are recorded in a state database (``--dask``, ``--rank``,
        ``--state``), since beyond one process's pool the shard is the only unit of work and resume."""
        c = self.cluster
        return self.dataset.sharded or c.active or c.state not in (None, NO_STATE)

    def check_store(self) -> None:
        """A store (``-o s3://…``) holds datasets only; a usage error otherwise. Checked once the run's
        record is settled: ``--retry-failed`` takes the format from the store's ``run.json``."""
        if self.output.store is not None and not self.dataset.sharded:
            raise UsageError(
                f"{self.output.store}: a store holds datasets: give --output-format webdataset or parquet "
                "(a file per URL is written to a local folder only)"
            )

    @classmethod
    def from_options(cls, **options: object) -> RunSpec:
        """Build from flat keywords (``concurrency=32, timeout=30``), naming any unknown one. Text is
        accepted where the CLI takes text (``max_size="8MiB"``, ``headers={"Referer": ...}``)."""
        owners = _owners()
        unknown = sorted(set(options) - set(owners))
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(unknown)}")
        values: dict[str, dict[str, object]] = {}
        for name, value in options.items():
            attr, group = owners[name]
            values.setdefault(attr, {})[name] = _coerce(group, name, value)
        classes = {gf.name: g for gf, g in _group_fields()}
        groups: dict[str, Any] = {attr: classes[attr](**vals) for attr, vals in values.items()}
        return cls(**groups)  # each group by its name: mypy cannot pair them with the fields

    def replace(self, **options: object) -> RunSpec:
        """A copy with some flat settings changed (``spec.replace(concurrency=8, part=(0, 2))``)."""
        owners = _owners()
        changes: dict[str, dict[str, object]] = {}
        for name, value in options.items():
            changes.setdefault(owners[name][0], {})[name] = value
        return dataclasses.replace(
            self, **{a: dataclasses.replace(getattr(self, a), **c) for a, c in changes.items()}
        )

    def get(self, name: str) -> object:
        """One setting by its flat name (``spec.get("layout")``)."""
        return getattr(getattr(self, _owners()[name][0]), name)

    @property
    def naming(self) -> Naming:
        return Naming(self.output.names, self.output.layout, self.performance.part)

    def transport(self) -> Transport:
        return Transport(
            self.network, self.timeouts, self.content, self.limits.concurrency, self.limits.per_host
        )


@functools.cache
def _owners() -> dict[str, tuple[str, type[Group]]]:
    """Each setting's group: the ``RunSpec`` attribute that holds it, and the group's class."""
    return {f.name: (gf.name, g) for gf, g in _group_fields() for f in fields(g)}


def _group_fields() -> Iterator[tuple[dataclasses.Field[Any], type[Group]]]:
    by_name = {g.__name__: g for g in GROUPS}
    for gf in fields(RunSpec):
        yield gf, by_name[str(gf.type)]


def _coerce(group: type[Group], name: str, value: Any) -> object:
    """A library caller's value in the field's own type: text parsed as the CLI would parse it."""
    (f,) = [f for f in fields(group) if f.name == name]
    s = setting_of(f)
    if name == "headers" and isinstance(value, dict):
        return tuple(value.items())
    if s.parse is not None and isinstance(value, str):
        return (s.parse(value),) if s.multiple else s.parse(value)
    if s.multiple:
        return tuple(s.parse(v) if s.parse and isinstance(v, str) else tuple(v) for v in value)
    if name == "private_networks":
        return parse_networks(",".join(value))
    return value


def library_options() -> frozenset[str]:
    """The settings ``download()`` takes as keywords."""
    return frozenset(f.name for _gf, g in _group_fields() for f in fields(g) if setting_of(f).library)


def options_doc() -> str:
    """Every keyword of ``download()``, its default and its meaning, by group (for its docstring); the
    settings it refuses are left out, so the list is the truth."""
    lines = []
    title = ""
    for _gf, group in _group_fields():
        shown = [f for f in fields(group) if setting_of(f).library]
        if shown and title != group.TITLE:  # Timeouts and Retries share one heading, as in --help
            title = group.TITLE
            lines.append(f"\n{title}:")
        for f in shown:
            s = setting_of(f)
            default = s.text_default or repr(f.default)
            where = "" if s.cli else "; no command-line flag"
            lines.append(f"    {f.name} (default {default}{where}): {s.help}")
    return "\n".join(lines)
