"""Reader conformance: a dataset built by the real CLI from web-shaped URLs (no extension, a trailing
slash, a query, an upper-case or a wrong extension, a script) opens in the readers people train with:
``webdataset`` as open_clip reads it, Hugging Face ``datasets`` (tars and Parquet), ``pyarrow.dataset``
and DuckDB. Member names are ``KEY.EXT`` with EXT from the stored bytes on every backend."""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import re
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from downloader.arrow import write_table
from downloader.checks import sniff
from downloader.dataset.shardfiles import key
from downloader.manifest import COLUMNS
from downloader.sources import make_job
from downloader.writers.spool import key_of, member_name
from downloader.writers.tar import MemberReader, TarAppender, scan
from tests.faults import IMAGES, JPEG, PNG
from tests.helpers import AiohttpServer, complete_rows, fetch, hits, kill_when, spooled, write_csv

WEBP = (IMAGES / "image.webp").read_bytes()
GIF = (IMAGES / "animated.gif").read_bytes()
BODIES = {"jpg": JPEG, "png": PNG, "webp": WEBP, "gif": GIF}
TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}
# (path, what it serves); None: a 404. Shard 0 (six rows) has no failure, shard 1 two.
SITE: list[tuple[str, str | None]] = [
    ("/p/17", "jpg"),
    ("/k/17/", "png"),
    ("/img?id=3", "webp"),
    ("/A.JPG", "jpg"),
    ("/x.jpg", "png"),
    ("/show.php?id=5", "gif"),
    ("/p/18", "webp"),
    ("/gone/1", None),
    ("/img?id=4", "jpg"),
    ("/show.php?id=6", "png"),
    ("/gone/2.jpg", None),
    ("/k/19/", "gif"),
]
OK = [(n, ext) for n, (_, ext) in enumerate(SITE) if ext is not None]
MEMBER = re.compile(r"[0-9]{9}\.(jpg|png|webp|gif|json|txt)")


def site(serve: str | None) -> web.Application:
    """Each path of ``SITE`` answers with its image (whatever its name says; ``serve``'s type for all
    when given), or 404."""
    served = dict(SITE)

    async def answer(request: web.Request) -> web.Response:
        ext = served.get(request.path_qs)
        if ext is None:
            raise web.HTTPNotFound()
        ext = serve or ext
        return web.Response(body=BODIES[ext], content_type=TYPES[ext])

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return app


async def build(
    aiohttp_server: AiohttpServer,
    tmp_path: Path,
    fmt: str,
    *options: str,
    serve: str | None = None,
) -> Path:
    """The dataset of ``SITE`` in shards of six rows, captioned, made by ``downloader fetch`` with
    ``options`` (the default backend unless they name one)."""
    server: TestServer = await aiohttp_server(site(serve))
    origin = str(server.make_url("/")).rstrip("/")
    lst = write_csv(
        tmp_path / f"list-{fmt}.csv", [(origin + p, f"caption {n}") for n, (p, _) in enumerate(SITE)]
    )
    out = tmp_path / fmt
    args = ("--output-format", fmt, "--shard-size", "6", "--caption-column", "caption", "--retries", "0")
    res = await fetch(lst, out, *args, *options)
    assert res.exit_code == 1, res.output  # the two 404s
    return out


