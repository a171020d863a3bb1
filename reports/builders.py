"""Report pieces built from events already read: pure functions, no Redis.

Each takes the window's events (or records, or state rows) and returns the report model's rows:
markets (price path, previous close, pre-market move), levels (analytics snapshot), flow totals,
signals with their verdict and decision, fills, trades with realized P&L per trade and per
strategy, open positions, alerts, the cumulative realized P&L series and the day's totals.
"""

from __future__ import annotations

import logging
import math
from datetime import date, timedelta
from typing import Any

from core.bus.events import (
    AlertEvent,
    AnalyticsEvent,
    ApprovalEvent,
    FillEvent,
    PositionEvent,
    SignalEvent,
    VerdictEvent,
)
from core.clock.calendar import NyseCalendar
from core.format.numbers import contract_label
from core.pnl import return_pct as trade_return_pct
from core.runtime.metrics import REJECTED
from reports.model import (
    AlertRow,
    CalendarInfo,
    FillRow,
    FlowSummary,
    Levels,
    OpenPositionRow,
    SignalRow,
    StrategyStats,
    SymbolMarket,
    Totals,
    Trade,
    TradeExit,
)
from reports.streams import FLOW_FIELDS
from reports.values import finite, ny_label

log = logging.getLogger("quanticity.reports")

GEX_RANGE_PCT = 8.0              # strikes kept around spot for the GEX chart
GEX_MAX_STRIKES = 80
FLAT_PCT = 0.10                  # |move| below this is "flat"


def direction_of(change_pct: float | None) -> str:
    if change_pct is None:
        return "unknown"
    if change_pct > FLAT_PCT:
        return "higher"
    if change_pct < -FLAT_PCT:
        return "lower"
    return "flat"


def calendar_info(cal: NyseCalendar, day: date, horizon_days: int = 14) -> CalendarInfo:
    info = CalendarInfo(day=day.isoformat(), weekday=day.strftime("%A"), is_session=cal.is_session(day))
    if info.is_session:
        s = cal.session(day)
        info.open, info.close, info.early_close = f"{s.open:%H:%M}", f"{s.close:%H:%M}", s.early_close
    try:
        nxt = cal.next_session(day)
        ns = cal.session(nxt)
        info.next_session, info.next_open, info.next_close = nxt.isoformat(), f"{ns.open:%H:%M}", f"{ns.close:%H:%M}"
        info.next_early_close = ns.early_close
    except Exception:  # noqa: BLE001 - beyond the calendar's range: leave the next session empty
        log.debug("no next session after %s in the calendar", day)
    for i in range(1, horizon_days + 1):
        d = day + timedelta(days=i)
        try:
            if d.weekday() < 5 and not cal.is_session(d):
                info.upcoming.append(f"{d:%a %b} {d.day}: market closed (holiday)")
            elif cal.is_session(d):
                s = cal.session(d)
                if s.early_close:
                    info.upcoming.append(f"{d:%a %b} {d.day}: early close at {s.close:%H:%M}")
        except Exception:  # noqa: BLE001 - beyond the calendar's range
            break
    return info


