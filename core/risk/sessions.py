"""NYSE (XNYS) regular-session lookup for the risk rules. Pure: no I/O, no wall clock.

The exchange calendar is computed once (``exchange_calendars`` ships the holiday
rules as code, so nothing is read from disk or the network) and flattened into a
plain ``{date: (open, close)}`` table covering :data:`TABLE_START`..:data:`TABLE_END`.
Outside that range, or if the calendar package cannot be loaded, a plain
weekday 09:30-16:00 New York session is assumed (weekends closed, holidays unknown).
"""

from __future__ import annotations

import bisect
import warnings
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")

REGULAR_OPEN = time(9, 30)
REGULAR_CLOSE = time(16, 0)

TABLE_START = "2006-01-03"
TABLE_END = "2045-12-29"


@dataclass(frozen=True)
class Session:
    """One regular trading session; ``open``/``close`` are timezone-aware."""

    open: datetime
    close: datetime

    def contains(self, now: datetime) -> bool:
        """True when ``open <= now < close``."""
        return self.open <= now < self.close


@dataclass(frozen=True)
class _Table:
    sessions: dict[date, tuple[datetime, datetime]]
    ordered: list[date]
    first: date
    last: date


@lru_cache(maxsize=1)
def _table() -> _Table | None:
    try:
        import exchange_calendars as xcals

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cal = xcals.get_calendar("XNYS", start=TABLE_START, end=TABLE_END)
            sched = cal.schedule
            opens = [ts.to_pydatetime() for ts in sched["open"]]
            closes = [ts.to_pydatetime() for ts in sched["close"]]
            days = [ts.date() for ts in sched.index]
    except Exception:  # noqa: BLE001  # pragma: no cover - calendar package missing/broken: weekday fallback
        return None
    sessions = {d: (o, c) for d, o, c in zip(days, opens, closes, strict=True)}
    ordered = sorted(sessions)
    return _Table(sessions=sessions, ordered=ordered, first=date.fromisoformat(TABLE_START),
                  last=date.fromisoformat(TABLE_END))


def ny_date(now: datetime) -> date:
    """The New York calendar date of an aware datetime."""
    return now.astimezone(NY).date()


def _fallback(d: date) -> Session | None:
    if d.weekday() >= 5:
        return None
    return Session(open=datetime.combine(d, REGULAR_OPEN, NY), close=datetime.combine(d, REGULAR_CLOSE, NY))


def nyse_session(d: date) -> Session | None:
    """The XNYS regular session on New York date ``d``; ``None`` on weekends and holidays.

    Early closes are honoured (e.g. 2026-11-27 closes 13:00 New York).
    """
    t = _table()
    if t is None or not (t.first <= d <= t.last):
        return _fallback(d)
    hit = t.sessions.get(d)
    if hit is None:
        return None
    return Session(open=hit[0], close=hit[1])


def trading_days_until(today: date, expiry: date) -> int:
    """Sessions in ``(today, expiry]``: 0 for a same-day expiry, 1 for the next session.

    Friday -> Monday is 1. Negative (calendar days) when ``expiry`` is before ``today``.
    """
    if expiry <= today:
        return (expiry - today).days
    t = _table()
    if t is not None and t.first <= today and expiry <= t.last:
        lo = bisect.bisect_right(t.ordered, today)
        hi = bisect.bisect_right(t.ordered, expiry)
        return hi - lo
    # weekday-count fallback (holidays unknown); whole weeks are counted arithmetically
    d = today + timedelta(days=1)
    days = (expiry - today).days
    weeks, rem = divmod(days, 7)
    n = weeks * 5
    for i in range(rem):
        if (d + timedelta(days=weeks * 7 + i)).weekday() < 5:
            n += 1
    return n
