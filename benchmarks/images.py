"""Images/s of the image stage: the full run (download + decode + resize + encode) against the number of
image workers, next to the ceiling (a plain loop over the same files, no downloading), and Pillow
against pyvips per core on the same work. Needs Pillow (and pyvips-binary + pyvips for that column).

The JPEGs (photo-like noise and gradients, 1200×900 to 2400×1800, a few hundred KB to a few MB) are
made once and cached in ~/.cache/downloader-bench/images; nginx serves them on loopback (nginx_origin.py),
so the origin takes next to no CPU from the two sides being compared.
Run: python benchmarks/images.py [--count 200] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from io import BytesIO
from pathlib import Path

from nginx_origin import serving
from PIL import Image

import downloader
from downloader.spec import Images
from downloader.stages.images import transform

PORT = 18092
CACHE = Path.home() / ".cache" / "downloader-bench" / "images"
SIZES = [(1200, 900), (1600, 1200), (2000, 1500), (2400, 1800), (1024, 768)]
OPTIONS = Images(image_size=256, resize_mode="border", encode_format="jpg")


def photos(count: int = 20) -> list[Path]:
    """``count`` cached JPEGs, made on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = [CACHE / f"photo-{i:02d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        if not path.exists():
            w, h = SIZES[i % len(SIZES)]
            bands = [Image.effect_noise((w, h), 30 + i), Image.linear_gradient("L").resize((w, h))]
            bands.append(Image.radial_gradient("L").resize((w, h)))
            Image.merge("RGB", bands).save(path, quality=90)
    return paths


def pillow_plain(body: bytes) -> bytes:
    """Decode whole, Lanczos to fit 256, pad to 256×256, encode: the textbook loop."""
    img = Image.open(BytesIO(body)).convert("RGB")
    img.thumbnail((256, 256), Image.Resampling.LANCZOS, reducing_gap=None)
    back = Image.new("RGB", (256, 256), (255, 255, 255))
    back.paste(img, ((256 - img.width) // 2, (256 - img.height) // 2))
    buf = BytesIO()
    back.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def stage(body: bytes) -> bytes:
    """The stage's own work (draft, reduce + Lanczos, pad, encode)."""
    out = transform(body, ".jpg", OPTIONS).body
    assert out is not None
    return out


def vips(body: bytes) -> bytes:
    """libvips: shrink-on-load thumbnail, centred embed on white, encode."""
    import pyvips  # type: ignore[import-not-found]

    img = pyvips.Image.thumbnail_buffer(body, 256, height=256)
    img = img.gravity("centre", 256, 256, extend="background", background=[255, 255, 255])
    return bytes(img.jpegsave_buffer(Q=95))


def per_core(work: Callable[[bytes], bytes], bodies: list[bytes], seconds: float = 4.0) -> float:
    """Images/s of ``work`` in this one process."""
    work(bodies[0])
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        work(bodies[done % len(bodies)])
        done += 1
    return done / (time.perf_counter() - started)


def ceiling(bodies: list[bytes], workers: int, count: int) -> float:
    """Images/s of the stage's work over ``count`` images on ``workers`` processes, no downloading."""
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(stage, bodies[:workers]))
        started = time.perf_counter()
        list(pool.map(stage, [bodies[i % len(bodies)] for i in range(count)], chunksize=4))
        return count / (time.perf_counter() - started)


def full_run(base: str, names: list[str], workers: int, count: int, executor: str = "process") -> float:
    urls = [f"{base}/{names[i % len(names)]}?n={i}" for i in range(count)]
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        stats = downloader.download(
            urls,
            out,
            image_workers=workers,
            image_executor=executor,
            image_size=256,
            resize_mode="border",
            encode_format="jpg",
        )
        took = time.perf_counter() - started
    assert stats.ok == count, stats
    return count / took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", default=",".join(str(n) for n in range(1, (os.cpu_count() or 1) + 1)))
    args = parser.parse_args()
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # per core: libvips would otherwise use every core
    paths = photos()
    bodies = [p.read_bytes() for p in paths]
    mean_kb = sum(map(len, bodies)) / len(bodies) / 1000
    print(f"{len(bodies)} JPEGs, {mean_kb:.0f} KB on average; --image-size 256 --resize-mode border -e jpg\n")
    print("per core (images/s):")
    contenders = (("pillow, plain Lanczos", pillow_plain), ("pillow, the stage", stage), ("pyvips", vips))
    for name, work in contenders:
        print(f"  {name:24} {per_core(work, bodies):7.1f}")
    files = {p.name: body for p, body in zip(paths, bodies, strict=True)}
    with serving(b"", "", "image/jpeg", PORT, files=files):
        base = f"http://127.0.0.1:{PORT}"
        print("\nworkers  ceiling  full run  ratio")
        for workers in [int(w) for w in args.workers.split(",")]:
            top = ceiling(bodies, workers, args.count)
            run = full_run(base, list(files), workers, args.count)
            print(f"{workers:7}  {top:7.1f}  {run:8.1f}  {run / top:5.2f}")
        print("\nexecutors, 2 workers (full run, images/s):")
        for executor in ("process", "thread", "inline"):
            print(f"  {executor:8} {full_run(base, list(files), 2, args.count, executor):7.1f}")


if __name__ == "__main__":
    main()
