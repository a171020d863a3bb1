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

The close report also shows period statistics (week and month to date: trades, win rate,
realized P&L, overall and per strategy) read from the trade ledger (:func:`ledger_periods`,
``core.ledger.queries``: the one P&L rule every surface shares), "as of" the ledger's newest event.
The ledger is read, never the streams, for these: the streams are trimmed, the ledger is not.

Streams are read newest-first with XREVRANGE and filtered on the events' own ``ts`` (stream entry
ids are the Redis server's time, which is not the simulated time of a demo), stopping once a
whole page is older than the window. The two high-volume streams (quotes, flow: one entry per
symbol per tick) go through :class:`StreamTail` readers that a long-lived service keeps
(:class:`Tails`): after the first read they only fetch entries newer than the last one seen, so
a day's three reports read each quote once. Nothing here writes to Redis. :class:`ReportData` is a
pure, JSON-able model: rendering is a function of it alone, which is what makes the demo's
pages byte-identical for the same seed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from core.bus.events import (
    AlertEvent,
    AnalyticsEvent,
    ApprovalEvent,
    BadEvent,
    Event,
    FillEvent,
    FlowEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    SignalEvent,
    VerdictEvent,
    decode,
)
from core.bus.keys import Keys
from core.clock.calendar import NY, NyseCalendar
from core.config.model import Settings
from core.control.halt import read_halt
from core.format.numbers import contract_label
from core.ledger import queries as lq
from core.ledger.reader import LedgerReader
from core.pnl import closed_trades, day_realized, open_pnl
from core.pnl import return_pct as trade_return_pct
from core.runtime.metrics import REJECTED
from core.state.account import open_positions, read_account
from reports.premarket import PremarketInfo, chain_positioning, premarket_info
from reports.unfilled import UnfilledRow, build_unfilled

log = logging.getLogger("quanticity.reports")

Kind = Literal["premarket", "intraday", "close"]
KINDS: tuple[Kind, ...] = ("premarket", "intraday", "close")
PAGE = 1000                      # entries per XREVRANGE page
SLACK_MS = 5 * 60 * 1000         # keep reading this far past the window start (late / reordered events)
ANALYTICS_SCAN_MAX = 20_000      # entries scanned back for the latest snapshot per symbol
ANALYTICS_LOOKBACK_MS = 4 * 86_400_000  # ... and no further back than this before the window (long weekends)
GEX_RANGE_PCT = 8.0              # strikes kept around spot for the GEX chart
GEX_MAX_STRIKES = 80
FLAT_PCT = 0.10                  # |move| below this is "flat"


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def ny_label(ms: int, fmt: str = "%H:%M") -> str:
    return datetime.fromtimestamp(ms / 1000, tz=NY).strftime(fmt)


def _finite(x: object) -> float | None:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _contract(symbol: str, expiry: str, strike: float, right: str) -> str:
    """``SPY 11/20/26 590C``: the one contract label (``core.format.numbers``), as the posts write it."""
    return contract_label(symbol, expiry, strike, right)


def direction_of(change_pct: float | None) -> str:
    if change_pct is None:
        return "unknown"
    if change_pct > FLAT_PCT:
        return "higher"
    if change_pct < -FLAT_PCT:
        return "lower"
    return "flat"


# ------------------------------------------------------------------ the model
class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalendarInfo(_M):
    day: str                       # ISO date of the report's session
    weekday: str
    is_session: bool
    open: str = ""                 # HH:MM NY
    close: str = ""
    early_close: bool = False
    next_session: str = ""         # ISO date
    next_open: str = ""
    next_close: str = ""
    next_early_close: bool = False
    upcoming: list[str] = Field(default_factory=list)  # "Thu Nov 26: market closed (holiday)" ...


