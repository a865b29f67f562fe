"""The image stage: decode, verify, filter, resize and re-encode each body, off the event loop.

Decoding and resizing are CPU work, so ``ImageStage`` hands each image to a pool: worker processes by
default (every core decodes while the loop keeps downloading), a thread pool, or the loop itself
(``inline``, to show what blocking it costs). At most ``2 × workers`` images are queued or in work at
once; a download that completes beyond that waits for a place, holding its slot, so when the pool is
behind, downloads slow down rather than memory growing. The pool starts with the run, from a thread, so
the loop never waits for a worker to start.

Pillow is imported here only, and only when the stage runs (``_pil``): a run without image options never
loads it. Downscaling lets the JPEG decoder reduce by a power of two first (``draft``, DCT scaling, never
below twice the target), then a box ``reduce`` by a whole factor leaves at least 2× for bicubic to finish
(``reducing_gap``): Pillow's own ``thumbnail`` recipe. Lanczos over the whole factor, as before, was half
the stage's CPU; against it, bicubic scores a PSNR of 49 dB on photos, and on fine stripes, where its
weaker stopband shows, 31 dB (img2dataset's area filter: 15 dB; docs/performance.md, "Images per core").
Upscaling uses bicubic too. EXIF orientation is applied before anything else; transparency goes onto
white for jpg; the re-encoded file carries no metadata.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

from ..errors import (
    AspectRatio,
    CorruptImage,
    DownloadError,
    ImageTooLarge,
    ImageTooSmall,
    TooManyPixels,
    UsageError,
)
from ..spec import Images
from . import Sample
from .geometry import Geometry, final_size, plan

if TYPE_CHECKING:
    from PIL.Image import Image

INSTALL_HINT = "image options need Pillow: pip install 'downloader[images]'"
SAVE_AS = {"jpg": ("JPEG", ".jpg"), "png": ("PNG", ".png"), "webp": ("WEBP", ".webp")}
FORMAT_NAMES = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "MPO": "jpg"}
"""Pillow's format names as ``--encode-format`` spells them (an MPO is a JPEG with more frames)."""
REDUCING_GAP = 2.0
"""What a box ``reduce`` leaves for bicubic to do: at least 2× (1.5 saved 0.3 ms per web image, but
the box then aliased fine stripes down to 24 dB)."""
DOWNSCALE_FILTERS = {"linear": "BILINEAR", "cubic": "BICUBIC", "lanczos": "LANCZOS"}
"""``--downscale-interpolation`` → Pillow's filter. Pillow widens each one by the scale when shrinking, so
all three are antialiased; bilinear after the decoder's 2× reduction is within 0.4 dB of bicubic on the
encoded output for a quarter less of the stage's time, but lets stripes near the new resolution alias a
little more (docs/performance.md, "The resize filter")."""
TRANSPOSED = (5, 6, 7, 8)
"""EXIF orientations that swap width and height."""


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def available() -> bool:
    """Is Pillow installed? (Found without importing it.)"""
    import importlib.util

    return importlib.util.find_spec("PIL") is not None


_QUIET: list[Any] = []
"""The warnings filter ``_pil`` added, to add it again only where it is missing (adding one costs more
than the check, and makes every later warning look its filters up afresh)."""


def _pil() -> Any:
    """Pillow, imported on first use; its warnings about odd files are the file's business, not ours.
    The filter is checked on every call: ``warnings.catch_warnings`` (tests, callers) can drop it."""
    import warnings

    from PIL import Image, ImageFile

    if not _QUIET or _QUIET[0] not in warnings.filters:
        warnings.filterwarnings("ignore", module=r"(PIL|downloader\.stages\.images)(\.|$)")
        _QUIET[:] = warnings.filters[:1]
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    return Image


def _warm() -> None:
    _pil()


