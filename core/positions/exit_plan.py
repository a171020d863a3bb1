"""Exit-plan state machine: marks in, actions out. Pure: ``now`` and the session are passed in.

Typical wrapper loop, per option quote of an open position::

    pos, actions, events = step(pos, mark, now, session)   # observe + evaluate + apply_action
    publish(events)                                         # stop_moved events
    for a in actions:
        if isinstance(a, (SellPartial, CloseAll)):
            await broker.place(exit_order(pos, a, order_id=..., now=now))
    ...
    pos, events = apply_fill(pos, fill)                     # partial_exit / closed events
    pos = release_exit(pos, order.remaining)                # if an exit order ends unfilled

* :func:`observe` books market state: high-water mark, sessions held, target levels
  reached, trail activation.
* :func:`evaluate` decides (pure, idempotent): ``MoveStop`` when the trail/breakeven lock
  gives a higher stop, ``CloseAll`` for stop / flat time / expiry / earnings / time stop,
  ``SellPartial`` for each reached target not yet sold.
* :func:`apply_action` books a decision: a moved stop (event ``stop_moved``) or contracts
  promised to an exit (no event until the fill). Contracts already promised are never
  promised twice, so re-evaluating while exits are working does not double-sell.

``mark`` is the option price the rules look at: pass the bid to be conservative, the
mid to follow the book. Order of checks: stop ratchet; stop hit (``hard_stop`` /
``trailing_stop``); 0DTE flat time (``flat_eod``); expiry day (``expiry_day_flat``);
earnings (``earnings``); time stop (``time_stop``); scale-outs (``target t1 +50%``).

Scale-out size: ``floor(fraction x qty_initial)``, at least 1 when 2 or more contracts
are available, never more than available, and (``plan.keep_runner``) never the last
contract - what remains after the scale-outs is trailed.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from core.domain.signal import Side
from core.execution.orders import OrderPurpose, OrderRequest, OrderType, TimeInForce
from core.execution.pricing import to_tick
from core.positions.plans import TargetRule
from core.positions.position import Position, PositionEvent, PositionEventKind, copy_position, make_event
from core.positions.session import SessionInfo

__all__ = [
    "CloseAll",
    "MoveStop",
    "PositionAction",
    "SellPartial",
    "actions_adapter",
    "apply_action",
    "evaluate",
    "exit_order",
    "observe",
    "scale_out_qty",
    "step",
]

_EPS = 1e-9


class MoveStop(BaseModel):
    kind: Literal["move_stop"] = "move_stop"
    new_stop: float = Field(gt=0)
    reason: str  # trail_activated | trail_high_water | breakeven_lock
    high_water: float | None = None
    activates_trail: bool = False


class SellPartial(BaseModel):
    kind: Literal["sell_partial"] = "sell_partial"
    qty: int = Field(gt=0)
    reason: str
    target: str | None = None


class CloseAll(BaseModel):
    kind: Literal["close_all"] = "close_all"
    reason: str  # hard_stop | trailing_stop | flat_eod | expiry_day_flat | earnings | time_stop
    qty: int = Field(ge=0)  # contracts to sell now (held and not already being sold)


PositionAction = Annotated[MoveStop | SellPartial | CloseAll, Field(discriminator="kind")]
actions_adapter: TypeAdapter[list[PositionAction]] = TypeAdapter(list[PositionAction])


def _level(p: Position, gain: float) -> float:
    return p.avg_entry * (1.0 + gain) * (1.0 - _EPS)


def observe(position: Position, mark: float, now: datetime, session: SessionInfo) -> Position:
    """Book market state (idempotent for the same inputs); returns a new Position."""
    p = copy_position(position)
    if not p.is_open:
        return p
    if _good(mark):
        p.high_water = max(p.high_water, mark)
        p.last_mark = mark
        p.last_mark_ts = now
    if session.session_date > p.last_session_date:
        p.sessions_held += max(1, session.sessions_between(p.last_session_date, session.session_date))
        p.last_session_date = session.session_date
    for t in p.plan.targets:
        if t.name not in p.targets_hit and p.high_water >= _level(p, t.gain):
            p.targets_hit.append(t.name)
    if not p.trail_active and p.high_water >= _level(p, p.plan.trail_activation_gain):
        p.trail_active = True
    return p


def _desired_stop(p: Position) -> tuple[float, str] | None:
    if not p.trail_active:
        return None
    trail = to_tick(p.high_water * (1.0 - p.trail_pct), p.plan.tick, "down")
    if p.plan.lock_breakeven and p.breakeven > trail:
        return p.breakeven, "breakeven_lock"
    return trail, "trail_high_water"


def scale_out_qty(p: Position, target: TargetRule, available: int) -> int:
    q = math.floor(target.fraction * p.qty_initial + _EPS)
    if q < 1 and available >= 2:
        q = 1
    q = min(q, available)
    if p.plan.keep_runner:
        q = min(q, available - 1)
    return max(0, q)


def _close_reason(p: Position, mark: float, stop: float | None, now: datetime, s: SessionInfo) -> str | None:
    plan = p.plan
    if stop is not None and mark <= stop + _EPS:
        return "trailing_stop" if p.trail_active else "hard_stop"
    if plan.flat_at_session_end and (now >= s.flat_by or s.session_date > p.entry_session_date):
        return "flat_eod"
    expiry = p.contract.expiry
    if plan.flat_on_expiry_day and (s.session_date > expiry or (s.session_date == expiry and now >= s.flat_by)):
        return "expiry_day_flat"
    if plan.exit_before_earnings and p.next_earnings is not None and (
        s.session_date >= p.next_earnings or s.next_session() >= p.next_earnings
    ):
        return "earnings"
    if (
        plan.time_stop_sessions is not None and plan.time_stop_loss is not None
        and p.sessions_held >= plan.time_stop_sessions
        and mark <= p.avg_entry * (1.0 - plan.time_stop_loss) + _EPS
    ):
        return "time_stop"
    return None


def evaluate(position: Position, mark: float, now: datetime, session: SessionInfo) -> list[PositionAction]:
    """Decide what to do at ``mark`` (pure; see the module doc for the rules and order).
    A non-finite or non-positive mark is bad input: no action."""
    if not position.is_open or position.qty_open == 0 or not _good(mark):
        return []
    return _decide(position, observe(position, mark, now, session), mark, now, session)


def _decide(position: Position, p: Position, mark: float, now: datetime, session: SessionInfo) -> list[PositionAction]:
    """:func:`evaluate` on ``p`` = ``observe(position, mark, now, session)``."""
    actions: list[PositionAction] = []
    stop = p.stop
    want = _desired_stop(p)
    if want is not None and (stop is None or want[0] > stop + _EPS):
        reason = "trail_activated" if not position.trail_active else want[1]
        actions.append(MoveStop(new_stop=want[0], reason=reason, high_water=p.high_water,
                                activates_trail=not position.trail_active))
        stop = want[0]
    available = p.available_qty
    if available <= 0:
        return actions
    why = _close_reason(p, mark, stop, now, session)
    if why is not None:
        actions.append(CloseAll(reason=why, qty=available))
        return actions
    for t in p.plan.targets:
        if t.name in p.targets_hit and t.name not in p.targets_sold:
            q = scale_out_qty(p, t, available)
            if q > 0:
                actions.append(SellPartial(qty=q, reason=f"target {t.name} +{t.gain:.0%}", target=t.name))
                available -= q
    return actions


def apply_action(position: Position, action: PositionAction, now: datetime) -> tuple[Position, list[PositionEvent]]:
    """Book a decision. Only a stop that actually rises produces an event (``stop_moved``);
    sells only promise contracts (``qty_pending_exit``) until their fills arrive."""
    p = copy_position(position)
    if not p.is_open:
        return p, []
    if isinstance(action, MoveStop):
        if action.high_water is not None:
            p.high_water = max(p.high_water, action.high_water)
        if action.activates_trail:
            p.trail_active = True
        if p.stop is None or action.new_stop > p.stop + _EPS:
            p.stop = action.new_stop
            return p, [make_event(p, PositionEventKind.STOP_MOVED, now, reason=action.reason)]
        return p, []
    if isinstance(action, SellPartial):
        q = min(action.qty, p.available_qty)
        if action.target is not None:
            if action.target not in p.targets_hit:
                p.targets_hit.append(action.target)
            if action.target not in p.targets_sold:
                p.targets_sold.append(action.target)
        if q > 0:
            p.qty_pending_exit += q
            p.last_exit_reason = action.reason
        return p, []
    if isinstance(action, CloseAll):
        p.closing = True
        p.exit_reason = action.reason
        p.last_exit_reason = action.reason
        p.qty_pending_exit += p.available_qty
        return p, []
    raise TypeError(f"unknown action {action!r}")


def step(
    position: Position, mark: float, now: datetime, session: SessionInfo
) -> tuple[Position, list[PositionAction], list[PositionEvent]]:
    """observe + evaluate + apply every action: the one call a wrapper needs per mark."""
    if not position.is_open or not _good(mark):
        return position, [], []
    p = observe(position, mark, now, session)  # observed once: evaluate would observe the same again
    # decided as evaluate() decides (reasons compare with the un-observed state)
    actions = _decide(position, p, mark, now, session) if position.qty_open else []
    events: list[PositionEvent] = []
    for a in actions:
        p, ev = apply_action(p, a, now)
        events.extend(ev)
    return p, actions, events


def exit_order(
    position: Position, action: SellPartial | CloseAll, *, order_id: str, now: datetime,
    order_type: OrderType | None = None,
) -> OrderRequest:
    """The SELL order for a sell action: a scale-out is a limit at the bid (the paper broker
    prices ``limit=None`` at the bid), a close is a market order (paper: hits the bid)."""
    if order_type is None:
        order_type = OrderType.MKT if isinstance(action, CloseAll) else OrderType.LMT
    if action.qty <= 0:
        raise ValueError("nothing to sell")
    return OrderRequest(
        order_id=order_id, correlation_id=position.correlation_id, contract=position.contract,
        side=Side.SELL, qty=action.qty, order_type=order_type, limit=None, tif=TimeInForce.GTC,
        purpose=OrderPurpose.EXIT, created_ts=now,
    )


def _good(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0
