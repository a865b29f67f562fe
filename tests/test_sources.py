"""Reading lists, normalising URLs and naming files: pure functions, no server."""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path

import pytest

from downloader.checks import sniff
from downloader.errors import InvalidURL
from downloader.keys import DigestIndex, DigestSet, digest64
from downloader.models import Naming
from downloader.names import (
    MAX_STEM_BYTES,
    normalise,
    relative_path,
    safe_component,
    url_hash,
    with_digest,
    with_extension,
)
from downloader.sources import make_job, read_lines


def test_read_lines_skips_blanks_and_comments() -> None:
    text = "\ufeff  http://a/1.jpg  \n\n# note\n   \nhttp://a/2.jpg\n\t#x\n"
    assert list(read_lines(io.StringIO(text.lstrip("\ufeff")))) == [
        (1, "http://a/1.jpg"),
        (5, "http://a/2.jpg"),
    ]


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://Example.COM:80/A.jpg#frag", "http://example.com/A.jpg"),
        ("https://example.com:443/a.jpg?b=1&a=2", "https://example.com/a.jpg?b=1&a=2"),
        ("http://example.com:8080", "http://example.com:8080/"),
        ("http://[::1]:81/x.png", "http://[::1]:81/x.png"),
        ("http://example.com/a b.jpg", "http://example.com/a%20b.jpg"),
        ("http://u:p@Example.com/x", "http://u:p@example.com/x"),
        (
            "http://h:81/img/图片/ü ber.jpg?q=é#é",
            "http://h:81/img/%E5%9B%BE%E7%89%87/%C3%BC%20ber.jpg?q=%C3%A9",
        ),
        ("http://h/a%2fb%zz%?%41%", "http://h/a%2fb%25zz%25?%41%25"),
        ('http://h/"<>\\^`{|}[]?[|]', "http://h/%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D?%5B%7C%5D"),
        ("http://Bücher.Example/", "http://xn--bcher-kva.example/"),
        ("http://图/", "http://xn--wcs/"),
        ("http://ß.de/", "http://xn--zca.de/"),
        ("http://a_b.bücher/", "http://a_b.xn--bcher-kva/"),
        ("http://１２７。０。０。１:81/", "http://127.0.0.1:81/"),
        ("http://ü:p@h/", "http://%C3%BC:p@h/"),
        ("http://example.com./a", "http://example.com./a"),
    ],
)
def test_normalise(url: str, key: str) -> None:
    assert normalise(url) == key


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("example.com/a.jpg", "no http"),
        ("ftp://example.com/a.jpg", "'ftp'"),
        ("file:///etc/passwd", "'file'"),
        ("data:image/png;base64,AAAA", "'data'"),
        ("javascript:alert(1)", "'javascript'"),
        ("http:///a.jpg", "no host"),
        ("http://exa mple.com/", "host"),
        ("http://example.com:99999/", "valid"),
        ("http://example.com/\x00", "control"),
        ("http://example.com/" + "a" * 9000, "longer"),
        ("http://example.com/" + "é" * 2000, "once percent-encoded"),
        ("http://..:8080/x.jpg", "empty label"),
        ("http://.a/", "empty label"),
        ("http://" + "a" * 64 + ".example/", "over 63"),
        ("http://" + "a." * 127 + "aa/", "longer than 253"),
        ("http://xn--zz/", "international host"),
        ("http://-ü/", "international host"),
        ("http://a\u200d.bü/", "international host"),
        ("http://h/\ud800", "surrogate"),
    ],
)
def test_invalid_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(InvalidURL, match=reason):
        normalise(url)


def test_names_are_deterministic_distinct_and_safe() -> None:
    a = relative_path(normalise("http://h/a/x.jpg"))
    assert a == relative_path(normalise("HTTP://H:80/a/x.jpg#top"))
    paths = {
        relative_path(normalise(u))
        for u in (
            "http://h/a/x.jpg",
            "http://h/b/x.jpg",
            "http://h/img.jpg?s=1",
            "http://h/img.jpg?s=2",
            "http://h/X.jpg",
            "http://h/x.jpg",
        )
    }
    assert len({p.lower() for p in paths}) == 6
    assert a.startswith("x.") and a.endswith(".jpg")


