"""What every strategy shares: its context, its output, its scoring and contract helpers.

A strategy is a pure object: ``evaluate(snapshot, chain, ctx) -> Candidate | None``.
No I/O, no clock (``ctx.now``), no randomness. The service decides *whether* it runs
(enabled, symbol, window) and turns a candidate into a :class:`Signal`.

Confidence (0-100) is a weighted mean of per-condition strengths in ``[0, 1]``
(:class:`Score`). A required condition that is *just* met scores ``0.25`` and one met
at its "strong" level scores ``1.0`` (:func:`ramp`); optional confirmations grow
linearly from 0 (absent or against) to 1 (:func:`linear`). So a setup that barely clears every gate lands near 25-40 and
is filtered by ``min_confidence`` (default 55); a clear one reaches 60-90.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, ClassVar

from core.bus.events import AnalyticsEvent
from core.clock.calendar import NY, Session
from core.config.model import StrategySettings
from core.domain.contract import OptionContract, Right
from core.domain.signal import Direction, Horizon, Quote, Side, Signal
from core.market.chain import OptionChain
from core.signals.history import SymbolHistory
from core.signals.pricing import exit_plan
from core.signals.selection import PreviousChoice, Selection, finite, select_contract

__all__ = [
    "GRADES",
    "Candidate",
    "Score",
    "Strategy",
    "StrategyContext",
    "direction_sign",
    "feature",
    "grade_at_least",
    "in_window",
    "linear",
    "ramp",
    "window_bounds",
]

GRADES = ("A", "B", "C", "D")


# --------------------------------------------------------------------------- context
@dataclass(slots=True)
class StrategyContext:
    """Everything a strategy may look at besides the snapshot and the chain."""

    now: datetime                                   # aware (the service clock)
    settings: StrategySettings                      # settings.strategies[name]
    session: Session | None                         # today's NYSE session (NY open/close); None = closed
    history: SymbolHistory                          # this symbol's earlier snapshots
    previous: Mapping[Direction, PreviousChoice] = field(default_factory=dict)  # hysteresis memory
    next_session: date | None = None                # next NYSE session after today (1DTE expiry)
    rate: float = 0.045                             # used when the chain states none
    dividend_yield: float = 0.0

    @property
    def now_ny(self) -> datetime:
        return self.now.astimezone(NY)

    @property
    def today(self) -> date:
        return self.session.day if self.session is not None else self.now_ny.date()

    def previous_for(self, direction: Direction) -> PreviousChoice | None:
        return self.previous.get(direction)


def window_bounds(window: tuple[time, time], session: Session) -> tuple[datetime, datetime]:
    """The configured NY window of ``session.day`` clipped to the regular session.

    On a 13:00 early close, afternoon windows are simply empty (the risk layer checks
    the same fixed windows, so a shifted window would only produce refused signals).
    """
    start = max(session.at(window[0]), session.open)
    end = min(session.at(window[1]), session.close)
    return start, end


def in_window(now: datetime, window: tuple[time, time], session: Session | None) -> bool:
    """``start <= now < end`` in New York time (half-open, like the risk layer)."""
    if session is None:
        return False
    start, end = window_bounds(window, session)
    return start <= now.astimezone(NY) < end


# --------------------------------------------------------------------------- helpers
def feature(snapshot: AnalyticsEvent, name: str) -> float | None:
    """A finite feature value, or None (missing / NaN = unavailable = no signal)."""
    return finite(snapshot.features.get(name))


def grade_at_least(grade: str | None, minimum: str) -> bool:
    """``"A"`` is best. Unknown grades fail."""
    g = (grade or "").strip().upper()
    return g in GRADES and minimum in GRADES and GRADES.index(g) <= GRADES.index(minimum)


def direction_sign(direction: Direction) -> int:
    return 1 if direction == Direction.BULLISH else -1


def ramp(x: float, threshold: float, strong: float) -> float:
    """Strength of a condition ``x >= threshold``: 0.25 at the threshold, 1.0 at ``strong``."""
    if not math.isfinite(x):
        return 0.0
    if strong == threshold:
        return 1.0 if x >= threshold else 0.0
    frac = (x - threshold) / (strong - threshold)
    return min(1.0, max(0.0, 0.25 + 0.75 * frac))


def linear(x: float, full: float) -> float:
    """Strength of an optional confirmation: 0 at or against, 1 at ``full`` (no jump at the start,
    so a confirmation flickering on and off moves the confidence only a little)."""
    if not math.isfinite(x) or full <= 0:
        return 0.0
    return min(1.0, max(0.0, x / full))


class Score:
    """Weighted mean of condition strengths in [0, 1], with the trigger texts."""

    def __init__(self) -> None:
        self._parts: list[tuple[float, float]] = []
        self.triggers: list[str] = []

    def add(self, strength: float, weight: float = 1.0, trigger: str | None = None) -> Score:
        s = 0.0 if not math.isfinite(strength) else min(1.0, max(0.0, strength))
        self._parts.append((float(weight), s))
        if trigger:
            self.triggers.append(trigger)
        return self

    def note(self, trigger: str) -> Score:
        """A trigger text that does not change the score."""
        self.triggers.append(trigger)
        return self

    @property
    def confidence(self) -> float:
        total = sum(w for w, _ in self._parts)
        if total <= 0:
            return 0.0
        return round(min(100.0, max(0.0, 100.0 * sum(w * s for w, s in self._parts) / total)), 1)


# --------------------------------------------------------------------------- output
@dataclass(frozen=True, slots=True)
class Candidate:
    """One long single-leg option idea, before it gets an id and a quantity."""

    strategy: str
    symbol: str
    direction: Direction
    horizon: Horizon
    contract: OptionContract
    bid: float
    ask: float
    quote_ts: datetime
    delta: float
    limit: float
    stop: float
    targets: tuple[float, ...]
    confidence: float
    triggers: tuple[str, ...]
    snapshot_id: str
    spot: float
    kept_previous: bool = False

    def to_signal(self, signal_id: str, ts: datetime, qty: int) -> Signal:
        return Signal(
            id=signal_id, ts=ts, strategy=self.strategy, symbol=self.symbol,
            instrument=self.contract.instrument(), side=Side.BUY, qty=qty, limit=self.limit,
            quote=Quote(bid=self.bid, ask=self.ask, ts=self.quote_ts), stop=self.stop,
            targets=list(self.targets), confidence=self.confidence, triggers=list(self.triggers),
            snapshot_id=self.snapshot_id, horizon=self.horizon, direction=self.direction, spot=self.spot,
        )


def _coerce(strategy: str, name: str, value: Any, default: Any) -> Any:
    """A config value shaped like the parameter's default (bool, int, float, str, tuple of floats)."""
    bad = ValueError(f"{strategy}: parameter {name}={value!r} should look like {default!r}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad
        if isinstance(default, int) and float(value) != int(value):
            raise bad
        return type(default)(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not value:
            raise bad
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in value):
            raise bad
        if name.endswith("_band") and len(value) != 2:
            raise bad
        return tuple(float(x) for x in value)
    return value


# --------------------------------------------------------------------------- base class
@dataclass(frozen=True)
class Strategy:
    """Common parameters (every strategy redeclares the defaults that differ).

    stop_frac          stop price = ``stop_frac x limit`` (0.5: exit after a 50% loss)
    target_pcts        profit targets as fractions above the limit (0.5 = +50%)
    max_spread_pct     skip contracts whose (ask - bid) / mid exceeds this (%)
    min_premium        skip contracts whose mid is below this ($ per share)
    min_open_interest  skip contracts with less open interest
    strike_margin      hysteresis: switch strikes only when |delta| distance improves by more
    band_slack         the chosen |delta| may sit this far outside the band
    """

    name: ClassVar[str] = ""
    horizon: ClassVar[Horizon] = Horizon.ZERO_DTE

    stop_frac: float = 0.5
    target_pcts: tuple[float, ...] = (0.5, 1.0)
    max_spread_pct: float = 10.0
    min_premium: float = 0.10
    min_open_interest: float = 0.0
    strike_margin: float = 0.05
    band_slack: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.stop_frac < 1.0:
            raise ValueError(f"{self.name}: stop_frac must be in (0, 1)")
        if not self.target_pcts or any(p <= 0 for p in self.target_pcts):
            raise ValueError(f"{self.name}: target_pcts must be positive")
        object.__setattr__(self, "target_pcts", tuple(float(p) for p in self.target_pcts))
        for f in dataclasses.fields(self):
            if f.name.endswith("_band"):
                lo, hi = getattr(self, f.name)
                if not 0.0 < lo < hi < 1.0:
                    raise ValueError(f"{self.name}: {f.name} must be (low, high) with 0 < low < high < 1")
        grade = getattr(self, "min_grade", None)
        if grade is not None and grade not in GRADES:
            raise ValueError(f"{self.name}: min_grade must be one of {', '.join(GRADES)}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Strategy:
        """Build from a ``{param: value}`` mapping (config); unknown names raise ValueError."""
        params = dict(params or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"{cls.name}: unknown parameter(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        defaults = cls.parameters()
        for k, v in list(params.items()):
            params[k] = _coerce(cls.name, k, v, defaults.get(k))
        return cls(**params)

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """Default parameter values (documentation / config dumps)."""
        return {f.name: f.default for f in dataclasses.fields(cls)
                if f.default is not dataclasses.MISSING}

    @property
    def signal_horizon(self) -> Horizon:
        """Horizon stamped on the signals (a parameter such as an expiry offset may change it)."""
        return self.horizon

    def evaluate(self, snapshot: AnalyticsEvent, chain: OptionChain,
                 ctx: StrategyContext) -> Candidate | None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses --------------------------------------------------------
    def choose(self, chain: OptionChain, ctx: StrategyContext, *, expiry: date, direction: Direction,
               band: tuple[float, float]) -> Selection | None:
        right = Right.CALL if direction == Direction.BULLISH else Right.PUT
        return select_contract(
            chain, expiry=expiry, right=right, band=band, previous=ctx.previous_for(direction),
            margin=self.strike_margin, band_slack=self.band_slack, max_spread_pct=self.max_spread_pct,
            min_premium=self.min_premium, min_open_interest=self.min_open_interest, rate=ctx.rate,
            dividend_yield=ctx.dividend_yield)

    def candidate(self, snapshot: AnalyticsEvent, chain: OptionChain, direction: Direction,
                  sel: Selection, score: Score) -> Candidate | None:
        plan = exit_plan(sel.bid, sel.ask, self.stop_frac, self.target_pcts)
        if plan is None:
            return None
        c = sel.contract
        triggers = [*score.triggers,
                    f"{c.expiry:%m/%d} {c.strike:g}{c.right.value} delta {abs(sel.delta):.2f}"
                    + (" (kept)" if sel.kept_previous and sel.best_strike != c.strike else "")]
        return Candidate(
            strategy=self.name, symbol=snapshot.symbol, direction=direction, horizon=self.signal_horizon,
            contract=c, bid=sel.bid, ask=sel.ask, quote_ts=chain.asof, delta=sel.delta, limit=plan.limit,
            stop=plan.stop, targets=plan.targets, confidence=score.confidence, triggers=tuple(triggers),
            snapshot_id=snapshot.snapshot_id, spot=float(snapshot.spot), kept_previous=sel.kept_previous,
        )

