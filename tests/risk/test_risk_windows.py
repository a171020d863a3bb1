"""Session, strategy-window and 0DTE-cutoff rules, incl. an early close and a holiday."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import pytest

from core.domain.reasons import Reason
from core.risk import RiskLimits, check_signal_dict, nyse_session, trading_days_until
from core.risk.sessions import NY

from ._builders import base_dict, ny, state

LIMITS = RiskLimits()
THANKSGIVING = date(2026, 11, 26)   # NYSE holiday
BLACK_FRIDAY = date(2026, 11, 27)   # early close 13:00 NY


def _sig(now: datetime, strategy: str, expiry: date, horizon: str | None, **over: Any) -> dict[str, Any]:
    inst = dict(base_dict()["instrument"], expiry=expiry.isoformat())
    return base_dict(now, strategy=strategy, instrument=inst, horizon=horizon, **over)


def _reasons(now: datetime, strategy: str, expiry: date, horizon: str | None = None,
             st: Any = None, **over: Any) -> list[Reason]:
    return check_signal_dict(_sig(now, strategy, expiry, horizon, **over), st, LIMITS, now).reasons


SWING = date(2026, 12, 18)


# ----------------------------------------------------------------------------- calendar
def test_calendar_holiday_and_early_close() -> None:
    assert nyse_session(THANKSGIVING) is None
    bf = nyse_session(BLACK_FRIDAY)
    assert bf is not None
    assert bf.open.astimezone(NY).time() == time(9, 30)
    assert bf.close.astimezone(NY).time() == time(13, 0)
    wed = nyse_session(date(2026, 11, 25))
    assert wed is not None and wed.close.astimezone(NY).time() == time(16, 0)
    assert nyse_session(date(2026, 11, 28)) is None  # Saturday


def test_trading_days_until_skips_weekends_and_holidays() -> None:
    assert trading_days_until(date(2026, 11, 20), date(2026, 11, 20)) == 0
    assert trading_days_until(date(2026, 11, 20), date(2026, 11, 23)) == 1   # Fri -> Mon
    assert trading_days_until(date(2026, 11, 25), date(2026, 11, 27)) == 1   # over Thanksgiving
    assert trading_days_until(date(2026, 11, 20), date(2026, 11, 19)) == -1
    # far future falls back to weekday counting
    assert trading_days_until(date(2050, 1, 3), date(2050, 1, 10)) == 5


# ----------------------------------------------------------------------------- holiday
@pytest.mark.parametrize("hhmm", [(9, 0), (10, 0), (12, 0), (15, 35)])
def test_holiday_is_outside_window(hhmm: tuple[int, int]) -> None:
    now = ny(2026, 11, 26, *hhmm)
    d = check_signal_dict(_sig(now, "directional_swing", SWING, "swing"), None, LIMITS, now)
    assert Reason.OUTSIDE_WINDOW in d.reasons
    assert "holiday" in d.details[Reason.OUTSIDE_WINDOW]


def test_holiday_at_midday_fails_only_the_window() -> None:
    now = ny(2026, 11, 26, 11, 0)
    assert _reasons(now, "directional_swing", SWING, "swing") == [Reason.OUTSIDE_WINDOW]


def test_weekend_is_outside_window() -> None:
    now = ny(2026, 11, 21, 11, 0)
    assert _reasons(now, "directional_swing", SWING, "swing") == [Reason.OUTSIDE_WINDOW]


# ----------------------------------------------------------------------------- early close
def test_early_close_day_morning_is_fine() -> None:
    assert _reasons(ny(2026, 11, 27, 10, 0), "directional_swing", SWING, "swing") == []
    assert _reasons(ny(2026, 11, 27, 12, 59, 59), "directional_swing", SWING, "swing") == []


@pytest.mark.parametrize("hhmm", [(13, 0), (13, 30), (14, 59), (15, 35)])
def test_early_close_day_after_13_is_outside(hhmm: tuple[int, int]) -> None:
    now = ny(2026, 11, 27, *hhmm)
    assert _reasons(now, "directional_swing", SWING, "swing") == [Reason.OUTSIDE_WINDOW]


def test_same_times_are_fine_on_a_normal_day() -> None:
    assert _reasons(ny(2026, 11, 25, 13, 30), "directional_swing", SWING, "swing") == []
    assert _reasons(ny(2026, 11, 25, 14, 59), "directional_swing", SWING, "swing") == []


def test_moc_imbalance_impossible_on_early_close() -> None:
    now = ny(2026, 11, 27, 15, 35)
    assert _reasons(now, "moc_imbalance", SWING, "swing") == [Reason.OUTSIDE_WINDOW]
    now = ny(2026, 11, 25, 15, 35)
    assert _reasons(now, "moc_imbalance", SWING, "swing") == []


def test_0dte_cutoff_moves_earlier_on_early_close() -> None:
    # 0DTE on Black Friday: cutoff = min(15:30, 13:00 - 30min) = 12:30
    assert _reasons(ny(2026, 11, 27, 12, 29), "gamma_0dte", BLACK_FRIDAY, "0dte") == []
    d = check_signal_dict(_sig(ny(2026, 11, 27, 12, 30), "gamma_0dte", BLACK_FRIDAY, "0dte"),
                          None, LIMITS, ny(2026, 11, 27, 12, 30))
    assert d.reasons == [Reason.OUTSIDE_WINDOW] and "0DTE" in d.details[Reason.OUTSIDE_WINDOW]


def test_0dte_expired_after_early_close() -> None:
    now = ny(2026, 11, 27, 13, 5)
    assert _reasons(now, "manual", BLACK_FRIDAY, "0dte") == [
        Reason.EXPIRED_CONTRACT, Reason.OUTSIDE_WINDOW]


def test_overnight_1dte_before_holiday_uses_trading_days() -> None:
    # Wed 2026-11-25 15:10 buying Fri 11-27 expiry: 1 trading day -> 1dte cap 3%
    now = ny(2026, 11, 25, 15, 10)
    ok = _sig(now, "overnight_1dte", BLACK_FRIDAY, None, qty=6)    # $3,000
    bad = _sig(now, "overnight_1dte", BLACK_FRIDAY, None, qty=7)   # $3,500
    assert check_signal_dict(ok, None, LIMITS, now).ok
    assert check_signal_dict(bad, None, LIMITS, now).reasons == [Reason.RISK_PER_TRADE]


# ----------------------------------------------------------------------------- normal-day windows
@pytest.mark.parametrize(("strategy", "start", "end"), [
    ("gamma_0dte", (9, 45), (15, 0)),
    ("overnight_1dte", (15, 0), (15, 45)),
    ("moc_imbalance", (15, 30), (15, 50)),
    ("directional_swing", (9, 45), (15, 45)),
])
def test_strategy_window_edges(strategy: str, start: tuple[int, int], end: tuple[int, int]) -> None:
    # use a swing expiry so the 0DTE cutoff does not interfere
    day = (2026, 11, 20)
    assert _reasons(ny(*day, *start), strategy, SWING, "swing") == []
    one_s = timedelta(seconds=1)
    assert _reasons(ny(*day, *start) - one_s, strategy, SWING, "swing") == [Reason.OUTSIDE_WINDOW]
    assert _reasons(ny(*day, *end) - one_s, strategy, SWING, "swing") == []
    assert _reasons(ny(*day, *end), strategy, SWING, "swing") == [Reason.OUTSIDE_WINDOW]


def test_unlisted_strategy_gets_the_session_only() -> None:
    assert _reasons(ny(2026, 11, 20, 9, 30), "manual", SWING, "swing") == []
    assert _reasons(ny(2026, 11, 20, 9, 29, 59), "manual", SWING, "swing") == [Reason.OUTSIDE_WINDOW]
    assert _reasons(ny(2026, 11, 20, 15, 59, 59), "manual", SWING, "swing") == []
    assert _reasons(ny(2026, 11, 20, 16, 0), "manual", SWING, "swing") == [Reason.OUTSIDE_WINDOW]


def test_no_new_0dte_at_or_after_1530() -> None:
    today = date(2026, 11, 20)
    assert _reasons(ny(2026, 11, 20, 15, 29, 59), "manual", today, "0dte") == []
    assert _reasons(ny(2026, 11, 20, 15, 30), "manual", today, "0dte") == [Reason.OUTSIDE_WINDOW]
    # inferred 0DTE (no horizon given) is caught too
    assert _reasons(ny(2026, 11, 20, 15, 31), "manual", today, None) == [Reason.OUTSIDE_WINDOW]
    # and moc_imbalance buying a 0DTE inside its own window is still refused
    assert _reasons(ny(2026, 11, 20, 15, 35), "moc_imbalance", today, "0dte") == [Reason.OUTSIDE_WINDOW]
    # a 1DTE at 15:35 is fine
    assert _reasons(ny(2026, 11, 20, 15, 35), "manual", date(2026, 11, 23), "1dte") == []


def test_window_details_are_combined() -> None:
    now = ny(2026, 11, 20, 16, 30)
    d = check_signal_dict(_sig(now, "gamma_0dte", SWING, "swing"), None, LIMITS, now)
    assert d.reasons == [Reason.OUTSIDE_WINDOW]
    text = d.details[Reason.OUTSIDE_WINDOW]
    assert "regular session" in text and "gamma_0dte window" in text


# ----------------------------------------------------------------------------- overrides
def test_state_session_override() -> None:
    now = ny(2026, 11, 26, 11, 0)  # holiday per XNYS, but the state says open (e.g. tests, drills)
    st = state(session_open=ny(2026, 11, 26, 9, 30).isoformat(),
               session_close=ny(2026, 11, 26, 12, 0).isoformat())
    assert _reasons(now, "directional_swing", SWING, "swing", st=st) == []
    later = ny(2026, 11, 26, 12, 0)
    assert _reasons(later, "directional_swing", SWING, "swing", st=st) == [Reason.OUTSIDE_WINDOW]


def test_half_given_session_override_is_bad_input() -> None:
    now = ny(2026, 11, 20, 11, 0)
    st = state(session_open=ny(2026, 11, 20, 9, 30).isoformat())
    assert _reasons(now, "directional_swing", SWING, "swing", st=st) == [Reason.BAD_INPUT]


def test_windows_from_config() -> None:
    lim = RiskLimits.from_config({"strategy_windows": {"directional_swing": "10:00-11:00",
                                                       "gamma_0dte": None},
                                  "no_new_0dte_after": "15:00"})
    now = ny(2026, 11, 20, 11, 30)
    d = check_signal_dict(_sig(now, "directional_swing", SWING, "swing"), None, lim, now)
    assert d.reasons == [Reason.OUTSIDE_WINDOW]
    assert lim.window_for("gamma_0dte") is None
    now = ny(2026, 11, 20, 15, 10)
    d = check_signal_dict(_sig(now, "gamma_0dte", date(2026, 11, 20), "0dte"), None, lim, now)
    assert d.reasons == [Reason.OUTSIDE_WINDOW]
