"""The command line through click's runner and, for signals, as a real subprocess."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import signal
import sys
import tarfile
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from click.testing import CliRunner
from PIL import Image

from downloader.cli import main
from downloader.errors import ExitCode
from tests.helpers import hits, invoke, manifest_rows, write_list


async def test_exit_0_when_all_ok(origin: TestServer, tmp_path: Path, backend: str) -> None:
    lst = write_list(tmp_path, [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(5)])
    out = tmp_path / "out"
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "--backend", backend)
    assert res.exit_code == 0, res.output
    assert "5 ok, 0 failed" in res.output and "files/s" in res.output and "p95" in res.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["ok"] == 5 and stats["backend"] == backend


async def test_exit_1_when_some_failed_and_stdin_list(origin: TestServer, tmp_path: Path) -> None:
    urls = [str(origin.make_url("/img/1/image-00.jpg")), str(origin.make_url("/status/410/x")), "bad"]
    out = tmp_path / "out"
    res = await asyncio.to_thread(invoke, "fetch", "-", "-o", str(out), stdin="\n".join(urls))
    assert res.exit_code == 1
    assert "failures by kind: " in res.output and "http_4xx 1" in res.output
    assert {r["status"] for r in manifest_rows(out)} == {"ok", "failed", "invalid"}


def test_quiet_prints_nothing_on_success(tmp_path: Path) -> None:
    lst = write_list(tmp_path, [])
    res = invoke("fetch", str(lst), "-o", str(tmp_path / "out"), "-q")
    assert res.exit_code == 0 and res.output == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fetch", "missing.txt"], "no such list file"),
        (["fetch", "-", "--max-size", "lots"], "not a size"),
        (["fetch", "-", "-c", "0"], "-c"),
        (["fetch", "-", "-H", "no colon"], "not a header"),
        (["fetch", "-", "--backend", "wget"], "wget"),
        (["fetch"], "Missing argument"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, args, input="")
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("procs", ["1", "2"])
def test_unwritable_output_aborts_with_3(tmp_path: Path, procs: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    lst = write_list(tmp_path, ["http://127.0.0.1:9/x.jpg"])
    args = ["fetch", str(lst), "-o", str(tmp_path / "file" / "out"), "--procs", procs]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 3 and "not writable" in res.output and "Traceback" not in res.output


def test_a_bug_exits_4_apart_from_an_aborted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception nothing expected (here injected into reading the manifest) is a bug: exit 4, one line
    asking for a report, the traceback only with --debug; never 3, which says the disk or output failed."""
    import downloader.manifest

    def broken(*args: object) -> object:
        raise RuntimeError("injected fault")

    (tmp_path / "manifest.jsonl").write_text('{"url": "http://127.0.0.1:9/a.jpg", "status": "ok"}\n')
    monkeypatch.setattr(downloader.manifest, "failed_rows", broken)
    res = CliRunner().invoke(main, ["failures", str(tmp_path)])
    assert res.exit_code == ExitCode.INTERNAL, res.output
    assert "internal error: RuntimeError: injected fault" in res.output and "report" in res.output
    assert "Traceback" not in res.output
    debug = CliRunner().invoke(main, ["failures", str(tmp_path), "--debug"])
    assert isinstance(debug.exception, RuntimeError)
    assert len(set(ExitCode)) == len(ExitCode.__members__)  # no two meanings share a code


def test_an_os_error_is_no_bug(tmp_path: Path) -> None:
    """An OSError that reaches the command line is the machine's (here the page's folder is missing): exit
    3 and one line, as for a full disk; never 4."""
    (tmp_path / "manifest.jsonl").write_text('{"url": "http://127.0.0.1:9/a.jpg", "status": "ok"}\n')
    res = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "missing" / "r.html")])
    assert res.exit_code == ExitCode.ABORTED, res.output
    assert res.output.startswith("error: ") and "No such file" in res.output and "Traceback" not in res.output


def test_help_has_examples() -> None:
    for cmd in (["--help"], ["fetch", "--help"], ["demo", "--help"]):
        res = invoke(*cmd)
        assert res.exit_code == 0 and "Examples" in res.output


