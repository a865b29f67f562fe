"""Exact output geometry of every resize mode, and hostile input: any bytes, any size, any mode, and the
stage answers with an image or a failure kind of its own, never a crash."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from downloader.errors import KINDS, DownloadError
from downloader.spec import Images
from downloader.stages.geometry import final_size, plan
from downloader.stages.images import transform

MODES = ["no", "keep_ratio", "keep_ratio_largest", "center_crop", "border"]
SHAPES = [(400, 300), (300, 400), (256, 256), (1000, 100), (100, 1000), (64, 48), (1, 1)]
EXPECTED = {  # (mode, width, height) -> output size for N = 256
    ("keep_ratio", 400, 300): (341, 256),
    ("keep_ratio", 300, 400): (256, 341),
    ("keep_ratio", 1000, 100): (2560, 256),
    ("keep_ratio", 64, 48): (341, 256),
    ("keep_ratio_largest", 400, 300): (256, 192),
    ("keep_ratio_largest", 100, 1000): (26, 256),
    ("keep_ratio_largest", 64, 48): (256, 192),
    ("center_crop", 400, 300): (256, 256),
    ("center_crop", 1000, 100): (256, 256),
    ("center_crop", 1, 1): (256, 256),
    ("border", 300, 400): (256, 256),
    ("border", 1000, 100): (256, 256),
    ("no", 400, 300): (400, 300),
}
SHRINK_ONLY = {  # the same with --resize-only-if-bigger, as img2dataset gives it: an image whose
    # reference side (shorter for keep_ratio and center_crop, longer for the others) is within N is left
    # as it is, neither cropped nor padded; a larger one gets the whole mode
    ("keep_ratio", 400, 300): (341, 256),
    ("keep_ratio", 64, 48): (64, 48),
    ("keep_ratio", 1000, 100): (1000, 100),  # the shorter side is already within N
    ("keep_ratio_largest", 1000, 100): (256, 26),
    ("keep_ratio_largest", 64, 48): (64, 48),
    ("center_crop", 64, 48): (64, 48),
    ("center_crop", 1000, 100): (1000, 100),
    ("center_crop", 256, 256): (256, 256),
    ("center_crop", 400, 300): (256, 256),
    ("border", 64, 48): (64, 48),
    ("border", 256, 100): (256, 100),  # the longer side is N already: no border
    ("border", 300, 400): (256, 256),
    ("border", 1000, 100): (256, 256),
}


@pytest.mark.parametrize(("mode", "w", "h"), list(EXPECTED))
def test_each_mode_gives_the_documented_size(mode: str, w: int, h: int) -> None:
    assert final_size(w, h, plan(w, h, 256, mode)) == EXPECTED[(mode, w, h)]


@pytest.mark.parametrize(("mode", "w", "h"), list(SHRINK_ONLY))
def test_only_if_bigger_never_enlarges(mode: str, w: int, h: int) -> None:
    assert final_size(w, h, plan(w, h, 256, mode, only_if_bigger=True)) == SHRINK_ONLY[(mode, w, h)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("w", "h"), [(64, 48), (200, 120), (100, 1)])
def test_only_if_bigger_leaves_a_small_image_untouched(mode: str, w: int, h: int) -> None:
    """Within N in every mode: no scale, no crop, no border (img2dataset skips the whole resize)."""
    assert not plan(w, h, 256, mode, only_if_bigger=True).changes


def test_border_centres_and_crop_keeps_the_middle() -> None:
    g = plan(1000, 100, 256, "center_crop")
    assert g.scaled == (2560, 256) and g.crop == (1152, 0, 1408, 256)
    b = plan(100, 1000, 256, "border")
    assert b.scaled == (26, 256) and b.canvas == (256, 256)


def picture(w: int, h: int, mode: str) -> Image.Image:
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 7) % 256, (y * 5) % 256, 128) for y in range(h) for x in range(w)])
    return img.convert(mode)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    size=st.integers(1, 160),
    mode=st.sampled_from(MODES),
    only_if_bigger=st.booleans(),
    color=st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16"]),
    fmt=st.sampled_from(["jpg", "png", "webp"]),
)
def test_any_image_comes_out_at_the_planned_size(w: int, h: int, size: int, mode: str, **rest: Any) -> None:
    only_if_bigger, color, fmt = rest["only_if_bigger"], rest["color"], rest["fmt"]
    source = "PNG" if color in ("RGBA", "LA", "P", "1", "I;16") else "JPEG"
    buf = BytesIO()
    picture(w, h, color).save(buf, format=source)
    opts = Images(image_size=size, resize_mode=mode, resize_only_if_bigger=only_if_bigger, encode_format=fmt)  # type: ignore[arg-type]
    out = transform(buf.getvalue(), None, opts)
    expected = final_size(w, h, plan(w, h, size, mode, only_if_bigger))
    assert (out.meta["width"], out.meta["height"]) == expected
    assert out.body is not None and out.kind == "." + fmt
    assert Image.open(BytesIO(out.body)).size == expected


def outcome_kind(work: Callable[[], object]) -> str:
    """``ok``, or the kind of the ``DownloadError`` it raised, with a sentence (anything else escapes)."""
    try:
        work()
    except DownloadError as exc:
        return exc.kind if str(exc) else "no sentence"
    return "ok"


PREFIXES = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM"]


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), tail=st.binary(max_size=2048), decode=st.booleans())
def test_any_bytes_end_in_an_image_or_a_kind_of_their_own(prefix: bytes, tail: bytes, decode: bool) -> None:
    opts = Images(verify="decode" if decode else "header", image_size=32 if not decode else 0)
    kind = outcome_kind(lambda: transform(prefix + tail, None, opts))
    assert kind in KINDS and kind != "internal"


@settings(max_examples=100, deadline=None)
@given(
    cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8)
)
def test_damaged_real_images_fail_cleanly(cut: int, flips: list[tuple[int, int]]) -> None:
    buf = BytesIO()
    picture(120, 90, "RGB").save(buf, format="JPEG", progressive=True)
    body = bytearray(buf.getvalue()[: max(cut, 3)])
    for at, value in flips:
        if at < len(body):
            body[at] = value
    opts = Images(verify="decode", image_size=40, encode_format="png")
    assert outcome_kind(lambda: transform(bytes(body), ".jpg", opts)) in ("ok", "corrupt_image")
