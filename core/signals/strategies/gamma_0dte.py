"""``gamma_0dte``: same-day options around the dealer-gamma levels (SPX, SPY, QQQ, IWM; 09:45-15:00).

Setups (at least one):

* **pin / magnet**: spot within ``pin_pct`` % of the max-gamma strike. Price is pulled
  toward it: spot below the strike -> bullish, above -> bearish. Inside ``pin_dead_pct``
  the price gives no direction (flow decides).
* **flip reclaim**: spot crossed the zero-gamma level since ``price_change_5m_pct`` ago
  (else the last history point of the last 10 minutes) and is still within
  ``flip_reclaim_pct`` % of it: crossing up -> bullish, crossing down -> bearish.

Flow direction: ``flow_buy_ratio_5m`` >= ``flow_bull`` bullish / <= ``flow_bear`` bearish,
else the sign of ``net_premium_5m`` when ``|net| >= min_net_premium``. Price and flow must
not disagree; if the price gives no direction the flow must give one.

Gates: liquidity grade ``min_grade`` or better; ``obi_l5`` on the direction's side by at
least ``min_obi`` (bullish = bid heavy). Contract: today's expiry, ``|delta|`` in
``delta_band`` (0.30-0.40).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.bus.events import AnalyticsEvent
from core.domain.signal import Direction, Horizon
from core.market.chain import OptionChain
from core.signals.base import Candidate, Score, Strategy, StrategyContext, feature, grade_at_least, ramp
from core.signals.selection import finite

FLIP_LOOKBACK_MS = 10 * 60 * 1000


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


@dataclass(frozen=True)
class Gamma0DTE(Strategy):
    """Parameters (defaults):

    pin_pct 0.15          max % distance of spot from the max-gamma strike
    pin_strong_pct 0.03   at or inside this distance the pin scores full strength
    pin_dead_pct 0.02     inside this distance the price gives no direction
    flip_reclaim_pct 0.15 max % distance past the zero-gamma level after crossing it
    min_grade "B"         liquidity grade needed (A best)
    min_obi 0.10 / strong_obi 0.40   obi_l5 on the direction's side
    flow_bull 0.55 / flow_bear 0.45 / strong_flow 0.70   flow_buy_ratio_5m levels
    min_net_premium 50000 net_premium_5m ($) that sets a flow direction when the ratio is neutral
    delta_band (0.30, 0.40)
    """

    name: ClassVar[str] = "gamma_0dte"
    horizon: ClassVar[Horizon] = Horizon.ZERO_DTE

    pin_pct: float = 0.15
    pin_strong_pct: float = 0.03
    pin_dead_pct: float = 0.02
    flip_reclaim_pct: float = 0.15
    min_grade: str = "B"
    min_obi: float = 0.10
    strong_obi: float = 0.40
    flow_bull: float = 0.55
    flow_bear: float = 0.45
    strong_flow: float = 0.70
    min_net_premium: float = 50_000.0
    delta_band: tuple[float, float] = (0.30, 0.40)

    def _flow_direction(self, snapshot: AnalyticsEvent) -> tuple[int, str | None, float]:
        ratio = feature(snapshot, "flow_buy_ratio_5m")
        if ratio is not None:
            if ratio >= self.flow_bull:
                return 1, f"flow buy {ratio:.0%} (5m)", ramp(ratio, self.flow_bull, self.strong_flow)
            if ratio <= self.flow_bear:
                strength = ramp(1 - ratio, 1 - self.flow_bear, 1 - self.strong_flow)
                return -1, f"flow buy {ratio:.0%} (5m)", strength
        net = feature(snapshot, "net_premium_5m")
        if net is not None and abs(net) >= self.min_net_premium:
            return _sign(net), f"net premium {net / 1000:+,.0f}k (5m)", 0.25
        return 0, None, 0.0

    def _previous_spot(self, snapshot: AnalyticsEvent, ctx: StrategyContext) -> float | None:
        chg = feature(snapshot, "price_change_5m_pct")
        if chg is not None and chg > -100:
            return snapshot.spot / (1.0 + chg / 100.0)
        p = ctx.history.last_before(snapshot.asof, FLIP_LOOKBACK_MS)
        return p.spot if p is not None else None

    def evaluate(self, snapshot: AnalyticsEvent, chain: OptionChain,
                 ctx: StrategyContext) -> Candidate | None:
        spot = finite(snapshot.spot)
        if spot is None or spot <= 0:
            return None
        score = Score()
        price_dirs: list[int] = []
        setups: list[tuple[float, str]] = []  # (strength, trigger)

        mg = finite(snapshot.max_gamma_strike)
        if mg is not None and mg > 0:
            dist = (spot - mg) / mg * 100.0
            if abs(dist) <= self.pin_pct:
                where = "below" if dist < 0 else "above" if dist > 0 else "at"
                setups.append((ramp(self.pin_pct - abs(dist), 0.0, self.pin_pct - self.pin_strong_pct),
                               f"spot {abs(dist):.2f}% {where} max-gamma {mg:g}"))
                if abs(dist) > self.pin_dead_pct:
                    price_dirs.append(-_sign(dist))

        flip = finite(snapshot.zero_gamma)
        prev = self._previous_spot(snapshot, ctx)
        if flip is not None and flip > 0 and prev is not None:
            past = (spot - flip) / flip * 100.0
            if prev < flip <= spot and past <= self.flip_reclaim_pct:
                price_dirs.append(1)
                setups.append((1.0, f"reclaimed zero-gamma {flip:.2f}"))
            elif prev > flip >= spot and -past <= self.flip_reclaim_pct:
                price_dirs.append(-1)
                setups.append((1.0, f"lost zero-gamma {flip:.2f}"))
        if not setups:
            return None
        if len(set(price_dirs)) > 1:
            return None  # pin and flip point opposite ways
        price_dir = price_dirs[0] if price_dirs else 0
        flow_dir, flow_text, flow_strength = self._flow_direction(snapshot)
        if price_dir == 0:
            if flow_dir == 0:
                return None
            direction_sign = flow_dir
        else:
            if flow_dir == -price_dir:
                return None
            direction_sign = price_dir
        direction = Direction.BULLISH if direction_sign > 0 else Direction.BEARISH

        if not grade_at_least(snapshot.liquidity_grade, self.min_grade):
            return None
        obi = finite(snapshot.obi_l5)
        if obi is None or obi * direction_sign < self.min_obi:
            return None

        for strength, text in setups:
            score.add(strength, 1.0, text)
        score.add(ramp(obi * direction_sign, self.min_obi, self.strong_obi), 1.0, f"obi_l5 {obi:+.2f} agrees")
        score.add(flow_strength if flow_dir == direction_sign else 0.0, 1.0,
                  f"{flow_text} agrees" if flow_dir == direction_sign and flow_text else None)
        grade = (snapshot.liquidity_grade or "").upper()
        score.add(1.0 if grade == "A" else 0.6, 0.5, f"liquidity {grade}")

        today = ctx.today
        if today not in chain.expiries():
            return None
        sel = self.choose(chain, ctx, expiry=today, direction=direction, band=self.delta_band)
        if sel is None:
            return None
        return self.candidate(snapshot, chain, direction, sel, score)