def decodes(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


def keyed(n: int) -> str:
    return key(n + 2)  # a CSV's first row is its header: the first URL is line 2


async def test_members_are_key_dot_ext_of_the_stored_bytes(
    aiohttp_server: AiohttpServer, tmp_path: Path, backend: str
) -> None:
    out = await build(aiohttp_server, tmp_path, "webdataset", "--backend", backend)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.tar")) == ["00000.tar", "00001.tar"]
    metadata = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert metadata == ["_shards/00000.parquet", "_shards/00001.parquet"]  # what **/*.parquet sees
    members: dict[str, str] = {}
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as tf:
            for name in tf.getnames():
                assert MEMBER.fullmatch(name), name
                members[name] = tar.name
    expected = {f"{keyed(n)}.{ext}" for n, ext in OK}
    assert {m for m in members if not m.endswith((".json", ".txt"))} == expected
    rows = pq.read_table([str(p) for p in sorted((out / "_shards").glob("*.parquet"))]).to_pylist()
    for row in rows:
        if row["status"] == "ok":  # the manifest's path is the member, in its shard
            tar, member = row["path"].split("/")
            assert members[member] == tar and key_of(member) == row["key"]
        else:
            assert row["path"] is None and row["kind"] == "http_4xx"


def filter_no_caption_or_no_image(sample: dict[str, Any]) -> bool:
    """open_clip's own filter (``training/data.py``), run before its decode: a GIF is no training image."""
    has_caption = "txt" in sample
    has_image = "png" in sample or "jpg" in sample or "jpeg" in sample or "webp" in sample
    return has_caption and has_image


def open_clip(urls: list[str]) -> list[tuple[Any, str]]:
    """open_clip's reading of a WebDataset (``training/data.py``): decode, rename, tuple."""
    pipeline = (
        wds.WebDataset(urls, shardshuffle=False)
        .select(filter_no_caption_or_no_image)
        .decode("pilrgb")
        .rename(image="jpg;png;jpeg;webp", text="txt")
        .to_tuple("image", "text")
    )
    return list(pipeline)


def every_image(urls: list[str]) -> list[Any]:
    pipeline = wds.WebDataset(urls, shardshuffle=False).decode("pilrgb").rename(image="jpg;png;webp;gif")
    return [s["image"] for s in pipeline]


@contextlib.contextmanager
def collected_quietly() -> Iterator[None]:
    """webdataset 1.0 leaves each tar it opens to the collector (no close at a tar's end): that
    ResourceWarning is the library's, so it is collected here, while it alone is ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            yield
        finally:
            gc.collect()


async def test_open_clip_reads_the_tars(aiohttp_server: AiohttpServer, tmp_path: Path) -> None:
    out = await build(aiohttp_server, tmp_path, "webdataset")
    urls = [str(p) for p in sorted(out.glob("*.tar"))]
    with collected_quietly():
        got = [(image.mode, image.size, text) for image, text in open_clip(urls)]
        images = [image.size for image in every_image(urls)]
    trained = [(n, ext) for n, ext in OK if ext != "gif"]
    assert [text for _, _, text in got] == [f"caption {n}" for n, _ in trained]
    assert [(mode, size) for mode, size, _ in got] == [("RGB", decodes(BODIES[ext])) for _, ext in trained]
    assert images == [decodes(BODIES[ext]) for _, ext in OK]


def hugging_face() -> Any:
    """Hugging Face ``datasets``, imported by name when a test runs: mypy, which checks benchmarks/ too,
    would take ``import datasets`` for benchmarks/datasets.py."""
    return importlib.import_module("datasets")


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hugging Face ``datasets`` with no network and a cache of the test's own."""
    cache = tmp_path / "hf"
    for name, value in [("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"), ("HF_HOME", str(cache))]:
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    return cache


@pytest.mark.parametrize("made", ["of JPEGs only", "with --encode-format webp"])
async def test_hugging_face_reads_the_tars(
    aiohttp_server: AiohttpServer, tmp_path: Path, offline_hub: Path, made: str
) -> None:
    """Its WebDataset builder wants the same members in every sample: one image type (the sniffed types
    of a mixed list are one field each, which it refuses; ``--encode-format`` makes them one)."""
    if made == "of JPEGs only":
        out, ext = await build(aiohttp_server, tmp_path, "webdataset", serve="jpg"), "jpg"
    else:
        options = ("--encode-format", "webp", "--image-executor", "thread")
        out, ext = await build(aiohttp_server, tmp_path, "webdataset", *options), "webp"
    tars = [str(p) for p in sorted(out.glob("*.tar"))]
    split = hugging_face().load_dataset(
        "webdataset", data_files={"train": tars}, split="train", cache_dir=str(offline_hub)
    )
    assert len(split) == len(OK)
    for sample, (n, _) in zip(split, OK, strict=True):
        assert sample["__key__"] == keyed(n) and sample["txt"] == f"caption {n}"
        row = sample["json"]
        assert sample[ext].size == (decodes(JPEG) if ext == "jpg" else (row["width"], row["height"]))


def check_rows(rows: list[dict[str, Any]]) -> None:
    """Every input row once, in order: the stored ones with bytes that decode, the failures without."""
    assert [r["key"] for r in rows] == [keyed(n) for n in range(len(SITE))]
    assert [r["caption"] for r in rows] == [f"caption {n}" for n in range(len(SITE))]
    for row, (_, ext) in zip(rows, SITE, strict=True):
        if ext is None:
            assert (row["status"], row["image"], row["http_status"]) == ("failed", None, 404)
        else:
            assert row["status"] == "ok" and row["image"] == BODIES[ext] and decodes(row["image"])
            assert row["path"] == f"{row['path'].split('/')[0]}/{row['key']}.{ext}"


async def test_arrow_and_duckdb_read_the_parquet_shards_as_one_table(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    out = await build(aiohttp_server, tmp_path, "parquet")
    shards = [str(p) for p in sorted(out.glob("*.parquet"))]
    assert [pq.read_schema(p) for p in shards[1:]] == [pq.read_schema(shards[0])]  # one schema
    check_rows(pq.read_table(shards).to_pylist())
    # OUT holds run.json and stats.json beside the shards: pyarrow is told to pass over what is no Parquet
    whole = ds.dataset(out, format="parquet", exclude_invalid_files=True)
    assert sorted(whole.files) == shards  # _shards/ is passed over by name
    check_rows(whole.to_table().sort_by("line").to_pylist())
    with duckdb.connect() as db:
        for glob in ("*.parquet", "**/*.parquet"):  # a recursive glob sees the shards alone too
            found = db.sql(f"SELECT * FROM read_parquet('{out}/{glob}') ORDER BY line")
            check_rows([dict(zip(found.columns, row, strict=True)) for row in found.fetchall()])


async def test_hugging_face_reads_the_parquet_shards(
    aiohttp_server: AiohttpServer, tmp_path: Path, offline_hub: Path
) -> None:
    out = await build(aiohttp_server, tmp_path, "parquet")
    shards = [str(p) for p in sorted(out.glob("*.parquet"))]
    split = hugging_face().load_dataset(
        "parquet", data_files={"train": shards}, split="train", cache_dir=str(offline_hub)
    )
    check_rows(list(split))


HEADS = [JPEG[:32], PNG[:32], WEBP[:32], GIF[:32], b"BM\x00\x00", b"II*\x00", b"<?xml?><svg>", b"%PDF-1.7"]
KINDS = {".jpg", ".png", ".webp", ".gif", ".bmp", ".tif", ".ico", ".cur", ".jxl", ".avif", ".heic", ".svg"}
PIECE = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=12)


@settings(max_examples=500, derandomize=True, deadline=None, database=None)
@given(
    pieces=st.lists(PIECE, max_size=4),
    ext=st.sampled_from(["", "/", ".jpg", ".JPG", ".png", ".php", ".tar.gz", ".json", ".txt", "."]),
    query=st.none() | st.text(max_size=16),
    body=st.builds(bytes.__add__, st.sampled_from(HEADS), st.binary(max_size=64)),
    line=st.integers(0, 10**9 - 1),
)
def test_a_member_is_key_dot_ext_whatever_the_url(
    pieces: list[str], ext: str, query: str | None, body: bytes, line: int
) -> None:
    url = "http://127.0.0.1/" + "/".join(pieces) + ext + ("" if query is None else f"?{query}")
    job = make_job(line, url)
    kind = sniff(body)
    # the shard's name for the sample (its key), and the URL's own name, which an earlier version kept
    for rel in (key(line), job.path or "x"):
        name = member_name(rel, kind)
        stem, dot, found = name.partition(".")
        assert stem and dot and "." not in found and found.islower(), name
        assert f".{found}" in (KINDS if kind else {".bin"})
    assert member_name(key(line), kind) == key(line) + (kind or ".bin")


def as_an_earlier_version_left_it(out: Path) -> None:
    """The spool renamed ``00000.spool.tar``, its members and their rows' paths ``KEY.HASH.jpg``, as
    the URL's name once made them."""
    (spool,) = (out / "_shards").glob("*.spool")
    old, reader = TarAppender(str(spool.with_name("00000.spool.tar"))), MemberReader()
    for name, where in scan(str(spool)).items():
        old.append(name.replace(".", ".abcdefghijklm."), reader.read(where))
    old.close()
    reader.close()
    spool.unlink()
    part = out / "_shards" / "00000.part.jsonl"
    rows = [json.loads(line) for line in part.read_text().splitlines() if line.endswith("}")]
    for row in rows:
        row["path"] = row["path"] and row["path"].replace(".jpg", ".abcdefghijklm.jpg")
    part.write_text("".join(json.dumps(row) + "\n" for row in rows))


async def test_a_spool_an_earlier_version_left_is_resumed(origin: TestServer, tmp_path: Path) -> None:
    """An OUT left by a version that named the spool ``00000.spool.tar`` and its members after the URL:
    its samples are not fetched again, and the shard's members and rows have today's names."""
    urls = [str(origin.make_url(f"/slow/{40 * (i % 3)}/{i}")) for i in range(12)]
    lst = write_csv(tmp_path / "list.csv", [(u, f"c{i}") for i, u in enumerate(urls)])
    out = tmp_path / "out"
    args = ("--output-format", "webdataset", "--shard-size", "12", "-c", "3")
    await kill_when(lst, out, spooled(out, 3), *args)
    as_an_earlier_version_left_it(out)
    complete = {u: hits(origin, "/" + u.split("/", 3)[3]) for u in complete_rows(out)}
    assert complete
    res = await fetch(lst, out, *args)
    assert res.exit_code == 0, res.output
    assert {u: hits(origin, "/" + u.split("/", 3)[3]) for u in complete} == complete
    assert [str(p.relative_to(out)) for p in out.rglob("*.tar")] == ["00000.tar"]
    with tarfile.open(out / "00000.tar") as tf:
        names = [n for n in tf.getnames() if n.endswith(".jpg")]
    assert names == [f"{key(n + 2)}.jpg" for n in range(12)]
    rows = [json.loads(line) for line in (out / "_shards" / "00000.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == [f"00000.tar/{name}" for name in names]


def test_a_column_no_row_of_a_shard_fills_keeps_its_type(tmp_path: Path) -> None:
    """Columns empty in one shard (the manifest's, as ``error`` where nothing failed, and one carried from
    the list) have there the types the shards that fill them give them, never ``null``."""
    rows = [{"url": "u", "line": n, "status": "ok", "error": None, "caption": None} for n in range(3)]
    empty, filled = str(tmp_path / "empty.parquet"), str(tmp_path / "filled.parquet")
    write_table(empty, rows, COLUMNS)
    write_table(filled, [{**r, "status": "failed", "error": "x", "caption": "y"} for r in rows], COLUMNS)
    schema = pq.read_schema(empty)
    assert schema == pq.read_schema(filled) and schema.names == [*COLUMNS, "caption"]
    assert all(str(t) in ("string", "int64", "double") for t in schema.types)
    table = pq.read_table([empty, filled])
    assert table.column("caption").to_pylist() == [None] * 3 + ["y"] * 3
