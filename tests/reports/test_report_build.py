"""Reports built from a realistic day on the real Redis: every kind, every tier, data only from
the bus, charts with fixed ids and plotly.js once per page, commentary that never blocks."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import plotly.graph_objects as go
import pytest

from core.bus.events import AlertEvent, PositionEvent
from reports import charts
from reports.commentary import Commentator, daily_text, levels_text
from reports.gather import gather
from reports.render import TIERS
from reports.streams import SLACK_MS, Tails
from tests.reports._day import DAY, PREV, SCHEDULE, at, build_scheduled_day, reports_stream


async def test_each_kind_builds_all_tiers_on_schedule(day, make_service, tmp_path: Path):
    svc = make_service()
    built = await build_scheduled_day(day, svc)
    assert list(built) == ["premarket", "intraday", "close"]
    ids = set()
    for kind, ev in built.items():
        assert ev.status == "built" and ev.by == "schedule" and ev.report_id and ev.correlation_id == ev.report_id
        ids.add(ev.report_id)
        assert ev.dt == at(SCHEDULE[kind])  # built exactly at the scheduled instant
        assert set(ev.paths) == set(TIERS) and ev.path == ev.paths["premium"]
        for tier in TIERS:
            p = Path(ev.paths[tier])
            assert p.parent == tmp_path / "reports" and p.name == f"{DAY.isoformat()}-{kind}-{tier}.html"
            html = p.read_text(encoding="utf-8")
            assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
        assert ev.summary and len(ev.summary) < 600
    assert len(ids) == 3

    pre = Path(built["premarket"].path).read_text()
    assert "Levels to watch" in pre and "Overnight and pre-market moves" in pre
    assert ">594<" in pre  # the previous session's call wall (595 - 1): latest snapshot before the open
    assert "Thu Nov 26: market closed (holiday)" in pre and "early close at 13:00" in pre
    assert "588.40" in pre  # previous close, from the quotes stream

    intra = Path(built["intraday"].path).read_text()
    assert "SPY 11/20/26 592C" in intra and "QQQ 11/20/26 498P" in intra
    assert "IWM 11/23/26 238C" not in intra  # entered at 15:05, after the intraday report
    assert "+$460.90" in intra and "-$729.30" in intra and "feed_stale" in intra

    close = Path(built["close"].path).read_text()
    for contract in ("SPY 11/20/26 592C", "QQQ 11/20/26 498P", "IWM 11/23/26 238C", "SPY 11/20/26 590P"):
        assert contract in close
    assert "+$393.30" in close and "+$124.90" in close and "Tomorrow&#39;s levels" in close
    assert "moc_imbalance" in close and "slippage_spike" in close


async def test_gathered_numbers(day, bus, make_service):
    svc = make_service()
    await day.run_until(time(16, 10))
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "close", bus.clock.now())
    t = d.totals
    assert (t.signals, t.approved, t.rejected, t.expired, t.fills) == (6, 4, 1, 1, 8)
    assert (t.trades_opened, t.trades_closed, t.wins, t.losses, t.open_positions) == (4, 3, 2, 1, 1)
    assert t.win_rate_pct == 66.7 and t.best == 460.90 and t.worst == -729.30
    # core.pnl: the day is the trades closed today; the open trade's entry commission counts at its close
    assert t.realized_pnl == pytest.approx(124.90) and d.pnl_values[-1] == pytest.approx(124.90)
    assert d.account.realized_today == pytest.approx(124.90) and d.account.account_value == 123456.0
    by_strat = {s.strategy: s for s in d.strategies}
    assert by_strat["gamma_0dte"].realized_pnl == pytest.approx(-268.40)
    assert by_strat["gamma_0dte"].win_rate_pct == 50.0 and by_strat["moc_imbalance"].wins == 1
    t1 = next(x for x in d.trades if x.position_id == "pos-t1")
    assert t1.qty == 7 and len(t1.exits) == 2 and t1.exit_price == pytest.approx((4 * 3.15 + 3 * 2.85) / 7, abs=1e-4)
    assert t1.outcome == "win" and t1.status == "closed"
    spy = next(m for m in d.markets if m.symbol == "SPY")
    assert spy.prev_close == 588.40 and spy.direction == "higher" and spy.times[0] == "2026-11-20 08:00"
    assert d.primary_symbol == "SPY" and d.direction == "higher"
    assert [lv.symbol for lv in d.levels] == ["SPY", "QQQ", "IWM"] and d.levels[0].call_wall == 595.0
    assert d.levels[0].asof == "2026-11-20 15:35" and d.levels[0].gex_by_strike
    assert d.flow == []  # flow is read for the intraday report only (the only page showing it)
    intra = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "intraday", bus.clock.now())
    assert {f.symbol: f.bias for f in intra.flow} == {"SPY": "bullish", "QQQ": "bearish", "IWM": "bullish"}
    spy_flow = intra.flow[0]
    assert spy_flow.sweeps == 40 and spy_flow.option_alerts == 40 and spy_flow.bullish_alerts == 40
    assert (t.alerts_raised, t.alerts_cleared, t.alerts_active) == (2, 1, 1)
    assert [p.contract for p in d.open_positions] == ["IWM 11/23/26 238C"]


async def test_incremental_stream_readers_match_fresh_reads(day, bus, make_service):
    """The service's tails (quotes, flow) read only new entries, with the same result as a fresh read."""
    svc = make_service()
    tails = Tails()
    for t in (time(8, 30), time(11, 0), time(13, 0), time(16, 10)):
        await day.run_until(t)
        for kind in ("intraday", "close"):
            cached = await gather(bus.redis, bus.keys, svc.settings, svc.cal, kind, bus.clock.now(), tails)
            fresh = await gather(bus.redis, bus.keys, svc.settings, svc.cal, kind, bus.clock.now())
            assert cached == fresh, (t, kind)
    assert tails.quotes.records[0][0] >= at(time(16, 0), PREV).timestamp() * 1000 - 2 * SLACK_MS


