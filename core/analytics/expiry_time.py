"""Time to expiry for US-listed options, measured to the 16:00 New York close.

Conventions
-----------
* Every contract expires at **16:00 America/New_York** on its expiry date (DST is
  handled by ``zoneinfo``). Early-close days (13:00 half sessions) are not modelled.
* The clock runs continuously (calendar time, nights and weekends included): a
  year is ``365`` days of ``24 * 60`` minutes, i.e. ``MINUTES_PER_YEAR = 525_600``.
* A 0DTE contract's time is the time left until today's 16:00 close.
* The year fraction is floored at ``min_minutes`` (default 5) so that greeks stay
  finite at and after the close; filter expired rows first (``validate.clean_chain``).
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

NEW_YORK = ZoneInfo("America/New_York")
CLOSE_HOUR = 16
MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0


def _require_aware(asof: datetime) -> None:
    if asof.tzinfo is None or asof.tzinfo.utcoffset(asof) is None:
        raise ValueError("asof must be a timezone-aware datetime")


def expiry_close_timestamp(expiry: np.ndarray) -> np.ndarray:
    """POSIX timestamps (seconds, float64) of 16:00 New York on each expiry date.

    ``expiry`` is anything convertible to ``datetime64[D]``; NaT maps to NaN.
    Each distinct date is converted once, so the cost is O(n log n) in numpy plus
    one ``zoneinfo`` lookup per distinct expiry.
    """
    exp = np.asarray(expiry, dtype="datetime64[D]")
    flat = exp.ravel()
    if flat.size == 0:
        return np.zeros(exp.shape, dtype=np.float64)
    uniq, inverse = np.unique(flat, return_inverse=True)
    closes = np.empty(uniq.shape[0], dtype=np.float64)
    for i, day in enumerate(uniq.tolist()):  # datetime.date, or None for NaT
        closes[i] = np.nan if day is None else _close_epoch(day)
    return closes[inverse].reshape(exp.shape)


@lru_cache(maxsize=4096)
def _close_epoch(day: date) -> float:
    """16:00 New York on ``day`` as a POSIX timestamp (a pure function of the date: cached)."""
    return datetime(day.year, day.month, day.day, CLOSE_HOUR, 0, tzinfo=NEW_YORK).timestamp()


def minutes_to_close(asof: datetime, expiry: np.ndarray) -> np.ndarray:
    """Signed minutes (float64) from ``asof`` to each expiry's 16:00 NY close.

    Negative once the contract has expired; NaN for NaT expiries.
    """
    _require_aware(asof)
    return (expiry_close_timestamp(expiry) - asof.timestamp()) / 60.0


def year_fraction(asof: datetime, expiry: np.ndarray, min_minutes: float = 5.0) -> np.ndarray:
    """Year fraction (365-day year) from ``asof`` to 16:00 New York on ``expiry``.

    Args:
        asof: timezone-aware valuation time (any zone; converted exactly).
        expiry: expiry dates, ``datetime64[D]`` (or convertible), any shape.
        min_minutes: floor in minutes applied to the time left, so expired or
            about-to-expire contracts get a small positive ``T`` instead of 0/negative.

    Returns:
        float64 array shaped like ``expiry``: ``max(minutes_left, min_minutes) / 525600``.
        NaT expiries give NaN.

    Raises:
        ValueError: if ``asof`` is naive.
    """
    minutes = minutes_to_close(asof, expiry)
    return np.maximum(minutes, float(min_minutes)) / MINUTES_PER_YEAR


def is_expired(asof: datetime, expiry: np.ndarray) -> np.ndarray:
    """True where the contract can no longer trade at ``asof``.

    That is: the expiry date is before ``asof``'s New York date, or it is today
    and ``asof`` is at or after 16:00 New York. NaT counts as not expired (it is
    rejected as non-finite elsewhere).
    """
    minutes = minutes_to_close(asof, expiry)
    with np.errstate(invalid="ignore"):
        return minutes <= 0.0
