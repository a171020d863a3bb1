"""The pre-market report at 08:30: dealer positioning per symbol from the last snapshot before the
open (or, when none is stored, computed from the stored option chain exactly as the analytics
service computes it), what to watch, positions carried overnight, the calendar line, and no chart
drawn from a single point."""

from __future__ import annotations

import json
import re
from datetime import time
from pathlib import Path

from core.analytics.service import AnalyticsService
from core.bus.events import ChainEvent, decode
from core.market.service import MarketDataService
from reports.gather import gather
from reports.model import Levels, SymbolMarket
from reports.premarket import watch_line
from reports.render import render_all
from tests.helpers import make_context
from tests.reports._day import at

CARRIED = {"position_id": "pos-carry", "symbol": "SPY", "strategy": "overnight_1dte", "right": "C", "qty_open": 6,
           "avg_entry": 2.1, "multiplier": 100, "expiry": "2026-11-20", "strike": 589.0, "stop": 1.5,
           "last_mark": 2.3}


def _text(html: str) -> str:
    """Visible text of a page, tags and scripts removed, whitespace collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


async def test_premarket_has_the_previous_sessions_positioning(day, bus, make_service):
    await day.run_until(time(8, 0))
    await bus.redis.hset(bus.keys.hash("positions"), "pos-carry", json.dumps(CARRIED))  # carried overnight
    await day.run_until(time(8, 30))
    svc = make_service()
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "premarket", bus.clock.now())
    assert [lv.symbol for lv in d.levels] == ["SPY", "QQQ", "IWM"]
    spy = d.levels[0]
    # the Nov 19 15:59:30 snapshot (walls moved by the _day fixture for the previous session)
    assert (spy.call_wall, spy.put_wall, spy.zero_gamma, spy.max_pain) == (594.0, 579.0, 586.0, 590.0)
    assert spy.asof == "2026-11-19 15:59" and spy.gex_by_strike
    assert d.premarket is not None
    assert {b.source for b in d.premarket.basis} == {"analytics"}
    assert d.premarket.basis[0].text == "last snapshot of the previous session (Thu Nov 19, 15:59)"
    watch = {w.symbol: w for w in d.premarket.watch}
    assert set(watch) == {"SPY", "QQQ", "IWM"} and watch["SPY"].ref_label == "pre-market"
    assert watch["SPY"].ref == 592.26 and watch["SPY"].regime == "above the flip"  # the 08:28 quote
    near = [(lv.names, lv.level, lv.distance_pct) for lv in watch["SPY"].levels]  # nearest first
    assert near == [(["call wall"], 594.0, 0.29), (["max pain"], 590.0, -0.38), (["gamma flip"], 586.0, -1.06),
                    (["put wall"], 579.0, -2.24)]
    assert [p.contract for p in d.open_positions] == ["SPY 11/20/26 589C"]

    pages = render_all(d, {}, "cdn")
    prem, basic = _text(pages["premium"]), _text(pages["basic"])
    for page in (prem, basic):
        assert "What to watch" in page and "Dealer positioning before the open" in page
        assert "SPY, QQQ, IWM: last snapshot of the previous session (Thu Nov 19, 15:59)." in page
        assert "Friday: regular session 09:30–16:00 New York time." in page
        assert "Economic events: none configured" in page
        assert "Thu Nov 26: market closed (holiday)" in page
        assert re.search(r"Positions carried overnight .{0,120}? SPY 11/20/26 589C .{0,30}2\.10", page)
        assert "SPY 588.40 592.26 +0.66%" in page  # previous close -> pre-market last
        assert "SPY 592.26 (pre-market), above the flip: call wall 594 (+0.29%); max pain 590 (-0.38%);" in page
    for sym in ("SPY", "QQQ", "IWM"):  # GEX by strike for every symbol, premium only
        assert f'id="gex-{sym}"' in pages["premium"] and f'id="gex-{sym}"' not in pages["basic"]
    for page in (prem, basic):  # symbol, spot, call wall, put wall, flip, max pain
        assert re.search(r"SPY 588\.40 594 579 586(\.00)? 590 ", page)
    assert "1 position carried overnight" in _text(pages["free"])
    assert "589C" not in pages["free"] and "594" not in pages["free"]


async def test_one_point_price_charts_are_not_drawn(day, bus, make_service):
    await day.run_until(time(8, 0, 30))  # one quote minute (08:00) since 04:00
    svc = make_service()
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "premarket", bus.clock.now())
    assert all(len(m.times) == 1 for m in d.markets)
    pages = render_all(d, {}, "cdn")
    for tier in ("premium", "basic"):
        assert 'id="price-' not in pages[tier]
        assert "SPY, QQQ, IWM: not enough data yet for a price chart" in _text(pages[tier])
    await day.run_until(time(8, 2, 30))  # a second minute: now drawn
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "premarket", bus.clock.now())
    html = render_all(d, {}, "cdn")["premium"]
    assert 'id="price-SPY"' in html and "not enough data yet" not in html


async def test_without_a_stored_snapshot_levels_come_from_the_chain_like_analytics(bus, tmp_path: Path):
    """A fresh Redis at 08:30 (the demo): the market's first chain of the day is stored, the analytics
    service has not run yet. The report computes the levels from that chain; they equal what the
    analytics service then publishes for it."""
    bus.clock.set(at(time(8, 30)))
    ctx = make_context(bus, out_dir=str(tmp_path), market={"symbols": ["SPY"]}, demo={"feed_gap_symbol": None},
                       reports={"commentary": "template", "index_symbols": ["SPY"]})
    ctx.extras["seed"] = 7
    market = MarketDataService(ctx)
    await market.start()
    await market.on_timer(bus.clock.now())
    d = await gather(bus.redis, bus.keys, ctx.settings, ctx.calendar, "premarket", bus.clock.now())
    assert [lv.symbol for lv in d.levels] == ["SPY"]
    assert d.premarket is not None and d.premarket.basis[0].source == "chain"
    assert d.premarket.basis[0].text.startswith("computed at 08:30 from the option chain")
    mine = d.levels[0]

    chain_ev = next(decode(f) for _i, f in await bus.redis.xrange(bus.keys.stream("chains")))
    assert isinstance(chain_ev, ChainEvent)
    tx = bus.tx()
    await AnalyticsService(ctx).handle(chain_ev, tx)
    await tx.commit()
    theirs = decode((await bus.redis.xrange(bus.keys.stream("analytics")))[-1][1])
    for name in ("spot", "call_wall", "put_wall", "zero_gamma", "max_pain", "max_gamma_strike", "gex_total",
                 "dex_total"):
        assert getattr(mine, name) == getattr(theirs, name), name
    assert mine.asof_ms == theirs.asof
    assert dict(mine.gex_by_strike) == {float(k): v for k, v in theirs.gex_by_strike.items()
                                        if float(k) in dict(mine.gex_by_strike)}
    html = _text(render_all(d, {}, "cdn")["premium"])
    assert "SPY: computed at 08:30 from the option chain (open interest as of the previous close)" in html

    # intraday and close reports keep to stored snapshots: nothing computed for them
    later = await gather(bus.redis, bus.keys, ctx.settings, ctx.calendar, "intraday", bus.clock.now())
    assert later.premarket is None


async def test_premarket_without_any_positioning_says_so(bus, make_service):
    bus.clock.set(at(time(8, 30)))
    svc = make_service()
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "premarket", bus.clock.now())
    assert d.levels == [] and d.premarket is not None and d.premarket.watch == []
    page = _text(render_all(d, {}, "cdn")["premium"])
    assert "No dealer-positioning snapshot yet: nothing to watch." in page
    assert "Positions carried overnight No open positions." in page


def test_watch_groups_levels_at_one_strike_nearest_first():
    lv = Levels(symbol="SPY", asof_ms=0, asof="", spot=589.6, call_wall=590.0, put_wall=590.0, zero_gamma=None,
                max_pain=590.0)
    line = watch_line(lv, SymbolMarket(symbol="SPY", premarket_last=589.6), 20.0)
    assert line is not None and line.ref_label == "pre-market" and line.regime == "no gamma flip within ±20%"
    assert [(w.names, w.level, w.distance_pct) for w in line.levels] == [(["call wall", "put wall", "max pain"],
                                                                          590.0, 0.07)]
    far = Levels(symbol="QQQ", asof_ms=0, asof="", spot=500.0, call_wall=560.0, put_wall=440.0, zero_gamma=520.0)
    line = watch_line(far, None, 20.0)
    assert line is not None and line.levels == [] and line.regime == "below the flip" and line.ref_label == "spot"
