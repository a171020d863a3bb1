"""Report data, gathered from the bus (event streams and state hashes) and, for the close report's
period statistics only, from the trade ledger.

:func:`gather` reads, for the report's window (the previous session's close up to ``now``):

- ``quotes``     per-symbol price path (one point per minute), previous close, pre-market move,
                 open / high / low / last;
- ``analytics``  the latest snapshot per symbol at or before ``now`` (GEX by strike, walls,
                 zero gamma, max pain, VPIN, OBI); for a pre-market report that is the last
                 snapshot of the previous session, or, for a symbol without any stored snapshot,
                 levels computed from the stored option chain (:mod:`reports.premarket`, which also
                 makes the page's "what to watch");
- ``flow``       per-symbol totals (tape buy/sell, sweeps, blocks, dark pool, net premium),
                 intraday reports only (the only page that shows them);
- ``signals`` / ``verdicts`` / ``approvals``   the day's ideas and what happened to them;
- ``orders``     fills, and the entry order updates that tell which approved signals never filled
                 (:mod:`reports.unfilled`);
- ``positions``  trades opened/closed with realized P&L per trade and per strategy, win rate,
                 cumulative realized P&L through the day;
- ``alerts``     raised / cleared;
- state: hash ``account`` (:func:`core.state.account.read_account`), hash ``positions``
  (:func:`core.state.account.open_positions`), the halt hash, and the ``quote`` snapshot
  (previous close, when the quotes stream does not reach back to it).

The close report also shows period statistics from the trade ledger (:mod:`reports.periods`).
Reading the streams is :mod:`reports.streams`; turning what was read into the report's rows is
:mod:`reports.builders` (pure functions); the result is a :class:`reports.model.ReportData`.
Nothing here writes to Redis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import redis.asyncio as aioredis

from core.bus.events import (
    AlertEvent,
    AnalyticsEvent,
    ApprovalEvent,
    Event,
    FillEvent,
    OrderEvent,
    PositionEvent,
    SignalEvent,
    VerdictEvent,
)
from core.bus.keys import Keys
from core.clock.calendar import NY, NyseCalendar
from core.config.model import Settings
from core.control.halt import read_halt
from core.ledger.reader import LedgerReader
from core.pnl import closed_trades, day_realized, open_pnl
from core.state.account import Account, open_positions, read_account
from reports.builders import (
    build_alerts,
    build_fills,
    build_flow,
    build_levels,
    build_markets,
    build_open_positions,
    build_signals,
    build_strategies,
    build_totals,
    build_trades,
    calendar_info,
    pnl_series,
)
from reports.model import AccountInfo, Kind, Levels, ReportData, SymbolMarket
from reports.periods import ledger_periods
from reports.premarket import chain_positioning, premarket_info
from reports.streams import SLACK_MS, Tails, latest_analytics, scan
from reports.unfilled import build_unfilled
from reports.values import epoch_ms, finite, ny_label

ANALYTICS_LOOKBACK_MS = 4 * 86_400_000  # analytics read no further back than this before the window (long weekends)


@dataclass(frozen=True)
class Window:
    """The span a report covers: the previous session's close up to ``now``."""

    day: date                 # the session the report is about
    now_ms: int
    start_ms: int             # the previous session's close
    rth_open_ms: int | None   # the day's regular open (None: not a session)
    chart_from_ms: int        # price and P&L charts start here (04:00 New York, or the window start if later)


def report_day(cal: NyseCalendar, now: datetime) -> date:
    """The session a report made at ``now`` is about (the most recent session on a closed day)."""
    d = now.astimezone(NY).date()
    return d if cal.is_session(d) else cal.most_recent_session(d)


def report_window(cal: NyseCalendar, now: datetime) -> Window:
    day = report_day(cal, now)
    prev_day = cal.most_recent_session(day - timedelta(days=1))
    start_ms = epoch_ms(cal.session(prev_day).close)
    return Window(day=day, now_ms=epoch_ms(now), start_ms=start_ms,
                  rth_open_ms=epoch_ms(cal.session(day).open) if cal.is_session(day) else None,
                  chart_from_ms=max(start_ms, epoch_ms(datetime.combine(day, time(4, 0), tzinfo=NY))))


async def read_markets(redis: aioredis.Redis, keys: Keys, tails: Tails, w: Window,
                       symbols: list[str]) -> list[SymbolMarket]:
    """Per-symbol price facts from the quotes stream, with the ``quote`` snapshot's previous close
    for a symbol whose quotes do not reach back to it."""
    quotes = await tails.quotes.read(redis, keys, w.start_ms - SLACK_MS, w.now_ms)
    snap_prev: dict[str, float] = {}
    syms_seen = sorted({rec[0] for _ts, rec in quotes} | set(symbols))
    raw = await redis.mget([keys.snapshot("quote", s) for s in syms_seen]) if syms_seen else []
    for sym, val in zip(syms_seen, raw, strict=True):
        try:
            pc = finite(json.loads(val).get("prev_close")) if val else None
        except (ValueError, AttributeError):
            pc = None
        if pc is not None and pc > 0:
            snap_prev[sym] = pc
    return build_markets(quotes, symbols, w.start_ms, w.rth_open_ms, w.chart_from_ms, snap_prev)