class SymbolMarket(_M):
    symbol: str
    times: list[str] = Field(default_factory=list)     # NY "YYYY-MM-DD HH:MM", one per minute
    prices: list[float] = Field(default_factory=list)  # last trade (or mid) at the end of that minute
    prev_close: float | None = None
    premarket_last: float | None = None   # last quote before today's open
    open: float | None = None             # first quote at/after today's open
    last: float | None = None
    high: float | None = None             # today's regular session (or all of today before the open)
    low: float | None = None
    change_pct: float | None = None       # last vs previous close (vs first quote of the day if unknown)
    premarket_change_pct: float | None = None  # pre-market last vs previous close
    direction: str = "unknown"            # higher | lower | flat | unknown


class Levels(_M):
    symbol: str
    asof_ms: int
    asof: str                       # NY "YYYY-MM-DD HH:MM"
    spot: float
    call_wall: float | None = None
    put_wall: float | None = None
    zero_gamma: float | None = None
    max_pain: float | None = None
    max_gamma_strike: float | None = None
    gex_total: float | None = None
    dex_total: float | None = None
    vpin: float | None = None
    obi_l1: float | None = None
    obi_l5: float | None = None
    liquidity_grade: str | None = None
    gex_by_strike: list[tuple[float, float]] = Field(default_factory=list)  # near spot, by strike


class FlowSummary(_M):
    symbol: str
    buy_volume: float = 0.0
    sell_volume: float = 0.0
    sweeps: int = 0
    blocks: int = 0
    dark_buy_volume: float = 0.0
    dark_sell_volume: float = 0.0
    net_call_premium: float = 0.0
    net_put_premium: float = 0.0
    option_alerts: int = 0
    bullish_alerts: int = 0
    bearish_alerts: int = 0
    bias: str = "neutral"          # bullish | bearish | neutral


class SignalRow(_M):
    signal_id: str
    ts: int
    time: str
    strategy: str
    symbol: str
    contract: str
    direction: str = ""
    horizon: str = ""
    qty: int = 0
    limit: float = 0.0
    confidence: float = 0.0
    verdict: str = ""              # approve | caution | reject | "" (not reviewed yet)
    verdict_reason: str = ""
    decision: str = ""             # pending | approved | rejected | expired | ""
    decided_by: str = ""


class FillRow(_M):
    ts: int
    time: str
    purpose: str
    symbol: str
    contract: str
    side: str
    qty: int
    price: float
    commission: float = 0.0
    slippage: float = 0.0
    strategy: str = ""


class TradeExit(_M):
    ts: int
    time: str
    kind: str
    qty: int
    price: float
    reason: str = ""


class Trade(_M):
    position_id: str
    strategy: str
    symbol: str
    contract: str
    expiry: str
    strike: float
    right: str
    direction: str = ""
    horizon: str = ""
    entry_ts: int | None = None     # None: entered before the window
    entry_time: str = ""
    entry_price: float
    qty: int                        # contracts bought (inferred from exits + open when entered earlier)
    exits: list[TradeExit] = Field(default_factory=list)
    qty_open: int = 0
    status: str = "open"            # open | closed
    exit_price: float | None = None  # average exit fill
    exit_time: str = ""
    realized_pnl: float = 0.0       # cumulative for the position, after commissions
    return_pct: float | None = None  # closed: realized P&L / entry cost of the position (core.pnl)
    outcome: str = "open"           # win | loss | flat | open
    stop: float | None = None
    targets: list[float] = Field(default_factory=list)


class StrategyStats(_M):
    strategy: str
    opened: int = 0
    closed: int = 0
    wins: int = 0
    losses: int = 0
    realized_pnl: float = 0.0
    win_rate_pct: float | None = None


class OpenPositionRow(_M):
    position_id: str
    symbol: str
    strategy: str
    contract: str
    qty_open: int
    avg_entry: float
    stop: float | None = None
    mark: float | None = None
    unrealized: float | None = None


class AlertRow(_M):
    ts: int
    time: str
    code: str
    severity: str
    state: str
    subject: str = ""
    message: str = ""


class AccountInfo(_M):
    account_value: float
    realized_today: float   # trades closed on the report's day (core.pnl), = totals.realized_pnl
    unrealized: float       # open positions: booked so far (entry commissions, partial exits) + marks
    daily_pnl: float        # realized_today + unrealized
    equity: float
    drawdown_pct: float
    premium_open: float