@pytest.mark.parametrize(
    "url",
    [
        "http://h/..",
        "http://h/../../etc/passwd",
        "http://h/a%2F..%2F..%2Fb.jpg",
        "http://h/CON.jpg",
        "http://h/nul",
        "http://h/a%3A%2A%3F%22%3C%3E%7C.jpg",
        "http://h/%2e%2e",
        "http://h/",
        "http://h/.hidden",
        "http://h/" + "%C3%A9" * 200 + ".jpg",
        "http://h/trailing.%20",
        "http://h/a%5Cb.png",
    ],
)
def test_hostile_names_stay_inside_and_portable(url: str) -> None:
    for names in ("hashed", "plain"):
        path = relative_path(normalise(url), Naming(names))
        assert "/" not in path and "\\" not in path and path not in (".", "..")
        assert not path.startswith(".") and not path.endswith((" ", "."))
        assert not any(c in path for c in '<>:"|?*')
        assert path.split(".")[0].lower() not in ("con", "nul", "prn", "aux")
        assert len(path.encode()) <= MAX_STEM_BYTES + 32


def test_safe_component_fallback_and_reserved() -> None:
    assert safe_component("...") == "file"
    assert safe_component("com1.txt") == "_com1.txt"
    assert with_extension("cat.abc.jpg", ".png") == "cat.abc.png"
    assert with_extension("cat.abcdefghijklm", ".png") == "cat.abcdefghijklm.png"


def test_jobs_carry_their_errors() -> None:
    jobs = [make_job(1, "http://h/x.jpg"), make_job(2, "nope")]
    assert jobs[0].error is None and jobs[0].key == "http://h/x.jpg"
    assert jobs[1].error and jobs[1].error_kind == "invalid_url"


def test_digest_set_adds_discards_and_grows() -> None:
    s = DigestSet(capacity=4)
    digests = [digest64(f"http://h/{i}") for i in range(5000)]
    assert all(s.add(d) for d in digests)
    assert not s.add(digests[7]) and len(s) == 5000
    for d in digests[::2]:
        s.discard(d)
    assert len(s) == 2500 and digests[0] not in s and digests[1] in s
    assert s.add(digests[0]) and digests[0] in s


def test_layouts() -> None:
    key = normalise("http://Img.example.com:8080/a/cat.jpg?s=1")
    flat = relative_path(key, Naming("hashed", "flat"))
    assert relative_path(key, Naming("hashed", "host")) == f"img.example.com_8080/{flat}"
    assert relative_path(key, Naming("plain", "host")) == "img.example.com_8080/cat.jpg"
    key = normalise("http://Bücher.example/图/ü ber.jpg")
    assert relative_path(key, Naming("plain", "host")) == "bücher.example/ü ber.jpg"  # read as written
    assert relative_path(key, Naming("hashed", "shards"), line=123) == "00000/000000123.jpg"
    assert relative_path(key, Naming("hashed", "shards"), line=1_234_567) == "00123/001234567.jpg"
    named = relative_path(key, stem="../id 42")
    assert named.startswith("_id 42.") and named.endswith(".jpg") and "/" not in named


def test_name_column_stem_is_sanitised() -> None:
    key = normalise("http://h/a/cat.jpg")
    path = relative_path(key, Naming("plain"), stem="../../etc/passwd")
    assert "/" not in path and path.endswith(".jpg") and not path.startswith(".")


def test_digest_index_spills_to_disk_and_cleans_up(tmp_path: Path) -> None:
    index = DigestIndex(tmp_path, spill_at=100)
    digests = [digest64(f"http://h/{i}") for i in range(1000)]
    assert all(index.add(d) for d in digests)
    assert index.spilled and len(index) == 1000
    assert list(tmp_path.glob(".downloader-index-*.sqlite"))
    assert not index.add(digests[5]) and digests[999] in index and digest64("http://h/x") not in index
    index.discard(digests[0])
    assert digests[0] not in index and len(index) == 999
    assert index.add(2**64 - 1) and 2**64 - 1 in index  # the whole unsigned range fits
    index.close()
    assert not list(tmp_path.glob(".downloader-index-*"))


def test_digest_index_without_a_folder_stays_in_memory() -> None:
    index = DigestIndex(spill_at=10)
    for i in range(50):
        index.add(digest64(str(i)))
    assert not index.spilled and len(index) == 50


