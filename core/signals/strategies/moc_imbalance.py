"""``moc_imbalance``: ride the market-on-close imbalance (SPY, QQQ, IWM; 15:30-15:50).

Gates:

1. flow asymmetry: ``flow_buy_ratio_5m`` > ``flow_threshold`` (bullish) or
   < ``1 - flow_threshold`` (bearish);
2. depth agrees: ``depth_imbalance_5`` (else ``obi_l5``) on the same side by at least
   ``min_depth``;
3. the **predicted** closing-imbalance confidence exceeds ``min_predicted`` (70).

The real imbalance feed starts at 15:50, after most of the window, so the strategy
predicts it (:func:`predict_closing_imbalance`). When ``imbalance_side`` /
``imbalance_confidence`` are present they confirm: the same side raises the
confidence to ``max(predicted, published)``; the opposite side with a published
confidence of at least ``veto_confidence`` vetoes the signal.

Contract: the expiry ``expiry_offset`` sessions ahead (0 = today, 0DTE), ``|delta|`` in
``delta_band`` (around 0.40).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import ClassVar

from core.bus.events import AnalyticsEvent
from core.domain.signal import Direction, Horizon
from core.market.chain import OptionChain
from core.signals.base import Candidate, Score, Strategy, StrategyContext, feature, ramp
from core.signals.selection import finite


@dataclass(frozen=True, slots=True)
class ImbalancePrediction:
    side: int            # +1 buy imbalance expected, -1 sell, 0 none
    confidence: float    # 0-100
    persistence: float   # the four component strengths, each 0..1
    asymmetry: float
    depth: float
    trend: float


def predict_closing_imbalance(
    flow_ratio: float, recent_ratios: Sequence[float], depth: float | None, trend_pct: float | None, *,
    full_asymmetry: float = 0.25, full_depth: float = 0.30, full_trend_pct: float = 0.15,
    weights: tuple[float, float, float, float] = (0.40, 0.25, 0.20, 0.15),
) -> ImbalancePrediction:
    """Predict the side and confidence (0-100) of the closing imbalance from intraday pressure.

    Side: the side of the current 5-minute flow, ``sign(flow_ratio - 0.5)``.

    Components, each in [0, 1] (0 when missing or pointing the other way):

    * persistence: share of the last minutes' flow ratios (``recent_ratios``, the current
      one included) on that side, Laplace-smoothed ``(agree + 1) / (n + 2)`` so a
      single reading counts for 2/3, ten out of ten for 11/12. Institutions that
      have been buying all afternoon tend to finish at the close (MOC orders);
    * asymmetry: ``|flow_ratio - 0.5| / full_asymmetry`` (a 75/25 split is full);
    * depth: resting book size on that side, ``side x depth / full_depth``;
    * trend: price drift in that direction, ``side x trend_pct / full_trend_pct``
      (15-minute change, in %).

    Confidence = ``100 x (w_p persistence + w_a asymmetry + w_d depth + w_t trend)``
    with weights 0.40 / 0.25 / 0.20 / 0.15 (they sum to 1). A barely asymmetric flow
    (60/40) with a thin book and no trend scores ~40; steady one-sided flow
    with book and trend agreeing scores 85+.
    """
    d = flow_ratio - 0.5
    side = (d > 0) - (d < 0)
    if side == 0:
        return ImbalancePrediction(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    xs = list(recent_ratios) or [flow_ratio]
    agree = sum(1 for r in xs if (r - 0.5) * side > 0)
    persistence = (agree + 1) / (len(xs) + 2)
    asym = min(1.0, abs(d) / full_asymmetry)
    depth_s = 0.0 if depth is None else min(1.0, max(0.0, side * depth / full_depth))
    trend_s = 0.0 if trend_pct is None else min(1.0, max(0.0, side * trend_pct / full_trend_pct))
    wp, wa, wd, wt = weights
    conf = 100.0 * (wp * persistence + wa * asym + wd * depth_s + wt * trend_s) / (wp + wa + wd + wt)
    return ImbalancePrediction(side, round(conf, 1), persistence, asym, depth_s, trend_s)


@dataclass(frozen=True)
class MocImbalance(Strategy):
    """Parameters (defaults):

    flow_threshold 0.60 / strong_flow 0.75   flow_buy_ratio_5m (and 1 - it for bearish)
    min_depth 0.05 / strong_depth 0.40       agreeing depth imbalance
    min_predicted 70                         predicted closing-imbalance confidence (strictly above)
    persistence_window_s 600                 flow readings looked back at for persistence
    full_trend_pct 0.15                      15-minute move (%) that counts as a full trend
    veto_confidence 50                       a published opposite imbalance this sure vetoes
    expiry_offset 0                          0 = 0DTE, 1 = next session
    delta_band (0.35, 0.45)
    """

    name: ClassVar[str] = "moc_imbalance"
    horizon: ClassVar[Horizon] = Horizon.ZERO_DTE

    flow_threshold: float = 0.60
    strong_flow: float = 0.75
    min_depth: float = 0.05
    strong_depth: float = 0.40
    min_predicted: float = 70.0
    persistence_window_s: float = 600.0
    full_trend_pct: float = 0.15
    veto_confidence: float = 50.0
    expiry_offset: int = 0
    delta_band: tuple[float, float] = (0.35, 0.45)

    def __post_init__(self) -> None:
        Strategy.__post_init__(self)
        if self.expiry_offset not in (0, 1):
            raise ValueError("moc_imbalance: expiry_offset must be 0 (0DTE) or 1 (next session)")

    @property
    def signal_horizon(self) -> Horizon:
        return Horizon.ZERO_DTE if self.expiry_offset == 0 else Horizon.ONE_DTE

    def evaluate(self, snapshot: AnalyticsEvent, chain: OptionChain,
                 ctx: StrategyContext) -> Candidate | None:
        ratio = feature(snapshot, "flow_buy_ratio_5m")
        if ratio is None:
            return None
        if ratio > self.flow_threshold:
            sign = 1
        elif ratio < 1.0 - self.flow_threshold:
            sign = -1
        else:
            return None
        depth = feature(snapshot, "depth_imbalance_5")
        if depth is None:
            depth = finite(snapshot.obi_l5)
        if depth is None or depth * sign < self.min_depth:
            return None
        trend = feature(snapshot, "price_change_15m_pct")
        if trend is None:
            trend = feature(snapshot, "price_change_5m_pct")
        since = snapshot.asof - int(self.persistence_window_s * 1000)
        recent = [*ctx.history.series("flow_buy_ratio_5m", since_ms=since, until_ms=snapshot.asof), ratio]
        pred = predict_closing_imbalance(ratio, recent, depth, trend, full_trend_pct=self.full_trend_pct)
        predicted = pred.confidence
        score = Score()
        triggers_extra: list[str] = []
        side_f = feature(snapshot, "imbalance_side")
        conf_f = feature(snapshot, "imbalance_confidence")
        if side_f is not None and conf_f is not None and side_f != 0:
            real_side = 1 if side_f > 0 else -1
            shares = feature(snapshot, "imbalance_shares")
            size = f" {abs(shares) / 1e6:.1f}M sh" if shares is not None else ""
            if real_side != sign:
                if conf_f >= self.veto_confidence:
                    return None
            else:
                predicted = max(predicted, conf_f)
                triggers_extra.append(f"NYSE imbalance {'buy' if real_side > 0 else 'sell'}{size} "
                                      f"conf {conf_f:.0f} confirms")
        if predicted <= self.min_predicted:
            return None
        direction = Direction.BULLISH if sign > 0 else Direction.BEARISH
        flow_strength = ramp(ratio if sign > 0 else 1.0 - ratio, self.flow_threshold, self.strong_flow)
        score.add(flow_strength, 1.0, f"flow buy {ratio:.0%} (5m)")
        score.add(ramp(depth * sign, self.min_depth, self.strong_depth), 1.0, f"depth_l5 {depth:+.2f} agrees")
        score.add(ramp(predicted, self.min_predicted, 90.0), 1.5,
                  f"predicted MOC {'buy' if sign > 0 else 'sell'} imbalance {predicted:.0f}% "
                  f"(persist {pred.persistence:.0%}, n={len(recent)})")
        for t in triggers_extra:
            score.note(t)
        if trend is not None and trend * sign > 0:
            score.note(f"price {trend:+.2f}% trend agrees")

        listed = chain.expiries()
        expiry: date | None
        if self.expiry_offset == 0:
            expiry = ctx.today
        else:
            expiry = ctx.next_session or next((d for d in listed if d > ctx.today), None)
        if expiry is None or expiry not in listed:
            return None
        sel = self.choose(chain, ctx, expiry=expiry, direction=direction, band=self.delta_band)
        if sel is None:
            return None
        return self.candidate(snapshot, chain, direction, sel, score)
