"""Reads of the ledger: closed trades and the statistics every surface shares.

The P&L rule is ``core.pnl`` (one definition for the ledger, the demo summary, the posts, /pnl,
/status and the reports): a trade's realized P&L is the cumulative ``realized_pnl`` of its
``closed`` position event, after the commissions of its entry and of every exit; it counts on the
New York day the position closed. Partial exits (and entry commissions) of a position still open
count at its close, not before (so a day's figure never moves when a later exit prices
differently). Return % of a trade = realized P&L / (entry price x contracts bought x multiplier
100). A win is a trade with P&L > 0, a loss < 0, flat otherwise. This module only reads the rows;
:class:`core.pnl.ClosedTrade` carries the figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from core.ledger import schema as s
from core.pnl import ClosedTrade, day_start_ms  # the P&L rule (core.pnl); readers import these from here too


def span_ms(first: date | None, last: date | None) -> tuple[int, int]:
    """[start, end) in epoch ms for the New York days ``first``..``last`` inclusive (None: open)."""
    lo = day_start_ms(first) if first else 0
    hi = day_start_ms(last + timedelta(days=1)) if last else 2**62
    return lo, hi


def closed_trades(conn: Connection, first: date | None = None, last: date | None = None) -> list[ClosedTrade]:
    """Positions closed on New York days ``first``..``last`` (inclusive), oldest first; one per
    position (its latest ``closed`` event, should a broken producer ever have sent two)."""
    lo, hi = span_ms(first, last)
    pe = s.position_events
    rows = conn.execute(
        select(pe).where(pe.c.kind == "closed", pe.c.ts >= lo, pe.c.ts < hi).order_by(pe.c.ts, pe.c.event_id)
    ).mappings().all()
    latest: dict[str, Any] = {}
    for r in rows:
        latest[r["position_id"]] = r
    if not latest:
        return []
    entries = conn.execute(
        select(pe.c.position_id, func.min(pe.c.ts), func.sum(pe.c.qty))
        .where(pe.c.kind == "entry", pe.c.position_id.in_(list(latest)))
        .group_by(pe.c.position_id)
    ).all()
    opened = {pid: (ts, qty) for pid, ts, qty in entries}
    out = []
    for pid, r in latest.items():
        ts_open, bought = opened.get(pid, (None, None))
        out.append(ClosedTrade(
            position_id=pid, strategy=r["strategy"], symbol=r["symbol"], expiry=r["expiry"], strike=r["strike"],
            right=r["right"], opened_ts=ts_open, closed_ts=r["ts"], qty=int(bought or r["qty"] or 0),
            entry_price=r["entry_price"], realized_pnl=r["realized_pnl"], correlation_id=r["correlation_id"]))
    return sorted(out, key=lambda t: (t.closed_ts, t.position_id))


@dataclass
class Scorecard:
    """Trades, win rate, average win and loss and P&L of a set of closed trades."""

    trades: int = 0
    wins: int = 0
    losses: int = 0
    flat: int = 0
    realized_pnl: float = 0.0
    gross_win: float = 0.0
    gross_loss: float = 0.0
    best: float | None = None
    worst: float | None = None

    def add(self, t: ClosedTrade) -> None:
        self.trades += 1
        self.realized_pnl += t.realized_pnl
        if t.realized_pnl > 0:
            self.wins += 1
            self.gross_win += t.realized_pnl
        elif t.realized_pnl < 0:
            self.losses += 1
            self.gross_loss += t.realized_pnl
        else:
            self.flat += 1
        self.best = t.realized_pnl if self.best is None else max(self.best, t.realized_pnl)
        self.worst = t.realized_pnl if self.worst is None else min(self.worst, t.realized_pnl)

    @property
    def win_rate_pct(self) -> float | None:
        decided = self.wins + self.losses
        return self.wins / decided * 100.0 if decided else None

    @property
    def avg_win(self) -> float | None:
        return self.gross_win / self.wins if self.wins else None

    @property
    def avg_loss(self) -> float | None:
        return self.gross_loss / self.losses if self.losses else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(realized_pnl=round(self.realized_pnl, 2), gross_win=round(self.gross_win, 2),
                 gross_loss=round(self.gross_loss, 2), win_rate_pct=_r(self.win_rate_pct, 1),
                 avg_win=_r(self.avg_win, 2), avg_loss=_r(self.avg_loss, 2))
        return d


def _r(x: float | None, n: int) -> float | None:
    return None if x is None else round(x, n)


@dataclass
class Stats:
    first: date | None
    last: date | None
    signals: int = 0
    approved: int = 0
    rejected: int = 0
    orders: int = 0
    fills: int = 0
    commissions: float = 0.0
    overall: Scorecard = field(default_factory=Scorecard)
    by_strategy: dict[str, Scorecard] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        o = self.overall
        return {
            "from": self.first.isoformat() if self.first else None,
            "to": self.last.isoformat() if self.last else None,
            "signals": self.signals, "approved": self.approved, "rejected": self.rejected,
            "orders": self.orders, "fills": self.fills, "commissions": round(self.commissions, 2),
            "trades": o.trades, "wins": o.wins, "losses": o.losses, "flat": o.flat,
            "realized_pnl": round(o.realized_pnl, 2), "win_rate_pct": _r(o.win_rate_pct, 1),
            "avg_win": _r(o.avg_win, 2), "avg_loss": _r(o.avg_loss, 2),
            "by_strategy": {k: v.as_dict() for k, v in sorted(self.by_strategy.items())},
        }


def scorecards(trades: list[ClosedTrade]) -> tuple[Scorecard, dict[str, Scorecard]]:
    overall, per = Scorecard(), {}
    for t in trades:
        overall.add(t)
        per.setdefault(t.strategy, Scorecard()).add(t)
    return overall, per


def stats(conn: Connection, first: date | None = None, last: date | None = None) -> Stats:
    """Counts and scorecards for New York days ``first``..``last`` (inclusive; None = open end)."""
    lo, hi = span_ms(first, last)

    def count(table: Any, *where: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(table)
                                .where(table.c.ts >= lo, table.c.ts < hi, *where)).scalar_one())

    out = Stats(first, last)
    out.signals = count(s.signals)
    out.approved = count(s.approvals, s.approvals.c.decision == "approved")
    out.rejected = (count(s.verdicts, s.verdicts.c.decision == "reject")
                    + count(s.approvals, s.approvals.c.decision == "rejected"))
    out.orders = int(conn.execute(select(func.count(func.distinct(s.orders.c.order_id)))
                                  .where(s.orders.c.ts >= lo, s.orders.c.ts < hi)).scalar_one())
    out.fills = count(s.fills)
    out.commissions = float(conn.execute(select(func.coalesce(func.sum(s.fills.c.commission), 0.0))
                                         .where(s.fills.c.ts >= lo, s.fills.c.ts < hi)).scalar_one())
    out.overall, out.by_strategy = scorecards(closed_trades(conn, first, last))
    return out


def pnl_by_day(trades: list[ClosedTrade]) -> list[dict[str, Any]]:
    """Realized P&L and trade count per New York day (the days with a closed trade), oldest first."""
    days: dict[date, dict[str, Any]] = {}
    for t in trades:
        row = days.setdefault(t.closed_day, {"date": t.closed_day.isoformat(), "pnl": 0.0, "trades": 0})
        row["pnl"] += t.realized_pnl
        row["trades"] += 1
    return [{**days[d], "pnl": round(days[d]["pnl"], 2)} for d in sorted(days)]


def latest_event_ms(conn: Connection) -> int | None:
    """Time (epoch ms) of the newest event the ledger holds: what its figures are "as of"."""
    got = conn.execute(select(func.max(s.events.c.ts))).scalar_one()
    return None if got is None else int(got)


def week_start(d: date) -> date:
    """The Monday of ``d``'s week."""
    return d - timedelta(days=d.weekday())


def _pnl_by(trades: list[ClosedTrade], key: Any, name: str) -> list[dict[str, Any]]:
    rows: dict[Any, dict[str, Any]] = {}
    for t in trades:
        k = key(t.closed_day)
        row = rows.setdefault(k, {name: k.isoformat(), "pnl": 0.0, "trades": 0})
        row["pnl"] += t.realized_pnl
        row["trades"] += 1
    return [{**rows[k], "pnl": round(rows[k]["pnl"], 2)} for k in sorted(rows)]


def pnl_by_week(trades: list[ClosedTrade]) -> list[dict[str, Any]]:
    """Realized P&L and trade count per week (``week``: its Monday, ISO), oldest first; same rule
    as :func:`pnl_by_day`."""
    return _pnl_by(trades, week_start, "week")


def pnl_by_month(trades: list[ClosedTrade]) -> list[dict[str, Any]]:
    """Realized P&L and trade count per calendar month (``month``: its first day, ISO), oldest
    first; same rule as :func:`pnl_by_day`."""
    return _pnl_by(trades, lambda d: d.replace(day=1), "month")
