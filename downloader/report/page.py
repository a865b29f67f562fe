"""HTML pieces: one self-contained page (styles inline, charts as inline SVG, images as data URIs, no
script), so a report opens anywhere, offline, and can be mailed as one file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:16px 24px;color:#1a202c}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0}
.note{color:#744210;background:#fefcbf;padding:6px 10px;border-radius:4px}
.cards{display:flex;flex-wrap:wrap;gap:8px}.card{border:1px solid #e2e8f0;border-radius:6px;padding:6px 12px}
.card b{display:block;font-size:18px}.card span{color:#4a5568;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{padding:3px 8px;border-bottom:1px solid #edf2f7;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
svg.chart{width:100%;height:auto;max-width:720px}.sheet{display:flex;flex-wrap:wrap;gap:4px}
.sheet img{max-width:128px;max-height:128px;border:1px solid #e2e8f0}.muted{color:#718096}
"""


def document(title: str, sections: Iterable[str]) -> str:
    """The whole page."""
    body = "\n".join(sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head>'
        f"<body>\n<h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def section(heading: str, *parts: str, id_: str = "") -> str:
    anchor = f' id="{escape(id_)}"' if id_ else ""
    return f"<section{anchor}><h2>{escape(heading)}</h2>{''.join(parts)}</section>"


def cards(items: Iterable[tuple[str, str]]) -> str:
    """Big figures with a caption each."""
    inner = "".join(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for k, v in items)
    return f'<div class="cards">{inner}</div>'


def table(
    head: Sequence[str], rows: Iterable[Sequence[object]], numeric: Iterable[int] = (), id_: str = ""
) -> str:
    """A table; the columns in ``numeric`` align right. Every cell is escaped."""
    right = set(numeric)

    def cell(tag: str, i: int, value: object) -> str:
        cls = ' class="n"' if i in right else ""
        return f"<{tag}{cls}>{escape('' if value is None else str(value))}</{tag}>"

    top = "".join(cell("th", i, h) for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    anchor = f' id="{escape(id_)}"' if id_ else ""
    return f"<table{anchor}><thead><tr>{top}</tr></thead><tbody>{body}</tbody></table>"


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def para(text: str, muted: bool = False) -> str:
    return f'<p class="muted">{escape(text)}</p>' if muted else f"<p>{escape(text)}</p>"


def sheet(images: Iterable[tuple[str, str]]) -> str:
    """Thumbnails: (title, data URI) each."""
    inner = "".join(
        f'<img src="{escape(uri)}" title="{escape(name)}" alt="{escape(name)}">' for name, uri in images
    )
    return f'<div class="sheet">{inner}</div>'
