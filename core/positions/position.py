"""Position model, position events, and fill accounting (pure functions).

``open_position(fill, ...)`` starts a position from the first entry fill;
``apply_fill(position, fill)`` books every later fill (more entry fills, partial and
final exits). Both return ``(new_position, events)`` and never mutate their input.
Fills are de-duplicated on ``fill_id``, so a re-delivered fill is a no-op.

``realized_pnl`` is cumulative dollars after *all* commissions (entry commissions are
booked when paid, so it starts slightly negative) with the multiplier applied.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.domain.contract import OptionContract
from core.domain.signal import Horizon, Side
from core.execution.orders import Fill
from core.execution.pricing import money, ny, to_tick
from core.positions.plans import ExitPlan, plan_for

__all__ = [
    "Position",
    "PositionEvent",
    "PositionEventKind",
    "PositionStatus",
    "apply_fill",
    "copy_position",
    "open_position",
    "release_exit",
]

_EPS = 1e-9


class PositionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class PositionEventKind(StrEnum):
    ENTRY = "entry"
    STOP_MOVED = "stop_moved"
    PARTIAL_EXIT = "partial_exit"
    CLOSED = "closed"


class Position(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # a stored record with a NaN / inf figure is refused

    position_id: str
    correlation_id: str
    contract: OptionContract
    strategy: str
    horizon: Horizon
    plan: ExitPlan
    status: PositionStatus = PositionStatus.OPEN

    qty_open: int = Field(default=0, ge=0)
    qty_initial: int = Field(default=0, ge=0)  # all contracts bought (scale-outs are fractions of it)
    qty_bought: int = Field(default=0, ge=0)
    qty_sold: int = Field(default=0, ge=0)
    qty_pending_exit: int = Field(default=0, ge=0)  # promised to exit actions not yet filled

    avg_entry: float = Field(gt=0)
    high_water: float
    stop: float | None = None
    trail_active: bool = False
    trail_pct: float = Field(gt=0, lt=1)
    targets_hit: list[str] = Field(default_factory=list)  # target levels reached (by high water)
    targets_sold: list[str] = Field(default_factory=list)  # targets whose scale-out was issued

    realized_pnl: float = 0.0
    commissions: float = 0.0
    entry_commissions: float = 0.0

    entry_ts: AwareDatetime
    entry_session_date: date
    last_session_date: date
    sessions_held: int = 0  # sessions since the entry session (entry session = 0)
    next_earnings: date | None = None

    closing: bool = False  # a CloseAll is pending
    exit_reason: str | None = None
    last_exit_reason: str | None = None
    last_mark: float | None = None
    last_mark_ts: AwareDatetime | None = None
    closed_ts: AwareDatetime | None = None
    fill_ids: list[str] = Field(default_factory=list)

    @property
    def multiplier(self) -> int:
        return self.contract.multiplier

    @property
    def is_open(self) -> bool:
        return self.status == PositionStatus.OPEN

    @property
    def available_qty(self) -> int:
        """Contracts held and not yet promised to a pending exit."""
        return max(0, self.qty_open - self.qty_pending_exit)

    @property
    def entry_commission_per_contract(self) -> float:
        return self.entry_commissions / self.qty_bought if self.qty_bought else 0.0

    @property
    def breakeven(self) -> float:
        """Exit price at which a contract neither gains nor loses, after the entry commission
        and an exit commission at the same rate (if the plan counts commissions), rounded
        up to the tick."""
        be = self.avg_entry
        if self.plan.breakeven_includes_commissions:
            be += 2.0 * self.entry_commission_per_contract / self.multiplier
        return to_tick(be, self.plan.tick, "up")

    @property
    def target_levels(self) -> list[float]:
        """Scale-out trigger prices of the plan (for display / the bus event's ``targets``)."""
        return [to_tick(self.avg_entry * (1.0 + t.gain), self.plan.tick) for t in self.plan.targets]

    def gain(self, mark: float) -> float:
        return mark / self.avg_entry - 1.0

    def unrealized_pnl(self, mark: float) -> float:
        return money((mark - self.avg_entry) * self.qty_open * self.multiplier)


class PositionEvent(BaseModel):
    """One state change, ready to publish. ``realized_pnl`` is cumulative for the position."""

    kind: PositionEventKind
    position_id: str
    correlation_id: str
    contract_key: str
    ts: AwareDatetime
    qty: int = 0  # contracts in this change (0 for stop_moved)
    price: float | None = None  # fill price (None for stop_moved)
    stop: float | None = None  # stop after the change
    realized_pnl: float = 0.0
    qty_open: int = 0
    reason: str | None = None
    fill_id: str | None = None


def copy_position(p: Position) -> Position:
    """A copy safe to change: its own lists (the only fields changed in place); the rest is
    shared, as it is immutable (frozen contract and plan, dates, numbers, strings). Cheaper
    than ``model_copy(deep=True)``, which each mark paid twice."""
    return p.model_copy(update={"targets_hit": list(p.targets_hit), "targets_sold": list(p.targets_sold),
                                "fill_ids": list(p.fill_ids)})


def make_event(p: Position, kind: PositionEventKind, ts: AwareDatetime, **kw: object) -> PositionEvent:
    return PositionEvent(
        kind=kind, position_id=p.position_id, correlation_id=p.correlation_id, contract_key=p.contract.key,
        ts=ts, stop=p.stop, realized_pnl=p.realized_pnl, qty_open=p.qty_open, **kw,  # type: ignore[arg-type]
    )


def hard_stop_price(plan: ExitPlan, avg_entry: float) -> float | None:
    if plan.hard_stop_loss is None:
        return None
    return to_tick(avg_entry * (1.0 - plan.hard_stop_loss), plan.tick)


def open_position(
    fill: Fill,
    *,
    strategy: str,
    horizon: Horizon | str,
    position_id: str | None = None,
    plan: ExitPlan | None = None,
    stop: float | None = None,
    next_earnings: date | None = None,
    trail_pct: float | None = None,
) -> tuple[Position, list[PositionEvent]]:
    """Start a position from its first entry (BUY) fill. ``stop``: an explicit initial stop
    (e.g. the signal's); the tighter (higher) of it and the plan's hard stop is used."""
    if fill.side != Side.BUY:
        raise ValueError("a position opens with a BUY fill")
    horizon = Horizon(horizon)
    plan = plan or plan_for(horizon)
    sd = ny(fill.ts).date()
    base = Position(
        position_id=position_id or fill.correlation_id, correlation_id=fill.correlation_id,
        contract=fill.contract, strategy=strategy, horizon=horizon, plan=plan, avg_entry=fill.price,
        high_water=fill.price, stop=stop, trail_pct=trail_pct if trail_pct is not None else plan.trail_pct,
        entry_ts=fill.ts, entry_session_date=sd, last_session_date=sd, next_earnings=next_earnings,
    )
    return apply_fill(base, fill)


def apply_fill(position: Position, fill: Fill) -> tuple[Position, list[PositionEvent]]:
    """Book one fill. BUY: more contracts at a new average (stop re-derived, never lowered).
    SELL: realize P&L on the contracts sold; ``closed`` when nothing is left.
    Raises ``ValueError`` for a fill on another contract, a sale of more than is held,
    or a buy into a closed position."""
    if fill.fill_id in position.fill_ids:
        return position, []
    if fill.contract.key != position.contract.key:
        raise ValueError(f"fill {fill.fill_id} is for {fill.contract.key}, not {position.contract.key}")
    p = copy_position(position)
    p.fill_ids.append(fill.fill_id)
    mult = p.multiplier
    if fill.side == Side.BUY:
        if p.status == PositionStatus.CLOSED:
            raise ValueError(f"buy fill {fill.fill_id} on closed position {p.position_id}")
        new_qty = p.qty_open + fill.qty
        p.avg_entry = round((p.avg_entry * p.qty_open + fill.price * fill.qty) / new_qty, 6)
        p.qty_open = new_qty
        p.qty_initial += fill.qty
        p.qty_bought += fill.qty
        p.high_water = max(p.high_water, p.avg_entry)
        p.commissions = money(p.commissions + fill.commission)
        p.entry_commissions = money(p.entry_commissions + fill.commission)
        p.realized_pnl = money(p.realized_pnl - fill.commission)
        hs = hard_stop_price(p.plan, p.avg_entry)
        if hs is not None and (p.stop is None or hs > p.stop + _EPS):
            p.stop = hs
        return p, [make_event(p, PositionEventKind.ENTRY, fill.ts, qty=fill.qty, price=fill.price,
                              reason="entry", fill_id=fill.fill_id)]

    if fill.qty > p.qty_open:
        raise ValueError(f"fill {fill.fill_id} sells {fill.qty} but only {p.qty_open} are held: would be short")
    p.realized_pnl = money(p.realized_pnl + (fill.price - p.avg_entry) * fill.qty * mult - fill.commission)
    p.commissions = money(p.commissions + fill.commission)
    p.qty_open -= fill.qty
    p.qty_sold += fill.qty
    p.qty_pending_exit = max(0, p.qty_pending_exit - fill.qty)
    reason = p.exit_reason or p.last_exit_reason or "external"
    if p.qty_open == 0:
        p.status = PositionStatus.CLOSED
        p.closing = False
        p.qty_pending_exit = 0
        p.closed_ts = fill.ts
        p.exit_reason = reason
        kind = PositionEventKind.CLOSED
    else:
        kind = PositionEventKind.PARTIAL_EXIT
    return p, [make_event(p, kind, fill.ts, qty=fill.qty, price=fill.price, reason=reason, fill_id=fill.fill_id)]


def release_exit(position: Position, qty: int) -> Position:
    """An exit order ended with ``qty`` contracts unfilled (cancelled/rejected): they are
    no longer promised. A released close lets the next evaluation decide again.
    (A released scale-out is not re-issued; the trail keeps protecting those contracts.)"""
    p = copy_position(position)
    if qty > 0 and p.is_open:
        p.qty_pending_exit = max(0, p.qty_pending_exit - qty)
        p.closing = False
    return p
