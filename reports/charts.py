"""Plotly figures for the report pages.

Every figure is a pure function of :class:`reports.model.ReportData` pieces, written as a plain
plotly figure dict (``{"data": [...], "layout": {...}}``, valid for ``go.Figure``) and turned into
an HTML fragment by ``plotly.io.to_html`` with a FIXED ``div_id`` and without plotly.js
(``include_plotlyjs=False``); the page loads plotly.js exactly once (:func:`plotly_script`).
Nothing here reads a clock or a random source, and no plotly template is applied (the styling
is spelled out in the layout), so the same data always gives byte-identical HTML. Plain dicts
are also ~50x faster than building ``graph_objects`` (which validate every property).

**Self-contained pages (decision).** A report page with charts carries plotly.js INLINE (the
library bundled with the installed ``plotly`` package, :func:`plotly_js`; plotly.js 3.x, ~4.8 MB),
not a CDN tag and not one shared ``plotly.min.js`` beside the reports. The page is the unit we
hand out: the Discord post attaches the HTML file alone, a subscriber saves or forwards it, opens
it offline or behind a firewall that blocks cdn.plot.ly, and the charts must still draw. A shared
local asset breaks all of these (the attachment would arrive without its script), and a CDN tag
gives blank charts offline and a third-party request per view. The price is size: a charted page
is 4.8-5.0 MB instead of 13-160 KB (the demo day's pages), under Discord's 10 MB attachment limit
with room to spare (README, "Report pages are self-contained"); free pages have no chart and no
plotly.js, and the page's Content-Security-Policy (:func:`content_security_policy`) lets the
browser load nothing from outside the file.
``reports.plotlyjs: cdn`` remains for an operator who serves the pages from a web server and
prefers small files, and is never the default. Pages reference nothing outside the file (no
script, style, font, image or link URL); ``tests/browser/`` checks this for every kind and tier
and opens the pages in headless Chromium.

Tier rules live in the callers (:mod:`reports.render`): only premium pages get the GEX, P&L
and strategy charts; basic pages get the price paths with entries/exits marked, whose hover
text then carries the contract and fill price but no size (``show_size=False``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from typing import Any, Literal

import plotly.io as pio
from plotly.offline import get_plotlyjs, get_plotlyjs_version

from reports.model import Levels, StrategyStats, SymbolMarket, Trade
from reports.values import ny_label

Fig = dict[str, Any]
HEIGHT = 360
MIN_POINTS = 2      # a line of fewer points is not drawn (the page says "not enough data yet")
CONFIG = {"displaylogo": False, "responsive": True}
GREEN, RED, GREY, BLUE, ORANGE, PURPLE = "#1e9e5a", "#d0433a", "#7f8c8d", "#2c6fbb", "#e08a1e", "#8e44ad"
GRID, INK = "#e6e9ee", "#2a3f5f"


def div_id(prefix: str, name: str = "") -> str:
    """A fixed, HTML-safe element id, e.g. ``gex-SPY``."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return f"{prefix}-{safe}" if safe else prefix


def to_fragment(fig: Fig, ident: str) -> str:
    """HTML fragment of a figure dict: fixed div id, no plotly.js, no validation pass."""
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=ident, config=CONFIG,
                       default_width="100%", default_height=f"{HEIGHT}px", validate=False)


PlotlyJs = Literal["inline", "cdn"]


def plotly_js() -> str:
    """The plotly.js library shipped with the installed ``plotly`` package (what ``inline`` embeds)."""
    return get_plotlyjs()


@lru_cache(maxsize=1)
def _cdn_tag() -> str:
    js = plotly_js()
    sri = "sha256-" + base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode("ascii")
    return (f'<script charset="utf-8" src="https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js" '
            f'integrity="{sri}" crossorigin="anonymous"></script>')


def plotly_script(mode: PlotlyJs = "inline") -> str:
    """The one ``<script>`` that loads plotly.js on a page: the library inlined (default), or a CDN tag."""
    if mode == "inline":
        return f'<script type="text/javascript">{plotly_js()}</script>'
    if mode == "cdn":
        return _cdn_tag()
    raise ValueError(f"plotly.js mode must be inline or cdn, not {mode!r}")


def content_security_policy(plotly_cdn: bool = False) -> str:
    """The page's CSP: nothing may load from outside the file (inline scripts and styles, ``data:`` and
    ``blob:`` images for plotly's PNG download, ``data:`` fonts); a page that loads plotly.js from the
    CDN (the opt-in ``cdn`` mode) may also load from that one origin."""
    scripts = "'unsafe-inline'" + (" https://cdn.plot.ly" if plotly_cdn else "")
    return (f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data: blob:; "
            "font-src data:; base-uri 'none'; form-action 'none'")


