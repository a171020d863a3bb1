"""Signal/state builders for the risk tests: one clean baseline, tweaked per test."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from typing import Any

from core.domain.signal import Signal
from core.risk import RiskState
from core.risk.sessions import NY

# Friday 2026-11-20, 11:00 New York: a normal full session.
NOW = datetime(2026, 11, 20, 11, 0, tzinfo=NY)
SWING_EXPIRY = date(2026, 12, 18)


def ny(y: int, m: int, d: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=NY)


def base_dict(now: datetime = NOW, **over: Any) -> dict[str, Any]:
    """A clean SIGNAL.json-style dict that passes every rule at ``now`` with a default state.

    premium = 2 x 5.00 x 100 = $1,000 = 1% of the default $100k account.
    """
    d: dict[str, Any] = {
        "id": "sig-1",
        "ts": (now - timedelta(seconds=1)).isoformat(),
        "strategy": "directional_swing",
        "symbol": "SPY",
        "instrument": {"type": "OPT", "expiry": SWING_EXPIRY.isoformat(), "strike": 590.0,
                       "right": "C", "multiplier": 100},
        "side": "BUY",
        "qty": 2,
        "limit": 5.0,
        "quote": {"bid": 4.95, "ask": 5.05, "ts": (now - timedelta(seconds=2)).isoformat()},
        "stop": 2.5,
        "targets": [8.0, 10.0],
        "confidence": 70,
        "horizon": "swing",
        "direction": "bullish",
    }
    for k, v in over.items():
        d[k] = v
    return d


def with_path(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Deep-copied ``d`` with ``a.b.c`` set to ``value`` (``value is DELETE`` removes it)."""
    out = copy.deepcopy(d)
    cur = out
    keys = path.split(".")
    for k in keys[:-1]:
        cur = cur[k]
    if value is DELETE:
        cur.pop(keys[-1], None)
    else:
        cur[keys[-1]] = value
    return out


DELETE = object()


def base_signal(now: datetime = NOW, **over: Any) -> Signal:
    return Signal.model_validate(base_dict(now, **over))


def positions(calls: int = 0, puts: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(calls):
        out.append({"symbol": "QQQ", "strategy": "directional_swing", "right": "C", "qty": 1,
                    "entry_price": 3.0, "expiry": "2026-12-18", "strike": 500 + i})
    for i in range(puts):
        out.append({"symbol": "IWM", "strategy": "directional_swing", "right": "P", "qty": 1,
                    "entry_price": 2.0, "expiry": "2026-12-18", "strike": 200 + i})
    return out


def state(**kw: Any) -> RiskState:
    return RiskState.model_validate(kw)
