"""CPU milliseconds per image of the image stage's own work (``transform``) in one process, the figure
that decides images/s per core. The machine this runs on is shared, so wall time moves with the load;
``time.process_time`` counts only this process's CPU and holds still.

The images are web-sized JPEGs from ``--dir`` (every ``*.jpg`` in it) or, when it has none, a set made
here with Pillow that looks like a crawl: photo-like noise and gradients, 300 to 2000 px a side, about
65 KB median. Settings are the images scenario's: ``--image-size 256 --resize-mode border -e jpg``, the
default quality. Each round runs every image once; the median of ``--rounds`` rounds is reported.

``--quality`` says what the shortcuts (reduced JPEG decode, box reduce, bicubic) cost instead: the PSNR
of the stage's output, written as png so that only the resampling counts, against a full-size decode
resampled with Lanczos, over the same images and over slanted stripes 2 to 11 pixels apart (where a
filter that aliases shows), next to img2dataset's way (full decode, area filter) on the same.
Run: python benchmarks/image_cpu.py [--dir FOLDER] [--count 300] [--rounds 3] [--quality]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageStat

from downloader.spec import Images
from downloader.stages.images import transform

CACHE = Path.home() / ".cache" / "downloader-bench" / "web-images"
OPTIONS = Images(image_size=256, resize_mode="border", encode_format="jpg")


def made(count: int) -> list[bytes]:
    """``count`` crawl-like JPEGs, made once and cached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    bodies = []
    for i in range(count):
        path = CACHE / f"{i:04d}.jpg"
        if not path.exists():
            long = int(min(2000, max(300, rng.lognormvariate(6.7, 0.45))))
            short = int(long * rng.choice((0.56, 0.67, 0.75, 1.0)))
            w, h = (long, short) if rng.random() < 0.7 else (short, long)
            bands = [Image.effect_noise((w, h), 12 + i % 40), Image.linear_gradient("L").resize((w, h))]
            bands.append(Image.radial_gradient("L").resize((w, h)))
            buf = BytesIO()
            Image.merge("RGB", bands).save(buf, format="JPEG", quality=rng.choice((75, 85, 90)))
            path.write_bytes(buf.getvalue())
        bodies.append(path.read_bytes())
    return bodies


def bodies_from(folder: Path | None, count: int) -> list[bytes]:
    found = sorted(folder.glob("*.jpg")) if folder is not None and folder.is_dir() else []
    return [p.read_bytes() for p in found[:count]] if found else made(count)


def cpu_ms(bodies: list[bytes]) -> float:
    """CPU ms per image of one pass over ``bodies``."""
    started = time.process_time()
    for body in bodies:
        transform(body, ".jpg", OPTIONS)
    return (time.process_time() - started) * 1000 / len(bodies)


def psnr(a: Image.Image, b: Image.Image) -> float:
    rms = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).rms
    mse = sum(r * r for r in rms) / len(rms)
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def stripes(period: int, w: int = 2400, h: int = 1600) -> bytes:
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    for x in range(-h, w, period):
        draw.line([(x, 0), (x + h // 3, h)], fill=255)
    buf = BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def scores(body: bytes, size: int) -> tuple[float, float]:
    """(stage, area filter): PSNR against a full decode resampled with Lanczos, longer side ``size``."""
    opts = Images(image_size=size, resize_mode="keep_ratio_largest", encode_format="png")
    out = transform(body, ".jpg", opts).body
    if out is None:  # already that size: nothing resampled
        return 99.0, 99.0
    got = Image.open(BytesIO(out))
    full = Image.open(BytesIO(body)).convert("RGB")
    best = full.resize(got.size, Image.Resampling.LANCZOS)
    return psnr(got, best), psnr(full.resize(got.size, Image.Resampling.BOX), best)


def quality(bodies: list[bytes]) -> None:
    sets = {"images": [(b, 256) for b in bodies]}
    sets["stripes"] = [(stripes(p), size) for p in (2, 3, 4, 5, 7, 11) for size in (100, 180, 256, 500, 700)]
    print("PSNR in dB against Lanczos from full size: median, 10th percentile, worst")
    for name, cases in sets.items():
        pairs = [scores(body, size) for body, size in cases]
        for who, column in (("the stage", 0), ("area filter", 1)):
            got = sorted(p[column] for p in pairs)
            tenth = got[len(got) // 10]
            print(f"  {name:8} {who:12} {got[len(got) // 2]:5.1f} {tenth:5.1f} {got[0]:5.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, default=None, help="a folder of JPEGs (default: made here)")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quality", action="store_true", help="PSNR against Lanczos, not CPU time")
    args = parser.parse_args()
    bodies = bodies_from(args.dir, args.count)
    if args.quality:
        quality(bodies)
        return
    sizes = sorted(map(len, bodies))
    median_kb, max_kb = sizes[len(sizes) // 2] / 1000, sizes[-1] / 1000
    print(f"{len(bodies)} JPEGs, median {median_kb:.0f} KB, max {max_kb:.0f} KB")
    transform(bodies[0], ".jpg", OPTIONS)  # Pillow loaded before the clock starts
    rounds = [cpu_ms(bodies) for _ in range(args.rounds)]
    shown = ", ".join(f"{r:.2f}" for r in rounds)
    median = statistics.median(rounds)
    print(f"CPU ms per image: {median:.2f} median ({shown}); {1000 / median:.0f} images per CPU second")


if __name__ == "__main__":
    main()
