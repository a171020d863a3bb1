"""Builders for the signal tests: simulator chains, synthetic chains, snapshots, contexts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from core.analytics.black_scholes import bs_price
from core.analytics.expiry_time import year_fraction
from core.analytics.greeks import delta as bs_delta
from core.bus.events import AnalyticsEvent
from core.clock.calendar import NY, NyseCalendar
from core.config.model import Settings, StrategySettings
from core.domain.signal import Direction
from core.market.chain import OptionChain
from core.market.sim import MarketSimulator
from core.signals.base import StrategyContext
from core.signals.history import HistoryPoint, SymbolHistory
from core.signals.selection import PreviousChoice

DAY = date(2026, 11, 20)          # a regular Friday session; the next session is Monday 11-23
NEXT = date(2026, 11, 23)
HALF_DAY = date(2026, 11, 27)     # 13:00 close
SEED = 7
SIM_SYMBOLS = ("SPY", "AAPL")
SIM_TIMES = ((10, 30), (15, 10), (15, 35))
CAL = NyseCalendar()
SETTINGS = Settings()


def ny(h: int, m: int = 0, s: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, h, m, s, tzinfo=NY)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


@lru_cache(maxsize=1)
def _sim_chains() -> dict[tuple[str, tuple[int, int]], OptionChain]:
    sim = MarketSimulator(seed=SEED, session_open=ny(8, 30), session_close=ny(16, 15),
                          symbols=list(SIM_SYMBOLS))
    out = {}
    for hm in sorted(SIM_TIMES):
        sim.advance(ny(*hm))
        for sym in SIM_SYMBOLS:
            out[(sym, hm)] = sim.chain(sym)
    return out


def sim_chain(symbol: str, h: int, m: int) -> OptionChain:
    """The simulator's chain of ``symbol`` at h:m NY on DAY (a fresh copy)."""
    c = _sim_chains()[(symbol, (h, m))]
    return c.take(np.ones(len(c), dtype=bool))


def synthetic_chain(symbol: str, spot: float, asof: datetime, expiries: list[date], strikes: np.ndarray,
                    iv: float = 0.15, rate: float = 0.043, q: float = 0.0, rel_width: float = 0.02,
                    vendor_delta: bool = True) -> OptionChain:
    """A Black-Scholes chain (calls and puts of every expiry x strike), tick-rounded quotes."""
    exp, k, call = [], [], []
    for d in expiries:
        for c in (True, False):
            exp.extend([np.datetime64(d, "D")] * len(strikes))
            k.extend(strikes.tolist())
            call.extend([c] * len(strikes))
    expiry = np.array(exp, dtype="datetime64[D]")
    strike = np.array(k, dtype=np.float64)
    is_call = np.array(call, dtype=bool)
    T = year_fraction(asof, expiry)
    ivs = np.full(strike.shape, iv)
    theo = bs_price(spot, strike, T, rate, q, ivs, is_call)
    half = np.maximum(0.004, theo * rel_width / 2)
    tick_lo = np.where(theo - half < 3.0, 0.01, 0.05)
    bid = np.maximum(np.floor((theo - half) / tick_lo) * tick_lo, 0.0).round(2)
    tick_hi = np.where(theo + half < 3.0, 0.01, 0.05)
    ask = np.maximum(np.ceil((theo + half) / tick_hi) * tick_hi, bid + 0.01).round(2)
    d = bs_delta(spot, strike, T, rate, q, ivs, is_call) if vendor_delta else np.full(strike.shape, np.nan)
    return OptionChain(symbol=symbol, spot=spot, asof=asof, expiry=expiry, strike=strike, is_call=is_call,
                       bid=bid, ask=ask, iv=ivs, open_interest=np.full(strike.shape, 1000.0),
                       volume=np.full(strike.shape, 100.0), delta=d, gamma=np.full(strike.shape, np.nan),
                       rate=rate, dividend_yield=q)


def snapshot(chain: OptionChain, *, snapshot_id: str = "snap-1", features: Mapping[str, float] | None = None,
             spot: float | None = None, asof: datetime | None = None, **fields: Any) -> AnalyticsEvent:
    """An AnalyticsEvent consistent with ``chain`` (same symbol, spot and asof unless given)."""
    when = asof or chain.asof
    return AnalyticsEvent(id=f"ev-{snapshot_id}", ts=ms(when), correlation_id=f"an:{chain.symbol}",
                          snapshot_id=snapshot_id, symbol=chain.symbol,
                          spot=chain.spot if spot is None else spot, asof=ms(when),
                          features=dict(features or {}), **fields)


def context(name: str, now: datetime, *, history: SymbolHistory | None = None,
            previous: Mapping[Direction, PreviousChoice] | None = None,
            settings: StrategySettings | None = None) -> StrategyContext:
    day = now.astimezone(NY).date()
    session = CAL.session(day) if CAL.is_session(day) else None
    return StrategyContext(now=now, settings=settings or SETTINGS.strategies[name], session=session,
                           history=history if history is not None else SymbolHistory(),
                           previous=dict(previous or {}), next_session=CAL.next_session(day),
                           rate=0.043, dividend_yield=0.0)


def history_of(name: str, values: list[float], end: datetime, step_s: int = 60, spot: float = 100.0,
               prefix: str = "h") -> SymbolHistory:
    """A history with ``values`` of feature ``name`` every ``step_s`` seconds, ending before ``end``."""
    h = SymbolHistory()
    n = len(values)
    for i, v in enumerate(values):
        h.add(HistoryPoint(ms(end) - (n - i) * step_s * 1000, f"{prefix}{i}", spot, {name: v}))
    return h
