"""Report wording and layout: counts in words ("1 trade", "2 trades"), approved signals whose entry
order never filled are listed with what became of the order, every table scrolls inside its card,
and the cumulative P&L chart starts at the open."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path

from core.bus.events import ApprovalEvent, OrderEvent, SignalEvent, VerdictEvent
from core.format.numbers import plural
from reports import charts
from reports.charts import plotly_js
from reports.commentary import daily_text, trades_text
from reports.gather import gather
from reports.render import TEMPLATE_DIR, render_all, summary_text, tier_charts
from tests.reports._day import build_scheduled_day

BAD_PLURALS = re.compile(r"\(s\)|\b1 (trades|positions|signals|alerts|sweeps|open positions)\b"
                         r"|>1</b><span>(trades|open positions)\b|\b(0|[2-9]|\d\d+) (trade|position|signal|alert)\b")


def _text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


def test_plural_words():
    assert [plural(n, "trade") for n in (0, 1, 2, 6)] == ["0 trades", "1 trade", "2 trades", "6 trades"]
    assert plural(1, "open position") == "1 open position" and plural(3, "entry") == "3 entries"


async def test_counts_are_words_with_one_trade(day, bus, make_service):
    svc = make_service()
    await day.run_until(time(10, 30))  # one trade opened (T1 at 10:05)
    one = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "intraday", bus.clock.now())
    assert one.totals.trades_opened == 1 and one.totals.open_positions == 1
    assert trades_text(one).startswith("1 trade opened and 0 closed")
    assert "1 trade opened" in summary_text(one)
    pages = render_all(one, {"trades": trades_text(one)}, "cdn")
    for tier, html in pages.items():
        assert not BAD_PLURALS.search(html), (tier, BAD_PLURALS.search(html))
        assert re.search(r"<b>1</b><span>trade opened</span>", html), tier
        assert re.search(r"<b>1</b><span>open position</span>|<b>1</b><span>still open</span>", html), tier


async def test_counts_are_words_on_the_scheduled_pages(day, bus, make_service):
    svc = make_service()
    built = await build_scheduled_day(day, svc)  # the whole day: 4 trades, 3 closed
    for ev in built.values():
        for tier in ("premium", "basic", "free"):
            html = Path(ev.paths[tier]).read_text().replace(plotly_js(), "")  # the inlined library is not our text
            assert not BAD_PLURALS.search(html), (ev.kind, tier, BAD_PLURALS.search(html))
    close = Path(built["close"].paths["premium"]).read_text()
    assert "<b>4</b><span>trades opened</span>" in close and "<b>3</b><span>trades closed</span>" in close
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "close", bus.clock.now())
    assert daily_text(d).startswith("SPY closed higher. 3 trades closed (2 won, 1 lost)")
    assert "1 position carried." in daily_text(d)


async def _approve_without_fill(day, tid: str, contract_strike: float, updates: list[tuple[time, str, str]]) -> None:
    """An approved signal for a SPY put whose entry order goes through ``updates`` (time, status, reason)."""
    await day.run_until(updates[0][0])
    sig = day._signal(tid, "gamma_0dte", "SPY", "2026-11-20", contract_strike, "P", 8, 1.75, "0dte")
    await day.pub(SignalEvent, correlation_id=tid, signal=sig)
    await day.pub(VerdictEvent, correlation_id=tid, signal=sig, decision="approve")
    await day.pub(ApprovalEvent, correlation_id=tid, signal=sig, decision="approved", qty=8, decided_by="policy:auto",
                  policy="auto")
    for t, status, reason in updates:
        await day.run_until(t)
        await day.pub(OrderEvent, correlation_id=tid, order_id=f"ent-sig-{tid}", purpose="entry", status=status,
                      symbol="SPY", expiry="2026-11-20", strike=contract_strike, right="P", side="BUY", qty=8,
                      limit=1.75, reason=reason)


async def test_approved_signals_that_never_filled_are_listed(day, bus, make_service):
    svc = make_service()
    await _approve_without_fill(day, "u1", 585.0, [(time(9, 50), "working", ""), (time(9, 52), "cancelled", "timeout")])
    await _approve_without_fill(day, "u2", 584.0, [(time(12, 50), "working", "")])
    await day.run_until(time(13, 0))
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "intraday", bus.clock.now())
    assert [(u.signal_id, u.state, u.at, u.reason) for u in d.unfilled] == [
        ("sig-u1", "cancelled", "09:52", "timeout"), ("sig-u2", "working", "12:50", "")]
    assert d.unfilled[0].text == "order cancelled at 09:52 (timeout)"
    assert d.unfilled[1].text == "order still working at 13:00 (last update 12:50)"
    assert d.totals.approved == 4  # T1, T2 filled; u1, u2 not: only those two listed
    pages = render_all(d, {}, "cdn")
    prem, basic = _text(pages["premium"]), _text(pages["basic"])
    for page in (prem, basic):
        assert "Approved, not filled" in page and "2 approved signals without an entry fill" in page
        assert "SPY 11/20/26 585P" in page
        assert "approved, not filled: order cancelled at 09:52 (timeout)" in page
    assert re.search(r"09:50 SPY 11/20/26 585P gamma_0dte 8 1\.75 approved, not filled", prem)
    assert "(not filled: order cancelled at 09:52 (timeout))" in prem  # the signals table says it too
    assert "gamma_0dte" not in basic.split("Approved, not filled")[1].split("Open positions")[0]
    assert "585P" not in pages["free"]


async def test_a_filled_entry_is_not_listed_as_unfilled(day, bus, make_service):
    svc = make_service()
    await day.run_until(time(16, 10))  # four approved, four filled
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "close", bus.clock.now())
    assert d.totals.approved == 4 and d.unfilled == []
    assert "Approved, not filled" not in render_all(d, {}, "cdn")["premium"]


async def test_every_table_scrolls_inside_its_card(day, make_service):
    built = await build_scheduled_day(day, make_service())
    for ev in built.values():
        for tier in ("premium", "basic", "free"):
            html = Path(ev.paths[tier]).read_text()
            tables = re.findall(r"(.{0,20})<table\b", html)
            assert all(pre.endswith('<div class="scroll">') for pre in tables), (ev.kind, tier)
            assert html.count("<table") == html.count('<div class="scroll"><table')
            assert ".scroll{overflow-x:auto" in html
    for path in sorted(TEMPLATE_DIR.glob("*.j2")):  # templates not rendered above (the recap) too
        src = path.read_text()
        assert src.count("<table") == src.count('<div class="scroll"><table'), path.name


async def test_pnl_chart_starts_at_the_open(day, bus, make_service):
    svc = make_service()
    await day.run_until(time(16, 10))
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "close", bus.clock.now())
    assert d.pnl_times[0] < "2026-11-20 09:30:00"  # the series' zero point (04:00), before the open
    fig = charts.pnl_cumulative_fig(d.pnl_times, d.pnl_values, "2026-11-20 09:30:00", "2026-11-20 16:00:00")
    xs = fig["data"][0]["x"]
    assert xs[0] == "2026-11-20 09:30:00" and fig["data"][0]["y"][0] == 0.0 and xs[1:] == d.pnl_times[1:]
    assert fig["layout"]["xaxis"]["range"] == ["2026-11-20 09:30:00", "2026-11-20 16:00:00"]
    html = str(tier_charts(d, "premium")["pnl"])
    assert '"2026-11-20 09:30:00"' in html and d.pnl_times[0] not in html
    # P&L before the open: the axis starts at the series' own first point (zero), not cut at the open
    early = charts.session_anchored(["2026-11-20 04:00:00", "2026-11-20 09:00:00", "2026-11-20 10:00:00"],
                                    [0.0, -5.0, 10.0], "2026-11-20 09:30:00")
    assert early[0][0] == "2026-11-20 04:00:00"