@pytest.mark.parametrize(
    ("head", "ext"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", ".jpg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ".png"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00", ".gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", ".webp"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", ".avif"),
        (b"BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00", ".bmp"),
        (b"II*\x00\x08\x00\x00\x00\x00\x00\x00\x00", ".tif"),
        (b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00", ".ico"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', ".svg"),
        (b"  <svg width='1'/>", ".svg"),
        (b"<!DOCTYPE html><html><body>404</body></html>", None),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", None),
        (b"", None),
    ],
)
def test_magic_bytes_decide(head: bytes, ext: str | None) -> None:
    assert sniff(head) == ext


def test_url_hash_is_unpadded_lower_case_base32_of_the_digest() -> None:
    """Names from earlier runs must stay valid: the integer form equals the ``base64`` form."""
    rng = random.Random(7)
    for digest in [0, 1, 2, 2**64 - 1, *(rng.getrandbits(64) for _ in range(2000))]:
        expected = base64.b32encode(digest.to_bytes(8)).decode("ascii").rstrip("=").lower()
        assert url_hash(digest) == expected


def _odd_urls(n: int) -> list[str]:
    rng = random.Random(11)
    schemes = ["http", "https", "HTTP", "ftp", "http:", ""]
    hosts = ["example.com", "a.b-c.d", "127.0.0.1", "Example.COM", "xn--bcher-kva.de", "", "a_b", "a..b", "-"]
    hosts += ["bücher.de", "图", "xn--zz", "a" * 64, "a.", ".a"]
    ports = ["", ":80", ":443", ":8080", ":080", ":0", ":65535", ":65536", ":99999", ":", ":x"]
    tail = "abc/.%20?#&=:@ ~\\éü[]\t%|图"
    urls = []
    for _ in range(n):
        rest = "".join(rng.choice(tail) for _ in range(rng.randrange(12)))
        user = rng.choice(["", "", "u:p@", "u@"])
        sep = rng.choice(["://", "://", "//", ":/"])
        urls.append(f"{rng.choice(schemes)}{sep}{user}{rng.choice(hosts)}{rng.choice(ports)}/{rest}")
    return urls


def test_the_fast_url_path_agrees_with_urlsplit() -> None:
    """``_parse`` settles plain URLs with one regular expression; ``_parse_any`` is the general way."""
    from urllib.parse import urlsplit

    from downloader.names import _PLAIN_URL, _parse_any
    from downloader.names import parse_url as _parse

    fast = 0
    for url in _odd_urls(20000):
        try:
            expected: object = _parse_any(url)
        except InvalidURL as exc:
            expected = str(exc)
        try:
            got: object = _parse(url)
        except InvalidURL as exc:
            got = str(exc)
        assert got == expected, url
        if isinstance(got, tuple):
            assert got[2] == urlsplit(got[0]).path
        fast += _PLAIN_URL.fullmatch(url) is not None
    assert fast > 150  # the fast way was really taken, and often (not when there is something to encode)


# -- what the mutation run asked for (docs/mutation.md) --------------------------------------------------


def test_a_comment_after_a_url_is_dropped_and_a_fragment_is_kept() -> None:
    text = "http://a/1.jpg  # from the old list\nhttp://a/2.jpg#frag\nhttp://a/3.jpg\t#x\n"
    assert list(read_lines(io.StringIO(text))) == [
        (1, "http://a/1.jpg"),
        (2, "http://a/2.jpg#frag"),
        (3, "http://a/3.jpg"),
    ]


def test_a_taken_name_gets_the_urls_digest_before_its_extension() -> None:
    h = url_hash(5)
    assert with_digest("a/x.jpg", 5) == f"a/x.{h}.jpg"
    assert with_digest("a/x.tar.gz", 5) == f"a/x.tar.{h}.gz"  # only the last dot starts the extension
    assert with_digest("x.toolongforanextension", 5) == f"x.toolongforanextension.{h}"
    assert with_digest("a.b/x", 5) == f"a.b/x.{h}"  # no extension: the digest goes last


def test_an_idna_host_with_a_port_is_a_readable_folder() -> None:
    key = normalise("http://Bücher.example:81/a.jpg")
    assert relative_path(key, Naming("plain", "host")) == "bücher.example_81/a.jpg"