def _axis(**kw: Any) -> dict[str, Any]:
    return {"gridcolor": GRID, "linecolor": GRID, "zerolinecolor": GRID, "automargin": True, **kw}


def layout(title: str, *, xaxis: dict[str, Any] | None = None, yaxis: dict[str, Any] | None = None,
           shapes: list[dict[str, Any]] | None = None, annotations: list[dict[str, Any]] | None = None,
           **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "font": {"size": 15}}, "height": HEIGHT,
        "margin": {"l": 55, "r": 20, "t": 45, "b": 40}, "hovermode": "closest",
        "legend": {"orientation": "h", "y": -0.18}, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "font": {"family": "Helvetica, Arial, sans-serif", "size": 12, "color": INK},
        "xaxis": _axis(**(xaxis or {})), "yaxis": _axis(**(yaxis or {})),
    }
    if shapes:
        out["shapes"] = shapes
    if annotations:
        out["annotations"] = annotations
    out.update(kw)
    return out


def vline(x: float, label: str, color: str, dash: str, top: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    shape = {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
             "line": {"color": color, "dash": dash, "width": 1.5}}
    note = {"x": x, "xref": "x", "yref": "paper", "y": 1 if top else 0, "yanchor": "bottom" if top else "top",
            "text": label, "showarrow": False, "font": {"color": color, "size": 11}}
    return shape, note


def hline(y: float, label: str, color: str = GREY) -> tuple[dict[str, Any], dict[str, Any]]:
    shape = {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": y, "y1": y,
             "line": {"color": color, "dash": "dot", "width": 1}}
    note = {"x": 0, "xref": "paper", "xanchor": "left", "y": y, "yref": "y", "yanchor": "top", "text": label,
            "showarrow": False, "font": {"color": color, "size": 11}}
    return shape, note


def _price_at(times: list[str], prices: list[float], label: str) -> float | None:
    """The price of the last minute at or before ``label`` (labels sort as times)."""
    best = None
    for t, p in zip(times, prices, strict=True):
        if t <= label:
            best = p
        else:
            break
    return best if best is not None else (prices[0] if prices else None)


def price_fig(m: SymbolMarket, trades: list[Trade], *, show_size: bool) -> Fig:
    """Price path of one symbol with trade entries (triangles) and exits (crosses) marked."""
    data: list[dict[str, Any]] = [{
        "type": "scatter", "mode": "lines", "name": m.symbol, "x": m.times, "y": m.prices,
        "line": {"color": BLUE, "width": 1.6}, "hovertemplate": "%{x|%H:%M} %{y:.2f}<extra></extra>"}]
    ex: list[str] = []
    ey: list[float] = []
    et: list[str] = []
    ec: list[str] = []
    xx: list[str] = []
    xy: list[float] = []
    xt: list[str] = []
    for t in trades:
        if t.symbol != m.symbol or not m.times:
            continue
        if t.entry_ts is not None:
            lab = ny_label(t.entry_ts, "%Y-%m-%d %H:%M")
            y = _price_at(m.times, m.prices, lab)
            if y is not None and m.times[0] <= lab:
                ex.append(lab)
                ey.append(y)
                size = f" x{t.qty}" if show_size else ""
                et.append(f"Entry {t.contract}{size} @ {t.entry_price:.2f}")
                ec.append(GREEN if t.right == "C" else RED)
        for x in t.exits:
            lab = ny_label(x.ts, "%Y-%m-%d %H:%M")
            y = _price_at(m.times, m.prices, lab)
            if y is not None and m.times[0] <= lab:
                xx.append(lab)
                xy.append(y)
                qty = f" x{x.qty}" if show_size else ""
                xt.append(f"{'Exit' if x.kind == 'closed' else 'Scale-out'} {t.contract}{qty} @ {x.price:.2f}")
    if ex:
        data.append({"type": "scatter", "mode": "markers", "name": "entries", "x": ex, "y": ey, "text": et,
                     "marker": {"symbol": "triangle-up", "size": 12, "color": ec,
                                "line": {"width": 1, "color": "#333333"}},
                     "hovertemplate": "%{text}<extra></extra>"})
    if xx:
        data.append({"type": "scatter", "mode": "markers", "name": "exits", "x": xx, "y": xy, "text": xt,
                     "marker": {"symbol": "x", "size": 10, "color": ORANGE},
                     "hovertemplate": "%{text}<extra></extra>"})
    shapes, notes = [], []
    if m.prev_close:
        sh, an = hline(m.prev_close, "prev close")
        shapes.append(sh)
        notes.append(an)
    return {"data": data, "layout": layout(f"{m.symbol} price (New York time)", xaxis={"tickformat": "%H:%M"},
                                           yaxis={"title": {"text": "price"}}, shapes=shapes, annotations=notes)}


def gex_fig(lv: Levels) -> Fig:
    """GEX by strike with the call wall, put wall, zero-gamma flip, max pain and spot marked."""
    strikes = [k for k, _v in lv.gex_by_strike]
    values = [round(v / 1e6, 3) for _k, v in lv.gex_by_strike]  # $ millions per 1% move
    data = [{"type": "bar", "name": "GEX", "x": strikes, "y": values,
             "marker": {"color": [GREEN if v >= 0 else RED for v in values]},
             "hovertemplate": "strike %{x}<br>%{y:.1f} M<extra></extra>"}]
    marks = [(lv.call_wall, "call wall", GREEN, "dash"), (lv.put_wall, "put wall", RED, "dash"),
             (lv.zero_gamma, "flip", PURPLE, "solid"), (lv.max_pain, "max pain", ORANGE, "dot"),
             (lv.spot, "spot", GREY, "dot")]
    shapes, notes, off = [], [], []
    lo, hi = (min(strikes), max(strikes)) if strikes else (None, None)
    for i, (x, label, color, dash) in enumerate(marks):
        if x is None:
            continue
        if lo is not None and hi is not None and not lo <= x <= hi:  # would stretch the axis: named instead
            off.append(f"{label} {x:g}")
            continue
        sh, an = vline(x, label, color, dash, top=i % 2 == 0)
        shapes.append(sh)
        notes.append(an)
    beyond = f" · off chart: {', '.join(off)}" if off else ""
    return {"data": data, "layout": layout(
        f"{lv.symbol} gamma exposure by strike (as of {lv.asof[11:]}){beyond}", xaxis={"title": {"text": "strike"}},
        yaxis={"title": {"text": "GEX ($M per 1% move)"}}, shapes=shapes, annotations=notes, bargap=0.15,
        showlegend=False)}


def session_anchored(times: list[str], values: list[float], start: str) -> tuple[list[str], list[float]]:
    """The series with its zero point moved to ``start`` (the session's open) when it lies before
    it and nothing changed before ``start``; otherwise (P&L before the open) as it is, from its first
    point at zero. Labels are NY ``YYYY-MM-DD HH:MM:SS`` (they sort as times)."""
    if not start or len(times) < 2 or times[0] >= start or values[0] != 0.0 or times[1] < start:
        return list(times), list(values)
    return [start, *times[1:]], list(values)


def pnl_cumulative_fig(times: list[str], values: list[float], start: str = "", end: str = "") -> Fig:
    """Step line of the cumulative realized P&L; the x axis runs from the session's open (``start``)
    to the report's time (``end``) when given."""
    times, values = session_anchored(times, values, start)
    data = [{"type": "scatter", "mode": "lines+markers", "name": "realized P&L", "x": times, "y": values,
             "line": {"shape": "hv", "color": BLUE}, "hovertemplate": "%{x|%H:%M:%S} $%{y:,.2f}<extra></extra>"}]
    sh, _an = hline(0.0, "")
    sh["line"] = {"color": GREY, "width": 1}
    xaxis: dict[str, Any] = {"tickformat": "%H:%M"}
    if times and start:
        xaxis["range"] = [times[0], max(end, times[-1])]
    return {"data": data, "layout": layout("Cumulative realized P&L", xaxis=xaxis,
                                           yaxis={"title": {"text": "$"}}, shapes=[sh], showlegend=False)}


def pnl_strategy_fig(stats: list[StrategyStats]) -> Fig:
    vals = [s.realized_pnl for s in stats]
    data = [{"type": "bar", "x": [s.strategy for s in stats], "y": vals,
             "marker": {"color": [GREEN if v >= 0 else RED for v in vals]},
             "text": [f"{s.wins}W/{s.losses}L" for s in stats], "textposition": "outside",
             "hovertemplate": "%{x}<br>$%{y:,.2f}<extra></extra>"}]
    return {"data": data, "layout": layout("Realized P&L by strategy", yaxis={"title": {"text": "$"}},
                                           showlegend=False)}


# ------------------------------------------------------------------ HTML fragments (fixed div ids)
def price_figure(m: SymbolMarket, trades: list[Trade], *, show_size: bool) -> str:
    return to_fragment(price_fig(m, trades, show_size=show_size), div_id("price", m.symbol))


def gex_figure(lv: Levels) -> str:
    return to_fragment(gex_fig(lv), div_id("gex", lv.symbol))


def pnl_cumulative_figure(times: list[str], values: list[float], start: str = "", end: str = "") -> str:
    return to_fragment(pnl_cumulative_fig(times, values, start, end), div_id("pnl-cumulative"))


def pnl_strategy_figure(stats: list[StrategyStats]) -> str:
    return to_fragment(pnl_strategy_fig(stats), div_id("pnl-strategy"))
