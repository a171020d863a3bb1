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


class _Window:
    """Events newer than ``span_ms`` with running sums, so reading them is O(1)."""

    def __init__(self, span_ms: int, fields: tuple[str, ...]) -> None:
        self.span_ms = span_ms
        self.fields = fields
        self.events: deque[FlowEvent] = deque()
        self.sums = dict.fromkeys(fields, 0.0)

    def add(self, ev: FlowEvent) -> None:
        self.events.append(ev)
        for f in self.fields:
            self.sums[f] += float(getattr(ev, f))

    def evict(self, now_ms: int) -> None:
        cutoff = now_ms - self.span_ms
        while self.events and self.events[0].ts <= cutoff:
            old = self.events.popleft()
            for f in self.fields:
                self.sums[f] -= float(getattr(old, f))
        if not self.events:  # no drift left over from the subtractions
            self.sums = dict.fromkeys(self.fields, 0.0)


class FlowWindow:
    """Rolling flow of one symbol: a 5-minute and a 30-minute window with running sums
    (the cost of a chain refresh does not grow with the flow rate)."""

    def __init__(self) -> None:
        self.recent = _Window(5 * 60_000, ("buy_volume", "sell_volume", "net_call_premium", "net_put_premium",
                                           "sweeps"))
        self.window = _Window(30 * 60_000, ("dark_buy_volume", "dark_sell_volume"))
        # alerts of the last 30 minutes, kept as (ts, contract, signed premium); their sums per contract
        # (signed premium, bullish and bearish counts) so a read costs the contracts alerted, not the alerts
        self.alerts: deque[tuple[int, tuple[str, float, bool], float, bool]] = deque()
        self.by_contract: dict[tuple[str, float, bool], list[float]] = {}
        self.bull = self.bear = 0
        self.net_premium_day = 0.0

    def add(self, ev: FlowEvent) -> None:
        self.recent.add(ev)
        self.window.add(ev)
        for a in ev.alerts:
            if a.get("side") != "mid":
                self._add_alert(ev.ts, a)
        self.net_premium_day += ev.net_call_premium - ev.net_put_premium
        self._evict(ev.ts)

    def _evict(self, now_ms: int) -> None:
        self.recent.evict(now_ms)
        self.window.evict(now_ms)
        cutoff = now_ms - self.window.span_ms
        while self.alerts and self.alerts[0][0] <= cutoff:
            _ts, key, signed, bullish = self.alerts.popleft()
            acc = self.by_contract[key]
            acc[1] -= 1
            if acc[1] == 0:  # the contract's last alert left: drop it, no drift carried over
                del self.by_contract[key]
            else:
                acc[0] -= signed
            self.bull -= bullish
            self.bear -= not bullish

    def _add_alert(self, ts: int, a: dict) -> None:
        bullish = bool(a.get("bullish"))
        key = (str(a.get("expiry")), float(a.get("strike", 0)), a.get("right") == "C")
        signed = (1.0 if bullish else -1.0) * float(a.get("premium", 0.0))
        self.alerts.append((ts, key, signed, bullish))
        acc = self.by_contract.setdefault(key, [0.0, 0])
        acc[0] += signed
        acc[1] += 1
        self.bull += bullish
        self.bear += not bullish

    def features(self, now_ms: int, chain: OptionChain, expo: ExposureResult) -> dict[str, float]:
        self._evict(now_ms)
        r, w = self.recent.sums, self.window.sums
        out: dict[str, float] = {"net_premium_day": self.net_premium_day}
        if r["buy_volume"] + r["sell_volume"] > 0:
            out["flow_buy_ratio_5m"] = r["buy_volume"] / (r["buy_volume"] + r["sell_volume"])
        out["net_premium_5m"] = r["net_call_premium"] - r["net_put_premium"]
        out["sweeps_5m"] = r["sweeps"]
        if w["dark_buy_volume"] + w["dark_sell_volume"] > 0:
            out["dark_pool_buy_ratio_30m"] = w["dark_buy_volume"] / (w["dark_buy_volume"] + w["dark_sell_volume"])
        greek = 0.0
        if self.by_contract:
            index = _row_index(chain)
            for key, (signed, _n) in self.by_contract.items():
                i = index.get(key)
                greek += signed * (abs(float(expo.delta[i])) if i is not None else 0.5)
        out["alerts_bullish_30m"] = float(self.bull)
        out["alerts_bearish_30m"] = float(self.bear)
        out["greek_flow_30m"] = greek
        return out


def _row_index(chain: OptionChain) -> dict[tuple[str, float, bool], int]:
    return {(d, k, c): i for i, (d, k, c) in enumerate(zip(
        chain.expiry.astype("datetime64[D]").astype(str).tolist(), chain.strike.tolist(), chain.is_call.tolist(),
        strict=True))}
