"""The image stage on every backend: the fixture cases (fixtures/images.py), resizing, re-encoding,
filters, the executors, and that a run without image options never loads the image library."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from collections.abc import Awaitable, Callable
from io import BytesIO
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from PIL import Image

from downloader.errors import UsageError
from downloader.spec import RunSpec
from tests.faults import IMAGES
from tests.helpers import Run

Fetch = Callable[..., Awaitable[Run]]

DECODED = {  # fixture: (width, height, format) as the decoder sees it (EXIF orientation applied)
    "progressive.jpg": (320, 240, "jpg"),
    "cmyk.jpg": (160, 120, "jpg"),
    "rotated.jpg": (200, 300, "jpg"),
    "alpha.png": (100, 100, "png"),
    "palette.png": (120, 80, "png"),
    "gray16.png": (64, 48, "png"),
    "animated.gif": (80, 60, "gif"),
    "image.webp": (200, 100, "webp"),
    "one.png": (1, 1, "png"),
    "panorama.jpg": (1000, 100, "jpg"),
}
REFUSED = {"truncated.jpg": "corrupt_image", "bomb.png": "too_many_pixels", "html.jpg": "not_image"}


def urls(origin: TestServer, names: list[str]) -> dict[str, str]:
    return {name: str(origin.make_url(f"/images/{name}/{name}")) for name in names}


def stored(run: Run, row: dict[str, object]) -> Image.Image:
    img = Image.open(BytesIO((run.out / str(row["path"])).read_bytes()))
    img.load()
    return img


async def test_decode_checks_every_case(origin: TestServer, fetch: Fetch) -> None:
    by_name = urls(origin, [*DECODED, *REFUSED])
    run = await fetch(list(by_name.values()), verify="decode", image_workers=2)
    for name, (w, h, fmt) in DECODED.items():
        row = run.row(by_name[name])
        assert row["status"] == "ok", row
        assert (row["width"], row["height"], row["format"]) == (w, h, fmt)
        assert (run.out / row["path"]).read_bytes() == (IMAGES / name).read_bytes()  # kept as it came
    for name, kind in REFUSED.items():
        row = run.row(by_name[name])
        assert row["status"] == "failed" and row["kind"] == kind, row
    assert "pixels" in run.row(by_name["bomb.png"])["error"]
    assert len(run.files()) == len(DECODED)  # a refused image leaves nothing


async def test_resize_and_reencode_every_case(origin: TestServer, fetch: Fetch) -> None:
    by_name = urls(origin, list(DECODED))
    run = await fetch(
        list(by_name.values()), image_size=64, resize_mode="border", encode_format="jpg", image_workers=2
    )
    for name, (w, h, _fmt) in DECODED.items():
        row = run.row(by_name[name])
        assert row["status"] == "ok", row
        assert row["path"].endswith(".jpg") and row["format"] == "jpg"
        assert (row["width"], row["height"]) == (64, 64)
        assert (row["original_width"], row["original_height"]) == (w, h)
        img = stored(run, row)
        assert (img.format, img.size) == ("JPEG", (64, 64))
        assert img.mode == ("L" if name == "gray16.png" else "RGB")  # greyscale stays one channel
        body = (run.out / row["path"]).read_bytes()
        assert row["bytes"] == len(body) and row["sha256"] == hashlib.sha256(body).hexdigest()


async def test_exif_orientation_comes_first(origin: TestServer, fetch: Fetch) -> None:
    u = urls(origin, ["rotated.jpg"])["rotated.jpg"]
    run = await fetch([u], image_size=100, resize_mode="keep_ratio", encode_format="png")
    row = run.row(u)
    assert (row["width"], row["height"]) == (100, 150) and row["path"].endswith(".png")
    img = stored(run, row)
    assert img.size == (100, 150)
    top_left, top_right = img.getpixel((2, 2)), img.getpixel((97, 2))
    assert isinstance(top_left, tuple) and isinstance(top_right, tuple)
    # stored 300×200 with red growing rightwards, turned a quarter clockwise: red now grows downwards,
    # green (growing downwards before) now falls to the right
    assert top_left[1] > top_right[1]


async def test_transparency_goes_onto_white_for_jpg(origin: TestServer, fetch: Fetch) -> None:
    u = urls(origin, ["palette.png"])["palette.png"]
    run = await fetch([u], encode_format="jpg")
    img = stored(run, run.row(u))
    assert img.mode == "RGB" and img.format == "JPEG"
    webp = await fetch([u], encode_format="webp", out=run.out.parent / "webp")
    assert stored(webp, webp.row(u)).mode == "RGBA"  # webp keeps the alpha


async def test_skip_reencode_keeps_the_original_bytes(origin: TestServer, fetch: Fetch) -> None:
    u = urls(origin, ["progressive.jpg"])["progressive.jpg"]
    original = (IMAGES / "progressive.jpg").read_bytes()
    kept = await fetch(
        [u],
        encode_format="jpg",
        skip_reencode=True,
        image_size=400,
        resize_mode="keep_ratio",
        resize_only_if_bigger=True,
    )
    assert (kept.out / kept.row(u)["path"]).read_bytes() == original
    again = await fetch([u], encode_format="jpg", out=kept.out.parent / "again")
    assert (again.out / again.row(u)["path"]).read_bytes() != original  # without it: re-encoded


@pytest.mark.parametrize("mode", ["center_crop", "border"])
async def test_only_if_bigger_neither_crops_nor_pads_a_small_image(
    origin: TestServer, fetch: Fetch, mode: str
) -> None:
    """img2dataset's rule: an image within N in the mode's reference side keeps its shape; a larger
    one is scaled and then cropped or padded to N×N."""
    by_name = urls(origin, ["palette.png", "progressive.jpg"])
    run = await fetch(
        list(by_name.values()),
        image_size=200,
        resize_mode=mode,
        resize_only_if_bigger=True,
        encode_format="png",
    )
    small, large = run.row(by_name["palette.png"]), run.row(by_name["progressive.jpg"])
    assert (small["width"], small["height"]) == (120, 80) and stored(run, small).size == (120, 80)
    assert (large["width"], large["height"]) == (200, 200) and stored(run, large).size == (200, 200)
    assert (large["original_width"], large["original_height"]) == (320, 240)


async def test_filters_fail_with_the_measured_value(origin: TestServer, fetch: Fetch) -> None:
    by_name = urls(origin, ["one.png", "panorama.jpg", "progressive.jpg", "image.webp"])
    run = await fetch(list(by_name.values()), min_image_size=8, max_image_area=50_000, max_aspect_ratio=5)
    small, wide, large = (run.row(by_name[n]) for n in ("one.png", "panorama.jpg", "progressive.jpg"))
    assert small["kind"] == "image_too_small" and "1×1" in small["error"]
    assert wide["kind"] == "aspect_ratio" and "10.00" in wide["error"]
    assert large["kind"] == "image_too_large" and "76,800" in large["error"]
    assert run.row(by_name["image.webp"])["status"] == "ok"
    assert run.files() == [Path(run.row(by_name["image.webp"])["path"]).as_posix()]


@pytest.mark.parametrize("executor", ["process", "thread", "inline"])
async def test_every_executor_gives_the_same_images(
    origin: TestServer, fetch: Fetch, executor: str, backend: str
) -> None:
    by_name = urls(origin, list(DECODED))
    run = await fetch(
        list(by_name.values()), image_size=32, resize_mode="center_crop", image_executor=executor
    )
    assert all(r["status"] == "ok" and (r["width"], r["height"]) == (32, 32) for r in run.rows)


async def test_without_image_options_nothing_is_loaded(origin: TestServer, tmp_path: Path) -> None:
    """A plain run imports neither the stage nor Pillow, and starts no pool."""
    code = (
        "import sys, downloader\n"
        f"s = downloader.download([{str(origin.make_url('/images/alpha.png/a'))!r}], {str(tmp_path)!r})\n"
        "assert s.ok == 1, s\n"
        "print(sorted(m for m in sys.modules if m.startswith(('PIL', 'downloader.stages.images'))))\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and out.decode().strip() == "[]"


def test_image_options_are_settings() -> None:
    spec = RunSpec.from_options(image_size=256, encode_format="webp")
    assert spec.images.active and spec.images.resize_mode == "border"
    assert not RunSpec().images.active
    with pytest.raises(UsageError):
        RunSpec.from_options(encode_format="gif")
    with pytest.raises(UsageError):
        RunSpec.from_options(encode_quality=101)


def test_without_pillow_an_image_option_says_how_to_install_it(tmp_path: Path) -> None:
    """A machine without the extra: Pillow hidden from the import system in a fresh process."""
    lst = tmp_path / "urls.txt"
    lst.write_text("http://127.0.0.1:9/a.jpg\n")
    code = (
        "import sys; sys.modules['PIL'] = None\n"
        "from downloader.cli import main\n"
        f"main(['fetch', {str(lst)!r}, '-o', {str(tmp_path / 'out')!r}, '--image-size', '64'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert "pip install 'downloader[images]'" in done.stderr and "Traceback" not in done.stderr
