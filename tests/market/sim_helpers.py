"""Helpers for the market-simulator tests (no ``__init__.py`` in this folder on purpose:
pytest puts it on sys.path, and a ``market`` package under tests/ is not wanted)."""

from __future__ import annotations

from datetime import date, datetime

from core.market.sim import NY, MarketSimulator

DAY = date(2025, 12, 2)          # a regular Tuesday session
HALF_DAY = date(2025, 11, 28)    # day after Thanksgiving: 13:00 close


def at(h: int, m: int = 0, s: int = 0, day: date = DAY) -> datetime:
    """An aware America/New_York time on ``day``."""
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=NY)


def make_sim(seed: int = 1, symbols: list[str] | None = None, day: date = DAY, **kw) -> MarketSimulator:
    """A 08:30-16:15 NY session."""
    return MarketSimulator(seed, at(8, 30, day=day), at(16, 15, day=day), symbols=symbols, **kw)
