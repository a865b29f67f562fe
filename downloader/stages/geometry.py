"""Where each resize mode puts an image, as plain arithmetic (no image library), so every mode's exact
output size is decided, and tested, in one place.

The modes follow img2dataset's: ``keep_ratio`` makes the shorter side N, ``keep_ratio_largest`` the
longer; ``center_crop`` makes the shorter side N and keeps the centred N×N; ``border`` makes the longer
side N and pads to N×N. With ``only_if_bigger`` an image whose reference side (the one the mode sets
to N: the shorter for ``keep_ratio`` and ``center_crop``, the longer for ``keep_ratio_largest`` and
``border``) is already within N is left as it is, neither cropped nor padded, as img2dataset leaves it;
a larger one gets the mode's full treatment (scaled, then cropped or padded to N×N).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Geometry:
    """What to do to a ``width``×``height`` image: scale to ``scaled`` (None: keep), then crop to
    ``crop`` (left, top, right, bottom) or paste centred onto a ``canvas`` of that size."""

    scaled: tuple[int, int] | None = None
    crop: tuple[int, int, int, int] | None = None
    canvas: tuple[int, int] | None = None

    @property
    def changes(self) -> bool:
        return self.scaled is not None or self.crop is not None or self.canvas is not None


def _scaled(width: int, height: int, side: int, by_longer: bool) -> tuple[int, int]:
    """The size with the shorter (or longer) side ``side`` and the ratio kept, each side at least 1."""
    ref = max(width, height) if by_longer else min(width, height)
    if width == ref:  # the reference side lands exactly on ``side``; the other is rounded
        return (side, max(1, round(height * side / width)))
    return (max(1, round(width * side / height)), side)


def plan(width: int, height: int, size: int, mode: str, only_if_bigger: bool = False) -> Geometry:
    """The geometry of ``mode`` for a ``width``×``height`` image and target ``size`` (0: no resize)."""
    if size <= 0 or mode == "no":
        return Geometry()
    by_longer = mode in ("keep_ratio_largest", "border")
    if only_if_bigger and (max(width, height) if by_longer else min(width, height)) <= size:
        return Geometry()  # within N already: no scale, and no crop or border either
    w, h = _scaled(width, height, size, by_longer)
    scaled = None if (w, h) == (width, height) else (w, h)
    if mode == "center_crop":
        side = min(size, w, h)
        left = (w - side) // 2
        top = (h - side) // 2
        crop = None if (side, side) == (w, h) else (left, top, left + side, top + side)
        return Geometry(scaled, crop=crop)
    if mode == "border":
        canvas = (max(size, w), max(size, h))
        return Geometry(scaled, canvas=None if canvas == (w, h) else canvas)
    return Geometry(scaled)


def final_size(width: int, height: int, g: Geometry) -> tuple[int, int]:
    """The size after ``g``."""
    if g.crop is not None:
        left, top, right, bottom = g.crop
        return (right - left, bottom - top)
    if g.canvas is not None:
        return g.canvas
    return g.scaled or (width, height)
