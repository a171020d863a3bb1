"""Rolling flow windows: running sums equal a plain recomputation over the same events."""

from __future__ import annotations

import random

import numpy as np
import pytest

from core.analytics.features import FlowWindow
from core.bus.events import FlowEvent


def _event(i: int, ts: int, rng: random.Random) -> FlowEvent:
    alerts = [{"expiry": "2026-11-20", "strike": 590.0, "right": rng.choice("CP"), "side": rng.choice(["ask", "bid", "mid"]),
               "premium": rng.uniform(1e4, 1e6), "bullish": rng.random() < 0.5} for _ in range(rng.randint(0, 2))]
    return FlowEvent(id=str(i), ts=ts, correlation_id="c", symbol="SPY", buy_volume=rng.randint(0, 5000),
                     sell_volume=rng.randint(0, 5000), sweeps=rng.randint(0, 3), net_call_premium=rng.uniform(-1e5, 1e5),
                     net_put_premium=rng.uniform(-1e5, 1e5), dark_buy_volume=rng.randint(0, 900),
                     dark_sell_volume=rng.randint(0, 900), alerts=alerts)


class _NoChain:
    expiry = np.array([], dtype="datetime64[D]")
    strike = np.array([])
    is_call = np.array([], dtype=bool)


class _NoExpo:
    delta = np.array([])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_running_sums_match_a_recount(seed):
    rng = random.Random(seed)
    w = FlowWindow()
    events = []
    ts = 0
    for i in range(2000):
        ts += rng.randint(1, 9) * 1000
        ev = _event(i, ts, rng)
        events.append(ev)
        w.add(ev)
        if i % 97 == 0:
            got = w.features(ts, _NoChain(), _NoExpo())
            recent = [e for e in events if e.ts > ts - 300_000]
            window = [e for e in events if e.ts > ts - 1_800_000]
            buy, sell = sum(e.buy_volume for e in recent), sum(e.sell_volume for e in recent)
            assert got["flow_buy_ratio_5m"] == pytest.approx(buy / (buy + sell))
            assert got["net_premium_5m"] == pytest.approx(sum(e.net_call_premium - e.net_put_premium for e in recent),
                                                          abs=1e-3)
            assert got["sweeps_5m"] == sum(e.sweeps for e in recent)
            db, ds = sum(e.dark_buy_volume for e in window), sum(e.dark_sell_volume for e in window)
            assert got["dark_pool_buy_ratio_30m"] == pytest.approx(db / (db + ds))
            live = [a for e in window for a in e.alerts if a["side"] != "mid"]
            assert got["alerts_bullish_30m"] == sum(a["bullish"] for a in live)
            assert got["alerts_bearish_30m"] == sum(not a["bullish"] for a in live)


class _Chain:
    """Three contracts with known deltas; alerts on other strikes take the 0.5 default."""
    expiry = np.array(["2026-11-20"] * 3, dtype="datetime64[D]")
    strike = np.array([585.0, 590.0, 595.0])
    is_call = np.array([True, False, True])


class _Expo:
    delta = np.array([0.61, -0.48, 0.22])


@pytest.mark.parametrize("seed", [4, 5])
def test_greek_flow_per_contract_sums_match_a_recount(seed):
    """greek_flow_30m is kept per contract (O(contracts alerted) to read, whatever the alert count) and
    equals sign x premium x |delta| summed over every live alert, delta from the current chain."""
    rng = random.Random(seed)
    deltas = {("2026-11-20", 585.0, True): 0.61, ("2026-11-20", 590.0, False): 0.48, ("2026-11-20", 595.0, True): 0.22}
    w = FlowWindow()
    live: list[tuple[int, dict]] = []
    ts = 0
    for i in range(3000):
        ts += rng.randint(1, 9) * 1000
        alerts = [{"expiry": "2026-11-20", "strike": rng.choice([585.0, 590.0, 595.0, 600.0]),
                   "right": rng.choice("CP"), "side": rng.choice(["ask", "bid", "mid"]),
                   "premium": rng.uniform(1e3, 1e6), "bullish": rng.random() < 0.5} for _ in range(rng.randint(0, 3))]
        ev = _event(i, ts, rng).model_copy(update={"alerts": alerts})
        w.add(ev)
        live.extend((ts, a) for a in alerts if a["side"] != "mid")
        if i % 89 == 0:
            got = w.features(ts, _Chain(), _Expo())
            window = [a for t, a in live if t > ts - 1_800_000]
            want = sum((1.0 if a["bullish"] else -1.0) * a["premium"]
                       * deltas.get((a["expiry"], a["strike"], a["right"] == "C"), 0.5) for a in window)
            assert got["greek_flow_30m"] == pytest.approx(want, rel=1e-9, abs=1e-3)
            assert got["alerts_bullish_30m"] == sum(a["bullish"] for a in window)
    assert len(w.by_contract) <= 8  # bounded by the contracts alerted, not by the 30 minutes of alerts
