"""What the pre-market report (08:30 New York) adds to the report data.

- **Dealer positioning before the open.** :func:`reports.gather.gather` takes the newest analytics
  snapshot per symbol at or before the report (``latest_analytics``; live, at 08:30 that is the
  previous session's last one). A symbol without one (a fresh Redis, e.g. the demo, whose simulated
  day starts at 08:30: the first chain of the day is published at 08:30 and analysed only after the
  report is built) gets its levels from :func:`chain_positioning`: the ``chain`` snapshot the market
  service stores at its first tick of the day (open interest as of the previous close), put through
  the same functions, with the same settings, as the analytics service (``clean_chain``,
  ``compute_exposure``, max pain of the nearest expiry). Nothing is published: this is a read.
  Each symbol's basis is said on the page (:class:`LevelBasis`), with its time.
- **What to watch**: per symbol, the walls, the gamma flip and max pain within
  ``WATCH_RANGE_PCT`` of the latest price, nearest first, and which side of the flip spot is.
- **Economic events**: the project has no economic-calendar source; the page says so.

Models only import :mod:`reports.model` for type checking (``model`` imports this module).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import TYPE_CHECKING

import numpy as np
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from core.analytics.exposure import compute_exposure
from core.analytics.validate import clean_chain
from core.bus.events import AnalyticsEvent
from core.bus.keys import Keys
from core.clock.calendar import NY, NyseCalendar
from core.config.model import Settings
from core.market.chain_codec import decode_chain
from core.runtime.metrics import REJECTED

if TYPE_CHECKING:
    from reports.model import Levels, OpenPositionRow, SymbolMarket

WATCH_RANGE_PCT = 3.0        # levels this far from the latest price are "near"
WATCH_MAX_SYMBOLS = 6
CHAIN_SOURCE = "chain"
ECONOMIC_NOTE = "none configured (Quanticity has no economic-calendar source)"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LevelBasis(_M):
    symbol: str
    source: str                     # "analytics" | "chain"
    text: str                       # "previous session's last snapshot (Wed Dec 2 15:59)" ...


class WatchLevel(_M):
    names: list[str]                # ["call wall", "max pain"]: levels at the same strike together
    level: float
    distance_pct: float             # level vs the reference price


class WatchLine(_M):
    symbol: str
    ref: float                      # latest price: pre-market last, else the snapshot's spot
    ref_label: str                  # "pre-market" | "spot"
    levels: list[WatchLevel] = Field(default_factory=list)
    regime: str = ""                # "above the flip" | "below the flip" | "no flip within ±20%"


class PremarketInfo(_M):
    basis: list[LevelBasis] = Field(default_factory=list)
    watch: list[WatchLine] = Field(default_factory=list)
    economic_events: list[str] = Field(default_factory=list)
    economic_note: str = ECONOMIC_NOTE
    watch_range_pct: float = WATCH_RANGE_PCT


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


async def chain_positioning(redis: aioredis.Redis, keys: Keys, settings: Settings, now: datetime,
                            symbols: list[str], oldest_ms: int) -> dict[str, AnalyticsEvent]:
    """Levels computed from the stored ``chain`` snapshots of ``symbols`` (as the analytics
    service computes them), for chains with ``oldest_ms <= asof <= now``. A missing, malformed
    or unusable chain is skipped (malformed ones counted)."""
    if not symbols:
        return {}
    raws = await redis.mget([keys.snapshot("chain", s) for s in symbols])
    a, m = settings.analytics, settings.market
    out: dict[str, AnalyticsEvent] = {}
    for sym, raw in zip(symbols, raws, strict=True):
        if raw is None:
            continue
        try:
            chain = decode_chain(raw)
        except (ValueError, KeyError, TypeError):
            REJECTED.labels("reports", "chain_malformed").inc()
            continue
        asof_ms = int(chain.asof.timestamp() * 1000)
        if not oldest_ms <= asof_ms <= int(now.timestamp() * 1000):
            continue
        clean, _rejected = clean_chain(chain, now)
        if len(clean) == 0 or not np.isfinite(clean.spot) or clean.spot <= 0:
            continue
        expo = compute_exposure(clean, m.rate, m.dividend_yield, a.flip_grid_levels, width=a.flip_range_pct / 100.0,
                                min_minutes=a.min_minutes_to_expiry)
        nearest = min(expo.max_pain) if expo.max_pain else None
        out[sym] = AnalyticsEvent(
            id=f"{CHAIN_SOURCE}:{sym}:{asof_ms}", ts=asof_ms, correlation_id=f"an:{sym}", source=CHAIN_SOURCE,
            snapshot_id=f"{CHAIN_SOURCE}:{sym}:{asof_ms}", symbol=sym, spot=round(clean.spot, 4), asof=asof_ms,
            gex_total=_r(expo.gex_total), dex_total=_r(expo.dex_total), call_wall=expo.call_wall,
            put_wall=expo.put_wall, max_gamma_strike=expo.max_gamma_strike,
            zero_gamma=_r(expo.zero_gamma, 4), max_pain=expo.max_pain.get(nearest) if nearest else None,
            contracts_used=len(clean),
            gex_by_strike={f"{k:g}": round(v, 2) for k, v in expo.gex_by_strike_dict().items()})
    return out


def basis_text(lv: Levels, source: str, day: str, rth_open: str) -> str:
    """How a symbol's levels were obtained, with their New York time."""
    at = datetime.fromtimestamp(lv.asof_ms / 1000, tz=NY)
    if source == CHAIN_SOURCE:
        return (f"computed at {at:%H:%M} from the option chain (open interest as of the previous close); "
                "no earlier analytics snapshot was stored")
    if at.date().isoformat() < day:
        return f"last snapshot of the previous session ({at:%a %b} {at.day}, {at:%H:%M})"
    if f"{at:%H:%M}" < rth_open:
        return f"pre-market snapshot ({at:%H:%M})"
    return f"snapshot of {at:%H:%M}"


