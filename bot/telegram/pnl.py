"""/pnl: realized P&L of closed trades for the New York day, week, month or year to date, read
from the trade ledger (``core.ledger.queries``: one P&L rule for /pnl, the reports and the
overseer - realized at close, after commissions, on the New York day the position closed).

The message is meant for a phone: a headline (P&L, trades, won/lost, win rate, average win and
loss), at most a dozen period lines (week: per day; month: per week; year: per month) and at most
``MAX_STRATEGIES`` strategy lines. The ledger trails the bus by up to one poll of the ledger
service, so the text says "as of" the newest event the ledger holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Connection

from core.clock.calendar import NY
from core.ledger import queries as q
from core.ledger.reader import LedgerReader

Period = Literal["day", "week", "month", "year"]
PERIODS: tuple[Period, ...] = ("day", "week", "month", "year")
MAX_STRATEGIES = 8  # the rest are summed into one "+N more" line


@dataclass
class PnlSummary:
    period: str
    start: date
    end: date
    asof_ms: int | None = None  # newest event in the ledger (None: the ledger is empty)
    overall: dict[str, Any] = field(default_factory=dict)  # queries.Scorecard.as_dict()
    unit: str = ""  # what each line covers: day | week | month ("" for /pnl day)
    lines: list[dict[str, Any]] = field(default_factory=list)  # {label, pnl, trades}
    strategies: list[dict[str, Any]] = field(default_factory=list)  # {strategy, ...Scorecard.as_dict()}
    more_strategies: int = 0
    more_pnl: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "asof_ms": self.asof_ms, "asof": ny_asof(self.asof_ms, self.end), "overall": self.overall, "unit": self.unit, "lines": self.lines,
                "strategies": self.strategies, "more_strategies": self.more_strategies,
                "more_pnl": round(self.more_pnl, 2)}


def period_start(period: Period, today: date) -> date:
    if period == "day":
        return today
    if period == "week":
        return q.week_start(today)
    if period == "month":
        return today.replace(day=1)
    return today.replace(month=1, day=1)


def _lines(period: Period, start: date, trades: list[q.ClosedTrade]) -> tuple[str, list[dict[str, Any]]]:
    if period == "week":
        return "day", [{"label": f"{date.fromisoformat(r['date']):%a %m-%d}", "pnl": r["pnl"],
                        "trades": r["trades"]} for r in q.pnl_by_day(trades)]
    if period == "month":
        # a week that began in the previous month is labelled from the month's first day
        return "week", [{"label": f"from {max(date.fromisoformat(r['week']), start):%a %m-%d}", "pnl": r["pnl"],
                         "trades": r["trades"]} for r in q.pnl_by_week(trades)]
    if period == "year":
        return "month", [{"label": f"{date.fromisoformat(r['month']):%b}", "pnl": r["pnl"],
                          "trades": r["trades"]} for r in q.pnl_by_month(trades)]
    return "", []


def summarize(conn: Connection, period: Period, today: date) -> PnlSummary:
    """The summary of ``period`` up to ``today`` (New York), from the ledger (runs in a worker thread)."""
    start = period_start(period, today)
    trades = q.closed_trades(conn, start, today)
    overall, per = q.scorecards(trades)
    out = PnlSummary(period, start, today, asof_ms=q.latest_event_ms(conn), overall=overall.as_dict())
    out.unit, out.lines = _lines(period, start, trades)
    ranked = sorted(per.items(), key=lambda kv: (-kv[1].realized_pnl, kv[0]))
    out.strategies = [{"strategy": name, **sc.as_dict()} for name, sc in ranked[:MAX_STRATEGIES]]
    rest = ranked[MAX_STRATEGIES:]
    out.more_strategies = len(rest)
    out.more_pnl = sum(sc.realized_pnl for _n, sc in rest)
    return out


async def realized_pnl(reader: LedgerReader, period: Period, now: datetime) -> PnlSummary:
    """Raises ``LedgerUnavailable`` / ``LedgerModeError`` (``core.ledger.reader.UNREADABLE``)."""
    today = now.astimezone(NY).date()
    return await reader.read(lambda conn: summarize(conn, period, today))


def ny_asof(ms: int | None, today: date) -> str:
    """``15:59 ET`` for today, ``2026-11-30 15:59 ET`` otherwise; "" for an empty ledger."""
    if ms is None:
        return ""
    dt = datetime.fromtimestamp(ms / 1000, tz=NY)
    return f"{dt:%H:%M} ET" if dt.date() == today else f"{dt:%Y-%m-%d %H:%M} ET"
