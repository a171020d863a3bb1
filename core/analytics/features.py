"""Strategy features derived from one chain snapshot and rolling flow.

Keys (missing = not computable now; strategies treat that as "no signal"):

- ``atm_iv_front``, ``atm_iv_30d``: ATM implied vol of the front expiry / the expiry
  nearest 30 calendar days (mean of the call and put at the strike nearest spot).
- ``rr25_1dte``: 25-delta risk reversal (call IV - put IV) of the 1DTE expiry, else
  the nearest expiry that is not today's.
- ``iv_rank``: ``atm_iv_30d`` within the 52-week IV range of the reference data, 0-100.
- ``days_to_earnings``, ``insider_net_30d``: from reference data (stocks only).
- ``flow_buy_ratio_5m``: aggressive buy share of tape volume, last 5 minutes.
- ``net_premium_5m`` / ``net_premium_day``: net call minus net put premium ($).
- ``greek_flow_30m``: sum over option-flow alerts in the last 30 minutes of
  sign(bullish) x premium x |delta| (delta from the current chain).
- ``sweeps_5m``, ``dark_pool_buy_ratio_30m``, ``alerts_bullish_30m``, ``alerts_bearish_30m``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from core.analytics.exposure import ExposureResult
from core.bus.events import FlowEvent
from core.market.chain import OptionChain


def _atm_iv(chain: OptionChain, mask: np.ndarray) -> float | None:
    idx = np.nonzero(mask)[0]
    if idx.size == 0:
        return None
    strikes = chain.strike[idx]
    k = strikes[np.argmin(np.abs(strikes - chain.spot))]
    sel = idx[strikes == k]
    iv = chain.iv[sel]
    iv = iv[np.isfinite(iv) & (iv > 0)]
    return float(iv.mean()) if iv.size else None


def _rr25(chain: OptionChain, delta: np.ndarray, mask: np.ndarray) -> float | None:
    calls = np.nonzero(mask & chain.is_call)[0]
    puts = np.nonzero(mask & ~chain.is_call)[0]
    if calls.size == 0 or puts.size == 0:
        return None
    c = calls[np.argmin(np.abs(delta[calls] - 0.25))]
    p = puts[np.argmin(np.abs(delta[puts] + 0.25))]
    if abs(delta[c] - 0.25) > 0.12 or abs(delta[p] + 0.25) > 0.12:
        return None
    return float(chain.iv[c] - chain.iv[p])


def chain_features(chain: OptionChain, expo: ExposureResult, now: datetime, ref: dict[str, Any],
                   today: date) -> dict[str, float]:
    out: dict[str, float] = {}
    exp_days = (chain.expiry - np.datetime64(today, "D")).astype(int)
    uniq = np.unique(exp_days)
    if uniq.size == 0:
        return out
    front = int(uniq.min())
    v = _atm_iv(chain, exp_days == front)
    if v is not None:
        out["atm_iv_front"] = v
    d30 = int(uniq[np.argmin(np.abs(uniq - 30))])
    v30 = _atm_iv(chain, exp_days == d30)
    if v30 is not None:
        out["atm_iv_30d"] = v30
    non_today = uniq[uniq >= 1]
    if non_today.size:
        rr = _rr25(chain, expo.delta, exp_days == int(non_today.min()))
        if rr is not None:
            out["rr25_1dte"] = rr
    lo, hi = ref.get("iv_52w_low"), ref.get("iv_52w_high")
    if v30 is not None and lo is not None and hi is not None and hi > lo:
        out["iv_rank"] = float(np.clip((v30 - lo) / (hi - lo) * 100.0, 0.0, 100.0))
    if ref.get("next_earnings"):
        out["days_to_earnings"] = float((date.fromisoformat(ref["next_earnings"]) - today).days)
    if ref.get("insider_net_shares_30d") is not None:
        out["insider_net_30d"] = float(ref["insider_net_shares_30d"])
    return out


@dataclass
class FlowWindow:
    """Rolling flow of one symbol (kept 30 minutes)."""

    horizon_ms: int = 30 * 60_000
    events: deque[FlowEvent] = field(default_factory=deque)
    net_premium_day: float = 0.0

    def add(self, ev: FlowEvent) -> None:
        self.events.append(ev)
        self.net_premium_day += ev.net_call_premium - ev.net_put_premium
        while self.events and self.events[0].ts < ev.ts - self.horizon_ms:
            self.events.popleft()

    def features(self, now_ms: int, chain: OptionChain, expo: ExposureResult) -> dict[str, float]:
        out: dict[str, float] = {"net_premium_day": self.net_premium_day}
        recent = [e for e in self.events if e.ts > now_ms - 5 * 60_000]
        window = [e for e in self.events if e.ts > now_ms - self.horizon_ms]
        buy = sum(e.buy_volume for e in recent)
        sell = sum(e.sell_volume for e in recent)
        if buy + sell > 0:
            out["flow_buy_ratio_5m"] = buy / (buy + sell)
        out["net_premium_5m"] = sum(e.net_call_premium - e.net_put_premium for e in recent)
        out["sweeps_5m"] = float(sum(e.sweeps for e in recent))
        dbuy = sum(e.dark_buy_volume for e in window)
        dsell = sum(e.dark_sell_volume for e in window)
        if dbuy + dsell > 0:
            out["dark_pool_buy_ratio_30m"] = dbuy / (dbuy + dsell)
        bull = bear = 0
        greek = 0.0
        if window:
            keys = {(str(d), float(k), bool(c)): i for i, (d, k, c) in enumerate(
                zip(chain.expiry.astype("datetime64[D]").astype(str), chain.strike.tolist(),
                    chain.is_call.tolist(), strict=True))}
            for e in window:
                for a in e.alerts:
                    if a.get("side") == "mid":
                        continue
                    bullish = bool(a.get("bullish"))
                    bull += bullish
                    bear += not bullish
                    i = keys.get((str(a.get("expiry")), float(a.get("strike", 0)), a.get("right") == "C"))
                    d = abs(float(expo.delta[i])) if i is not None else 0.5
                    greek += (1.0 if bullish else -1.0) * float(a.get("premium", 0.0)) * d
        out["alerts_bullish_30m"] = float(bull)
        out["alerts_bearish_30m"] = float(bear)
        out["greek_flow_30m"] = greek
        return out
