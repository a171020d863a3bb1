"""``overnight_1dte``: next-session options when the skew moves late in the day (15:00-15:45).

Trigger: the 25-delta risk reversal ``rr25_1dte`` (call IV - put IV of the 1DTE expiry)
is more than ``z_min`` standard deviations from its intraday mean. Mean and sample std
are taken over this session's earlier snapshots (since the NY open, strictly before the
current snapshot's ``asof``; at least ``min_samples`` values); the std is floored at
``min_std`` so a flat morning does not turn noise into a signal. Calls richer than usual
(z > 0) -> bullish; puts richer (z < 0) -> bearish.

Gate: ``greek_flow_30m`` (sum of sign(bullish) x premium x |delta| of the flow alerts of
the last 30 minutes, $) agrees in sign with at least ``min_greek_flow`` dollars.
Confirmations (score only): ``flow_buy_ratio_5m`` and ``obi_l5`` on the same side.

Contract: the expiry of the next NYSE session, ``|delta|`` in ``delta_band`` (0.35-0.45).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from core.bus.events import AnalyticsEvent
from core.domain.signal import Direction, Horizon
from core.market.chain import OptionChain
from core.signals.base import Candidate, Score, Strategy, StrategyContext, feature, linear, ramp
from core.signals.selection import finite


@dataclass(frozen=True)
class Overnight1DTE(Strategy):
    """Parameters (defaults):

    z_min 1.0 / z_strong 2.5      |z| of rr25 vs its intraday mean
    min_samples 10                earlier same-day rr25 values needed
    min_std 0.0025                std floor, in rr25 units (decimal IV: 0.25 vol points)
    min_greek_flow 100000 / strong_greek_flow 1000000   agreeing greek-weighted flow ($)
    full_flow 0.75 / full_obi 0.40   optional confirmations reach full strength here
    delta_band (0.35, 0.45)
    """

    name: ClassVar[str] = "overnight_1dte"
    horizon: ClassVar[Horizon] = Horizon.ONE_DTE

    z_min: float = 1.0
    z_strong: float = 2.5
    min_samples: int = 10
    min_std: float = 0.0025
    min_greek_flow: float = 100_000.0
    strong_greek_flow: float = 1_000_000.0
    full_flow: float = 0.75
    full_obi: float = 0.40
    delta_band: tuple[float, float] = (0.35, 0.45)

    def evaluate(self, snapshot: AnalyticsEvent, chain: OptionChain,
                 ctx: StrategyContext) -> Candidate | None:
        rr = feature(snapshot, "rr25_1dte")
        gf = feature(snapshot, "greek_flow_30m")
        if rr is None or gf is None or ctx.session is None:
            return None
        since = int(ctx.session.open.timestamp() * 1000)
        st = ctx.history.stats("rr25_1dte", since_ms=since, until_ms=snapshot.asof)
        if st is None or st.n < self.min_samples:
            return None
        std = max(st.std, self.min_std)
        z = (rr - st.mean) / std
        if abs(z) <= self.z_min:
            return None
        sign = 1 if z > 0 else -1
        if gf * sign < self.min_greek_flow:
            return None
        direction = Direction.BULLISH if sign > 0 else Direction.BEARISH

        score = Score()
        score.add(ramp(abs(z), self.z_min, self.z_strong), 1.5,
                  f"rr25 {z:+.1f} sd ({rr:+.3f} vs mean {st.mean:+.3f}, n={st.n})")
        score.add(ramp(gf * sign, self.min_greek_flow, self.strong_greek_flow), 1.0,
                  f"greek flow {gf / 1000:+,.0f}k (30m) agrees")
        # optional confirmations, linear from 0 (neutral / against) to 1 (full_flow / full_obi)
        ratio = feature(snapshot, "flow_buy_ratio_5m")
        flow_s = 0.0 if ratio is None else linear((ratio - 0.5) * sign, self.full_flow - 0.5)
        score.add(flow_s, 0.5, f"flow buy {ratio:.0%} (5m) agrees" if ratio is not None and flow_s > 0 else None)
        obi = finite(snapshot.obi_l5)
        obi_s = 0.0 if obi is None else linear(obi * sign, self.full_obi)
        score.add(obi_s, 0.5, f"obi_l5 {obi:+.2f} agrees" if obi is not None and obi_s > 0 else None)

        expiry = ctx.next_session
        listed = chain.expiries()
        if expiry is None:
            later = [d for d in listed if d > ctx.today]
            expiry = later[0] if later else None
        if expiry is None or expiry not in listed:
            return None
        sel = self.choose(chain, ctx, expiry=expiry, direction=direction, band=self.delta_band)
        if sel is None:
            return None
        return self.candidate(snapshot, chain, direction, sel, score)