def _worker_init() -> None:
    """A worker process: Ctrl-C is the parent's to handle; our own ``--max-pixels`` replaces Pillow's."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _pil().MAX_IMAGE_PIXELS = None


@dataclass(slots=True)
class Outcome:
    """What a worker sends back: the new body (None: keep the original), its type, and the findings."""

    body: bytes | None
    kind: str | None
    meta: dict[str, object] = field(default_factory=dict)


def transform(body: bytes, kind: str | None, opts: Images) -> Outcome:
    """The whole stage for one body, in whichever worker runs it. Any failure of the library on these
    bytes is the image's (``corrupt_image``), never a crash of the run."""
    pil = _pil()
    try:
        img = pil.open(BytesIO(body))
        return _transform(img, body, kind, opts)
    except DownloadError:
        raise
    except pil.DecompressionBombError as exc:  # Pillow's own limit, in a process that keeps it
        raise TooManyPixels(f"{exc} Not decoded.") from None
    except pil.UnidentifiedImageError:
        raise CorruptImage("not an image this library can read (unknown or damaged header)") from None
    except Exception as exc:
        raise CorruptImage(f"the image does not decode: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _orientation(img: Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: the pixels may still be fine
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _transform(img: Image, body: bytes, kind: str | None, opts: Images) -> Outcome:
    raw_w, raw_h = img.size
    _refuse_bombs(raw_w, raw_h, opts.max_pixels)
    turn = _orientation(img)
    w, h = (raw_h, raw_w) if turn in TRANSPOSED else (raw_w, raw_h)
    _filter(w, h, opts)
    source = FORMAT_NAMES.get(img.format or "", (img.format or "").lower())
    g = plan(w, h, opts.image_size, opts.resize_mode, opts.resize_only_if_bigger)
    target = opts.encode_format or (source if source in SAVE_AS else "png")
    same = not opts.encode_format or (opts.skip_reencode and source == target and turn == 1)
    if not g.changes and same:  # nothing to change: the original bytes stay, EXIF and all
        if opts.verify == "decode":
            img.load()
        return Outcome(None, kind, {"width": w, "height": h, "format": source})
    out_w, out_h = final_size(w, h, g)
    encoded = _render(img, g, turn, target, opts)
    meta: dict[str, object] = {"width": out_w, "height": out_h, "format": target}
    if (out_w, out_h) != (w, h):
        meta |= {"original_width": w, "original_height": h}
    return Outcome(encoded, SAVE_AS[target][1], meta)


def _refuse_bombs(w: int, h: int, limit: int) -> None:
    if limit and w * h > limit:
        raise TooManyPixels(f"{w}×{h} is {w * h:,} pixels, over --max-pixels {limit:,}; not decoded")


def _filter(w: int, h: int, opts: Images) -> None:
    """The size filters, each failure naming the measured value."""
    smallest = min(w, h)
    area = w * h
    ratio = max(w, h) / max(1, min(w, h))
    if opts.min_image_size and smallest < opts.min_image_size:
        least = opts.min_image_size
        raise ImageTooSmall(f"{w}×{h}: shorter side {smallest} is under --min-image-size {least}")
    if opts.max_aspect_ratio and ratio > opts.max_aspect_ratio:
        limit = opts.max_aspect_ratio
        raise AspectRatio(f"{w}×{h}: aspect ratio {ratio:.2f} is over --max-aspect-ratio {limit:g}")
    if opts.max_image_area and area > opts.max_image_area:
        raise ImageTooLarge(f"{w}×{h} is {area:,} pixels, over --max-image-area {opts.max_image_area:,}")


def _render(img: Image, g: Geometry, turn: int, target: str, opts: Images) -> bytes:
    """Decode (reduced by the JPEG decoder when shrinking), orient, resize, crop or pad, encode."""
    from PIL import ImageOps

    if g.scaled is not None and img.format in ("JPEG", "MPO"):
        want = (g.scaled[1], g.scaled[0]) if turn in TRANSPOSED else g.scaled
        img.draft(None, (want[0] * 2, want[1] * 2))
    img.load()
    if turn != 1:
        img = ImageOps.exif_transpose(img)
    img = _working_mode(img)
    if g.scaled is not None:
        img = _resize(img, g.scaled, opts.downscale_interpolation)
    if g.crop is not None:
        img = img.crop(g.crop)
    if g.canvas is not None:
        img = _pad(img, g.canvas)
    return _encode(img, target, opts.encode_quality)


def _resize(img: Image, size: tuple[int, int], how: str) -> Image:
    """Shrinking: ``how`` (``--downscale-interpolation``); when by 4× or more, a box ``reduce`` by a whole
    factor first, leaving at least 2× for the filter (the box alone aliases; a filter alone over a large
    factor reads many pixels each). Enlarging: bicubic, whatever ``how`` says (it does not ring)."""
    filters = _pil().Resampling
    shrinking = size[0] < img.width or size[1] < img.height
    chosen = getattr(filters, DOWNSCALE_FILTERS[how]) if shrinking else filters.BICUBIC
    return img.resize(size, chosen, reducing_gap=REDUCING_GAP)


def _working_mode(img: Image) -> Image:
    """One of L, LA, RGB, RGBA: what resampling and every encoder take."""
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in ("1",):
        return img.convert("L")
    if mode.startswith("I") or mode == "F":  # 16-bit or float greyscale: scale down to 8 bits
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode in ("PA", "RGBa", "La"):
        return img.convert("RGBA")
    return img.convert("RGB")


def _pad(img: Image, canvas: tuple[int, int]) -> Image:
    pil = _pil()
    fill = {"L": 255, "LA": (255, 255), "RGB": (255, 255, 255), "RGBA": (255, 255, 255, 255)}[img.mode]
    back: Image = pil.new(img.mode, canvas, fill)
    back.paste(img, ((canvas[0] - img.width) // 2, (canvas[1] - img.height) // 2))
    return back


def _encode(img: Image, target: str, quality: int) -> bytes:
    """``img`` as ``target``; transparency goes onto white for jpg, which has none."""
    pil = _pil()
    if target == "jpg" and img.mode in ("LA", "RGBA"):
        back = pil.new(img.mode[:-1] or "L", img.size, 255 if img.mode == "LA" else (255, 255, 255))
        back.paste(img, mask=img.getchannel("A"))
        img = back
    elif target == "webp" and img.mode in ("L", "LA"):
        img = img.convert("RGBA" if img.mode == "LA" else "RGB")
    buf = BytesIO()
    options: dict[str, object] = {"quality": quality} if target in ("jpg", "webp") else {}
    img.save(buf, format=SAVE_AS[target][0], **options)
    return buf.getvalue()


def _applied(sample: Sample, out: Outcome) -> Sample:
    return Sample(sample.body if out.body is None else out.body, out.kind, out.meta)


class ImageStage:
    """The stage for a run with image options: ``transform`` on a pool of ``image_workers``, at most
    ``queue`` images waiting for it or in it. ``close`` ends the pool (``async with`` does it too)."""

    def __init__(self, opts: Images) -> None:
        if not available():
            raise UsageError(INSTALL_HINT)
        self.opts = opts
        self.workers = opts.image_workers or usable_cpus()
        self.queue = 2 * self.workers
        self.executor = opts.image_executor
        self._pool: Executor | None = None
        self._lock = threading.Lock()
        self._sync_slots = threading.BoundedSemaphore(self.queue)
        self._async_slots: asyncio.Semaphore | None = None
        if self.executor != "process":
            _pil()  # the warnings filter for this process

    def _executor(self) -> Executor | None:
        """The pool, started on first use; None for ``inline``."""
        if self.executor == "inline":
            return None
        with self._lock:
            if self._pool is None:
                self._pool = self._start()
            return self._pool

    def _start(self) -> Executor:
        if self.executor == "thread":
            return ThreadPoolExecutor(self.workers, thread_name_prefix="downloader-image")
        import multiprocessing

        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_worker_init)

    def start(self) -> None:
        """Start every worker now (blocking: call it from a thread): each has Pillow loaded when the first
        image arrives."""
        pool = self._executor()
        if pool is not None:
            for future in [pool.submit(_warm) for _ in range(self.workers)]:
                future.result()

    def process(self, sample: Sample) -> Sample:
        """From a worker thread (the ``threads`` backend): wait for a place, then for the pool."""
        pool = self._executor()
        if pool is None:
            return _applied(sample, transform(sample.body, sample.kind, self.opts))
        with self._sync_slots:
            future = pool.submit(transform, sample.body, sample.kind, self.opts)
            return _applied(sample, self._result(pool, future.result))

    async def aprocess(self, sample: Sample) -> Sample:
        """From the loop: wait for a place, then await the pool (``inline``: decode right here)."""
        pool = self._executor()
        if pool is None:
            return _applied(sample, transform(sample.body, sample.kind, self.opts))
        if self._async_slots is None:
            self._async_slots = asyncio.Semaphore(self.queue)
        async with self._async_slots:
            loop = asyncio.get_running_loop()
            waiting = loop.run_in_executor(pool, transform, sample.body, sample.kind, self.opts)
            try:
                return _applied(sample, await waiting)
            except BrokenProcessPool:
                self._replace(pool)
                raise CorruptImage("the image worker died decoding it (a crash or out of memory)") from None

    def _result(self, pool: Executor, result: Callable[[], Outcome]) -> Outcome:
        try:
            outcome: Outcome = result()
        except BrokenProcessPool:
            self._replace(pool)
            raise CorruptImage("the image worker died decoding it (a crash or out of memory)") from None
        return outcome

    def _replace(self, broken: Executor) -> None:
        """A worker died: the pool is unusable, so the next image starts a new one."""
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool = self._pool
            self._pool = None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def thumbnail(body: bytes, box: int, quality: int = 70) -> bytes:
    """A small JPEG of an image, its longer side at most ``box``: a report's contact sheet shows many, so
    each is decoded at a reduced scale first (``draft``). Raises whatever Pillow raises on a bad body."""
    with _pil().open(BytesIO(body)) as img:
        img.draft("RGB", (box, box))
        small = _working_mode(img)
        small.thumbnail((box, box))
        return _encode(small, "jpg", quality)