def build_markets(quotes: list[tuple[int, tuple[str, float]]], symbols: list[str], prev_close_ms: int,
                  rth_open_ms: int | None, chart_from_ms: int, snapshot_prev: dict[str, float]) -> list[SymbolMarket]:
    """Per-symbol price facts from ``(ts, (symbol, price))`` quote records."""
    by_sym: dict[str, list[tuple[int, float]]] = {}
    for ts, (sym, p) in quotes:
        by_sym.setdefault(sym, []).append((ts, p))
    order = [s for s in symbols if s in by_sym] + sorted(s for s in by_sym if s not in symbols)
    out: list[SymbolMarket] = []
    for sym in order:
        pts = by_sym[sym]
        before = [p for ts, p in pts if ts <= prev_close_ms]
        today = [(ts, p) for ts, p in pts if ts > prev_close_ms]
        m = SymbolMarket(symbol=sym)
        m.prev_close = round(before[-1], 4) if before else snapshot_prev.get(sym)
        if today:
            pre = [p for ts, p in today if rth_open_ms is None or ts < rth_open_ms]
            rth = [p for ts, p in today if rth_open_ms is not None and ts >= rth_open_ms]
            m.premarket_last = pre[-1] if pre else None
            m.open = rth[0] if rth else None
            m.last = today[-1][1]
            span = rth or [p for _ts, p in today]
            m.high, m.low = max(span), min(span)
            ref = m.prev_close if m.prev_close else today[0][1]
            m.change_pct = round((m.last / ref - 1.0) * 100.0, 4) if ref else None
            if m.prev_close and m.premarket_last is not None:
                m.premarket_change_pct = round((m.premarket_last / m.prev_close - 1.0) * 100.0, 4)
            minute: dict[int, float] = {}
            for ts, p in today:
                if ts >= chart_from_ms:
                    minute[ts // 60_000] = p  # last price of each minute
            for mk in sorted(minute):
                m.times.append(ny_label(mk * 60_000, "%Y-%m-%d %H:%M"))
                m.prices.append(round(minute[mk], 4))
        m.direction = direction_of(m.change_pct)
        out.append(m)
    return out


def build_levels(latest: dict[str, AnalyticsEvent], symbols: list[str]) -> list[Levels]:
    order = [s for s in symbols if s in latest] + sorted(s for s in latest if s not in symbols)
    out = []
    for sym in order:
        a = latest[sym]
        gex: list[tuple[float, float]] = []
        for k, v in a.gex_by_strike.items():
            kf, vf = finite(k), finite(v)
            if kf is not None and vf is not None and kf > 0:
                gex.append((kf, vf))
        if a.spot > 0:
            lo, hi = a.spot * (1 - GEX_RANGE_PCT / 100), a.spot * (1 + GEX_RANGE_PCT / 100)
            gex = [g for g in gex if lo <= g[0] <= hi]
            gex = sorted(sorted(gex, key=lambda g: (abs(g[0] - a.spot), g[0]))[:GEX_MAX_STRIKES])
        else:
            gex.sort()
        out.append(Levels(
            symbol=sym, asof_ms=a.asof or a.ts, asof=ny_label(a.asof or a.ts, "%Y-%m-%d %H:%M"), spot=a.spot,
            call_wall=a.call_wall, put_wall=a.put_wall, zero_gamma=a.zero_gamma, max_pain=a.max_pain,
            max_gamma_strike=a.max_gamma_strike, gex_total=a.gex_total, dex_total=a.dex_total, vpin=a.vpin,
            obi_l1=a.obi_l1, obi_l5=a.obi_l5, liquidity_grade=a.liquidity_grade, gex_by_strike=gex))
    return out


def build_flow(records: list[tuple[int, tuple[Any, ...]]], symbols: list[str]) -> list[FlowSummary]:
    """Per-symbol flow totals from :func:`reduce_flow` records."""
    acc: dict[str, FlowSummary] = {}
    for _ts, rec in records:
        sym, nums, (n_alerts, bull, bear) = rec[0], rec[1:1 + len(FLOW_FIELDS)], rec[1 + len(FLOW_FIELDS):]
        s = acc.setdefault(sym, FlowSummary(symbol=sym))
        for name, val in zip(FLOW_FIELDS, nums, strict=True):
            setattr(s, name, getattr(s, name) + val)
        s.option_alerts += n_alerts
        s.bullish_alerts += bull
        s.bearish_alerts += bear
    for s in acc.values():
        for name in ("buy_volume", "sell_volume", "dark_buy_volume", "dark_sell_volume", "net_call_premium",
                     "net_put_premium"):
            setattr(s, name, round(getattr(s, name), 2))
        net = s.net_call_premium - s.net_put_premium
        s.bias = "bullish" if net > 0 else "bearish" if net < 0 else "neutral"
    order = [s for s in symbols if s in acc] + sorted(s for s in acc if s not in symbols)
    return [acc[s] for s in order]


def build_signals(signals: list[SignalEvent], verdicts: list[VerdictEvent],
                  approvals: list[ApprovalEvent]) -> list[SignalRow]:
    rows: dict[str, SignalRow] = {}

    def row_for(sig, ts: int) -> SignalRow:
        r = rows.get(sig.id)
        if r is None:
            ins = sig.instrument
            contract = (contract_label(sig.symbol, ins.expiry.isoformat() if ins.expiry else "", ins.strike or 0.0,
                                  getattr(ins.right, "value", ins.right) or "")
                        if ins.strike is not None else sig.symbol)
            direction = sig.implied_direction()
            r = SignalRow(signal_id=sig.id, ts=ts, time=ny_label(ts), strategy=sig.strategy, symbol=sig.symbol,
                          contract=contract, direction=getattr(direction, "value", "") or "",
                          horizon=getattr(sig.horizon, "value", "") or "", qty=sig.qty, limit=sig.limit,
                          confidence=sig.confidence)
            rows[sig.id] = r
        return r

    for ev in signals:
        row_for(ev.signal, ev.ts)
    for v in verdicts:
        r = row_for(v.signal, v.ts)
        r.verdict = v.decision
        r.verdict_reason = v.reasons[0] if v.reasons else ""
    for a in approvals:
        r = row_for(a.signal, a.ts)
        if a.decision != "pending" or not r.decision:
            r.decision, r.decided_by = a.decision, a.decided_by
    return sorted(rows.values(), key=lambda r: (r.ts, r.signal_id))


def build_fills(events: list[FillEvent]) -> list[FillRow]:
    return [FillRow(ts=f.ts, time=ny_label(f.ts), purpose=f.purpose, symbol=f.symbol,
                    contract=contract_label(f.symbol, f.expiry, f.strike, f.right), side=f.side, qty=f.qty,
                    price=f.price, commission=f.commission, slippage=f.slippage, strategy=f.strategy)
            for f in events]


def build_trades(events: list[PositionEvent]) -> tuple[list[Trade], list[tuple[int, float]]]:
    """Trades (one per position seen in the window, first-seen order) and realized P&L increments:
    a trade's realized P&L at its close (``core.pnl``: entry commissions and partial exits of a
    position still open count when it closes)."""
    trades: dict[str, Trade] = {}
    last_realized: dict[str, float] = {}
    bought: dict[str, int] = {}
    increments: list[tuple[int, float]] = []
    for ev in events:
        nums = (ev.entry_price, ev.realized_pnl, 0.0 if ev.price is None else ev.price)
        if not all(math.isfinite(x) for x in nums) or ev.entry_price < 0 or (ev.price or 0.0) < 0 or ev.qty < 0:
            REJECTED.labels("reports", "bad_position_event").inc()
            continue
        t = trades.get(ev.position_id)
        if t is None:
            t = Trade(position_id=ev.position_id, strategy=ev.strategy, symbol=ev.symbol,
                      contract=contract_label(ev.symbol, ev.expiry, ev.strike, ev.right), expiry=ev.expiry,
                      strike=ev.strike, right=ev.right, direction=ev.direction, horizon=ev.horizon,
                      entry_price=ev.entry_price, qty=0)
            trades[ev.position_id] = t
        if ev.kind == "entry":
            if t.entry_ts is None:
                t.entry_ts, t.entry_time = ev.ts, ny_label(ev.ts)
            bought[ev.position_id] = bought.get(ev.position_id, 0) + ev.qty
        elif ev.kind in ("partial_exit", "closed") and ev.price is not None:
            t.exits.append(TradeExit(ts=ev.ts, time=ny_label(ev.ts), kind=ev.kind, qty=ev.qty, price=ev.price,
                                     reason=ev.reason))
        t.entry_price = ev.entry_price
        t.qty_open = ev.qty_open
        if ev.stop is not None:
            t.stop = ev.stop
        if ev.targets:
            t.targets = list(ev.targets)
        if ev.kind == "closed":
            t.status = "closed"
        t.realized_pnl = round(ev.realized_pnl, 2)
        if ev.kind == "closed":  # the trade's P&L lands at its close (a repeated close replaces the first)
            inc = ev.realized_pnl - last_realized.get(ev.position_id, 0.0)
            last_realized[ev.position_id] = ev.realized_pnl
            if abs(inc) > 1e-9:
                increments.append((ev.ts, inc))
    for pid, t in trades.items():
        sold = sum(x.qty for x in t.exits)
        t.qty = bought.get(pid, 0) or (sold + t.qty_open)
        if t.exits and sold > 0:
            t.exit_price = round(sum(x.qty * x.price for x in t.exits) / sold, 4)
            t.exit_time = t.exits[-1].time
        if t.status == "closed":
            ret = trade_return_pct(t.realized_pnl, t.entry_price, t.qty)  # after commissions, whole position
            t.return_pct = round(ret, 2) if ret is not None else None
            t.outcome = "win" if t.realized_pnl > 0 else "loss" if t.realized_pnl < 0 else "flat"
    return list(trades.values()), increments


def build_strategies(trades: list[Trade]) -> list[StrategyStats]:
    acc: dict[str, StrategyStats] = {}
    for t in trades:
        s = acc.setdefault(t.strategy, StrategyStats(strategy=t.strategy))
        s.opened += 1 if t.entry_ts is not None else 0
        if t.status == "closed":  # realized at close only (core.pnl)
            s.realized_pnl += t.realized_pnl
            s.closed += 1
            s.wins += t.outcome == "win"
            s.losses += t.outcome == "loss"
    for s in acc.values():
        s.realized_pnl = round(s.realized_pnl, 2)
        decided = s.wins + s.losses
        s.win_rate_pct = round(s.wins / decided * 100.0, 1) if decided else None
    return [acc[k] for k in sorted(acc)]


def build_open_positions(raw: list[dict]) -> list[OpenPositionRow]:
    out = []
    for p in raw:
        try:
            qty = int(p.get("qty_open", 0))
            avg = float(p.get("avg_entry", p.get("entry_price", 0.0)) or 0.0)
            strike = float(p.get("strike") or 0.0)
        except (TypeError, ValueError):
            REJECTED.labels("reports", "bad_position").inc()
            continue
        sym = str(p.get("symbol", ""))
        mark = finite(p.get("last_mark", p.get("mark")))
        mult = int(p.get("multiplier", 100) or 100)
        out.append(OpenPositionRow(
            position_id=str(p.get("position_id", "")), symbol=sym, strategy=str(p.get("strategy", "")),
            contract=contract_label(sym, str(p.get("expiry", "")), strike, str(p.get("right", ""))), qty_open=qty,
            avg_entry=avg, stop=finite(p.get("stop")), mark=mark,
            unrealized=round((mark - avg) * qty * mult, 2) if mark is not None else None))
    return out


def build_alerts(events: list[AlertEvent]) -> tuple[list[AlertRow], int]:
    rows = [AlertRow(ts=a.ts, time=ny_label(a.ts), code=a.code, severity=a.severity, state=a.state,
                     subject=a.subject, message=a.message) for a in events]
    state: dict[tuple[str, str], str] = {}
    for a in events:
        state[(a.code, a.subject)] = a.state
    return rows, sum(1 for s in state.values() if s == "raised")


def pnl_series(increments: list[tuple[int, float]], start_ms: int) -> tuple[list[str], list[float]]:
    if not increments:
        return [], []
    ordered = sorted(increments, key=lambda x: x[0])
    start_ms = min(start_ms, ordered[0][0])
    times, values, cum = [ny_label(start_ms, "%Y-%m-%d %H:%M:%S")], [0.0], 0.0
    for ts, inc in ordered:
        cum += inc
        times.append(ny_label(ts, "%Y-%m-%d %H:%M:%S"))
        values.append(round(cum, 2))
    return times, values


def build_totals(signals: list[SignalRow], fills: list[FillRow], trades: list[Trade], opens: list[OpenPositionRow],
                 alerts: list[AlertRow], active: int, realized: float) -> Totals:
    """The day's counts; ``realized``: the day's realized P&L (``core.pnl``), ``active``: alerts still raised."""
    closed = [t for t in trades if t.status == "closed"]
    wins = sum(1 for t in closed if t.outcome == "win")
    losses = sum(1 for t in closed if t.outcome == "loss")
    return Totals(
        signals=len(signals), approved=sum(1 for s in signals if s.decision == "approved"),
        rejected=sum(1 for s in signals if s.verdict == "reject" or s.decision == "rejected"),
        expired=sum(1 for s in signals if s.decision == "expired"),
        pending=sum(1 for s in signals if s.decision == "pending"), fills=len(fills),
        trades_opened=sum(1 for t in trades if t.entry_ts is not None), trades_closed=len(closed), wins=wins,
        losses=losses, flat=len(closed) - wins - losses,
        win_rate_pct=round(wins / (wins + losses) * 100.0, 1) if wins + losses else None,
        realized_pnl=realized,
        best=max((t.realized_pnl for t in closed), default=None),
        worst=min((t.realized_pnl for t in closed), default=None),
        open_positions=len(opens), alerts_raised=sum(1 for a in alerts if a.state == "raised"),
        alerts_cleared=sum(1 for a in alerts if a.state == "cleared"), alerts_active=active)