def test_help_lists_the_options_by_section_in_one_column() -> None:
    text = invoke("fetch", "--help").output
    titles = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert titles == [
        "Input",
        "Output",
        "Network",
        "Retries and timeouts",
        "Content",
        "Images",
        "Politeness and limits",
        "Performance",
        "Dataset",
        "Cluster and state",
        "Display",
        "Other options",
    ]
    fix_ext, help_ = (
        next(ln for ln in text.splitlines() if ln.startswith(f"  {o} ")) for o in ("--fix-ext", "-h, --help")
    )
    assert fix_ext.index("Give each file") == help_.index("Show this message")  # one first column
    assert invoke("status", "--help").output.count("Options:") == 1


def test_demo_files_runs_against_the_embedded_origin() -> None:
    res = invoke("demo", "--files", "-n", "40", "-c", "8", "--latency", "0.001")
    assert res.exit_code == 0, res.output
    assert "40 ok, 0 failed" in res.output


def test_demo_builds_a_webdataset_of_resized_images_and_its_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = invoke("demo", "-n", "120", "-c", "8", "--latency", "0.001", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "120 ok, 0 failed" in res.output
    last = res.output.strip().splitlines()[-3:]
    assert last[0].startswith(f"dataset: {out} (2 WebDataset shards: 00000.tar … 00001.tar)")
    assert last[1].startswith(f"report:  {out / 'report.html'}")
    sheet = (out / "report.html").read_text()
    assert (
        "48 of 120 stored images" in sheet and sheet.count("data:image/jpeg;base64,") == 48
    )  # from the tars
    assert "downloader fetch urls.txt -o dataset/ --output-format webdataset" in last[2]
    sizes = set()
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".jpg"):
                    body = tar.extractfile(member)
                    assert body is not None
                    sizes.add(Image.open(body).size)
    assert sizes == {(64, 64)}


async def interrupted_run(lst: Path, out: Path, *args: str) -> tuple[int | None, bytes, bytes]:
    """``downloader fetch`` as a subprocess, sent SIGINT once four files are in: (exit code, out, err)."""
    cmd = [sys.executable, "-m", "downloader", "fetch", str(lst), "-o", str(out), "-c", "4", *args]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        while sum(1 for p in out.glob("*.jpg")) < 4:
            await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode, stdout, stderr


async def test_sigint_stops_cleanly_then_rerun_resumes(
    origin: TestServer, tmp_path: Path, backend: str
) -> None:
    lst = write_list(tmp_path, [str(origin.make_url(f"/slow/300/{i}.jpg")) for i in range(40)])
    out = tmp_path / "out"
    code, stdout, stderr = await interrupted_run(lst, out, "--backend", backend)
    assert code == 130, stderr.decode()
    assert b"interrupted" in stdout + stderr and b"Traceback" not in stderr
    rows = manifest_rows(out)
    done = [r for r in rows if r["status"] == "ok"]
    # an interrupt is not a failure: what the run did not finish is "not_started", with no kind
    assert {(r["status"], r["kind"]) for r in rows if r["status"] != "ok"} == {("not_started", None)}
    assert len(rows) == 40 and 4 <= len(done) < 40
    summary = stdout.decode()
    assert f"{len(done)} ok, 0 failed, {40 - len(done)} not started (interrupted)" in summary, summary
    assert not list(out.glob("*.part"))
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(r["path"] for r in done)
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "-c", "16", "--backend", backend)
    assert res.exit_code == 0, res.output
    assert f"{40 - len(done)} ok" in res.output and f"{len(done)} skipped" in res.output


async def test_retry_failed_fetches_only_what_failed(origin: TestServer, tmp_path: Path) -> None:
    good, flaky = str(origin.make_url("/img/1/image-00.jpg")), str(origin.make_url("/flaky/1/f.jpg"))
    lst = write_list(tmp_path, [good, flaky, "bad url"])
    out = tmp_path / "out"
    first = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "--retries", "0")
    assert first.exit_code == 1
    again = await asyncio.to_thread(invoke, "fetch", "--retry-failed", "-o", str(out), "--retries", "0")
    assert again.exit_code == 0, again.output
    assert "1 ok, 0 failed" in again.output
    assert hits(origin, "/img/1/image-00.jpg") == 1 and hits(origin, "/flaky/1/f.jpg") == 2
    latest = {r["url"]: r for r in manifest_rows(out)}
    assert latest[flaky]["status"] == "ok" and latest[flaky]["line"] == 3  # as in the list
    both = CliRunner().invoke(main, ["fetch", str(lst), "--retry-failed", "-o", str(out)])
    assert both.exit_code == 2 and "not both" in both.output


