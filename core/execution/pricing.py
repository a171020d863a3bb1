"""Price helpers shared by the paper broker and the exit plan (pure, no I/O)."""

from __future__ import annotations

import math
from datetime import datetime, time
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
DEFAULT_TICK = 0.01

RoundMode = Literal["nearest", "down", "up"]
_MODES = {"nearest": ROUND_HALF_UP, "down": ROUND_FLOOR, "up": ROUND_CEILING}


def to_tick(x: float, tick: float = DEFAULT_TICK, mode: RoundMode = "nearest") -> float:
    """Round ``x`` to a multiple of ``tick``. ``x`` is first cleaned to 9 decimals so that
    float noise (``0.1 + 0.2``) never pushes a floor/ceiling across a tick."""
    if not math.isfinite(x):
        raise ValueError(f"price is not finite: {x!r}")
    d = Decimal(repr(round(x, 9)))
    t = Decimal(repr(tick))
    steps = (d / t).quantize(Decimal(1), rounding=_MODES[mode])
    return float(steps * t)


def money(x: float) -> float:
    """Dollars rounded to the cent (half up)."""
    return float(Decimal(repr(round(x, 9))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def is_finite_positive(*xs: float) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in xs)


def ny(dt: datetime) -> datetime:
    """The same instant on the America/New_York wall clock (``dt`` must be aware)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: pass timezone-aware times")
    return dt.astimezone(NY)


def ny_at(d, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=NY)
