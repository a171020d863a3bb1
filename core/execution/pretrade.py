"""Pre-trade check at placement: the hard rules run again just before an entry order is placed.

An approved entry waits for its contract's next live quote, and its card may have waited up to
300 s before that; the overseer's verdict is as old as the card. So the execution service asks
:func:`check_placement` right before it places an entry. Decisions:

* **Which rules**: those of :func:`core.risk.check_signal` (the function the overseer's review,
  ``overseer.review.rules.hard_rules``, runs) whose inputs change between approval and
  placement - :data:`PLACEMENT_RULES`: halt, daily loss limit, buying power, open-position count,
  same-direction cap, per-trade cap, strategy disabled, contract tradable (expiry, session) and
  the time windows (strategy window, no new 0DTE entries after the cut-off). Not re-checked:
  ``STALE_DATA`` / ``SPREAD_TOO_WIDE`` of the signal's own quote (by design as old as the card;
  the live quote that triggers the placement is checked by the order policy: spread and age),
  ``BAD_INPUT`` and the structure codes (validated at approval, refused again by the broker's
  guard), and the overseer-only input checks (analytics freshness, limit vs ask, horizon vs
  expiry, strike distance), which do not depend on time or state.
* **State**: :func:`core.state.account.load_risk_state` (the reader the review uses) at the
  clock's now, plus the entry orders still working at the broker (:func:`with_working_entries`):
  each counts as an open position and its worst premium is taken from buying power, so two
  approvals placed back to back cannot each pass a limit the two of them break together.
* **Size**: the approved quantity (a half-size approval is checked at half size).
* **Per-trade cap on the highest price**: the order policy may work a BUY up to
  ``max_price`` = limit x :data:`MAX_CHASE`. The cap binds by *clipping* ``max_price`` to the
  highest tick at which qty x price x multiplier stays within both the per-trade cap and the
  buying power; the worst fill (the policy never works a BUY above ``max_price``) therefore never
  exceeds the cap. When even the signal's limit breaches a cap the rule itself refuses
  (``RISK_PER_TRADE`` / ``BUYING_POWER``). The overseer's review keeps computing the cap on the
  limit, which is what the admin's card shows and approves; the chase room shrinks at
  placement instead of the trade being refused.

Exits never come here: an exit is always allowed, also when halted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from core.domain.contract import OptionContract
from core.domain.reasons import Reason
from core.domain.signal import Signal
from core.execution.orders import OrderPurpose, OrderState
from core.execution.pricing import DEFAULT_TICK, to_tick
from core.risk import RiskLimits, RiskState, check_signal, per_trade_cap_pct, trading_days_until
from core.risk.sessions import NY
from core.risk.state import OpenPosition

__all__ = ["MAX_CHASE", "PLACEMENT_RULES", "Placement", "chase_ceiling", "check_placement",
           "with_working_entries"]

MAX_CHASE = 1.05  # an entry is never repriced above 105% of the signal's limit

PLACEMENT_RULES: tuple[Reason, ...] = (
    Reason.EXPIRED_CONTRACT,
    Reason.RISK_PER_TRADE,
    Reason.DAILY_LOSS_LIMIT,
    Reason.MAX_POSITIONS,
    Reason.SAME_DIRECTION_CAP,
    Reason.OUTSIDE_WINDOW,
    Reason.HALTED,
    Reason.BUYING_POWER,
    Reason.STRATEGY_DISABLED,
)


@dataclass(frozen=True)
class Placement:
    """The answer: ``ok`` with the ``max_price`` to place with, or the first failing ``reason``
    (in :class:`Reason` order) and a ``detail`` naming every failing rule."""

    ok: bool
    max_price: float | None = None
    reason: Reason | None = None
    detail: str = ""


def chase_ceiling(limit: float) -> float:
    """The highest price the order policy may chase an entry to, before any cap."""
    return round(limit * MAX_CHASE, 2)


def with_working_entries(state: RiskState, working: Iterable[OrderState]) -> RiskState:
    """``state`` with each working (not yet filled) entry order counted as an open position and
    the worst premium of its unfilled quantity (qty x max price x multiplier) taken from
    buying power. An order with fills is already a position; only its remainder is reserved."""
    extra: list[OpenPosition] = []
    reserved = 0.0
    for o in working:
        req = o.request
        c = req.contract
        if req.purpose != OrderPurpose.ENTRY or o.status.is_terminal or not isinstance(c, OptionContract):
            continue
        worst = req.max_price or o.limit or req.limit or 0.0
        reserved += max(0, o.remaining) * worst * c.multiplier
        if o.filled_qty == 0:
            extra.append(OpenPosition(symbol=c.symbol, right=c.right, qty=req.qty, entry_price=worst,
                                      multiplier=c.multiplier, expiry=c.expiry, strike=c.strike))
    if not extra and reserved == 0.0:
        return state
    return state.model_copy(update={"open_positions": [*state.open_positions, *extra],
                                    "buying_power": max(0.0, state.buying_power - reserved)})


def check_placement(signal: Signal, qty: int, state: RiskState, limits: RiskLimits, now: datetime,
                    *, tick: float = DEFAULT_TICK) -> Placement:
    """Re-run the placement rules for ``qty`` contracts of ``signal`` at ``now`` against
    ``state``; on success the ``max_price`` is the chase ceiling clipped to the caps."""
    sized = signal.model_copy(update={"qty": qty})
    decision = check_signal(sized, state, limits, now)
    failing = [r for r in decision.reasons if r in PLACEMENT_RULES]
    if failing:
        return Placement(False, reason=failing[0],
                         detail="; ".join(f"{r.value}: {decision.details[r]}" for r in failing))
    ceiling = chase_ceiling(signal.limit)
    mult = signal.instrument.multiplier
    dte = trading_days_until(now.astimezone(NY).date(), signal.instrument.expiry) \
        if signal.instrument.expiry is not None else None
    cap_pct, _basis = per_trade_cap_pct(signal.horizon.value if signal.horizon else None, dte, limits)
    budget = min(cap_pct / 100.0 * state.account_value, state.buying_power)
    affordable = to_tick(budget / (qty * mult), tick, "down")
    # the rule passed at the limit, so the limit itself is always allowed (an off-tick limit
    # may lie above the highest affordable tick)
    return Placement(True, max_price=min(ceiling, max(affordable, signal.limit)))
