"""Every page we hand out stands alone: each report kind (pre-market, intraday, close) and the monthly
recap for every tier, and the demo's outbox.html, reference nothing outside their own file (no
script, stylesheet, font, image or link URL, relative or absolute), so they open offline and as a
lone Discord attachment. By default they carry no http(s) URL at all, not even as text. Charted pages
embed plotly.js once (the installed package's copy) and stay under Discord's 10 MB attachment limit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.distribution import render_outbox_html
from core.clock.calendar import NyseCalendar
from core.ledger.store import LedgerStore
from reports.charts import plotly_js
from reports.recap import build_recap, month_trades
from reports.recap_render import render_recap_all
from reports.render import TIERS
from tests.browser._refs import external_refs, url_strings
from tests.recap._month import ACCOUNT_VALUE, write_month
from tests.reports._day import build_scheduled_day

OUTBOX = Path(__file__).with_name("outbox.jsonl")
DISCORD_LIMIT = 10 * 1024 * 1024


def _recap_pages(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/ledger.sqlite"
    write_month(url)
    store = LedgerStore(url, "demo").open()
    try:
        assert store.engine is not None
        with store.engine.connect() as conn:
            trades = month_trades(conn, date(2026, 11, 1))
    finally:
        store.close()
    data = build_recap(trades, date(2026, 11, 1), ACCOUNT_VALUE, NyseCalendar(), datetime(2026, 12, 1, 21, 10,
                                                                                            tzinfo=UTC))
    return {f"recap-{tier}": html for tier, html in render_recap_all(data).items()}


async def test_every_page_is_self_contained(day, make_service, tmp_path: Path):
    built = await build_scheduled_day(day, make_service())  # default settings: plotly.js inline
    pages = {f"{kind}-{tier}": Path(ev.paths[tier]).read_text(encoding="utf-8")
             for kind, ev in built.items() for tier in TIERS}
    assert len(pages) == 9
    pages |= _recap_pages(tmp_path)
    pages["outbox"] = Path(render_outbox_html(OUTBOX, tmp_path / "outbox.html")).read_text(encoding="utf-8")

    lib = plotly_js()
    for name, html in pages.items():
        assert external_refs(html) == [], name
        assert url_strings(html) == [], name
        charted = 'class="plotly-graph-div"' in html
        assert html.count(lib) == (1 if charted else 0), name  # plotly.js inline exactly when there are charts
        assert len(html.encode("utf-8")) < DISCORD_LIMIT, name
    charted = sorted(n for n, h in pages.items() if 'class="plotly-graph-div"' in h)
    assert charted == sorted(f"{k}-{t}" for k in ("premarket", "intraday", "close") for t in ("premium", "basic"))


async def test_the_cdn_option_is_an_external_reference(day, make_service):
    """The opt-in CDN mode is exactly what the check above would refuse (the check is not blind)."""
    built = await build_scheduled_day(day, make_service(plotlyjs="cdn"))
    html = Path(built["close"].paths["premium"]).read_text(encoding="utf-8")
    assert any("cdn.plot.ly" in r for r in external_refs(html))
    assert any("cdn.plot.ly" in u for u in url_strings(html))
    assert not external_refs(Path(built["close"].paths["free"]).read_text(encoding="utf-8"))


@pytest.mark.parametrize("snippet", [
    '<script src="https://cdn.plot.ly/plotly-3.1.1.min.js"></script>',
    '<script src="plotly.min.js"></script>',  # relative: missing beside a lone attachment
    '<link rel="stylesheet" href="//fonts.googleapis.com/css?family=Inter">',
    '<link rel="icon" href="favicon.ico">',
    "<style>@import 'theme.css';</style>",
    "<style>@font-face{font-family:X;src:url(https://fonts.example.com/x.woff2)}</style>",
    '<div style="background:url(\'/img/bg.png\')"></div>',
    '<img srcset="data:image/png;base64,AA 1x, https://img.example.com/a.png 2x">',
    '<a href="https://quanticity.example.com/reports">all reports</a>',
    '<meta http-equiv="refresh" content="0; url=https://example.com/">',
    "<script>fetch('https://api.example.com/x')</script>",
    "<script>import('./charts.mjs')</script>",
    '<iframe src="other.html"></iframe>',
])
def test_the_scanner_finds_each_kind_of_reference(snippet: str):
    assert external_refs(f"<html><head></head><body>{snippet}</body></html>"), snippet


def test_the_scanner_allows_what_stays_inside_the_file():
    page = ('<html><head><style>.a{background:url("data:image/png;base64,AAAA")}</style></head><body>'
            '<a href="#trades">trades</a><img src="data:image/svg+xml,%3Csvg%3E%3C/svg%3E">'
            '<svg xmlns="http://www.w3.org/2000/svg"><rect clip-path="url(#c)"/></svg>'
            "<p>Report: https://reports.example.com/2026-12-03-close-premium.html</p>"
            f"<script>{plotly_js()}</script>"
            '<script>if (document.getElementById("x")) {Plotly.newPlot("x", [], {}, {})}</script></body></html>')
    assert external_refs(page) == []
    # visible text is not a reference, but the default pages carry no URL even as text
    assert url_strings(page) == ["https://reports.example.com/2026-12-03-close-premium.html"]
