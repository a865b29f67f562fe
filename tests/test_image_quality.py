"""What the image stage's shortcuts must not cost: the JPEG decoder's reduced decode (``draft``), the box
``reduce`` and each downscale filter give the exact planned size on large images of every colour mode,
and stay close to a full-size decode resampled with Lanczos (PSNR, measured on a lossless output), also
on fine stripes, where a box filter or too coarse a draft aliases."""

from __future__ import annotations

import math
from io import BytesIO

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from downloader.spec import Images
from downloader.stages.geometry import final_size, plan
from downloader.stages.images import transform

MODES = ["keep_ratio", "keep_ratio_largest", "center_crop", "border"]
LARGE = [(2400, 1600), (1999, 1001), (1001, 1999), (4000, 300), (257, 3000), (698, 523)]


def photo(w: int, h: int) -> Image.Image:
    """Detail at every scale (a Mandelbrot set) over smooth gradients."""
    detail = Image.effect_mandelbrot((w, h), (-2.2, -1.1, 1.0, 1.1), 100)
    ramps = [Image.linear_gradient("L").resize((w, h)), Image.radial_gradient("L").resize((w, h))]
    return Image.merge("RGB", [detail, *ramps])


def stripes(w: int, h: int, period: int) -> Image.Image:
    """Slanted white lines every ``period`` pixels: far above the target's resolution, they must come out
    as an even grey, not as a coarser pattern."""
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    for x in range(-h, w, period):
        draw.line([(x, 0), (x + h // 3, h)], fill=255)
    return img.convert("RGB")


def encoded(img: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buf = BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def psnr(a: Image.Image, b: Image.Image) -> float:
    rms = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).rms
    mse = sum(r * r for r in rms) / len(rms)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def near(have: object, want: object, tolerance: int) -> bool:
    """Two pixels (a number or a tuple each) within ``tolerance`` in every band."""
    pair = [v if isinstance(v, tuple) else (v,) for v in (have, want)]
    return all(abs(a - b) <= tolerance for a, b in zip(*pair, strict=True))


def shrunk(body: bytes, size: int, mode: str = "keep_ratio", how: str = "cubic") -> Image.Image:
    """The stage's output as png (lossless, so only the resampling is measured)."""
    opts = Images(image_size=size, resize_mode=mode, encode_format="png", downscale_interpolation=how)  # type: ignore[arg-type]
    out = transform(body, ".jpg", opts)
    assert out.body is not None
    img = Image.open(BytesIO(out.body))
    img.load()
    return img


@pytest.mark.parametrize(("w", "h"), LARGE)
@pytest.mark.parametrize("mode", MODES)
def test_large_jpegs_come_out_at_the_planned_size(w: int, h: int, mode: str) -> None:
    body = encoded(Image.linear_gradient("L").resize((w, h)).convert("RGB"), quality=80)
    for size in (256, 100, 33):
        out = transform(body, ".jpg", Images(image_size=size, resize_mode=mode, encode_format="jpg"))  # type: ignore[arg-type]
        expected = final_size(w, h, plan(w, h, size, mode))
        assert out.body is not None and (out.meta["width"], out.meta["height"]) == expected
        assert Image.open(BytesIO(out.body)).size == expected


FILTERS = ["linear", "cubic", "lanczos"]


@pytest.mark.parametrize("how", FILTERS)
@pytest.mark.parametrize("size", [256, 180, 100, 700])
def test_shrinking_a_photo_stays_close_to_lanczos_from_full_size(size: int, how: str) -> None:
    body = encoded(photo(2400, 1600), quality=90)
    got = shrunk(body, size, how=how)
    reference = Image.open(BytesIO(body)).convert("RGB").resize(got.size, Image.Resampling.LANCZOS)
    assert psnr(got, reference) > 44


@pytest.mark.parametrize("how", FILTERS)
@pytest.mark.parametrize("period", [2, 3, 4, 5, 7])
@pytest.mark.parametrize("size", [256, 100, 500])
def test_fine_stripes_do_not_alias(period: int, size: int, how: str) -> None:
    body = encoded(stripes(2400, 1600, period), quality=90)
    got = shrunk(body, size, how=how)
    reference = Image.open(BytesIO(body)).convert("RGB").resize(got.size, Image.Resampling.LANCZOS)
    floor = 28 if how == "linear" else 30  # linear: 28.8 on period 7 at 750×500
    assert psnr(got, reference) > floor  # a box filter over the whole factor: as low as 15


@pytest.mark.parametrize(
    ("mode", "fmt", "out_mode"),
    [
        ("CMYK", "JPEG", "RGB"),
        ("L", "JPEG", "L"),
        ("RGBA", "PNG", "RGB"),
        ("P", "PNG", "RGB"),
        ("LA", "PNG", "L"),
    ],
)
def test_every_colour_mode_shrinks_to_its_own_colours(mode: str, fmt: str, out_mode: str) -> None:
    """Left half one colour, right half another (half transparent where there is alpha): after a reduced
    decode and a 6× shrink each half keeps its colour, alpha over white."""
    left, right = (
        Image.new("RGBA", (600, 1200), (200, 40, 40, 255)),
        Image.new("RGBA", (600, 1200), (40, 40, 200, 128)),
    )
    source = Image.new("RGBA", (1200, 1200))
    source.paste(left, (0, 0))
    source.paste(right, (600, 0))
    flat = Image.alpha_composite(Image.new("RGBA", source.size, (255, 255, 255, 255)), source).convert("RGB")
    shown = source if mode in ("RGBA", "LA") else flat
    shown = shown.convert(mode) if mode != "P" else shown.convert("RGB").quantize(4)
    body = encoded(shown, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    out = transform(body, None, Images(image_size=200, resize_mode="border", encode_format="jpg"))
    assert out.body is not None
    got = Image.open(BytesIO(out.body))
    assert got.size == (200, 200) and got.mode == out_mode
    for x in (50, 150):
        assert near(got.getpixel((x, 100)), flat.convert(out_mode).getpixel((x * 6, 600)), 12), x


def test_a_small_image_is_enlarged_and_centred() -> None:
    body = encoded(Image.new("RGB", (100, 60), (10, 120, 240)), quality=95)
    out = transform(body, ".jpg", Images(image_size=256, resize_mode="border", encode_format="png"))
    assert out.body is not None
    got = Image.open(BytesIO(out.body))
    assert got.size == (256, 256) and (out.meta["original_width"], out.meta["original_height"]) == (100, 60)
    middle, edge = got.getpixel((128, 128)), got.getpixel((128, 5))
    assert near(middle, (10, 120, 240), 6)
    assert edge == (255, 255, 255)  # the border is white


def test_the_filter_shrinks_and_enlarging_stays_bicubic() -> None:
    """``--downscale-interpolation`` changes a shrunk image (the sharper filter is further from the softer
    one than either is from itself) and nothing of an enlarged one, which bicubic makes whatever it says."""
    body = encoded(photo(2400, 1600), quality=90)
    linear, cubic = (shrunk(body, 256, how=how) for how in ("linear", "cubic"))
    assert psnr(linear, cubic) < 60 and psnr(linear, shrunk(body, 256, how="linear")) == math.inf
    small = encoded(photo(120, 80), quality=90)
    assert psnr(shrunk(small, 300, how="linear"), shrunk(small, 300, how="lanczos")) == math.inf
