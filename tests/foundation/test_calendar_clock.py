"""NYSE calendar and clocks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from core.clock import NY, LiveClock, NyseCalendar, SimClock


def test_thanksgiving_closed_and_friday_early_close():
    cal = NyseCalendar()
    assert not cal.is_session(date(2026, 11, 26))
    s = cal.session(date(2026, 11, 27))
    assert s.close == datetime(2026, 11, 27, 13, 0, tzinfo=NY) and s.early_close
    assert cal.session(date(2026, 11, 25)).close.time() == time(16, 0)
    with pytest.raises(ValueError, match="not an NYSE session"):
        cal.session(date(2026, 11, 26))


def test_sessions_open_at_0930_new_york_across_dst():
    cal = NyseCalendar()
    for d in (date(2026, 3, 6), date(2026, 3, 9), date(2026, 11, 2)):
        s = cal.session(d)
        assert s.open.astimezone(NY).time() == time(9, 30)
        assert s.open.utcoffset() == s.open.astimezone(NY).utcoffset()


def test_most_recent_and_next_session():
    cal = NyseCalendar()
    assert cal.most_recent_session(date(2026, 11, 22)) == date(2026, 11, 20)  # Sunday -> Friday
    assert cal.most_recent_session(date(2026, 11, 26)) == date(2026, 11, 25)  # holiday -> Wednesday
    assert cal.next_session(date(2026, 11, 25)) == date(2026, 11, 27)
    assert cal.is_open(datetime(2026, 11, 27, 12, 59, tzinfo=NY))
    assert not cal.is_open(datetime(2026, 11, 27, 13, 0, tzinfo=NY))


def test_sim_clock_moves_only_forward():
    c = SimClock(datetime(2026, 11, 20, 14, 30, tzinfo=UTC))
    c.advance(60)
    assert c.now() == datetime(2026, 11, 20, 14, 31, tzinfo=UTC) and c.simulated
    with pytest.raises(ValueError):
        c.set(datetime(2026, 11, 20, 14, 0, tzinfo=UTC))
    with pytest.raises(ValueError):
        SimClock(datetime(2026, 11, 20, 14, 30))


def test_live_clock_is_aware_utc():
    now = LiveClock().now()
    assert now.tzinfo is not None and now.utcoffset().total_seconds() == 0