class Totals(_M):
    signals: int = 0
    approved: int = 0
    rejected: int = 0
    expired: int = 0
    pending: int = 0
    fills: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    wins: int = 0
    losses: int = 0
    flat: int = 0
    win_rate_pct: float | None = None
    realized_pnl: float = 0.0
    best: float | None = None
    worst: float | None = None
    open_positions: int = 0
    alerts_raised: int = 0
    alerts_cleared: int = 0
    alerts_active: int = 0


class PeriodScore(_M):
    """Closed trades of a period (the ledger's P&L rule, ``core.ledger.queries``)."""

    strategy: str = ""              # "" = every strategy
    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate_pct: float | None = None  # wins / (wins + losses)
    realized_pnl: float = 0.0


class PeriodStats(_M):
    name: str                       # "Week to date" | "Month to date"
    first: str                      # ISO New York days, inclusive
    last: str
    overall: PeriodScore = Field(default_factory=PeriodScore)
    strategies: list[PeriodScore] = Field(default_factory=list)  # by strategy name


class LedgerPeriods(_M):
    """Period statistics of the close report, from the trade ledger."""

    available: bool = False
    note: str = ""                  # why not, when the ledger cannot be read
    asof_ms: int | None = None      # the ledger's newest event (None: it holds none yet)
    asof: str = ""                  # NY "YYYY-MM-DD HH:MM:SS"
    periods: list[PeriodStats] = Field(default_factory=list)


class ReportData(_M):
    kind: Kind
    day: str                        # ISO date of the report's session
    generated_ms: int
    generated: str                  # NY "HH:MM"
    window_start_ms: int
    calendar: CalendarInfo
    primary_symbol: str = ""
    direction: str = "unknown"      # the primary symbol's move: higher | lower | flat | unknown
    index_symbols: list[str] = Field(default_factory=list)  # reports.index_symbols: GEX charts, price charts
    markets: list[SymbolMarket] = Field(default_factory=list)
    levels: list[Levels] = Field(default_factory=list)
    flow: list[FlowSummary] = Field(default_factory=list)
    signals: list[SignalRow] = Field(default_factory=list)
    fills: list[FillRow] = Field(default_factory=list)
    trades: list[Trade] = Field(default_factory=list)
    strategies: list[StrategyStats] = Field(default_factory=list)
    pnl_times: list[str] = Field(default_factory=list)    # cumulative realized P&L, NY "YYYY-MM-DD HH:MM:SS"
    pnl_values: list[float] = Field(default_factory=list)
    open_positions: list[OpenPositionRow] = Field(default_factory=list)
    alerts: list[AlertRow] = Field(default_factory=list)
    account: AccountInfo
    halted: bool = False
    totals: Totals = Field(default_factory=Totals)
    periods: LedgerPeriods | None = None  # close report only
    unfilled: list[UnfilledRow] = Field(default_factory=list)  # approved signals whose entry never filled
    premarket: PremarketInfo | None = None  # pre-market report only (reports.premarket)


# ------------------------------------------------------------------ stream reading
async def scan(redis: aioredis.Redis, key: str, since_ms: int, until_ms: int,
               types: tuple[type[Event], ...] | None = None, upper: str = "+") -> list[Event]:
    """Events of stream ``key`` with ``since_ms <= ts <= until_ms``, in stream (publish) order.

    Reads newest-first in pages and stops once a whole page is older than ``since_ms`` minus a
    slack. Malformed entries are counted and skipped. ``upper`` bounds the newest entry id read."""
    out: list[Event] = []
    floor = since_ms - SLACK_MS
    while True:
        rows = await redis.xrevrange(key, max=upper, min="-", count=PAGE)
        if not rows:
            break
        newest_in_page = -1
        for _eid, fields in rows:
            if fields is None:
                continue
            try:
                ev = decode(fields)
            except BadEvent:
                REJECTED.labels("reports", "bad_event").inc()
                continue
            newest_in_page = max(newest_in_page, ev.ts)
            if types is not None and not isinstance(ev, types):
                continue
            if since_ms <= ev.ts <= until_ms:
                out.append(ev)
        if len(rows) < PAGE or (newest_in_page >= 0 and newest_in_page < floor):
            break
        upper = "(" + _entry_id(rows[-1][0])
    out.reverse()
    return out


