"""The report model: what a report shows, as plain pydantic models.

:class:`ReportData` is a pure, JSON-able model built by :func:`reports.gather.gather`: rendering is a
function of it alone, which is what makes the demo's pages byte-identical for the same seed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reports.premarket import PremarketInfo
from reports.unfilled import UnfilledRow

Kind = Literal["premarket", "intraday", "close"]
KINDS: tuple[Kind, ...] = ("premarket", "intraday", "close")


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

