"""``bench/pipeline.py --flow-alerts N``: what the rolling-flow features cost per chain refresh as the
30-minute window fills with option-flow alerts.

A ``FlowWindow`` is filled with N live alerts spread over the last 30 minutes, on the strikes and
expiries of a real simulator SPY chain (seed 7) plus some the chain does not list; then
``FlowWindow.features`` (what the analytics service calls on every chain refresh) is timed, median of
``reps`` calls, with process CPU beside wall time. Baseline in the same run: the same read with 1,000
alerts; the ratio is the growth. Adding an alert is timed too (per alert, amortized, eviction
included).
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import datetime, timedelta

from core.analytics.chain_analysis import AnalysisSettings, analyze_chain
from core.analytics.features import FlowWindow
from core.bus.events import FlowEvent
from core.clock.calendar import NyseCalendar
from core.config import load_settings
from core.market.sim import MarketSimulator


def _material(day_open: datetime) -> tuple[object, object, list[tuple[str, float, str]]]:
    sim = MarketSimulator(seed=7, session_open=day_open, session_close=day_open + timedelta(hours=6, minutes=30),
                          symbols=["SPY"])
    now = day_open + timedelta(hours=1)
    sim.advance(now)
    chain = sim.chain("SPY")
    an = analyze_chain(chain, now, AnalysisSettings.from_settings(load_settings()))
    exp = chain.expiry.astype("datetime64[D]").astype(str).tolist()
    contracts = [(e, float(k), "C" if c else "P") for e, k, c in zip(exp, chain.strike.tolist(), chain.is_call.tolist(),
                                                                    strict=True)]
    contracts += [("2027-06-18", 900.0 + i, "C") for i in range(20)]  # alerts on strikes the chain does not list
    return an.clean, an.clean_exposure, contracts


def _filled(n: int, contracts: list[tuple[str, float, str]], now_ms: int) -> tuple[FlowWindow, float]:
    rng = random.Random(n)
    w = FlowWindow()
    span = 30 * 60_000 - 1000
    per_event = 5
    t0 = time.perf_counter()
    for i in range(0, n, per_event):
        ts = now_ms - span + int(span * i / n)
        alerts = [{"expiry": e, "strike": k, "right": r, "side": "ask", "premium": rng.uniform(1e4, 1e6),
                   "bullish": rng.random() < 0.5} for e, k, r in rng.sample(contracts, per_event)]
        w.add(FlowEvent(id=str(i), ts=ts, correlation_id="c", symbol="SPY", alerts=alerts))
    return w, (time.perf_counter() - t0) / max(1, n) * 1e6


def _read(w: FlowWindow, now_ms: int, chain: object, expo: object, reps: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        w.features(now_ms, chain, expo)  # type: ignore[arg-type]
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls) * 1e3, statistics.fmean(cpus) * 1e3


def run(n_alerts: int, reps: int = 50) -> None:
    day = NyseCalendar().session(NyseCalendar().most_recent_session(datetime.now().date()))
    chain, expo, contracts = _material(day.open)
    now_ms = int((day.open + timedelta(hours=1)).timestamp() * 1000)
    rows = []
    for n in sorted({1_000, n_alerts}):
        w, add_us = _filled(n, contracts, now_ms)
        wall_ms, cpu_ms = _read(w, now_ms, chain, expo, reps)
        rows.append((n, len(w.alerts), len(w.by_contract), wall_ms, cpu_ms, add_us))
    print(f"rolling-flow features per chain refresh (SPY chain of {len(chain):,} contracts, median of {reps}):")
    base = rows[0][3]
    for n, live, keys, wall_ms, cpu_ms, add_us in rows:
        print(f"  {n:>9,} alerts ({live:,} live, {keys:,} contracts): features {wall_ms:7.3f} ms wall "
              f"{cpu_ms:7.3f} ms CPU   ({wall_ms / base:5.2f}x the 1,000-alert baseline)   add {add_us:5.2f} us/alert")
