"""The monthly recap (the desk's track record): one calendar month of closed trades, from the ledger.

What it holds, per strategy and overall, under the ledger's one P&L rule (``core.ledger.queries``:
realized at close, after entry and exit commissions, on the New York day the position closed):
trades, wins / losses / flat, win rate (wins / (wins + losses)), average win and average loss,
realized P&L in dollars and in % of the account, best and worst trade, and P&L by week.

Decisions:
- The month is New York calendar days 1..last: a trade counts in the month its position closed
  (``queries.closed_trades``), so a position opened on the 30th and closed on the 2nd is next month's.
- % of the account = realized P&L / ``risk.account_value``, the CONFIGURED account size: one fixed
  denominator for the whole month. Not the ``account`` hash (``core.state.account.read_account``),
  whose ``account_value`` is the start-of-day equity of the current day only and moves daily.
  Every page says so in its footnote.
- Weeks run Monday..Sunday, clipped to the month. A week is listed when it has an NYSE session in
  the month or a closed trade (a quiet week shows as zero; a weekend close still counts).
- Best / worst trade: the highest / lowest realized P&L in dollars (ties: the earlier close), the
  same figures as ``Scorecard.best`` / ``Scorecard.worst``.
- A month without a closed trade gets no recap: the service logs it and builds nothing.

:class:`RecapData` is a pure, JSON-able model holding the scorecards' figures unrounded (pages format
them), so rendering (``reports.recap_render``) is a function of it alone and the pages' figures are
exactly ``queries.scorecards`` of the month's trades.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection

from core.clock.calendar import NY, NyseCalendar
from core.format import numbers
from core.ledger.queries import ClosedTrade, Scorecard, closed_trades, scorecards

KIND: Literal["monthly"] = "monthly"


# ------------------------------------------------------------------ months
def previous_month(day: date) -> date:
    """The first day of the calendar month before ``day``'s."""
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)


def month_span(first: date) -> tuple[date, date]:
    """First and last day of the month that starts at ``first``."""
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def is_first_session_of_month(cal: NyseCalendar, day: date) -> bool:
    """``day`` is an NYSE session and no earlier session falls in its month."""
    return cal.is_session(day) and cal.most_recent_session(day - timedelta(days=1)).month != day.month


def month_trades(conn: Connection, first: date) -> list[ClosedTrade]:
    """The closed trades of the month starting ``first`` (a query for ``LedgerReader.read``)."""
    lo, hi = month_span(first)
    return closed_trades(conn, lo, hi)


# ------------------------------------------------------------------ the model
class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreRow(_M):
    """One scorecard (a strategy, or ``overall``) with its figures also in % of the account."""

    name: str
    trades: int
    wins: int
    losses: int
    flat: int
    win_rate_pct: float | None
    avg_win: float | None
    avg_loss: float | None
    realized_pnl: float
    best: float | None
    worst: float | None
    pnl_pct: float                  # realized_pnl / account value * 100
    avg_win_pct: float | None       # of the account
    avg_loss_pct: float | None


class TradeRow(_M):
    position_id: str
    strategy: str
    contract: str                   # "SPY 2026-11-20 590C"
    opened: str                     # NY "YYYY-MM-DD HH:MM" ("" when the entry is not in the ledger)
    closed: str
    closed_day: str                 # ISO
    qty: int                        # contracts bought
    entry_price: float
    realized_pnl: float
    return_pct: float | None        # on the premium paid (queries.ClosedTrade.return_pct)
    pnl_pct: float                  # of the account
    outcome: str                    # win | loss | flat


class WeekRow(_M):
    first: str                      # ISO, clipped to the month
    last: str
    label: str                      # "Nov 2–8"
    sessions: int                   # NYSE sessions of the month in this week
    trades: int = 0
    wins: int = 0
    losses: int = 0
    flat: int = 0
    realized_pnl: float = 0.0
    pnl_pct: float = 0.0


class RecapData(_M):
    kind: Literal["monthly"] = KIND
    month: str                      # "2026-11"
    month_long: str                 # "November 2026"
    first: str                      # ISO first / last day of the month
    last: str
    generated_ms: int
    generated: str                  # "December 1, 2026 16:10" (New York)
    account_value: float            # the denominator of every % of the account
    sessions: int                   # NYSE sessions in the month
    overall: ScoreRow
    strategies: list[ScoreRow] = Field(default_factory=list)  # by name
    weeks: list[WeekRow] = Field(default_factory=list)
    trades: list[TradeRow] = Field(default_factory=list)      # oldest close first
    best: TradeRow
    worst: TradeRow


# ------------------------------------------------------------------ building
def _pct(x: float | None, base: float) -> float | None:
    return None if x is None else x / base * 100.0