def watch_line(lv: Levels, market: SymbolMarket | None, flip_range_pct: float) -> WatchLine | None:
    """The levels near the latest price, nearest first (equal strikes grouped)."""
    ref, label = lv.spot, "spot"
    if market is not None and market.premarket_last:
        ref, label = market.premarket_last, "pre-market"
    elif market is not None and market.last:
        ref, label = market.last, "last"
    if not ref or ref <= 0:
        return None
    by_level: dict[float, list[str]] = {}
    for name, x in (("call wall", lv.call_wall), ("put wall", lv.put_wall), ("gamma flip", lv.zero_gamma),
                    ("max pain", lv.max_pain)):
        if x is not None and math.isfinite(x) and abs(x / ref - 1.0) * 100.0 <= WATCH_RANGE_PCT:
            by_level.setdefault(round(x, 4), []).append(name)
    levels = [WatchLevel(names=names, level=x, distance_pct=round((x / ref - 1.0) * 100.0, 2))
              for x, names in by_level.items()]
    levels.sort(key=lambda w: (abs(w.distance_pct), w.level))
    if lv.zero_gamma is None:
        regime = f"no gamma flip within ±{flip_range_pct:g}%"
    else:
        regime = "above the flip" if ref >= lv.zero_gamma else "below the flip"
    return WatchLine(symbol=lv.symbol, ref=round(ref, 4), ref_label=label, levels=levels, regime=regime)


def premarket_info(cal: NyseCalendar, day: date, settings: Settings, levels: list[Levels], chained: set[str],
                   markets: list[SymbolMarket], opens: list[OpenPositionRow]) -> PremarketInfo:
    """The pre-market additions. "What to watch" takes the index symbols first, then the symbols
    held, then the others, up to ``WATCH_MAX_SYMBOLS``. ``chained``: symbols whose levels were
    computed from the chain."""
    rth_open = f"{cal.session(day).open:%H:%M}" if cal.is_session(day) else "09:30"
    focus = list(dict.fromkeys([*settings.reports.index_symbols, *(p.symbol for p in opens)]))
    sources = {lv.symbol: CHAIN_SOURCE if lv.symbol in chained else "analytics" for lv in levels}
    info = PremarketInfo(basis=[LevelBasis(symbol=lv.symbol, source=sources[lv.symbol],
                                           text=basis_text(lv, sources[lv.symbol], day.isoformat(), rth_open))
                                for lv in levels])
    by_market = {m.symbol: m for m in markets}
    by_level = {lv.symbol: lv for lv in levels}
    order = [s for s in focus if s in by_level] + [lv.symbol for lv in levels if lv.symbol not in focus]
    for sym in order[:WATCH_MAX_SYMBOLS]:
        line = watch_line(by_level[sym], by_market.get(sym), settings.analytics.flip_range_pct)
        if line is not None:
            info.watch.append(line)
    return info
