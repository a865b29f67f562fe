"""URL lists in, ``Job`` objects out, lazily: memory does not grow with the length of the list.

Plain text lists and a library caller's URLs are read here; richer formats in ``inputs``. A bad URL or
row becomes a job that carries its error, so it still gets exactly one manifest row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .errors import InvalidURL
from .keys import claim_key, digest64
from .models import BUCKETS, Job, Naming
from .names import DEFAULT_NAMING, parse_url, relative_path

NOT_MINE = Job(url="", line=0, error="another part's row")
"""What ``make_job`` returns for a row of another ``--procs`` part; readers drop it."""


_TRAILING_COMMENT = re.compile(r"\s+#.*$", re.DOTALL)
"""`` URL  # note``: a ``#`` after white space starts a comment (a fragment follows the URL directly)."""


def read_lines(stream: Iterable[str], first: int = 1) -> Iterator[tuple[int, str]]:
    """(line number, text) of each URL line, the stream's first line numbered ``first``; blank lines and
    ``#`` comments (whole lines, or after white space at the end of a line) skipped, white space stripped."""
    for number, raw in enumerate(stream, first):
        text = raw.strip()
        if text and not text.startswith("#"):
            if "#" in text:
                text = _TRAILING_COMMENT.sub("", text)
            yield number, text


def make_job(
    line: int,
    text: str,
    naming: Naming = DEFAULT_NAMING,
    *,
    stem: str | None = None,
    extra: dict[str, object] | None = None,
) -> Job:
    """A ``Job`` for one input row; a bad URL becomes a job that carries its error instead."""
    part = naming.part
    try:
        key, host, url_path = parse_url(text)
    except InvalidURL as exc:
        if part is not None and line % part[1] != part[0]:
            return NOT_MINE
        return Job(url=text, line=line, error=str(exc), error_kind=exc.kind, extra=extra)
    digest = digest64(key)
    shared = naming.layout != BUCKETS and naming.names == "plain"  # hashed names carry the digest
    if part is not None and not shared and digest % part[1] != part[0]:
        return NOT_MINE
    path = relative_path(key, naming, digest, line=line, stem=stem, url_path=url_path)
    if part is not None and shared and claim_key(path) % part[1] != part[0]:
        return NOT_MINE  # a name two URLs may share: both go to the process that decides who gets it
    url_named = stem is None and naming.layout != BUCKETS
    # positional, in Job's field order (error, error_kind: None): a third cheaper than keywords
    return Job(text, line, key, digest, path, host, None, None, extra, url_named, shared)


def jobs_from_urls(urls: Iterable[str], naming: Naming = DEFAULT_NAMING) -> Iterator[Job]:
    """Jobs for a library caller's iterable of URL strings; line numbers count every item from 1."""
    for line, text in enumerate(urls, 1):
        yield make_job(line, str(text).strip(), naming)
