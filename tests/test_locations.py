"""A URL is never a folder name: an output or a list given as ``SCHEME://…`` is a store's URL (``s3://``,
for a dataset's OUT or a list) or a usage error (exit 2) naming the supported schemes, never a local
folder called ``s3:``; ``file://`` names a local path."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from downloader import download
from downloader.app.run import Ui, fetch_list
from downloader.cli import main
from downloader.errors import UsageError
from downloader.locations import local_path
from downloader.spec import Output, RunSpec
from tests.helpers import manifest_rows


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def colon_folders(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(":")]


@pytest.mark.parametrize("fmt", ["files", "webdataset"])
@pytest.mark.parametrize(
    ("where", "target"), [("out", "gs://b/x"), ("out", "az://b/x"), ("list", "gs://b/l.txt")]
)
def test_a_url_is_a_usage_error_not_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, where: str, target: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("urls.txt").write_text("http://127.0.0.1:9/a.jpg\n")
    lst, out = (target, "out") if where == "list" else ("urls.txt", target)
    res = invoke("fetch", lst, "-o", out, "--output-format", fmt, "-q")
    assert res.exit_code == 2, res.output
    scheme = target.split(":", maxsplit=1)[0]
    assert f"{target}: {scheme}:// is not supported" in res.output and "supported for" in res.output
    assert "s3://" in res.output  # the scheme that is supported, named
    assert colon_folders(tmp_path) == [] and not Path("out").exists()


def test_a_store_holds_datasets_not_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("urls.txt").write_text("http://127.0.0.1:9/a.jpg\n")
    res = invoke("fetch", "urls.txt", "-o", "s3://b/x", "--work-dir", "work", "-q")
    assert res.exit_code == 2, res.output
    assert "a store holds datasets: give --output-format webdataset or parquet" in res.output
    assert colon_folders(tmp_path) == [] and not Path("work").exists()


def test_library_callers_get_the_same_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="a store holds datasets"):
        download([], out="s3://bucket/prefix")
    with pytest.raises(UsageError, match="gs://"):
        Output(out=Path("gs://bucket/x"))  # pathlib folds it to gs:/bucket/x: still refused
    folded = Output(out=Path("s3://bucket/x"), work_dir=tmp_path / "work")  # folded to s3:/bucket/x
    assert folded.store == "s3://bucket/x" and folded.out == tmp_path / "work"
    with pytest.raises(UsageError, match="names a bucket"):
        Output(out="s3:///x")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="gs:// is not supported for a list file"):
        fetch_list(RunSpec(output=Output(out=tmp_path / "out")), "gs://bucket/l.txt", Ui())
    assert colon_folders(tmp_path) == []


def test_file_urls_name_local_paths(tmp_path: Path) -> None:
    assert local_path(f"file://{tmp_path}/o%20ut", "output") == tmp_path / "o ut"
    assert local_path(f"file://localhost{tmp_path}", "list") == tmp_path
    assert local_path(f"file:{tmp_path}", "output") == tmp_path
    assert local_path("plain/relative", "output") == Path("plain/relative")
    with pytest.raises(UsageError, match="on host 'elsewhere'"):
        local_path("file://elsewhere/x", "output")


async def test_a_file_url_list_and_output_run_locally(origin: TestServer, tmp_path: Path) -> None:
    lst = tmp_path / "urls.txt"
    lst.write_text(f"{origin.make_url('/img/1/image-00.jpg')}\n")
    out = tmp_path / "out"
    res = await asyncio.to_thread(invoke, "fetch", f"file://{lst}", "-o", f"file://{out}", "-q")
    assert res.exit_code == 0, res.output
    assert [r["status"] for r in manifest_rows(out)] == ["ok"]
    assert colon_folders(tmp_path) == []


SCHEME = st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9+.-]{0,8}\Z").filter(lambda s: s.lower() not in ("file", "s3"))
"""Any scheme but the two this build reads and writes (``file://`` here, ``s3://``: test_store_runs)."""
REST = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20)


@settings(max_examples=40, deadline=None)
@given(scheme=SCHEME, rest=REST, fmt=st.sampled_from(["files", "webdataset"]), as_list=st.booleans())
def test_no_scheme_looking_string_makes_a_colon_folder(
    scheme: str, rest: str, fmt: str, as_list: bool
) -> None:
    url = f"{scheme}://{rest}"
    with tempfile.TemporaryDirectory() as root:
        cwd = os.getcwd()
        os.chdir(root)
        try:
            Path("urls.txt").write_text("")
            lst, out = (url, "out") if as_list else ("urls.txt", url)
            res = invoke("fetch", lst, "-o", out, "--output-format", fmt, "-q")
        finally:
            os.chdir(cwd)
        assert res.exit_code == 2, res.output
        assert colon_folders(Path(root)) == []
