"""NYSE (XNYS) session facts the simulator needs: today's open/close and the
listed expiry dates. The calendar is loaded once per process."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

NY = ZoneInfo("America/New_York")


@lru_cache(maxsize=1)
def _sessions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(session dates datetime64[D], open epoch s, close epoch s) for every XNYS session."""
    import exchange_calendars as xc

    with warnings.catch_warnings():
        # exchange_calendars itself trips a pandas 3.x deprecation warning; not ours to fix
        warnings.filterwarnings("ignore", message=r"Series\.values returning an ndarray")
        cal = xc.get_calendar("XNYS")

    def utc_seconds(series) -> np.ndarray:
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert(None)
        return series.to_numpy().astype("datetime64[s]").astype(np.int64)

    days = np.asarray(cal.sessions.to_numpy(), dtype="datetime64[D]")
    return days, utc_seconds(cal.opens), utc_seconds(cal.closes)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    trade_date: date
    rth_open: datetime          # aware, America/New_York
    rth_close: datetime         # aware (13:00 on half days)
    index: int                  # position in the session array


def session_info(d: date) -> SessionInfo:
    days, opens, closes = _sessions()
    i = int(np.searchsorted(days, np.datetime64(d, "D")))
    if i >= days.shape[0] or days[i] != np.datetime64(d, "D"):
        raise ValueError(f"{d.isoformat()} is not an XNYS session")
    o = datetime.fromtimestamp(int(opens[i]), tz=UTC).astimezone(NY)
    c = datetime.fromtimestamp(int(closes[i]), tz=UTC).astimezone(NY)
    return SessionInfo(trade_date=d, rth_open=o, rth_close=c, index=i)


def is_session(d: date) -> bool:
    days, _, _ = _sessions()
    i = int(np.searchsorted(days, np.datetime64(d, "D")))
    return i < days.shape[0] and days[i] == np.datetime64(d, "D")


def next_session(d: date) -> date:
    days, _, _ = _sessions()
    i = int(np.searchsorted(days, np.datetime64(d, "D"), side="right"))
    return days[i].astype(object)


def sessions_between(after: date, upto: date) -> int:
    """Number of sessions s with after < s <= upto."""
    days, _, _ = _sessions()
    a = np.searchsorted(days, np.datetime64(after, "D"), side="right")
    b = np.searchsorted(days, np.datetime64(upto, "D"), side="right")
    return int(b - a)


def friday_expiry(friday: date) -> date:
    """A Friday expiry moves to the previous session when Friday is a holiday."""
    d = friday
    while not is_session(d):
        d -= timedelta(days=1)
    return d


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def listed_expiries(trade_date: date, dailies: bool) -> list[tuple[date, str]]:
    """Expiries listed in the simulated chain, as (date, kind) sorted by date.

    kind is "0dte" / "1dte" (daily listers only), "weekly" (the next Friday after
    today) or "monthly" (three expiries 14-45 calendar days out: third Fridays first,
    completed with the Fridays that spread the term structure most).
    """
    out: dict[date, str] = {}
    if dailies:
        out[trade_date] = "0dte"
        out[next_session(trade_date)] = "1dte"
    fri = trade_date + timedelta(days=(4 - trade_date.weekday()) % 7 or 7)
    weekly = friday_expiry(fri)
    if weekly <= trade_date:            # Friday holiday pulled onto today
        weekly = friday_expiry(fri + timedelta(days=7))
    out.setdefault(weekly, "weekly")

    fridays = []
    f = fri
    while (f - trade_date).days <= 45:
        e = friday_expiry(f)
        if 14 <= (e - trade_date).days <= 45:
            fridays.append((f, e))
        f += timedelta(days=7)
    monthly = [e for f, e in fridays if f == third_friday(f.year, f.month)]
    chosen: list[date] = list(monthly)[:3]
    while len(chosen) < 3:
        cands = [e for _, e in fridays if e not in chosen]
        if not cands:
            break
        if not chosen:
            pick = min(cands, key=lambda e: abs((e - trade_date).days - 30))
        else:   # spread the curve: the Friday farthest from those already chosen
            pick = max(cands, key=lambda e: (min(abs((e - c).days) for c in chosen), -e.toordinal()))
        chosen.append(pick)
    for e in chosen[:3]:
        out.setdefault(e, "monthly")
    return sorted(out.items())
