"""/pnl: realized P&L of closed positions by New York date, read from the ``positions``
stream history (PositionEvent ``closed`` carries the position's cumulative realized P&L
after commissions). The stream is trimmed by length, so very old history may be gone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from core.bus.bus import Bus
from core.bus.events import BadEvent, PositionEvent, decode
from core.clock.calendar import NY

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
PAGE = 1000
MAX_PAGES = 200


@dataclass
class PnlSummary:
    period: str
    start: date
    end: date
    days: list[dict[str, Any]] = field(default_factory=list)
    total: float = 0.0
    trades: int = 0
    wins: int = 0
    losses: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "days": self.days, "total": self.total, "trades": self.trades, "wins": self.wins,
                "losses": self.losses}


def period_start(period: Period, today: date) -> date:
    if period == "day":
        return today
    if period == "week":
        return today - timedelta(days=today.weekday())
    return today.replace(day=1)


async def closed_since(bus: Bus, start_ms: int) -> list[PositionEvent]:
    """Closed-position events with ts >= start_ms (newest last), one per position."""
    key = bus.keys.stream(PositionEvent.STREAM)
    found: dict[str, PositionEvent] = {}
    upper = "+"
    slack_ms = 86_400_000  # entries are appended roughly in ts order; read a day past the start
    for _ in range(MAX_PAGES):
        rows = await bus.redis.xrevrange(key, max=upper, min="-", count=PAGE)
        if not rows:
            break
        oldest_ts = None
        for entry_id, fields in rows:
            try:
                ev = decode(fields)
            except BadEvent:
                continue
            if not isinstance(ev, PositionEvent):
                continue
            oldest_ts = ev.ts if oldest_ts is None else min(oldest_ts, ev.ts)
            if ev.kind == "closed" and ev.ts >= start_ms and ev.position_id not in found:
                found[ev.position_id] = ev
        upper = f"({rows[-1][0]}"
        if oldest_ts is not None and oldest_ts < start_ms - slack_ms:
            break
    return sorted(found.values(), key=lambda e: (e.ts, e.id))


async def realized_pnl(bus: Bus, period: Period, now: datetime) -> PnlSummary:
    today = now.astimezone(NY).date()
    start = period_start(period, today)
    start_ms = int(datetime(start.year, start.month, start.day, tzinfo=NY).astimezone(UTC).timestamp() * 1000)
    out = PnlSummary(period, start, today)
    by_day: dict[str, dict[str, Any]] = {}
    for ev in await closed_since(bus, start_ms):
        day = ev.dt.astimezone(NY).date().isoformat()
        row = by_day.setdefault(day, {"date": day, "pnl": 0.0, "trades": 0})
        row["pnl"] += ev.realized_pnl
        row["trades"] += 1
        out.total += ev.realized_pnl
        out.trades += 1
        if ev.realized_pnl > 0:
            out.wins += 1
        elif ev.realized_pnl < 0:
            out.losses += 1
    out.days = [by_day[d] for d in sorted(by_day)]
    out.total = round(out.total, 2)
    for row in out.days:
        row["pnl"] = round(row["pnl"], 2)
    return out