def score_row(name: str, sc: Scorecard, account_value: float) -> ScoreRow:
    return ScoreRow(name=name, trades=sc.trades, wins=sc.wins, losses=sc.losses, flat=sc.flat,
                    win_rate_pct=sc.win_rate_pct, avg_win=sc.avg_win, avg_loss=sc.avg_loss,
                    realized_pnl=sc.realized_pnl, best=sc.best, worst=sc.worst,
                    pnl_pct=sc.realized_pnl / account_value * 100.0, avg_win_pct=_pct(sc.avg_win, account_value),
                    avg_loss_pct=_pct(sc.avg_loss, account_value))


def contract_label(t: ClosedTrade) -> str:
    return numbers.contract_label(t.symbol, t.expiry, t.strike, t.right)  # SPY 11/20/26 590C, as every surface


def _ny(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=NY).strftime("%Y-%m-%d %H:%M")


def trade_row(t: ClosedTrade, account_value: float) -> TradeRow:
    return TradeRow(position_id=t.position_id, strategy=t.strategy, contract=contract_label(t),
                    opened=_ny(t.opened_ts) if t.opened_ts is not None else "", closed=_ny(t.closed_ts),
                    closed_day=t.closed_day.isoformat(), qty=t.qty, entry_price=t.entry_price,
                    realized_pnl=t.realized_pnl, return_pct=t.return_pct,
                    pnl_pct=t.realized_pnl / account_value * 100.0, outcome=t.outcome)


def _week_label(a: date, b: date) -> str:
    if a == b:
        return f"{a:%b} {a.day}"
    if a.month == b.month:
        return f"{a:%b} {a.day}–{b.day}"
    return f"{a:%b} {a.day}–{b:%b} {b.day}"


def weeks_of(trades: list[ClosedTrade], first: date, cal: NyseCalendar, account_value: float) -> list[WeekRow]:
    """P&L per Monday..Sunday week of the month (clipped to it)."""
    lo, hi = month_span(first)
    sessions = set(cal.sessions_between(lo, hi))
    rows: list[WeekRow] = []
    monday = lo - timedelta(days=lo.weekday())
    while monday <= hi:
        a, b = max(monday, lo), min(monday + timedelta(days=6), hi)
        in_week = [t for t in trades if a <= t.closed_day <= b]
        n_sessions = sum(1 for d in sessions if a <= d <= b)
        if n_sessions or in_week:
            sc = Scorecard()
            for t in in_week:
                sc.add(t)
            rows.append(WeekRow(first=a.isoformat(), last=b.isoformat(), label=_week_label(a, b),
                                sessions=n_sessions, trades=sc.trades, wins=sc.wins, losses=sc.losses,
                                flat=sc.flat, realized_pnl=sc.realized_pnl,
                                pnl_pct=sc.realized_pnl / account_value * 100.0))
        monday += timedelta(days=7)
    return rows


def build_recap(trades: list[ClosedTrade], first: date, account_value: float, cal: NyseCalendar,
                generated: datetime) -> RecapData:
    """The recap of the month starting at ``first`` from its closed trades (at least one: an empty
    month has no recap). Trades closed outside the month are a caller's bug: ValueError."""
    if not trades:
        raise ValueError(f"no closed trades in {first:%Y-%m}: a month without trades has no recap")
    if not account_value > 0:
        raise ValueError(f"account value {account_value!r}: must be > 0 (risk.account_value)")
    lo, hi = month_span(first)
    outside = [t.position_id for t in trades if not lo <= t.closed_day <= hi]
    if outside:
        raise ValueError(f"trades closed outside {first:%Y-%m}: {', '.join(outside[:5])}")
    ordered = sorted(trades, key=lambda t: (t.closed_ts, t.position_id))
    overall, per = scorecards(ordered)
    best = max(ordered, key=lambda t: t.realized_pnl)   # max/min keep the first of equals: the earlier close
    worst = min(ordered, key=lambda t: t.realized_pnl)
    gen = generated.astimezone(NY)
    return RecapData(
        month=f"{first:%Y-%m}", month_long=f"{first:%B %Y}", first=lo.isoformat(), last=hi.isoformat(),
        generated_ms=int(generated.timestamp() * 1000), generated=f"{gen:%B} {gen.day}, {gen.year} {gen:%H:%M}",
        account_value=account_value, sessions=len(cal.sessions_between(lo, hi)),
        overall=score_row("overall", overall, account_value),
        strategies=[score_row(name, per[name], account_value) for name in sorted(per)],
        weeks=weeks_of(ordered, first, cal, account_value),
        trades=[trade_row(t, account_value) for t in ordered],
        best=trade_row(best, account_value), worst=trade_row(worst, account_value))
