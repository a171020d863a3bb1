"""year_fraction: minutes to 16:00 New York on the expiry date, 365-day year."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.analytics.expiry_time import MINUTES_PER_YEAR, is_expired, minutes_to_close
from core.analytics.greeks import year_fraction

NY = ZoneInfo("America/New_York")


def test_zero_dte_counts_minutes_to_the_close() -> None:
    asof = datetime(2025, 1, 10, 10, 0, tzinfo=NY)  # 6 hours before the close
    T = year_fraction(asof, np.array(["2025-01-10"], dtype="datetime64[D]"))
    assert T[0] == pytest.approx(360.0 / MINUTES_PER_YEAR, rel=1e-12)
    assert MINUTES_PER_YEAR == 365 * 24 * 60


def test_any_timezone_for_asof() -> None:
    ny = datetime(2025, 1, 10, 15, 59, tzinfo=NY)
    utc = ny.astimezone(UTC)
    tokyo = ny.astimezone(ZoneInfo("Asia/Tokyo"))
    exp = np.array(["2025-01-10", "2025-01-17"], dtype="datetime64[D]")
    a, b, c = (year_fraction(t, exp) for t in (ny, utc, tokyo))
    np.testing.assert_allclose(a, b, rtol=0, atol=0)
    np.testing.assert_allclose(a, c, rtol=0, atol=0)
    assert a[1] == pytest.approx((7 * 24 * 60 + 1) / MINUTES_PER_YEAR, rel=1e-12)


def test_floor_at_min_minutes_near_and_after_close() -> None:
    exp = np.array(["2025-01-10"], dtype="datetime64[D]")
    assert year_fraction(datetime(2025, 1, 10, 15, 58, tzinfo=NY), exp)[0] == pytest.approx(5 / MINUTES_PER_YEAR)
    assert year_fraction(datetime(2025, 1, 10, 17, 0, tzinfo=NY), exp)[0] == pytest.approx(5 / MINUTES_PER_YEAR)
    assert year_fraction(datetime(2025, 1, 10, 15, 58, tzinfo=NY), exp, min_minutes=1)[0] == pytest.approx(
        2 / MINUTES_PER_YEAR)


def test_dst_is_respected() -> None:
    # 2025-03-09 is the spring-forward Sunday: Friday 16:00 EST -> Monday 16:00 EDT is 71 hours.
    asof = datetime(2025, 3, 7, 16, 0, tzinfo=NY)
    m = minutes_to_close(asof, np.array(["2025-03-10"], dtype="datetime64[D]"))
    assert m[0] == pytest.approx(71 * 60)
    # the close is 20:00 UTC in summer and 21:00 UTC in winter
    summer = datetime(2025, 7, 1, 19, 0, tzinfo=UTC)
    winter = datetime(2025, 12, 1, 20, 0, tzinfo=UTC)
    assert minutes_to_close(summer, np.array(["2025-07-01"], dtype="datetime64[D]"))[0] == pytest.approx(60)
    assert minutes_to_close(winter, np.array(["2025-12-01"], dtype="datetime64[D]"))[0] == pytest.approx(60)


def test_shape_nat_and_naive_asof() -> None:
    asof = datetime(2025, 1, 10, 10, 0, tzinfo=NY)
    exp = np.array([["2025-01-10", "NaT"], ["2025-01-17", "2025-01-10"]], dtype="datetime64[D]")
    T = year_fraction(asof, exp)
    assert T.shape == (2, 2)
    assert np.isnan(T[0, 1]) and T[0, 0] == T[1, 1]
    assert year_fraction(asof, np.zeros(0, dtype="datetime64[D]")).shape == (0,)
    with pytest.raises(ValueError):
        year_fraction(datetime(2025, 1, 10, 10, 0), exp)


def test_is_expired_boundaries() -> None:
    exp = np.array(["2025-01-09", "2025-01-10", "2025-01-13"], dtype="datetime64[D]")
    before_close = datetime(2025, 1, 10, 15, 59, tzinfo=NY)
    at_close = before_close + timedelta(minutes=1)
    assert is_expired(before_close, exp).tolist() == [True, False, False]
    assert is_expired(at_close, exp).tolist() == [True, True, False]