async def test_report_data_comes_from_the_streams(bus, make_service):
    """Events published on the bus show up in the report; events before the window do not."""
    svc = make_service()
    await bus.publish(bus.make(AlertEvent, code="old_alert", severity="INFO", state="raised",
                               message="ZZ-BEFORE-THE-WINDOW"))  # 2026-11-19 15:50, before the previous close
    bus.clock.set(at(time(10, 0)))
    d0 = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "intraday", bus.clock.now())
    assert d0.alerts == [] and d0.trades == []

    await bus.publish(bus.make(AlertEvent, code="probe_alert", severity="WARNING", state="raised", subject="SPY",
                               message="ZZ-PROBE-MESSAGE"))
    common = {"position_id": "pos-probe", "strategy": "zz_probe", "symbol": "SPY", "expiry": "2026-11-20",
              "strike": 601.0, "right": "C", "direction": "bullish", "horizon": "0dte", "entry_price": 1.11}
    await bus.publish(bus.make(PositionEvent, kind="entry", qty=2, qty_open=2, price=1.11, realized_pnl=-1.3,
                               **common))
    bus.clock.advance(600)
    await bus.publish(bus.make(PositionEvent, kind="closed", qty=2, qty_open=0, price=1.33, realized_pnl=41.42,
                               reason="target", **common))
    tx = bus.tx()
    await svc.build("intraday", bus.clock.now(), tx, by="test")
    await tx.commit()
    ev = (await reports_stream(bus))[-1]
    premium = Path(ev.paths["premium"]).read_text()
    assert "ZZ-PROBE-MESSAGE" in premium and "ZZ-BEFORE-THE-WINDOW" not in premium
    assert "SPY 11/20/26 601C" in premium and "+$41.42" in premium and "zz_probe" in premium
    basic = Path(ev.paths["basic"]).read_text()
    assert "SPY 11/20/26 601C" in basic and "1.33" in basic and "ZZ-PROBE-MESSAGE" not in basic
    assert "1 trade opened, 1 closed (1 won, 0 lost)" in ev.summary


async def test_plotly_once_per_page_with_fixed_ids(day, make_service):
    built = await build_scheduled_day(day, make_service(plotlyjs="cdn"))  # the opt-in CDN tag: easy to count
    close = {t: Path(built["close"].paths[t]).read_text() for t in TIERS}
    prem = close["premium"]
    assert prem.count('src="https://cdn.plot.ly') == 1 and prem.count("<script charset=\"utf-8\" src=") == 1
    for ident in ("gex-SPY", "gex-QQQ", "gex-IWM", "price-SPY", "pnl-cumulative", "pnl-strategy"):
        assert f'id="{ident}"' in prem
    assert close["basic"].count('src="https://cdn.plot.ly') == 1 and 'id="price-SPY"' in close["basic"]
    assert 'id="gex-SPY"' not in close["basic"] and 'id="pnl-cumulative"' not in close["basic"]
    assert "cdn.plot.ly" not in close["free"] and "Plotly" not in close["free"]


async def test_inline_plotlyjs_makes_a_self_contained_page(day, make_service, bus, tmp_path):
    svc = make_service()  # inline is the default
    await day.run_until(time(16, 10))
    tx = bus.tx()
    await svc.build("close", bus.clock.now(), tx, by="test")
    await tx.commit()
    ev = (await reports_stream(bus))[-1]
    prem = Path(ev.paths["premium"]).read_text()
    assert len(prem) > 3_000_000 and 'src="https://cdn.plot.ly' not in prem
    assert prem.count('<script type="text/javascript">') == 1
    assert len(Path(ev.paths["free"]).read_text()) < 20_000  # no chart, no plotly.js