def write_rows(path: Path, fmt: str, rows: list[dict[str, str]]) -> None:
    """A list file in ``fmt`` (csv, jsonl.gz or parquet) holding ``rows``."""
    if fmt == "csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif fmt == "jsonl.gz":
        path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        pa = pytest.importorskip("pyarrow")
        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("fmt", ["csv", "jsonl.gz", "parquet"])
async def test_tabular_lists_through_the_cli(origin: TestServer, tmp_path: Path, fmt: str) -> None:
    rows = [
        {"image": str(origin.make_url(f"/img/{i}/image-00.jpg")), "caption": f"cat {i}", "id": f"id{i}"}
        for i in range(4)
    ]
    rows.append({"image": "", "caption": "no url", "id": "idx"})
    lst = tmp_path / f"list.{fmt}"
    write_rows(lst, fmt, rows)
    out = tmp_path / "out"
    args = [
        "fetch",
        str(lst),
        "-o",
        str(out),
        "--url-column",
        "image",
        "--keep-columns",
        "caption",
        "--name-column",
        "id",
        "--names",
        "plain",
    ]
    res = await asyncio.to_thread(invoke, *args)
    assert res.exit_code == 1, res.output
    assert "4 ok, 0 failed, 1 invalid" in res.output
    by_caption = {r["caption"]: r for r in manifest_rows(out)}
    assert by_caption["cat 2"]["path"] == "id2.jpg" and (out / "id2.jpg").is_file()
    assert by_caption["no url"]["kind"] == "invalid_input"


async def test_procs_share_one_manifest_and_summary(origin: TestServer, tmp_path: Path, backend: str) -> None:
    urls = [str(origin.make_url(f"/img/{i}/image-00.jpg")) for i in range(30)]
    lst = write_list(tmp_path, [*urls, urls[3], "not a url", urls[7]])
    out = tmp_path / "out"
    args = ["fetch", str(lst), "-o", str(out), "--procs", "3", "-c", "6", "--backend", backend]
    res = await asyncio.to_thread(invoke, *args)
    assert res.exit_code == 1, res.output
    assert "30 ok, 0 failed, 1 invalid, 2 duplicate" in res.output
    rows = manifest_rows(out)
    assert sorted(r["line"] for r in rows) == list(range(2, 35))  # one row per input row, line 1 a comment
    assert not list(out.glob(".manifest-*"))
    assert all(hits(origin, f"/img/{i}/image-00.jpg") == 1 for i in range(30))
    assert json.loads((out / "stats.json").read_text())["ok"] == 30
    again = await asyncio.to_thread(invoke, *args)
    assert "0 ok, 0 failed, 1 invalid, 30 skipped, 2 duplicate" in again.output


async def test_procs_stop_cleanly_on_sigint(origin: TestServer, tmp_path: Path, backend: str) -> None:
    lst = write_list(tmp_path, [str(origin.make_url(f"/slow/300/{i}.jpg")) for i in range(60)])
    out = tmp_path / "out"
    code, stdout, stderr = await interrupted_run(lst, out, "--backend", backend, "--procs", "2")
    assert code == 130, stderr.decode()
    assert b"interrupted" in stdout and b"Traceback" not in stderr
    rows = manifest_rows(out)
    done = {r["path"] for r in rows if r["status"] == "ok"}
    assert {p.name for p in out.glob("*.jpg")} == done
    assert not list(out.glob("*.part")) and not list(out.glob(".manifest-*"))
    res = await asyncio.to_thread(invoke, "fetch", str(lst), "-o", str(out), "-c", "16", "--backend", backend)
    assert res.exit_code == 0, res.output
    assert f"{len(done)} skipped" in res.output


def test_a_run_tunes_the_collector_and_restores_it() -> None:
    """During a run the start-up heap is frozen and young collections are rarer, yet collection stays
    automatic (a cycle is freed once enough is allocated); afterwards the collector is as it was."""
    import gc
    import weakref

    from downloader import loop

    class Node:
        ref: object = None

    async def work() -> tuple[int, int, bool]:
        node = Node()
        node.ref = node  # a cycle: reference counting alone never frees it
        alive = weakref.ref(node)
        del node
        keep: list[list[int]] = [[] for _ in range(loop.YOUNG_THRESHOLD + 5_000)]  # enough to collect
        del keep
        return gc.get_threshold()[0], gc.get_freeze_count(), alive() is None

    before = gc.get_threshold()
    young, frozen, freed = loop.run_loop(work(), "asyncio")
    assert young == loop.YOUNG_THRESHOLD and frozen > 0 and freed
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0 and gc.isenabled()
