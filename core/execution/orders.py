"""Order, order-state and fill models shared by every broker (paper and IBKR).

Everything is a pydantic model that round-trips through JSON
(``model_dump_json`` / ``model_validate_json``) so a bus service can keep it in
Redis. No I/O and no clock here: times are passed in.

Conventions
-----------
* ``order_id`` is the idempotency key: placing the same request twice returns the
  first order's state instead of a second order.
* Prices are option premiums per share (``1.05``), quantities are contracts; dollar
  figures (commission, P&L, slippage cost) apply the contract multiplier.
* ``slippage`` on a :class:`Fill` is per-share premium versus the mid at placement,
  signed so that **positive = worse for us** (paid more on a buy, got less on a sell).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field

from core.domain.contract import Instrument, OptionContract, SecType
from core.domain.signal import Leg, Side, Signal

__all__ = [
    "Fill",
    "OrderPurpose",
    "OrderRequest",
    "OrderState",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
    "entry_order_from_signal",
]


class OrderType(StrEnum):
    LMT = "LMT"
    MKT = "MKT"


class TimeInForce(StrEnum):
    DAY = "DAY"  # cancelled at the 16:00 NY close of the day it was created
    GTC = "GTC"
    IOC = "IOC"  # fill what the next quote allows, cancel the rest


class OrderPurpose(StrEnum):
    ENTRY = "entry"  # always a BUY (buy to open)
    EXIT = "exit"  # always a SELL of a held long (sell to close)


class OrderStatus(StrEnum):
    NEW = "new"
    WORKING = "working"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


# A request may *describe* a non-option (an Instrument of type STK / BAG / ...) so that
# the guard can refuse it with a reason code; only an OptionContract can be traded.
# left_to_right: a full OptionContract is tried first, anything else is an Instrument.
OrderContract = Annotated[OptionContract | Instrument, Field(union_mode="left_to_right")]


class OrderRequest(BaseModel):
    """What the caller asks the broker to do.

    ``limit``: for ``LMT`` the initial limit; ``None`` lets the broker price it (paper:
    an entry BUY at the mid, an exit SELL at the bid, at placement). Ignored for ``MKT``.
    ``max_price``: optional hard cap a BUY is never repriced above (``min_price``: floor a
    SELL is never repriced below).
    """

    model_config = ConfigDict(frozen=True)

    order_id: str = Field(min_length=1, max_length=128)
    correlation_id: str = Field(min_length=1, max_length=128)
    contract: OrderContract
    legs: list[Leg] | None = None  # a combo (more than one leg) is refused by the guard
    side: Side
    qty: int = Field(gt=0)
    order_type: OrderType = OrderType.LMT
    limit: float | None = Field(default=None, gt=0)
    max_price: float | None = Field(default=None, gt=0)
    min_price: float | None = Field(default=None, gt=0)
    tif: TimeInForce = TimeInForce.DAY
    purpose: OrderPurpose
    created_ts: AwareDatetime

    @property
    def is_option(self) -> bool:
        return isinstance(self.contract, OptionContract)

    @property
    def option(self) -> OptionContract:
        """The option this order trades; ``TypeError`` if it describes anything else."""
        if not isinstance(self.contract, OptionContract):
            raise TypeError(f"order {self.order_id} is not for a fully specified option")
        return self.contract

    @property
    def contract_key(self) -> str:
        c = self.contract
        if isinstance(c, OptionContract):
            return c.key
        return f"{c.type.value}:{c.expiry or '-'}:{c.right.value if c.right else '-'}:{c.strike or '-'}"

    @property
    def multiplier(self) -> int:
        return self.contract.multiplier


class Fill(BaseModel):
    """One execution. ``commission`` is dollars for this fill; ``slippage`` is per-share
    premium vs the mid at placement, positive = worse for us."""

    model_config = ConfigDict(frozen=True)

    fill_id: str
    order_id: str
    correlation_id: str
    contract: OptionContract
    side: Side
    purpose: OrderPurpose
    qty: int = Field(gt=0)
    price: float = Field(gt=0)
    commission: float = Field(ge=0)
    ts: AwareDatetime
    mid_at_placement: float | None = None
    slippage: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def slippage_cost(self) -> float:
        """Slippage in dollars for the whole fill (qty x multiplier), positive = worse."""
        return round(self.slippage * self.qty * self.contract.multiplier, 6)

    @property
    def notional(self) -> float:
        return self.price * self.qty * self.contract.multiplier


class OrderState(BaseModel):
    """The broker's view of one order. ``limit`` is the current working limit (it moves
    on repricing); ``repricings`` counts the moves; ``reason`` says why an order ended
    cancelled/rejected (a ``core.domain.reasons.Reason`` code or a short snake_case word)."""

    order_id: str
    correlation_id: str
    request: OrderRequest
    status: OrderStatus = OrderStatus.NEW
    limit: float | None = None
    mid_at_placement: float | None = None
    placed_ts: AwareDatetime
    last_priced_ts: AwareDatetime
    updated_ts: AwareDatetime
    filled_qty: int = Field(default=0, ge=0)
    avg_price: float | None = None
    commission: float = 0.0
    fills: list[Fill] = Field(default_factory=list)
    repricings: int = 0
    reason: str | None = None

    @property
    def remaining(self) -> int:
        return self.request.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    @property
    def side(self) -> Side:
        return self.request.side

    @property
    def contract_key(self) -> str:
        return self.request.contract_key


def entry_order_from_signal(
    signal: Signal,
    *,
    order_id: str,
    created_ts: AwareDatetime,
    qty: int | None = None,
    limit: float | None = None,
    max_price: float | None = None,
    tif: TimeInForce = TimeInForce.DAY,
) -> OrderRequest:
    """Build the entry order for a signal. A signal that is not a fully specified single
    option still becomes a request (describing an Instrument / legs) so that the guard
    refuses it with a reason code rather than the caller crashing."""
    ins = signal.instrument
    contract: OptionContract | Instrument
    if (
        ins.type == SecType.OPT and ins.expiry is not None and ins.strike is not None
        and ins.right is not None and ins.strike > 0
    ):
        contract = signal.contract()
    else:
        contract = ins
    return OrderRequest(
        order_id=order_id, correlation_id=signal.id, contract=contract, legs=signal.legs,
        side=signal.side, qty=qty if qty is not None else signal.qty, order_type=OrderType.LMT,
        limit=limit, max_price=max_price, tif=tif, purpose=OrderPurpose.ENTRY, created_ts=created_ts,
    )
