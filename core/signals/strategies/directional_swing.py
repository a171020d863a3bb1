"""``directional_swing``: 14-45 DTE options when smart-money signals line up (Magnificent 7).

Three votes, each bullish, bearish or neutral (missing = neutral):

* **flow alerts**: ``alerts_bullish_30m`` vs ``alerts_bearish_30m``; at least
  ``min_alerts`` in total and a bullish share >= ``alert_share`` (bullish) or
  <= ``1 - alert_share`` (bearish);
* **dark pool**: ``dark_pool_buy_ratio_30m`` >= ``dark_bull`` / <= ``1 - dark_bull``;
* **insiders**: ``insider_net_30d`` >= ``insider_min_shares`` / <= ``-insider_min_shares``.

Fires when at least ``min_votes`` (2) agree and at most ``max_opposing`` (0) disagree.
Gates: ``iv_rank`` present and below ``max_iv_rank`` (80); no earnings inside the hold:
with ``days_to_earnings`` present only expiries with ``DTE < days_to_earnings`` are
eligible (``days_to_earnings <= DTE`` means the report lands before expiry) unless
``allow_earnings``. ETFs/indexes carry no ``days_to_earnings`` and are not restricted.

Contract: among expiries ``min_dte..max_dte`` calendar days out (and before earnings),
the previously chosen expiry if still eligible, else the one nearest ``target_dte``;
``|delta|`` in ``delta_band`` (0.40-0.50). Exit plan: stop at 70% of the limit, target +100%.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import ClassVar

from core.bus.events import AnalyticsEvent
from core.domain.signal import Direction, Horizon
from core.market.chain import OptionChain
from core.signals.base import Candidate, Score, Strategy, StrategyContext, feature, ramp
from core.signals.selection import dte


@dataclass(frozen=True)
class DirectionalSwing(Strategy):
    """Parameters (defaults):

    min_alerts 3 / alert_share 0.65 / strong_alert_share 0.85
    dark_bull 0.55 / strong_dark 0.70            dark_pool_buy_ratio_30m
    insider_min_shares 10000 / strong_insider_shares 100000
    min_votes 2 / max_opposing 0
    max_iv_rank 80                               iv_rank must be below
    allow_earnings False                         allow expiries past the next earnings report
    min_dte 14 / max_dte 45 / target_dte 30      calendar days
    delta_band (0.40, 0.50); stop_frac 0.7; target_pcts (1.0,)
    """

    name: ClassVar[str] = "directional_swing"
    horizon: ClassVar[Horizon] = Horizon.SWING

    stop_frac: float = 0.7
    target_pcts: tuple[float, ...] = (1.0,)
    min_alerts: int = 3
    alert_share: float = 0.65
    strong_alert_share: float = 0.85
    dark_bull: float = 0.55
    strong_dark: float = 0.70
    insider_min_shares: float = 10_000.0
    strong_insider_shares: float = 100_000.0
    min_votes: int = 2
    max_opposing: int = 0
    max_iv_rank: float = 80.0
    allow_earnings: bool = False
    min_dte: int = 14
    max_dte: int = 45
    target_dte: int = 30
    delta_band: tuple[float, float] = (0.40, 0.50)

    def _votes(self, snapshot: AnalyticsEvent) -> list[tuple[int, float, str]]:
        """(side, strength, trigger) per voter that is not neutral."""
        out: list[tuple[int, float, str]] = []
        bull = feature(snapshot, "alerts_bullish_30m")
        bear = feature(snapshot, "alerts_bearish_30m")
        if (bull is not None and bear is not None and bull >= 0 and bear >= 0
                and bull + bear >= self.min_alerts):
            share = bull / (bull + bear)
            text = f"flow alerts {bull:.0f} bull / {bear:.0f} bear (30m)"
            if share >= self.alert_share:
                out.append((1, ramp(share, self.alert_share, self.strong_alert_share), text))
            elif share <= 1.0 - self.alert_share:
                out.append((-1, ramp(1.0 - share, self.alert_share, self.strong_alert_share), text))
        dark = feature(snapshot, "dark_pool_buy_ratio_30m")
        if dark is not None:
            text = f"dark pool buy {dark:.0%} (30m)"
            if dark >= self.dark_bull:
                out.append((1, ramp(dark, self.dark_bull, self.strong_dark), text))
            elif dark <= 1.0 - self.dark_bull:
                out.append((-1, ramp(1.0 - dark, self.dark_bull, self.strong_dark), text))
        ins = feature(snapshot, "insider_net_30d")
        if ins is not None and abs(ins) >= self.insider_min_shares:
            strength = ramp(abs(ins), self.insider_min_shares, self.strong_insider_shares)
            out.append((1 if ins > 0 else -1, strength, f"insiders net {ins / 1000:+,.0f}k sh (30d)"))
        return out

    def _expiry(self, chain: OptionChain, ctx: StrategyContext, direction: Direction,
                days_to_earnings: float | None) -> date | None:
        today = ctx.today
        ok = []
        for d in chain.expiries():
            n = dte(today, d)
            if not self.min_dte <= n <= self.max_dte:
                continue
            if days_to_earnings is not None and not self.allow_earnings and days_to_earnings <= n:
                continue
            ok.append(d)
        if not ok:
            return None
        prev = ctx.previous_for(direction)
        if prev is not None and prev.expiry in ok:
            return prev.expiry
        return min(ok, key=lambda d: (abs(dte(today, d) - self.target_dte), d))

    def evaluate(self, snapshot: AnalyticsEvent, chain: OptionChain,
                 ctx: StrategyContext) -> Candidate | None:
        votes = self._votes(snapshot)
        bulls = [v for v in votes if v[0] > 0]
        bears = [v for v in votes if v[0] < 0]
        if len(bulls) >= self.min_votes and len(bears) <= self.max_opposing:
            sign, agreeing, opposing = 1, bulls, bears
        elif len(bears) >= self.min_votes and len(bulls) <= self.max_opposing:
            sign, agreeing, opposing = -1, bears, bulls
        else:
            return None
        ivr = feature(snapshot, "iv_rank")
        if ivr is None or ivr >= self.max_iv_rank:
            return None
        dte_earn = feature(snapshot, "days_to_earnings")
        direction = Direction.BULLISH if sign > 0 else Direction.BEARISH
        expiry = self._expiry(chain, ctx, direction, dte_earn)
        if expiry is None:
            return None

        score = Score()
        for _side, strength, text in agreeing:
            score.add(strength, 1.0, f"{text} agrees")
        for _side, _strength, text in opposing:
            score.add(0.0, 1.0, f"{text} disagrees")
        neutral = 3 - len(agreeing) - len(opposing)
        for _ in range(max(0, neutral)):
            score.add(0.0, 0.5)
        score.add(ramp(self.max_iv_rank - ivr, 0.0, 50.0), 0.5, f"iv rank {ivr:.0f}")
        gf = feature(snapshot, "greek_flow_30m")
        if gf is not None and gf * sign > 0:
            score.note(f"greek flow {gf / 1000:+,.0f}k (30m) agrees")
        if dte_earn is not None:
            score.note(f"earnings in {dte_earn:.0f}d (after expiry)" if dte_earn > dte(ctx.today, expiry)
                       else f"earnings in {dte_earn:.0f}d (inside hold, allowed)")

        sel = self.choose(chain, ctx, expiry=expiry, direction=direction, band=self.delta_band)
        if sel is None:
            return None
        return self.candidate(snapshot, chain, direction, sel, score)
