"""``downloader bench``: its arithmetic on constructed runs, real child runs, one end-to-end demo bench."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from downloader.cli import main
from downloader.trials import (
    Run,
    Trial,
    fetch_command,
    format_table,
    parse_backends,
    parse_concurrencies,
    parse_executors,
    parse_fetch_args,
    plan,
    run_one,
    summarise,
    sweep,
)


def run(backend: str, c: int, files_per_s: float | None, repeat: int = 1, **changes: Any) -> Run:
    """A run as a child would report it; a None rate stands for a broken child (no stats.json)."""
    has = files_per_s is not None
    base = Run(
        backend,
        c,
        repeat,
        exit_code=0,
        cpu_s=1.0,
        peak_rss_mb=40.0,
        files_per_s=files_per_s,
        mb_per_s=files_per_s / 100 if files_per_s is not None else None,
        p50_ms=20.0 if has else None,
        p95_ms=30.0 if has else None,
        p99_ms=40.0 if has else None,
    )
    return replace(base, **changes)


def test_plan_puts_the_repeat_loop_outermost() -> None:
    trials = plan(["a", "b"], [8, 32], 2)
    assert [(t.repeat, t.backend, t.concurrency) for t in trials] == [
        (r, b, c) for r in (1, 2) for c in (8, 32) for b in ("a", "b")
    ]


def test_the_default_sweep_is_quick_and_full_is_the_whole_one() -> None:
    """By default each backend runs once at one concurrency (five runs, well under a minute); --full
    restores 8,32,128 × 3 repeats; what the user gives wins either way."""
    assert sweep(False, None, None) == ("32", 1)
    assert sweep(True, None, None) == ("8,32,128", 3)
    assert sweep(True, "4", None) == ("4", 3) and sweep(False, None, 5) == ("32", 5)
    assert (
        len(plan(parse_backends("aiohttp,threads"), parse_concurrencies(sweep(True, None, None)[0]), 3)) == 18
    )


def test_option_lists_parse_and_reject() -> None:
    assert parse_backends(" aiohttp, threads,aiohttp ") == ("aiohttp", "threads")
    assert parse_concurrencies("8,32,128") == (8, 32, 128)
    for bad in ("wget", ""):
        with pytest.raises(ValueError, match="backend"):
            parse_backends(bad)
    for bad in ("8,x", "0", ""):
        with pytest.raises(ValueError, match="concurrencies"):
            parse_concurrencies(bad)


def test_summarise_takes_medians_and_ratios_to_the_best() -> None:
    runs = [
        run("threads", 8, 100.0, cpu_s=3.0),
        run("aiohttp", 8, 300.0, p50_ms=10.0),
        run("aiohttp", 8, 200.0, repeat=2, p50_ms=30.0),
        run("aiohttp", 8, 400.0, repeat=3, p50_ms=20.0, failures=2, exit_code=1),
        run("threads", 8, 50.0, repeat=2, cpu_s=1.0),
        run("threads", 8, None, repeat=3, cpu_s=2.0, exit_code=2, error="exit 2: boom"),
        run("aiohttp", 2, 150.0),
    ]
    rows = summarise(runs)
    assert [(r.backend, r.concurrency, r.runs) for r in rows] == [
        ("threads", 8, 3),
        ("aiohttp", 2, 1),
        ("aiohttp", 8, 3),
    ]
    threads, slow, best = rows
    assert best.files_per_s == 300.0
    assert (best.files_per_s_min, best.files_per_s_max) == (200.0, 400.0)
    assert best.p50_ms == 20.0
    assert best.failures == 2
    assert best.vs_best == 1.0
    assert slow.vs_best == 0.5
    assert threads.files_per_s == 75.0  # the broken run has no rate: left out, not counted as 0
    assert threads.cpu_s == 2.0
    assert threads.broken == 1
    assert threads.vs_best == 0.25


def test_table_has_a_header_a_rule_and_one_line_per_row() -> None:
    rows = summarise([run("aiohttp", 8, 1234.4), run("threads", 128, 617.2), run("executor", 8, None)])
    lines = format_table(rows).splitlines()
    assert lines[0].split("|")[1].strip() == "backend"
    assert "vs best" in lines[0]
    assert set(lines[1]) <= set("|-:")
    assert len(lines) == 2 + 3
    assert len({len(line) for line in lines}) == 1  # aligned
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells[0][:3] == ["aiohttp", "8", "1234"]
    assert cells[0][-1] == "1.00×"
    assert cells[1][-1] == "0.50×"
    assert cells[2][2] == "–"
    assert cells[2][-1] == "–"


def test_image_executors_are_a_third_axis_with_a_column_of_their_own() -> None:
    trials = plan(["aiohttp"], [8], 1, ("process", "inline"))
    assert [(t.backend, t.concurrency, t.executor) for t in trials] == [
        ("aiohttp", 8, "process"),
        ("aiohttp", 8, "inline"),
    ]
    argv = fetch_command(Path("l.txt"), trials[1], Path("o"), ("--image-size", "256"))
    assert argv[-4:] == ["--image-executor", "inline", "--image-size", "256"]
    assert "--image-executor" not in fetch_command(Path("l.txt"), Trial(1, "aiohttp", 8), Path("o"))
    rows = summarise(
        [run("aiohttp", 8, 100.0, executor="process"), run("aiohttp", 8, 50.0, executor="inline")]
    )
    assert [(r.executor, r.vs_best) for r in rows] == [("process", 1.0), ("inline", 0.5)]
    lines = format_table(rows).splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")][:4] == ["backend", "images", "-c", "images/s"]
    assert [c.strip() for c in lines[3].strip("|").split("|")][:4] == ["aiohttp", "inline", "8", "50"]
    assert "images" not in format_table(summarise([run("aiohttp", 8, 100.0)]))


def test_image_options_parse_and_reject() -> None:
    assert parse_executors("thread, process,thread") == ("thread", "process")
    assert parse_fetch_args("--image-size 256 --encode-format 'jpg'") == (
        "--image-size",
        "256",
        "--encode-format",
        "jpg",
    )
    with pytest.raises(ValueError, match="unknown image executor"):
        parse_executors("gpu")
    for bad in ("-c 8", "--backend=curl", "--image-executor thread", "'open"):
        with pytest.raises(ValueError, match="fetch-args"):
            parse_fetch_args(bad)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary folders go under tmp_path, so a test can see that bench removed them."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_real_run_counts_failures_and_cleans_up(private_tmp: Path) -> None:
    listing = private_tmp / "urls.txt"
    listing.write_text("not a url\n")
    result = run_one(listing, Trial(1, "threads", 2))
    assert result.exit_code == 1
    assert result.failures == 1
    assert result.error is None
    assert not result.completed
    assert result.cpu_s > 0
    assert result.peak_rss_mb > 5
    assert [p.name for p in private_tmp.iterdir()] == ["urls.txt"]


def test_a_real_run_takes_the_image_executor_and_the_fetch_args(private_tmp: Path) -> None:
    listing = private_tmp / "urls.txt"
    listing.write_text("not a url\n")
    result = run_one(listing, Trial(1, "aiohttp", 2, "inline"), extra=("--image-size", "64"))
    assert (result.exit_code, result.failures, result.executor, result.error) == (1, 1, "inline", None)


def test_a_child_that_breaks_or_hangs_is_reported(private_tmp: Path) -> None:
    broken = run_one(private_tmp / "missing.txt", Trial(1, "aiohttp", 2))
    assert broken.exit_code == 2
    assert broken.error is not None
    assert broken.error.startswith("exit 2: ")  # with the child's last line of stderr
    assert broken.files_per_s is None
    killed = run_one(private_tmp / "missing.txt", Trial(1, "aiohttp", 2), timeout=0.001)
    assert killed.error == "killed after 0.001 s"
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "either a LIST or --demo"),
        (["--demo", "--backends", "wget"], "unknown backend"),
        (["--demo", "-c", "8,zero"], "not a list of concurrencies"),
        (["--demo", "--image-executors", "process,thread"], "compares nothing without image options"),
        (["--demo", "--image-executors", "gpu", "--fetch-args", "--image-size 8"], "unknown image executor"),
        (["--demo", "--fetch-args", "-o x"], "--fetch-args cannot set -o"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["bench", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_bench_demo_end_to_end(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "downloader", "bench", "--demo", "-n", "60"]
    argv += ["--backends", "aiohttp,threads", "--concurrency", "4,8", "--repeat", "1"]
    argv += ["--json", "out.json", "--plot", "b.png", "--html", "b.html"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")][1:]
    assert sorted(line.split("|")[1].strip() + line.split("|")[2].strip() for line in table) == [
        "aiohttp4",
        "aiohttp8",
        "threads4",
        "threads8",
    ]
    assert "[4/4]" in proc.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    assert len(doc["runs"]) == 4
    assert all(r["ok"] == 60 and r["failures"] == 0 for r in doc["runs"])
    assert len(doc["medians"]) == 4
    assert (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    html = (tmp_path / "b.html").read_text()
    assert html.count('<svg class="chart"') == 2 and html.count('<polyline class="series"') == 4
    settings = set(doc["settings"]) - {"python", "cpus"}  # the JSON's extras, not in the page
    assert html.count("<tr>") == 2 + 4 + len(settings)  # two headers, a row per median, the settings
