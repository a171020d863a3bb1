"""The recap's one chart, P&L by week, as inline SVG.

Decision: an inline SVG written here, not plotly. The recap page is then self-contained and readable
offline (no CDN script, and no ~4 MB inlined plotly.js for six bars), and the same figures always
give the same bytes (fixed number formatting, no clock, no random ids). The caller chooses the unit:
dollars on premium pages, % of the account on basic pages; free pages get no chart.
"""

from __future__ import annotations

from typing import Literal

from markupsafe import Markup, escape

GREEN, RED, GREY, INK = "#1e9e5a", "#d0433a", "#c9ced6", "#2a3f5f"
WIDTH, HEIGHT = 720, 240
TOP, BOTTOM, LEFT, RIGHT = 28, 42, 12, 12  # plot margins (value labels above, week labels below)


def _value(v: float, unit: Literal["$", "%"]) -> str:
    sign = "-" if v < 0 else "+" if v > 0 else ""
    return f"{sign}${abs(v):,.0f}" if unit == "$" else f"{sign}{abs(v):.2f}%"


def week_bars(labels: list[str], values: list[float], *, unit: Literal["$", "%"], title: str,
              ident: str = "recap-weeks") -> Markup:
    """A bar per week (green gain, red loss) around a zero line, each bar labelled with its value."""
    if len(labels) != len(values):
        raise ValueError("week_bars: one value per label")
    n = max(1, len(values))
    hi = max([0.0, *values])
    lo = min([0.0, *values])
    span = (hi - lo) or 1.0
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / n
    bar_w = slot * 0.6

    def y(v: float) -> float:
        return TOP + (hi - v) / span * plot_h

    zero = y(0.0)
    head = (f'<svg id="{escape(ident)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="100%" role="img" aria-label="{escape(title)}" '
            f'style="max-width:{WIDTH}px;font-family:Helvetica,Arial,sans-serif;font-size:12px">')
    parts = [head,
             f"<title>{escape(title)}</title>",
             f'<line x1="{LEFT}" y1="{zero:.1f}" x2="{WIDTH - RIGHT}" y2="{zero:.1f}" stroke="{GREY}"/>']
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + i * slot + (slot - bar_w) / 2
        top, bottom = (y(v), zero) if v >= 0 else (zero, y(v))
        color = GREEN if v > 0 else RED if v < 0 else GREY
        cx = x + bar_w / 2
        text_y = top - 5 if v >= 0 else bottom + 14
        parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar_w:.1f}" height="{max(1.0, bottom - top):.1f}" '
                     f'fill="{color}"><title>{escape(label)}: {escape(_value(v, unit))}</title></rect>')
        parts.append(f'<text x="{cx:.1f}" y="{text_y:.1f}" text-anchor="middle" fill="{INK}">'
                     f"{escape(_value(v, unit))}</text>")
        parts.append(f'<text x="{cx:.1f}" y="{HEIGHT - 14}" text-anchor="middle" fill="{INK}">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
