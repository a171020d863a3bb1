"""Reference data a vendor would supply beside quotes: 52-week IV range, next
earnings date, insider activity. In the simulator these are derived
deterministically from (seed, symbol, day) so strategies can be exercised on
them; a vendor adapter fills the same fields from its REST payloads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np


@dataclass(frozen=True, slots=True)
class Reference:
    symbol: str
    iv_52w_low: float
    iv_52w_high: float
    next_earnings: date | None
    insider_net_shares_30d: float  # + buying, - selling

    def iv_rank(self, atm_iv: float) -> float:
        span = self.iv_52w_high - self.iv_52w_low
        if span <= 0 or not np.isfinite(atm_iv):
            return float("nan")
        return float(np.clip((atm_iv - self.iv_52w_low) / span * 100.0, 0.0, 100.0))


def _rng(seed: int, symbol: str, day: date) -> np.random.Generator:
    h = hashlib.sha256(f"ref:{seed}:{symbol}:{day.isoformat()}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "big"))


def simulated_reference(seed: int, symbol: str, day: date, iv_atm: float, is_stock: bool) -> Reference:
    rng = _rng(seed, symbol, day)
    low = iv_atm * float(rng.uniform(0.65, 0.85))
    high = iv_atm * float(rng.uniform(1.5, 2.4))
    earnings = day + timedelta(days=int(rng.integers(6, 85))) if is_stock else None
    insider = float(rng.normal(0.0, 1.0) * 50_000) if is_stock else 0.0
    return Reference(symbol, round(low, 4), round(high, 4), earnings, round(insider, 0))