async def report_levels(redis: aioredis.Redis, keys: Keys, settings: Settings, kind: Kind, now: datetime,
                        symbols: list[str], oldest_ms: int) -> tuple[list[Levels], set[str]]:
    """Levels from the newest analytics snapshot per symbol; on a pre-market report, a symbol
    without one gets levels computed from the stored chain (returned: those symbols)."""
    latest = await latest_analytics(redis, keys, epoch_ms(now), symbols, oldest_ms)
    chained: dict[str, AnalyticsEvent] = {}
    if kind == "premarket":  # nothing stored yet (a fresh Redis): computed from the stored chain
        chained = await chain_positioning(redis, keys, settings, now, [s for s in symbols if s not in latest],
                                          oldest_ms)
    return build_levels({**latest, **chained}, symbols), set(chained)


async def read_orders(redis: aioredis.Redis, keys: Keys, since_ms: int,
                      until_ms: int) -> tuple[list[FillEvent], list[OrderEvent]]:
    """The window's fills (with a usable price) and order updates, in stream order."""
    events = await scan(redis, keys.stream(FillEvent.STREAM), since_ms, until_ms, (FillEvent, OrderEvent))
    fills = [f for f in events if isinstance(f, FillEvent) and finite(f.price) is not None and f.price >= 0]
    return fills, [o for o in events if isinstance(o, OrderEvent)]


def account_info(acct: Account, realized: float, held: float) -> AccountInfo:
    """The account line: ``realized`` today and ``held`` (open positions' booked P&L + marks)."""
    return AccountInfo(account_value=acct.account_value, realized_today=realized, unrealized=held,
                       daily_pnl=round(realized + held, 2),
                       equity=round(acct.account_value + realized + held, 2),
                       drawdown_pct=round(acct.drawdown_pct, 2),
                       premium_open=round(acct.premium_open, 2))


async def gather(redis: aioredis.Redis, keys: Keys, settings: Settings, cal: NyseCalendar, kind: Kind,
                 now: datetime, tails: Tails | None = None, ledger: LedgerReader | None = None) -> ReportData:
    """Everything a report of ``kind`` made at ``now`` shows. ``tails``: incremental readers kept
    by a long-lived service (same result as a fresh read, fewer entries fetched). ``ledger``: where
    the close report's period statistics come from (None: not shown)."""
    w = report_window(cal, now)
    day, now_ms, start_ms = w.day, w.now_ms, w.start_ms
    index_syms = list(settings.reports.index_symbols)
    symbols = list(dict.fromkeys([*index_syms, *settings.market.symbols]))

    def stream(cls: type[Event]) -> str:
        return keys.stream(cls.STREAM)

    tails = tails or Tails()
    markets = await read_markets(redis, keys, tails, w, symbols)
    levels, chained = await report_levels(redis, keys, settings, kind, now, symbols, start_ms - ANALYTICS_LOOKBACK_MS)
    # flow (one entry per symbol per tick) is only shown by the intraday report
    flow = build_flow(await tails.flow.read(redis, keys, start_ms, now_ms), symbols) if kind == "intraday" else []
    sigs = await scan(redis, stream(SignalEvent), start_ms, now_ms, (SignalEvent,))
    verds = await scan(redis, stream(VerdictEvent), start_ms, now_ms, (VerdictEvent,))
    apprs = await scan(redis, stream(ApprovalEvent), start_ms, now_ms, (ApprovalEvent,))
    signals = build_signals(sigs, verds, apprs)  # type: ignore[arg-type]
    fill_events, order_updates = await read_orders(redis, keys, start_ms, now_ms)
    fills = build_fills(fill_events)
    unfilled = build_unfilled(signals, apprs, order_updates, fill_events, ny_label(now_ms))  # type: ignore[arg-type]
    pos_events = [e for e in await scan(redis, stream(PositionEvent), start_ms, now_ms, (PositionEvent,))
                  if isinstance(e, PositionEvent)]
    trades, increments = build_trades(pos_events)
    pnl_times, pnl_values = pnl_series(increments, w.chart_from_ms)
    alerts, active = build_alerts([e for e in await scan(redis, stream(AlertEvent), start_ms, now_ms, (AlertEvent,))
                                   if isinstance(e, AlertEvent)])
    acct = await read_account(redis, keys, settings, now)
    raw_opens = await open_positions(redis, keys)
    opens = build_open_positions(raw_opens)
    halt = await read_halt(redis, keys)

    # the day's P&L (core.pnl): trades closed on the report's day; open = open positions' booked + marks
    realized = day_realized(closed_trades(pos_events), day)
    held = open_pnl((finite(p.get("realized_pnl")) or 0.0 for p in raw_opens), acct.unrealized)
    primary = next((m for m in markets if m.symbol in index_syms), markets[0] if markets else None)
    pre = premarket_info(cal, day, settings, levels, chained, markets, opens) if kind == "premarket" else None
    return ReportData(
        kind=kind, day=day.isoformat(), generated_ms=now_ms, generated=ny_label(now_ms),
        window_start_ms=start_ms, calendar=calendar_info(cal, day),
        primary_symbol=primary.symbol if primary else "", direction=primary.direction if primary else "unknown",
        index_symbols=index_syms,
        markets=markets, levels=levels, flow=flow, signals=signals, fills=fills, trades=trades,
        strategies=build_strategies(trades), pnl_times=pnl_times, pnl_values=pnl_values, open_positions=opens,
        alerts=alerts, account=account_info(acct, realized, held), halted=halt.halted,
        totals=build_totals(signals, fills, trades, opens, alerts, active, realized),
        periods=await ledger_periods(ledger, day) if kind == "close" and ledger is not None else None,
        unfilled=unfilled, premarket=pre)
