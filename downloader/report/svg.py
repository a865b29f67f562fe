"""Charts as inline SVG, written by hand: a line chart and a bar chart, each a few kilobytes.

Chosen over matplotlib's SVG (15 kB a chart with its glyphs as paths, 0.8 s to import, no hover) and an
embedded interactive library (plotly.js inlined is about 3.5 MB a page, and a vendored script to keep
up to date): the page needs two kinds of chart, a hover readout per point or bar is a ``<title>``
element that every browser shows natively, and the page then has no dependency and no script at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

W = 720
H = 240
LEFT = 64
RIGHT = 16
TOP = 12
BOTTOM = 40
COLOURS = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#4a5568")
Series = tuple[str, Sequence[tuple[float, float]]]


def nice_ticks(hi: float, n: int = 5) -> list[float]:
    """0 and round steps (1, 2 or 5 × 10^k) up to at least ``hi``."""
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    return [i * step for i in range(math.ceil(hi / step - 1e-9) + 1)]


def fmt(value: float) -> str:
    """Short tick text: 1.5k, 2M, 0.25."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _frame(label: str, x_label: str, y_label: str, y_ticks: list[float]) -> list[str]:
    """The svg element, the y grid with its labels, and both axis titles."""
    top = y_ticks[-1] or 1.0
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {W} {H}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
        f"<title>{escape(label)}</title>",
    ]
    for tick in y_ticks:
        y = _y(tick, top)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(tick)}</text>')
    parts.append(
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 4}" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text transform="translate(12 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    return parts


def _y(value: float, top: float) -> float:
    return H - BOTTOM - (H - BOTTOM - TOP) * value / top


def line_chart(
    label: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] = (),
) -> str:
    """Lines over a numeric x axis, one per series, each point with a hover readout; ``x_ticks``: where
    to label the x axis and with what (default: round steps from the smallest x)."""
    xs = [x for _name, pts in series for x, _y_ in pts] or [0.0]
    ys = [y for _name, pts in series for _x, y in pts] or [0.0]
    y_ticks = nice_ticks(max(ys))
    x0 = min(xs)
    top = y_ticks[-1] or 1.0
    ticks = list(x_ticks) or [(x0 + t, fmt(t)) for t in nice_ticks(max(xs) - x0 or 1.0)]
    x_span = max(x for x, _t in ticks) - x0 or 1.0

    def x_of(x: float) -> float:
        return LEFT + (W - LEFT - RIGHT) * (x - x0) / x_span

    parts = _frame(label, x_label, y_label, y_ticks)
    for x, text in ticks:
        under = f'x="{x_of(x):.1f}" y="{H - BOTTOM + 14}" text-anchor="middle"'
        parts.append(f"<text {under}>{escape(text)}</text>")
    for i, (name, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{x_of(x):.1f},{_y(y, top):.1f}" for x, y in pts)
        parts.append(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
        )
        parts.extend(_dots(pts, name, colour, x_of, top=top, labels=dict(ticks)))
        legend = f'x="{W - RIGHT - 4}" y="{TOP + 12 + 14 * i}" text-anchor="end" fill="{colour}"'
        parts.append(f"<text {legend}>{escape(name)}</text>")
    return "".join([*parts, "</svg>"])


def _dots(
    pts: Sequence[tuple[float, float]],
    name: str,
    colour: str,
    x_of: Callable[[float], float],
    *,
    top: float,
    labels: dict[float, str],
) -> list[str]:
    """Small hover targets on the points (only where there are few enough to tell apart), each x read as
    its tick's label when it has one."""
    if len(pts) > 60:
        return []
    return [
        f'<circle cx="{x_of(x):.1f}" cy="{_y(y, top):.1f}" r="3" fill="{colour}">'
        f"<title>{escape(name)}: {fmt(y)} at {escape(labels.get(x, fmt(x)))}</title></circle>"
        for x, y in pts
    ]


def bar_chart(label: str, bars: Sequence[tuple[str, float]], x_label: str, y_label: str) -> str:
    """Vertical bars with their labels under them (every few, when there are many) and hover readouts."""
    y_ticks = nice_ticks(max((v for _k, v in bars), default=0.0))
    top = y_ticks[-1] or 1.0
    slot = (W - LEFT - RIGHT) / max(len(bars), 1)
    every = max(1, math.ceil(len(bars) / 12))
    parts = _frame(label, x_label, y_label, y_ticks)
    for i, (key, value) in enumerate(bars):
        x = LEFT + i * slot
        y = _y(value, top)
        parts.append(
            f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{H - BOTTOM - y:.1f}" fill="{COLOURS[0]}">'
            f"<title>{escape(key)}: {fmt(value)}</title></rect>"
        )
        if i % every == 0:
            under = f'x="{x + slot / 2:.1f}" y="{H - BOTTOM + 14}" text-anchor="middle"'
            parts.append(f"<text {under}>{escape(key)}</text>")
    return "".join([*parts, "</svg>"])