async def test_figures_are_valid_plotly(day, bus, make_service):
    svc = make_service()
    await day.run_until(time(16, 10))
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "close", bus.clock.now())
    figs = [charts.price_fig(d.markets[0], d.trades, show_size=True), charts.gex_fig(d.levels[0]),
            charts.pnl_cumulative_fig(d.pnl_times, d.pnl_values), charts.pnl_strategy_fig(d.strategies)]
    for f in figs:
        go.Figure(f)  # raises on any invalid property
    price = figs[0]
    assert [tr["name"] for tr in price["data"]] == ["SPY", "entries", "exits"]
    assert "Entry SPY 11/20/26 592C x7 @ 2.35" in price["data"][1]["text"]
    no_size = charts.price_fig(d.markets[0], d.trades, show_size=False)
    assert "Entry SPY 11/20/26 592C @ 2.35" in no_size["data"][1]["text"]
    gex_lines = {a["text"]: s["x0"] for s, a in zip(figs[1]["layout"]["shapes"], figs[1]["layout"]["annotations"],
                                                  strict=True)}
    assert gex_lines == {"call wall": 595.0, "put wall": 580.0, "flip": 586.5, "max pain": 590.0,
                         "spot": d.levels[0].spot}


class _Stub:
    def __init__(self, source: str, fail: bool = False) -> None:
        self.source, self.fail, self.calls = source, fail, []

    async def narrate_commentary(self, section, data):
        self.calls.append(section)
        if self.fail:
            raise RuntimeError("boom")
        return type("N", (), {"text": f"model says {section}", "source": self.source})()

    async def narrate_daily_summary(self, data):
        self.calls.append("daily")
        return type("N", (), {"text": "model daily", "source": self.source})()

    async def aclose(self):
        pass


async def test_commentary_uses_the_narrator_and_falls_back(day, bus, make_service, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    svc = make_service(commentary="auto")
    await day.run_until(time(16, 10))
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "close", bus.clock.now())
    # the real narrator without an API key answers with its template -> our deterministic text
    real = await svc.commentator.for_report(d)
    assert real["daily"] == daily_text(d) and real["levels"] == levels_text(d.levels)
    await svc.commentator.aclose()
    for source, fail, expect in (("model", False, "model says levels"), ("template", False, levels_text(d.levels)),
                                 ("model", True, levels_text(d.levels))):
        c = Commentator(None, "auto")
        c._tried, c._narrator = True, _Stub(source, fail)
        out = await c.for_report(d)
        assert out["levels"] == expect
    c = Commentator(None, "template")
    assert (await c.for_report(d))["daily"] == daily_text(d)


async def test_bad_input_is_skipped_not_fatal(bus, make_service):
    svc = make_service()
    bus.clock.set(at(time(10, 0)))
    await bus.redis.xadd(bus.keys.stream("positions"), {"t": "position.update", "d": "{not json"})
    await bus.redis.xadd(bus.keys.stream("quotes"), {"t": "no.such.type", "d": "{}"})
    await bus.redis.hset(bus.keys.hash("positions"), "broken", "{oops")
    common = {"strategy": "s", "symbol": "SPY", "expiry": "2026-11-20", "strike": 590.0, "right": "C",
              "direction": "bullish", "horizon": "0dte", "qty": 1, "qty_open": 0}
    # the event model refuses these values, so they go on the stream as raw JSON (NaN as the literal)
    for pid, bad in (("nan", {"realized_pnl": float("nan")}), ("neg", {"entry_price": -1.0})):
        ev = bus.make(PositionEvent, kind="closed", position_id=pid, price=1.2, entry_price=1.0, realized_pnl=5.0,
                      **common)
        await bus.redis.xadd(bus.stream_key(ev), {"t": ev.type, "d": json.dumps({**ev.model_dump(), **bad})})
    await bus.publish(bus.make(PositionEvent, kind="closed", position_id="ok", price=1.5, entry_price=1.0,
                               realized_pnl=49.35, **common))
    d = await gather(bus.redis, bus.keys, svc.settings, svc.cal, "intraday", bus.clock.now())
    assert [t.position_id for t in d.trades] == ["ok"] and d.totals.realized_pnl == 49.35
    assert d.open_positions == []


async def test_a_failing_build_never_stops_the_runner(bus, make_service, monkeypatch):
    svc = make_service()
    bus.clock.set(at(time(8, 30)))

    async def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(svc, "build", boom)
    await svc.on_timer(bus.clock.now())  # logged and counted, not raised
    assert await svc.next_due(bus.clock.now()) == at(time(13, 0))  # not retried in a tight loop
    assert await reports_stream(bus) == []
    restarted = make_service()  # a restart within the catch-up window retries it
    assert await restarted.next_due(bus.clock.now()) == at(time(8, 30))
    await restarted.on_timer(bus.clock.now())
    assert [e.kind for e in await reports_stream(bus)] == ["premarket"]
