"""The body checks: sans-I/O ``BodyCheck`` fed pieces as a network would, then the same rules end to end.

A backend hands ``BodyCheck`` whatever pieces the socket gives, from one byte to a megabyte, with or
without a Content-Length; the verdict must not depend on how the body was cut, and a body that is not an
image must be refused as soon as that is known, not after a large download.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict
from urllib3 import HTTPHeaderDict

from downloader.checks import SNIFF_BYTES, BodyCheck, check_opt_out, header_values, robots_directives, sniff
from downloader.errors import NotImage, OptedOut, Timeout, TooLarge, TooSlow, Truncated
from downloader.spec import RunSpec
from tests.faults import HTML, JPEG
from tests.helpers import Run

Fetch = Callable[..., Awaitable[Run]]

WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(40)
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00" + bytes(40)
SVG_PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'
SVG_DOCTYPE = (
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
)


def checker(expected: int | None = None, **options: Any) -> BodyCheck:
    """A check as a backend makes it once the headers are in."""
    return BodyCheck(RunSpec.from_options(**options).transport(), time.monotonic(), expected)


def pieces(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def feed_all(check: BodyCheck, body: bytes, size: int) -> None:
    for piece in pieces(body, size):
        check.feed(piece)
    check.finish()


# -- complete bodies, with and without a length ----------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_a_body_without_length_is_complete_when_it_ends(size: int) -> None:
    """Chunked answers carry no Content-Length: the end of the stream is the only sign of completeness."""
    check = checker(None)
    feed_all(check, JPEG, size)
    assert (check.received, check.kind) == (len(JPEG), ".jpg")
    assert check.sha256 == hashlib.sha256(JPEG).hexdigest()


def test_a_body_shorter_than_announced_is_truncated_and_an_exact_one_is_not() -> None:
    feed_all(checker(len(JPEG)), JPEG, 1000)
    with pytest.raises(Truncated, match=f"got {len(JPEG) - 1} of {len(JPEG)}"):
        feed_all(checker(len(JPEG)), JPEG[:-1], 1000)


# -- --max-size is inclusive ------------------------------------------------------------------------------


@pytest.mark.parametrize("announced", [True, False])
def test_a_body_of_exactly_max_size_passes_and_one_byte_more_does_not(announced: bool) -> None:
    """``--max-size N`` means N bytes are fine; the limit must not be off by one either way."""
    body = JPEG + bytes(5000)
    limit = len(body)
    feed_all(checker(limit if announced else None, max_size=limit), body, 1000)
    longer = body + b"\0"
    if announced:  # refused from the header alone, before a byte is read
        with pytest.raises(TooLarge, match="Content-Length"):
            checker(len(longer), max_size=limit)
        return
    check = checker(None, max_size=limit)
    for piece in pieces(body, 1000):
        check.feed(piece)
    with pytest.raises(TooLarge, match="exceeds --max-size"):
        check.feed(b"\0")


def test_max_size_zero_means_no_limit() -> None:
    feed_all(checker(len(JPEG), max_size=0), JPEG, 4096)


# -- sniffing: early refusal, and magic bytes that arrive a few at a time --------------------------------


def test_markup_that_is_not_an_image_is_refused_on_the_piece_that_crosses_the_sniff_limit() -> None:
    """An HTML error page served as 200 can be megabytes long: refuse it after ``SNIFF_BYTES`` bytes."""
    body = HTML + b" " * (10 * SNIFF_BYTES)
    check = checker(None)
    head, rest = body[: SNIFF_BYTES - 1], body[SNIFF_BYTES - 1 :]
    for piece in pieces(head, 100):
        check.feed(piece)  # still undecided: it starts with "<" and may yet turn out to be an SVG
    with pytest.raises(NotImage, match="not an image"):
        check.feed(rest[:100])  # the piece that reaches the limit


@pytest.mark.parametrize(
    "body", [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(100), b"XX<p>" + b"x" * 20], ids=["pdf", "text"]
)
def test_what_is_not_markup_is_refused_at_twelve_bytes(body: bytes) -> None:
    """Only markup may need more than 12 bytes to decide; anything else is judged at once."""
    check = checker(None)
    for byte in pieces(body, 1)[:11]:
        check.feed(byte)
    with pytest.raises(NotImage):
        check.feed(body[11:12])


def test_the_type_is_decided_once_twelve_bytes_are_in() -> None:
    """Twelve bytes hold every binary signature (WebP's and AVIF's end at byte 12); fewer do not."""
    check = checker(None)
    check.feed(WEBP[:11])
    assert check.kind is None
    check.feed(WEBP[11:12])
    assert check.kind == ".webp"


@pytest.mark.parametrize(
    ("body", "ext"),
    [(WEBP, ".webp"), (AVIF, ".avif"), (SVG_PROLOG, ".svg"), (SVG_DOCTYPE, ".svg"), (JPEG, ".jpg")],
    ids=["webp", "avif", "svg-prolog", "svg-doctype", "jpeg"],
)
@pytest.mark.parametrize("size", [1, 3, 5])
def test_a_trickled_image_is_recognised(body: bytes, ext: str, size: int) -> None:
    """A slow server may send the signature a byte at a time; a partial signature is no verdict."""
    check = checker(None)
    feed_all(check, body, size)
    assert check.kind == ext


def test_an_svg_with_a_doctype_and_no_xml_prolog_is_an_image() -> None:
    assert sniff(SVG_DOCTYPE) == ".svg"
    assert sniff(b"<!DOCTYPE html><html><svg/></html>") is None  # an HTML page holding an SVG is not one


def test_a_trickled_svg_after_blank_lines_is_recognised() -> None:
    body = b"\n" * 12 + SVG_PROLOG
    assert sniff(body) == ".svg"  # in one piece it is an image...
    feed_all(checker(None), body, 4)  # ...so cut into pieces it must be one too


def test_accept_any_keeps_what_is_not_an_image() -> None:
    check = checker(None, accept="any")
    feed_all(check, HTML + b" " * 2000, 100)
    assert check.kind == ""


def test_an_empty_body_is_not_an_image() -> None:
    with pytest.raises(NotImage, match="empty"):
        checker(None).finish()


# -- end to end, every backend ---------------------------------------------------------------------------


async def test_a_chunked_body_without_length_is_saved(origin: TestServer, fetch: Fetch) -> None:
    url = str(origin.make_url("/big/300000"))
    async with aiohttp.ClientSession() as session, session.get(url) as resp:  # the premise: no length
        assert resp.content_length is None and resp.headers["Transfer-Encoding"] == "chunked"
        await resp.read()
    run = await fetch([url])
    row = run.row(url)
    assert (row["status"], row["bytes"]) == ("ok", 300_000)
    assert (run.out / row["path"]).stat().st_size == 300_000


@pytest.mark.parametrize("with_length", [True, False])
async def test_max_size_is_inclusive_end_to_end(origin: TestServer, fetch: Fetch, with_length: bool) -> None:
    query = "?cl=1" if with_length else ""
    exact, over = (str(origin.make_url(f"/big/{n}{query}")) for n in (100_000, 100_001))
    run = await fetch([exact, over], max_size=100_000)
    assert (run.row(exact)["status"], run.row(exact)["bytes"]) == ("ok", 100_000)
    assert (run.row(over)["kind"], run.row(over)["attempts"]) == ("too_large", 1)
    assert len(run.files()) == 1


async def test_a_long_html_page_fails_at_the_sniff_limit_not_at_its_end(
    origin: TestServer, fetch: Fetch
) -> None:
    """The page takes 2 s to send; the verdict needs only its first KiB (50 ms)."""
    url = str(origin.make_url("/markup/40"))
    t0 = time.monotonic()
    run = await fetch([url])
    elapsed = time.monotonic() - t0
    assert (run.row(url)["kind"], run.row(url)["attempts"]) == ("not_image", 1)
    assert elapsed < 1.0, f"waited {elapsed:.2f} s: the whole page was read"
    assert run.files() == []


# -- what the mutation run asked for (docs/mutation.md) --------------------------------------------------


@pytest.mark.parametrize(
    ("head", "ext"),
    [
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),  # RIFF, but a video
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", None),  # ftyp, but an MP4
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", ".heic"),
        (b"\xef\xbb\xbf<svg xmlns='http://www.w3.org/2000/svg'/>", ".svg"),  # a UTF-8 byte-order mark
        (b"<!-- made by hand --><svg/>", ".svg"),
        (b"<!-- made by hand --><html/>", None),
        (b"XX<svg/>", None),
    ],
)
def test_sniff_edge_cases(head: bytes, ext: str | None) -> None:
    assert sniff(head) == ext


def test_a_trickled_svg_after_a_byte_order_mark_is_recognised() -> None:
    check = checker(None)
    feed_all(check, b"\xef\xbb\xbf" + SVG_PROLOG, 1)
    assert check.kind == ".svg"


@pytest.mark.parametrize("size", [1, 100, 10_000])
def test_the_sniff_window_does_not_depend_on_how_the_body_is_cut(size: int) -> None:
    """``<svg`` past the first ``SNIFF_BYTES`` bytes is not looked for, in one piece or in many."""
    body = b'<?xml version="1.0"?>\n<!--' + b"x" * SNIFF_BYTES + b"--><svg/>"
    with pytest.raises(NotImage):
        feed_all(checker(None), body, size)


def test_the_refusal_says_what_the_body_starts_with() -> None:
    with pytest.raises(NotImage) as caught:
        feed_all(checker(None), HTML + b" " * 2000, 4096)
    assert str(caught.value) == "body is not an image (starts with '<!DOCTYPE html><html><bo')"
    with pytest.raises(NotImage, match=r"^body is empty$"):
        checker(None).finish()


def test_the_total_timeout_counts_from_the_start_of_the_attempt() -> None:
    check = BodyCheck(RunSpec.from_options(timeout=5).transport(), time.monotonic() - 6, None)
    with pytest.raises(Timeout, match=r"^attempt exceeded its total timeout$"):
        check.feed(JPEG[:100])


def test_min_speed_is_judged_per_window() -> None:
    """Fast enough in the first window says nothing about the next one: each window is judged alone."""
    check = checker(None, min_speed=(2000, 0.05))
    check.feed(JPEG[:12])
    time.sleep(0.06)
    check.feed(bytes(1000))  # ~17 kB/s over the first window: fine
    time.sleep(0.06)
    with pytest.raises(TooSlow, match=r"B/s over 0 s, below --min-speed 2000 B/s"):
        check.feed(b"\0")  # 1 byte in the second window


def test_min_speed_off_never_complains() -> None:
    check = checker(None, min_speed=(0, 0.01))
    check.feed(JPEG[:12])
    time.sleep(0.02)
    check.feed(b"\0")


# -- opt-outs: X-Robots-Tag, read from each client's own header map -------------------------------------


def test_every_value_of_a_repeated_header_from_each_clients_header_map() -> None:
    pairs = [("X-Robots-Tag", "noai"), ("x-robots-tag", "otherbot: noindex")]
    urllib3_headers = HTTPHeaderDict()
    for name, value in pairs:
        urllib3_headers.add(name, value)
    for many in (CIMultiDict(pairs), urllib3_headers):  # aiohttp's (and curl's) getall, urllib3's getlist
        assert header_values(many, "X-Robots-Tag") == ["noai", "otherbot: noindex"]
        assert header_values(many, "Link") == []
    assert header_values({"X-Robots-Tag": "noai"}, "X-Robots-Tag") == ["noai"]  # a plain mapping
    assert header_values({"X-Robots-Tag": "noai"}, "Link") == []
    assert header_values({"X-Robots-Tag": ""}, "X-Robots-Tag") == []


@pytest.mark.parametrize(
    ("values", "found"),
    [
        ([" NoAI ,  nofollow "], {"noai", "nofollow"}),
        (["otherbot: noindex, noai"], set()),  # the scope covers the rest of the list
        (["Downloader: noai, noindex"], {"noai", "noindex"}),
        (["noai, otherbot: noindex"], {"noai"}),  # a scope starts where it is named
        (["otherbot: noai, downloader: noindex"], {"noindex"}),
        (["otherbot: noai", "noimageai"], {"noimageai"}),  # each header starts unscoped
        (
            ["unavailable_after: 25 Jun 2010 15:00:00 PST", "max-image-preview: large, noai"],
            {"unavailable_after", "max-image-preview", "noai"},
        ),  # a value's colon names no agent
        (["Downloader: max-image-preview: none"], {"max-image-preview"}),  # a scoped valued directive
        ([], set()),
    ],
)
def test_robots_directives_for_one_agent(values: list[str], found: set[str]) -> None:
    assert robots_directives(values, "downloader") == found


OPTED = "(the site opts out; body not read)"


def opt_out(value: str | None, **options: Any) -> str | None:
    """The ``OptedOut`` message for a response with this X-Robots-Tag, or None when it may be read."""
    headers = CIMultiDict([] if value is None else [("X-Robots-Tag", value)])
    try:
        check_opt_out(headers, RunSpec.from_options(**options).transport())
    except OptedOut as exc:
        return str(exc)
    return None


def test_an_opt_out_names_the_directives_it_found() -> None:
    assert opt_out("noai") == f"X-Robots-Tag: noai {OPTED}"
    assert opt_out("noindex, NoAI, nofollow") == f"X-Robots-Tag: noai, noindex {OPTED}"  # sorted
    assert opt_out("none") == f"X-Robots-Tag: noindex {OPTED}"  # none counts as noindex
    assert opt_out("nofollow") is None and opt_out(None) is None and opt_out("") is None
    assert opt_out("noai", disallowed_header_directives=()) is None  # off
    assert opt_out("nofollow", disallowed_header_directives="nofollow") is not None
    assert opt_out("none", disallowed_header_directives="nofollow") is None


@pytest.mark.parametrize(
    ("user_agent", "ours", "theirs"),
    [
        (None, "Downloader: noai", "otherbot: noai"),  # downloader/<version>: its product token
        ("MyBot (+https://example.org/bot)", "mybot: noai", "downloader: noai"),
        ("Mozilla/5.0 (compatible; MyBot/1.0)", "mozilla: noai", "mybot: noai"),
    ],
)
def test_the_agent_is_the_user_agents_first_product_token(
    user_agent: str | None, ours: str, theirs: str
) -> None:
    options = {} if user_agent is None else {"user_agent": user_agent}
    assert opt_out(ours, **options) == f"X-Robots-Tag: noai {OPTED}"
    assert opt_out(theirs, **options) is None


def test_an_empty_user_agent_still_honours_what_is_for_everyone() -> None:
    assert opt_out("noai", user_agent="") == f"X-Robots-Tag: noai {OPTED}"
    assert opt_out("otherbot: noai", user_agent="") is None


def test_min_speed_is_not_judged_before_its_first_window_ends() -> None:
    check = checker(None, min_speed=(10**9, 60))
    check.feed(JPEG[:12])
    check.feed(bytes(100))  # far below 1 GB/s, but the 60 s window is not over
