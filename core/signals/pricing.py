"""Option price ticks and the exit plan of a long option (limit, stop, targets).

Tick rule (US equity options, penny pilot style): ``0.01`` below 3.00, ``0.05`` at or
above 3.00. The entry limit is the mid rounded to the nearest tick, kept inside the
quote; the stop is a fraction of the limit rounded *down* to a tick (and always
below the limit); targets are ``limit x (1 + pct)`` rounded *up* to a tick (always
above the limit and strictly increasing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ExitPlan", "exit_plan", "round_down", "round_nearest", "round_up", "tick_for"]

TICK_BREAK = 3.00
_EPS = 1e-9


def tick_for(price: float) -> float:
    """Minimum price increment at ``price``."""
    return 0.01 if price < TICK_BREAK - _EPS else 0.05


def _to_tick(price: float, mode: str) -> float:
    t = tick_for(price)
    x = price / t
    if mode == "down":
        n = math.floor(x + _EPS)
    elif mode == "up":
        n = math.ceil(x - _EPS)
    else:
        n = math.floor(x + 0.5 + _EPS)
    # crossing the 3.00 break always lands on 3.00, which is on both grids
    return round(n * t, 2)


def round_nearest(price: float) -> float:
    return _to_tick(price, "nearest")


def round_down(price: float) -> float:
    return _to_tick(price, "down")


def round_up(price: float) -> float:
    return _to_tick(price, "up")


@dataclass(frozen=True, slots=True)
class ExitPlan:
    limit: float
    stop: float
    targets: tuple[float, ...]


def exit_plan(bid: float, ask: float, stop_frac: float, target_pcts: Sequence[float]) -> ExitPlan | None:
    """Limit at the (tick-rounded) mid, stop at ``stop_frac x limit``, targets at ``+pct``.

    Returns None when the quote cannot carry a valid plan (non-finite, crossed, a stop
    that would round to zero or not below the limit).
    """
    if not (math.isfinite(bid) and math.isfinite(ask)) or bid < 0 or ask <= 0 or bid > ask:
        return None
    if not 0.0 < stop_frac < 1.0 or not target_pcts or any(p <= 0 for p in target_pcts):
        return None
    limit = round_nearest((bid + ask) / 2.0)
    if limit < bid - _EPS or limit > ask + _EPS:  # off-grid quote: stay inside it
        limit = round(min(max(limit, bid), ask), 2)
    if limit <= 0:
        return None
    stop = round_down(limit * stop_frac)
    if stop <= 0 or stop >= limit - _EPS:
        return None
    targets: list[float] = []
    for pct in sorted(target_pcts):
        t = round_up(limit * (1.0 + pct))
        if t <= limit + _EPS or (targets and t <= targets[-1] + _EPS):
            t = round_up((targets[-1] if targets else limit) + tick_for(targets[-1] if targets else limit))
        targets.append(t)
    return ExitPlan(limit=limit, stop=stop, targets=tuple(targets))
