"""Every URL a browser accepts: IRIs become URIs once, where a URL is parsed, so every backend sends the
same bytes; whatever a line holds, it ends in a row of a known kind, never ``internal`` or a traceback."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from downloader.cli import main
from downloader.errors import KINDS, InvalidURL
from downloader.models import Naming
from downloader.names import parse_url
from downloader.sources import make_job
from tests.faults import JPEG, TARGETS
from tests.helpers import Run, manifest_rows

Fetch = Callable[..., Awaitable[Run]]


def base(origin: TestServer) -> str:
    return f"http://127.0.0.1:{origin.port}"


async def test_a_raw_utf8_path_and_query_go_out_percent_encoded(origin: TestServer, fetch: Fetch) -> None:
    url = f"{base(origin)}/img/图片/ü ber.jpg?q=é"
    run = await fetch([url])
    row = run.row(url)  # the manifest keeps the URL as the user gave it
    assert row["status"] == "ok", row
    assert row["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert origin.app[TARGETS] == ["/img/%E5%9B%BE%E7%89%87/%C3%BC%20ber.jpg?q=%C3%A9"]
    (name,) = run.files()
    assert name.startswith("ü ber.") and name.endswith(".jpg")  # the name people read, as before


async def test_an_international_host_goes_out_in_idna_form(origin: TestServer, fetch: Fetch) -> None:
    """Through the origin as a proxy, so the request line shows the host each backend sent."""
    urls = ["http://Bücher.example/img/a/image-00.jpg", "http://图/img/b/image-00.jpg?q=ß"]
    run = await fetch(urls, proxy=base(origin))
    assert [run.row(u)["status"] for u in urls] == ["ok", "ok"]
    targets: list[str] = origin.app[TARGETS]
    assert sorted(targets) == [
        "http://xn--bcher-kva.example/img/a/image-00.jpg",
        "http://xn--wcs/img/b/image-00.jpg?q=%C3%9F",
    ]


async def test_a_host_mapped_to_ascii_is_fetched(origin: TestServer, fetch: Fetch) -> None:
    url = f"http://１２７。０。０。１:{origin.port}/img/c/image-00.jpg"
    run = await fetch([url])
    assert run.row(url)["status"] == "ok"
    assert origin.app[TARGETS] == ["/img/c/image-00.jpg"]


@pytest.mark.parametrize(
    ("host", "reason"),
    [("..", "empty label"), ("a" * 64 + ".localhost", "over 63"), ("xn--zz", "international")],
)
async def test_hosts_idna_refuses_are_invalid_url_rows(
    origin: TestServer, fetch: Fetch, host: str, reason: str
) -> None:
    url = f"http://{host}:{origin.port}/x.jpg"
    run = await fetch([url])
    row = run.row(url)
    assert (row["status"], row["kind"]) == ("invalid", "invalid_url") and reason in row["error"]
    assert origin.app[TARGETS] == []


# What a line may hold: pieces of URLs, what IDNA and percent-encoding must deal with, controls,
# separators, lone surrogates; then any text, bytes read as Latin-1 or as UTF-8, and very long lines.
PIECES = [
    *("http://", "https://", "HTTP://", "ftp://", "//", "http:", ":", "/", "?", "#", "@", "\\", " "),
    *("%", "%2", "%41", "%zz", "%C3%BC", "%2F", "[", "]", "[::1]", ":80", ":8080", ":65536", ":x"),
    *(".", "..", "a.", "xn--", "xn--zz", "xn--bcher-kva", "bücher", "图", "ß", "İ", "ＡＢ", "１", "。"),
    *("\u200d", "\u0300", "\u0663", "\ufeff", "\u2028", "\x85", "\t", "\n", "\x00", "\x7f"),
    *("\ud800", "\udcff", "a" * 64, "127.0.0.1", "example.com", "a_b", "-", "|", "{", "^", "`", '"'),
]
ANY_CHAR = st.characters(exclude_categories=())  # surrogates too
LONG = st.builds(
    lambda head, fill, n: head + fill * n,
    st.sampled_from(["http://h/", "http://", "https://a.", "http://h/?q=", "", "http://ü.de/"]),
    st.sampled_from(["a", "é", "/", "%", "a.", "图"]),
    st.integers(60, 9000),
)
LINES = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(ANY_CHAR, max_size=6)), max_size=24).map("".join),
    st.text(ANY_CHAR, max_size=80),
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
    st.binary(max_size=120).map(lambda b: b.decode("utf-8", "surrogateescape")),
    LONG,
)
NAMINGS = [Naming(), Naming("plain", "host"), Naming("hashed", "host")]


@settings(max_examples=2000, derandomize=True, deadline=None, database=None)
@given(line=LINES)
def test_any_line_becomes_an_ascii_uri_or_an_invalid_url(line: str) -> None:
    """``parse_url`` raises nothing but ``InvalidURL``; what it accepts is ASCII and parses to itself."""
    try:
        key, host, path = parse_url(line)
    except InvalidURL:
        assert all(make_job(1, line, naming).error_kind == "invalid_url" for naming in NAMINGS)
        return
    assert key.isascii() and host.isascii() and path.startswith("/")
    assert parse_url(key) == (key, host, path)
    for naming in NAMINGS:
        job = make_job(1, line, naming)
        assert (job.key, job.host, job.error) == (key, host, None)
        assert job.path and not job.path.startswith("/") and ".." not in job.path.split("/")


# Valid URLs to the origin: /img/<n><any text without '/', '?', '#', '%', '.', braces>/image-00.jpg
GROUPS = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/?#%.{}"), min_size=1, max_size=8
)
PREFIXES = ["", "http://127.0.0.1:{port}", "http://127.0.0.1:{port}/img/", "HTTP://127.0.0.1:{port}/"]
PREFIXES += ["http://..:{port}", "http://bücher.example", "https://127.0.0.1:{port}/", "ftp://a/"]


def fuzzed_list(port: int, junk: list[tuple[int, str]], groups: list[str]) -> tuple[bytes, list[str]]:
    """The list file's bytes (lone surrogates written as the invalid UTF-8 they would be) and the
    valid URLs in it."""
    valid = [f"http://127.0.0.1:{port}/img/{i}{g}/image-00.jpg" for i, g in enumerate(groups)]
    lines = [PREFIXES[k % len(PREFIXES)].format(port=port) + tail for k, tail in junk]
    mixed = [line for pair in itertools.zip_longest(lines, valid) for line in pair if line is not None]
    return b"\n".join(line.encode("utf-8", "surrogatepass") for line in mixed) + b"\n", valid


async def test_a_fuzzed_list_ends_in_known_kinds_on_every_backend(
    origin: TestServer, backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the real command, with the origin as the proxy for every URL (so whatever host a line
    names, nothing leaves 127.0.0.1): every row has a known kind, never ``internal``; every valid URL
    is fetched; nothing reaches stderr (under ``-q``, not even a summary) nor the log."""
    assert origin.port is not None
    port, runs = origin.port, itertools.count()
    options = ["--backend", backend, "--proxy", base(origin), "--retries", "0", "--timeout", "10", "-q"]

    @settings(max_examples=3, derandomize=True, deadline=None, database=None)
    @given(
        junk=st.lists(st.tuples(st.integers(0, 99), LINES), min_size=150, max_size=200),
        groups=st.lists(GROUPS, min_size=20, max_size=30),
    )
    def check(junk: list[tuple[int, str]], groups: list[str]) -> None:
        out = tmp_path / f"out{next(runs)}"
        data, valid = fuzzed_list(port, junk, groups)
        lst = out.with_suffix(".txt")
        lst.write_bytes(data)
        res = CliRunner().invoke(main, ["fetch", str(lst), "-o", str(out), *options], catch_exceptions=False)
        assert res.exit_code in (0, 1), res.output
        assert "Traceback" not in res.output and res.stderr == "", res.stderr
        rows = manifest_rows(out)
        assert {row["kind"] for row in rows} <= {None, *KINDS} - {"internal"}
        by_url = {row["url"]: row for row in rows}
        assert [by_url[url]["status"] for url in valid] == ["ok"] * len(valid)

    with caplog.at_level(logging.WARNING):
        await asyncio.to_thread(check)
    assert caplog.records == []