def _entry_id(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class StreamTail:
    """Incremental reader of one high-volume stream (quotes, flow), keeping one small reduced
    record per entry. The first read scans newest-first down to the window (like :func:`scan`);
    later reads only fetch entries published after the last one seen (XRANGE from its id), so a
    day's three reports read each quote once. Records older than the window are dropped. The
    result equals a fresh scan of the same stream."""

    def __init__(self, cls: type[Event], reduce: Callable[[Any], Any]) -> None:
        self.cls = cls
        self.reduce = reduce
        self.last_id: str | None = None
        self.floor_ms: int | None = None  # records are complete from here on
        self.records: list[tuple[int, Any]] = []  # (ts, reduced), stream order

    def _reduced(self, fields: dict[Any, Any]) -> tuple[int, Any] | None:
        try:
            ev = decode(fields)
        except BadEvent:
            REJECTED.labels("reports", "bad_event").inc()
            return None
        if not isinstance(ev, self.cls):
            return None
        rec = self.reduce(ev)
        return None if rec is None else (ev.ts, rec)

    async def _backfill(self, redis: aioredis.Redis, key: str, since_ms: int) -> None:
        """Newest-first down to the window: the records, and the id the forward reads go on from."""
        self.records, self.last_id = [], None
        newest = await redis.xrevrange(key, max="+", min="-", count=1)
        if not newest:
            return
        self.last_id = _entry_id(newest[0][0])
        events = await scan(redis, key, since_ms, 2**62, (self.cls,), upper=self.last_id)
        self.records = [(ev.ts, rec) for ev in events if (rec := self.reduce(ev)) is not None]

    async def read(self, redis: aioredis.Redis, keys: Keys, since_ms: int, until_ms: int) -> list[tuple[int, Any]]:
        """Reduced records with ``since_ms <= ts <= until_ms``, in stream order."""
        key = keys.stream(self.cls.STREAM)
        if self.last_id is None or self.floor_ms is None or since_ms < self.floor_ms:
            await self._backfill(redis, key, since_ms)
        self.floor_ms = since_ms
        while self.last_id is not None:
            rows = await redis.xrange(key, min="(" + self.last_id, max="+", count=PAGE)
            if not rows:
                break
            for _eid, fields in rows:
                rec = self._reduced(fields) if fields is not None else None
                if rec is not None:
                    self.records.append(rec)
            self.last_id = _entry_id(rows[-1][0])
            if len(rows) < PAGE:
                break
        keep_from = since_ms - SLACK_MS
        if self.records and self.records[0][0] < keep_from:
            self.records = [r for r in self.records if r[0] >= keep_from]
        return [r for r in self.records if since_ms <= r[0] <= until_ms]


def reduce_quote(q: QuoteEvent) -> tuple[str, float] | None:
    p = _quote_price(q)
    return None if p is None else (q.symbol, p)


FLOW_FIELDS = ("buy_volume", "sell_volume", "sweeps", "blocks", "dark_buy_volume", "dark_sell_volume",
               "net_call_premium", "net_put_premium")


def reduce_flow(f: FlowEvent) -> tuple[Any, ...]:
    bull = sum(1 for a in f.alerts if isinstance(a, dict) and a.get("bullish") is True)
    bear = sum(1 for a in f.alerts if isinstance(a, dict) and a.get("bullish") is False)
    return (f.symbol, *(getattr(f, n) for n in FLOW_FIELDS), len(f.alerts), bull, bear)


class Tails:
    """The incremental readers a long-lived report service keeps between builds."""

    def __init__(self) -> None:
        self.quotes = StreamTail(QuoteEvent, reduce_quote)
        self.flow = StreamTail(FlowEvent, reduce_flow)


async def latest_analytics(redis: aioredis.Redis, keys: Keys, until_ms: int, symbols: Iterable[str],
                           oldest_ms: int = 0) -> dict[str, AnalyticsEvent]:
    """The newest analytics snapshot per symbol with ``oldest_ms <= ts <= until_ms``; reading stops
    once every wanted symbol is found, a page is older than ``oldest_ms``, or after
    ``ANALYTICS_SCAN_MAX`` entries."""
    wanted = set(symbols)
    found: dict[str, AnalyticsEvent] = {}
    upper = "+"
    scanned = 0
    key = keys.stream(AnalyticsEvent.STREAM)
    while scanned < ANALYTICS_SCAN_MAX:
        rows = await redis.xrevrange(key, max=upper, min="-", count=PAGE)
        if not rows:
            break
        scanned += len(rows)
        page_newest = -1
        for _eid, fields in rows:
            if fields is None:
                continue
            try:
                ev = decode(fields)
            except BadEvent:
                REJECTED.labels("reports", "bad_event").inc()
                continue
            page_newest = max(page_newest, ev.ts)
            if isinstance(ev, AnalyticsEvent) and oldest_ms <= ev.ts <= until_ms and ev.symbol not in found:
                found[ev.symbol] = ev
        if (wanted and wanted <= set(found)) or 0 <= page_newest < oldest_ms:
            break
        if len(rows) < PAGE:
            break
        last_id = rows[-1][0]
        upper = "(" + (last_id.decode() if isinstance(last_id, bytes) else str(last_id))
    return found


# ------------------------------------------------------------------ pieces
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


def _quote_price(q: QuoteEvent) -> float | None:
    last = _finite(q.last)
    if last is not None and last > 0:
        return last
    bid, ask = _finite(q.bid), _finite(q.ask)
    if bid is not None and ask is not None and 0 < bid <= ask:
        return (bid + ask) / 2.0
    return None


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
            kf, vf = _finite(k), _finite(v)
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
            contract = (_contract(sig.symbol, ins.expiry.isoformat() if ins.expiry else "", ins.strike or 0.0,
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
                      contract=_contract(ev.symbol, ev.expiry, ev.strike, ev.right), expiry=ev.expiry,
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
        mark = _finite(p.get("last_mark", p.get("mark")))
        mult = int(p.get("multiplier", 100) or 100)
        out.append(OpenPositionRow(
            position_id=str(p.get("position_id", "")), symbol=sym, strategy=str(p.get("strategy", "")),
            contract=_contract(sym, str(p.get("expiry", "")), strike, str(p.get("right", ""))), qty_open=qty,
            avg_entry=avg, stop=_finite(p.get("stop")), mark=mark,
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


# ------------------------------------------------------------------ period statistics (the ledger)
def _score(sc: lq.Scorecard, strategy: str = "") -> PeriodScore:
    d = sc.as_dict()
    return PeriodScore(strategy=strategy, trades=sc.trades, wins=sc.wins, losses=sc.losses,
                       win_rate_pct=d["win_rate_pct"], realized_pnl=d["realized_pnl"])


def period_stats(conn: Connection, day: date) -> LedgerPeriods:
    """Week and month to date through ``day`` (New York), from the ledger (runs in a worker thread)."""
    out = LedgerPeriods(available=True, asof_ms=lq.latest_event_ms(conn))
    if out.asof_ms is not None:
        out.asof = ny_label(out.asof_ms, "%Y-%m-%d %H:%M:%S")
    for name, first in (("Week to date", lq.week_start(day)), ("Month to date", day.replace(day=1))):
        overall, per = lq.scorecards(lq.closed_trades(conn, first, day))
        out.periods.append(PeriodStats(name=name, first=first.isoformat(), last=day.isoformat(),
                                       overall=_score(overall),
                                       strategies=[_score(per[k], k) for k in sorted(per)]))
    return out


async def ledger_periods(ledger: LedgerReader, day: date) -> LedgerPeriods:
    """:func:`period_stats`, or why the ledger cannot be read (the report is built either way).

    Lock-step demo: the ledger holds every event published before the report's simulated instant,
    but not those published at that same instant before the report was built (a trade closing at
    16:10:00 is in the day's tables, read from the streams, but in the ledger's figures only from
    the next read on); which ones those are is fixed by the seed and the service order, so the figures
    are the same on every run (``core.ledger.reader``). In ``run`` the ledger trails by one poll."""
    got = await ledger.try_read(lambda conn: period_stats(conn, day))
    return got if got is not None else LedgerPeriods(available=False, note=ledger.last_error)


# ------------------------------------------------------------------ gather
async def report_levels(redis: aioredis.Redis, keys: Keys, settings: Settings, kind: Kind, now: datetime,
                        symbols: list[str], oldest_ms: int) -> tuple[list[Levels], set[str]]:
    """Levels from the newest analytics snapshot per symbol; on a pre-market report, a symbol
    without one gets levels computed from the stored chain (returned: those symbols)."""
    latest = await latest_analytics(redis, keys, _ms(now), symbols, oldest_ms)
    chained: dict[str, AnalyticsEvent] = {}
    if kind == "premarket":  # nothing stored yet (a fresh Redis): computed from the stored chain
        chained = await chain_positioning(redis, keys, settings, now, [s for s in symbols if s not in latest],
                                          oldest_ms)
    return build_levels({**latest, **chained}, symbols), set(chained)


async def read_orders(redis: aioredis.Redis, keys: Keys, since_ms: int,
                      until_ms: int) -> tuple[list[FillEvent], list[OrderEvent]]:
    """The window's fills (with a usable price) and order updates, in stream order."""
    events = await scan(redis, keys.stream(FillEvent.STREAM), since_ms, until_ms, (FillEvent, OrderEvent))
    fills = [f for f in events if isinstance(f, FillEvent) and _finite(f.price) is not None and f.price >= 0]
    return fills, [o for o in events if isinstance(o, OrderEvent)]


def report_day(cal: NyseCalendar, now: datetime) -> date:
    """The session a report made at ``now`` is about (the most recent session on a closed day)."""
    d = now.astimezone(NY).date()
    return d if cal.is_session(d) else cal.most_recent_session(d)


async def gather(redis: aioredis.Redis, keys: Keys, settings: Settings, cal: NyseCalendar, kind: Kind,
                 now: datetime, tails: Tails | None = None, ledger: LedgerReader | None = None) -> ReportData:
    """Everything a report of ``kind`` made at ``now`` shows. ``tails``: incremental readers kept
    by a long-lived service (same result as a fresh read, fewer entries fetched). ``ledger``: where
    the close report's period statistics come from (None: not shown)."""
    now_ms = _ms(now)
    day = report_day(cal, now)
    prev_day = cal.most_recent_session(day - timedelta(days=1))
    prev_close_ms = _ms(cal.session(prev_day).close)
    rth_open_ms = _ms(cal.session(day).open) if cal.is_session(day) else None
    start_ms = prev_close_ms
    chart_from_ms = max(start_ms, _ms(datetime.combine(day, time(4, 0), tzinfo=NY)))
    index_syms = list(settings.reports.index_symbols)
    symbols = list(dict.fromkeys([*index_syms, *settings.market.symbols]))

    def stream(cls: type[Event]) -> str:
        return keys.stream(cls.STREAM)

    tails = tails or Tails()
    quotes = await tails.quotes.read(redis, keys, start_ms - SLACK_MS, now_ms)
    snap_prev: dict[str, float] = {}
    syms_seen = sorted({rec[0] for _ts, rec in quotes} | set(symbols))
    raw = await redis.mget([keys.snapshot("quote", s) for s in syms_seen]) if syms_seen else []
    for sym, val in zip(syms_seen, raw, strict=True):
        try:
            pc = _finite(json.loads(val).get("prev_close")) if val else None
        except (ValueError, AttributeError):
            pc = None
        if pc is not None and pc > 0:
            snap_prev[sym] = pc
    markets = build_markets(quotes, symbols, prev_close_ms, rth_open_ms, chart_from_ms, snap_prev)

    levels, chained = await report_levels(redis, keys, settings, kind, now, symbols, start_ms - ANALYTICS_LOOKBACK_MS)
    # flow (one entry per symbol per tick) is only shown by the intraday report
    flow = build_flow(await tails.flow.read(redis, keys, start_ms, now_ms), symbols) if kind == "intraday" else []
    sigs = await scan(redis, stream(SignalEvent), start_ms, now_ms, (SignalEvent,))
    verds = await scan(redis, stream(VerdictEvent), start_ms, now_ms, (VerdictEvent,))
    apprs = await scan(redis, stream(ApprovalEvent), start_ms, now_ms, (ApprovalEvent,))
    signals = build_signals(sigs, verds, apprs)  # type: ignore[arg-type]
    fill_events, order_updates = await read_orders(redis, keys, start_ms, now_ms)
    fills = [FillRow(ts=f.ts, time=ny_label(f.ts), purpose=f.purpose, symbol=f.symbol,
                     contract=_contract(f.symbol, f.expiry, f.strike, f.right), side=f.side, qty=f.qty, price=f.price,
                     commission=f.commission, slippage=f.slippage, strategy=f.strategy)
             for f in fill_events]
    unfilled = build_unfilled(signals, apprs, order_updates, fill_events, ny_label(now_ms))  # type: ignore[arg-type]
    pos_events = [e for e in await scan(redis, stream(PositionEvent), start_ms, now_ms, (PositionEvent,))
                  if isinstance(e, PositionEvent)]
    trades, increments = build_trades(pos_events)
    pnl_times, pnl_values = pnl_series(increments, chart_from_ms)
    alerts, active = build_alerts([e for e in await scan(redis, stream(AlertEvent), start_ms, now_ms, (AlertEvent,))
                                   if isinstance(e, AlertEvent)])
    acct = await read_account(redis, keys, settings, now)
    raw_opens = await open_positions(redis, keys)
    opens = build_open_positions(raw_opens)
    halt = await read_halt(redis, keys)

    closed = [t for t in trades if t.status == "closed"]
    # the day's P&L (core.pnl): trades closed on the report's day; open = open positions' booked + marks
    realized = day_realized(closed_trades(pos_events), day)
    held = open_pnl((_finite(p.get("realized_pnl")) or 0.0 for p in raw_opens), acct.unrealized)
    wins = sum(1 for t in closed if t.outcome == "win")
    losses = sum(1 for t in closed if t.outcome == "loss")
    totals = Totals(
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
    primary = next((m for m in markets if m.symbol in index_syms), markets[0] if markets else None)
    pre = premarket_info(cal, day, settings, levels, chained, markets, opens) if kind == "premarket" else None
    return ReportData(
        kind=kind, day=day.isoformat(), generated_ms=now_ms, generated=ny_label(now_ms),
        window_start_ms=start_ms, calendar=calendar_info(cal, day),
        primary_symbol=primary.symbol if primary else "", direction=primary.direction if primary else "unknown",
        index_symbols=index_syms,
        markets=markets, levels=levels, flow=flow, signals=signals, fills=fills, trades=trades,
        strategies=build_strategies(trades), pnl_times=pnl_times, pnl_values=pnl_values, open_positions=opens,
        alerts=alerts,
        account=AccountInfo(account_value=acct.account_value, realized_today=realized, unrealized=held,
                            daily_pnl=round(realized + held, 2),
                            equity=round(acct.account_value + realized + held, 2),
                            drawdown_pct=round(acct.drawdown_pct, 2),
                            premium_open=round(acct.premium_open, 2)),
        halted=halt.halted, totals=totals,
        periods=await ledger_periods(ledger, day) if kind == "close" and ledger is not None else None,
        unfilled=unfilled, premarket=pre)
