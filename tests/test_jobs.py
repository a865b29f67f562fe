"""Input rows to jobs: sharding across ``--procs`` workers, the fields a job carries, file names and the
reasons given for bad URLs. Pure functions; the cases are those the mutation run found unpinned."""

from __future__ import annotations

import pytest

from downloader.errors import InvalidURL
from downloader.keys import claim_key, digest64
from downloader.models import Naming
from downloader.names import MAX_URL_LENGTH, normalise, relative_path, safe_component, split_name
from downloader.sources import NOT_MINE, jobs_from_urls, make_job


def test_a_shard_keeps_exactly_its_own_rows() -> None:
    """Valid URLs are dealt by digest, bad rows by line number; each row lands in exactly one shard."""
    rows = [(n, f"http://h/{n}.jpg") for n in range(1, 40)] + [(n, "not a url") for n in range(40, 52)]
    taken: list[int] = []
    for k in range(3):
        naming = Naming(part=(k, 3))
        for line, text in rows:
            job = make_job(line, text, naming)
            if job is NOT_MINE:
                continue
            taken.append(line)
            if job.error:
                assert line % 3 == k
            else:
                assert job.digest % 3 == k
    assert sorted(taken) == list(range(1, 52))


@pytest.mark.parametrize("layout", ["flat", "shards"])
def test_a_shard_keeps_exactly_its_own_rows_with_plain_names(layout: str) -> None:
    """Plain flat names two URLs may share go by the name's claim key, so one process decides who gets
    it; names by line never collide and go by URL digest, so a URL's duplicates meet in one process."""
    rows = [(n, f"http://h/{n % 7}/x{n % 5}.jpg") for n in range(1, 60)]
    taken: list[int] = []
    for k in range(3):
        naming = Naming("plain", layout, part=(k, 3))
        for line, text in rows:
            job = make_job(line, text, naming)
            if job is NOT_MINE:
                continue
            taken.append(line)
            assert job.may_collide == (layout == "flat")
            by = claim_key(job.path) if layout == "flat" else job.digest
            assert by % 3 == k
    assert sorted(taken) == list(range(1, 60))


def test_a_job_carries_its_row() -> None:
    extra: dict[str, object] = {"label": "cat"}
    job = make_job(7, "http://Host:8080/a/cat.jpg?s=1", Naming("plain", "host"), extra=extra)
    assert (job.url, job.line, job.key) == (
        "http://Host:8080/a/cat.jpg?s=1",
        7,
        "http://host:8080/a/cat.jpg?s=1",
    )
    assert (job.digest, job.host, job.extra, job.url_named) == (digest64(job.key), "host:8080", extra, True)
    assert job.path == "host_8080/cat.jpg" and job.error is None
    bad = make_job(8, "ftp://h/x", extra=extra)
    assert (bad.url, bad.line, bad.extra, bad.error_kind) == ("ftp://h/x", 8, extra, "invalid_url")
    assert bad.error == "scheme 'ftp' is not http or https"


def test_names_from_a_column_or_a_line_are_not_url_named() -> None:
    """Two rows with the same URL share a file only when the file is named after the URL."""
    named = make_job(3, "http://h/a.jpg", stem="id 42")
    assert named.path.startswith("id 42.") and not named.url_named
    sharded = make_job(123, "http://h/a.jpg", Naming(layout="shards"))
    assert sharded.path == "00000/000000123.jpg" and not sharded.url_named


def test_library_lists_count_lines_from_one() -> None:
    jobs = list(jobs_from_urls([" http://h/a.jpg ", "http://h/b.jpg"], Naming(layout="shards")))
    assert [(j.line, j.key, j.path) for j in jobs] == [
        (1, "http://h/a.jpg", "00000/000000001.jpg"),
        (2, "http://h/b.jpg", "00000/000000002.jpg"),
    ]


@pytest.mark.parametrize(
    ("url", "naming", "path"),
    [
        ("http://h/", Naming("plain"), "index"),
        ("http://h/photo", Naming("plain"), "photo"),
        ("http://h/cat.tar.gz", Naming("plain"), "cat.tar.gz"),
        ("http://h/%ff.jpg", Naming("plain"), "\ufffd.jpg"),
        ("http://u:p@h:81/a.jpg", Naming("plain", "host"), "h_81/a.jpg"),
    ],
)
def test_file_names(url: str, naming: Naming, path: str) -> None:
    assert relative_path(normalise(url), naming) == path


def test_shards_without_a_line_number() -> None:
    assert relative_path(normalise("http://h/a.jpg"), Naming(layout="shards")) == "00000/000000000.jpg"


def test_a_hashed_name_without_a_stem() -> None:
    key = normalise("http://h/")
    assert relative_path(key, Naming("hashed")).startswith("index.")


def test_split_name() -> None:
    assert split_name("http://h/a/cat.tar.gz") == ("cat.tar", ".gz")
    assert split_name("http://h/a/photo") == ("photo", "")


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("Xmas.", "Xmas"),
        ("a" * 95 + ".bbbbbbbbbb", "a" * 95),  # cut at the byte limit, then no trailing dot
        ("a" + "é" * 60, "a" + "é" * 47),  # a character cut in half is dropped
        ("con.tar.gz", "_con.tar.gz"),
        ("a" * 95 + "X" + "bbb", "a" * 95 + "X"),  # only spaces and dots are trimmed
    ],
)
def test_safe_component(text: str, safe: str) -> None:
    assert safe_component(text) == safe


def test_user_info_with_an_at_sign_is_kept_whole() -> None:
    # the last @ ends the user info; an @ inside it is percent-encoded, as a URI must have it
    assert normalise("http://a@b@Host/x") == "http://a%40b@host/x"


def test_the_longest_url_allowed() -> None:
    url = "http://h/" + "a" * (MAX_URL_LENGTH - 9)
    assert normalise(url) == url
    with pytest.raises(InvalidURL, match=f"^URL longer than {MAX_URL_LENGTH} characters$"):
        normalise(url + "a")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://h/a\x01b", "URL holds control characters"),
        ("example.com/a.jpg", "not a URL (no http://)"),
        ("http:///a.jpg", "URL has no host"),
        ("http://h/\udc80.jpg", "URL holds a lone surrogate, which is no Unicode text"),
        (" http://h/a.jpg", "not a URL (no http://)"),  # the parser trims nothing; readers strip lines
    ],
)
def test_the_reason_for_a_bad_url_is_the_whole_sentence(url: str, reason: str) -> None:
    with pytest.raises(InvalidURL) as caught:
        normalise(url)
    assert str(caught.value) == reason


def test_the_longest_url_allowed_once_percent_encoded() -> None:
    url = "http://h/é" + "a" * (MAX_URL_LENGTH - 15)  # é is six characters once encoded
    assert normalise(url) == "http://h/%C3%A9" + "a" * (MAX_URL_LENGTH - 15)
    with pytest.raises(
        InvalidURL, match=f"^URL longer than {MAX_URL_LENGTH} characters once percent-encoded$"
    ):
        normalise(url + "a")


def test_the_longest_host_allowed() -> None:
    host = ".".join(["a" * 63] * 3 + ["a" * 61])  # 253 characters, no label over 63
    assert normalise(f"http://{host.upper()}/") == f"http://{host}/"  # upper case: the general parser
    assert normalise(f"http://{host.upper()}./") == f"http://{host}./"  # a final dot does not count
    with pytest.raises(InvalidURL, match=r"^host name longer than 253 characters$"):
        normalise(f"http://B{host.upper()}/")
