"""The NYSE calendar (``exchange_calendars`` XNYS): sessions, holidays, early closes.

All returned times are aware datetimes in America/New_York.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

NY = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True)
class Session:
    day: date
    open: datetime   # NY aware
    close: datetime  # NY aware

    @property
    def early_close(self) -> bool:
        return self.close.timetz().replace(tzinfo=None) < time(16, 0)

    def at(self, t: time) -> datetime:
        return datetime.combine(self.day, t, tzinfo=NY)


@lru_cache(maxsize=1)
def _xnys() -> xcals.ExchangeCalendar:
    return xcals.get_calendar("XNYS")


class NyseCalendar:
    def __init__(self) -> None:
        self._cal = _xnys()

    def is_session(self, day: date) -> bool:
        return bool(self._cal.is_session(pd.Timestamp(day)))

    def span(self, before: int = 0, after: int = 0) -> tuple[date, date]:
        """First and last day the XNYS table covers (a window that moves with today's date:
        about 20 years back, 1 ahead), narrowed by ``before`` / ``after`` days of margin for
        work that looks back or ahead of a day (the simulator lists expiries ~45 days out)."""
        return (self._cal.first_session.date() + timedelta(days=before),
                self._cal.last_session.date() - timedelta(days=after))

    def session(self, day: date) -> Session:
        """The session on ``day``; ValueError if the exchange is closed that day."""
        if not self.is_session(day):
            raise ValueError(f"{day.isoformat()} is not an NYSE session (weekend or holiday)")
        ts = pd.Timestamp(day)
        op = self._cal.session_open(ts).to_pydatetime().astimezone(NY)
        cl = self._cal.session_close(ts).to_pydatetime().astimezone(NY)
        return Session(day=day, open=op, close=cl)

    def most_recent_session(self, on_or_before: date) -> date:
        d = on_or_before
        for _ in range(15):
            if self.is_session(d):
                return d
            d -= timedelta(days=1)
        raise ValueError(f"no NYSE session found before {on_or_before}")

    def next_session(self, after: date) -> date:
        d = after + timedelta(days=1)
        for _ in range(15):
            if self.is_session(d):
                return d
            d += timedelta(days=1)
        raise ValueError(f"no NYSE session found after {after}")

    def sessions_between(self, start: date, end: date) -> list[date]:
        return [ts.date() for ts in self._cal.sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))]

    def is_open(self, when: datetime) -> bool:
        ny = when.astimezone(NY)
        if not self.is_session(ny.date()):
            return False
        s = self.session(ny.date())
        return s.open <= ny < s.close

    @staticmethod
    def ny(when: datetime) -> datetime:
        return when.astimezone(NY)
