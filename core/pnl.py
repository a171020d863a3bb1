"""Realized P&L, return % and day P&L: the one definition every surface uses.

The trade ledger (``core.ledger.queries``), the demo summary (``core.runtime.demo``), the
subscriber posts (``bot.distribution.render``), Telegram ``/pnl`` and ``/status`` and the
reports (``reports.gather``) all compute these figures with the functions below; none has a
formula of its own.

- **Realized P&L of a trade** (a position): the position's cumulative ``realized_pnl`` when it
  closes: every exit's (exit price - average entry) x contracts x multiplier, minus the
  commissions of the entry and of every exit. Before the position closes it has no realized
  P&L on any report, post or day figure.
- **Return % of a trade**: realized P&L (after all commissions) / entry cost of the whole
  position (average entry price x every contract bought x multiplier 100) x 100. So a
  position bought at $0.86 and sold at $1.18 shows a little less than the +37.21 % the prices
  alone move: the commissions are part of the return.
- **Day P&L (realized)**: the sum of the realized P&L of the trades that closed on that New
  York day. A partial exit or an entry commission of a position still open counts on the day the
  position closes, with the rest of the trade, not before; so a day's figure never changes
  after the day, and a trade is never split over two days.
- **Open P&L** (``/status`` only): for each position still open, what it has booked so far
  (entry commissions paid, partial exits) plus the mark-to-market of the contracts held.
  ``/status`` shows Day P&L = realized (closed today) + open. For positions opened today
  that is exactly the risk engine's day figure (the ``account`` hash, which books commissions
  and partial exits when paid, for the daily loss limit); they differ only by what positions
  carried over from earlier days booked on those days.
- A trade is a **win** with realized P&L > 0, a **loss** < 0, **flat** otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
MULTIPLIER = 100


def day_start_ms(d: date) -> int:
    """00:00 New York of ``d`` as UTC epoch ms."""
    return int(datetime.combine(d, time(0), tzinfo=NY).astimezone(UTC).timestamp() * 1000)


def ny_date(ms: int) -> date:
    """The New York day of a UTC epoch-ms instant."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(NY).date()


def return_pct(realized_pnl: float, entry_price: float, qty_bought: int | None,
               multiplier: int = MULTIPLIER) -> float | None:
    """Realized P&L / entry cost of the whole position x 100; None when the cost is unknown."""
    if qty_bought is None or not all(isinstance(x, (int, float)) and math.isfinite(x)
                                     for x in (realized_pnl, entry_price, qty_bought, multiplier)):
        return None
    cost = entry_price * qty_bought * multiplier
    return realized_pnl / cost * 100.0 if cost > 0 else None


def outcome(realized_pnl: float) -> str:
    return "win" if realized_pnl > 0 else "loss" if realized_pnl < 0 else "flat"


@dataclass(frozen=True)
class ClosedTrade:
    """A closed position with what its P&L figures need (a ledger row or a stream of events)."""

    position_id: str
    strategy: str
    symbol: str
    expiry: str
    strike: float
    right: str
    opened_ts: int | None
    closed_ts: int
    qty: int  # contracts bought
    entry_price: float  # average entry
    realized_pnl: float
    correlation_id: str

    @property
    def closed_day(self) -> date:
        return ny_date(self.closed_ts)

    @property
    def return_pct(self) -> float | None:
        return return_pct(self.realized_pnl, self.entry_price, self.qty)

    @property
    def outcome(self) -> str:
        return outcome(self.realized_pnl)


def _get(ev: Any, name: str, default: Any = None) -> Any:
    return ev.get(name, default) if isinstance(ev, dict) else getattr(ev, name, default)


def closed_trades(events: Iterable[Any]) -> list[ClosedTrade]:
    """Closed trades from position events (``PositionEvent`` models or their dicts, in time
    order): one per position that has a ``closed`` event (the latest, should there be two), with
    contracts bought = the sum of its ``entry`` events (the closed event's size when no entry was
    seen), as the ledger reads its tables. Oldest close first."""
    latest: dict[str, Any] = {}
    opened: dict[str, tuple[int, int]] = {}
    for ev in events:
        pid, kind, ts = _get(ev, "position_id"), _get(ev, "kind"), int(_get(ev, "ts", 0))
        if kind == "entry":
            first, bought = opened.get(pid, (ts, 0))
            opened[pid] = (min(first, ts), bought + int(_get(ev, "qty", 0)))
        elif kind == "closed":
            latest[pid] = ev
    out = []
    for pid, ev in latest.items():
        ts_open, bought = opened.get(pid, (None, 0))
        out.append(ClosedTrade(
            position_id=pid, strategy=_get(ev, "strategy", ""), symbol=_get(ev, "symbol", ""),
            expiry=_get(ev, "expiry", ""), strike=float(_get(ev, "strike", 0.0)), right=_get(ev, "right", ""),
            opened_ts=ts_open, closed_ts=int(_get(ev, "ts")), qty=int(bought or _get(ev, "qty", 0) or 0),
            entry_price=float(_get(ev, "entry_price")), realized_pnl=float(_get(ev, "realized_pnl", 0.0)),
            correlation_id=_get(ev, "correlation_id", "")))
    return sorted(out, key=lambda t: (t.closed_ts, t.position_id))


def day_realized(trades: Iterable[ClosedTrade], day: date | None = None) -> float:
    """Day P&L (realized): the sum over the trades closed on New York day ``day`` (None: all of
    them), rounded to cents."""
    return round(sum(t.realized_pnl for t in trades if day is None or t.closed_day == day), 2)


def open_pnl(booked: Iterable[float], unrealized: float) -> float:
    """Open P&L of the positions still held: what they booked so far (entry commissions paid,
    partial exits: each one's cumulative ``realized_pnl``) plus the mark-to-market of the
    contracts held (``unrealized``), rounded to cents."""
    return round(sum(booked) + unrealized, 2)
