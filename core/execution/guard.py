"""Last-line safety guard in front of every broker: options only, long only, single leg.

The risk layer refuses bad signals first; this guard refuses them *again* at the
broker adapter so that no code path (a bug, a replayed event, a hand-made order)
can send an equity order, a spread, or a sale that would leave us short.

    check_order(order, held_qty=..., committed_sell_qty=...)   # raises OrderRejected

``held_qty`` is the long quantity the account holds in that contract and
``committed_sell_qty`` the quantity already promised to other working SELL orders on
it, so two concurrent exits cannot together sell more than is held.
"""

from __future__ import annotations

import math

from core.domain.contract import Instrument, OptionContract, SecType
from core.domain.reasons import Reason
from core.domain.signal import Leg, Side
from core.execution.orders import OrderPurpose, OrderRequest
from core.execution.pricing import ny

__all__ = ["OrderRejected", "check_instrument", "check_order"]


class OrderRejected(Exception):
    """An order refused before reaching the market. ``reason`` is a Reason code."""

    def __init__(self, reason: Reason, detail: str, order_id: str | None = None) -> None:
        self.reason = Reason(reason)
        self.detail = detail
        self.order_id = order_id
        super().__init__(f"{self.reason.value}: {detail}" + (f" (order {order_id})" if order_id else ""))


def check_instrument(
    contract: OptionContract | Instrument, legs: list[Leg] | None = None, order_id: str | None = None
) -> OptionContract:
    """Refuse anything that is not one fully specified option. Returns the option."""
    if isinstance(contract, Instrument) and contract.type == SecType.BAG:
        raise OrderRejected(Reason.NOT_SINGLE_LEG, "combo/spread (BAG) orders are not allowed", order_id)
    if legs is not None and (len(legs) > 1 or any(leg.ratio != 1 for leg in legs)):
        raise OrderRejected(Reason.NOT_SINGLE_LEG, f"{len(legs)} legs: only single-leg orders", order_id)
    if legs:
        leg = legs[0].instrument
        if leg.type != SecType.OPT:
            raise OrderRejected(Reason.NOT_OPTION, f"leg is {leg.type.value}, not an option", order_id)
        if legs[0].side != Side.BUY:
            raise OrderRejected(Reason.NOT_LONG, "a SELL leg opens a short option", order_id)
    if not isinstance(contract, OptionContract):
        kind = contract.type.value
        detail = f"{kind} is not an option" if kind != "OPT" else "option is not fully specified"
        raise OrderRejected(Reason.NOT_OPTION, detail, order_id)
    return contract


def check_order(order: OrderRequest, *, held_qty: int = 0, committed_sell_qty: int = 0) -> OptionContract:
    """Raise :class:`OrderRejected` unless ``order`` is a single-leg long-option trade:
    a BUY to open, or a SELL closing no more than the held long quantity not already
    committed to other working sells. Returns the option contract."""
    oid = order.order_id
    contract = check_instrument(order.contract, order.legs, oid)
    if order.qty <= 0:
        raise OrderRejected(Reason.BAD_INPUT, f"qty must be positive, got {order.qty}", oid)
    for name in ("limit", "max_price", "min_price"):
        v = getattr(order, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise OrderRejected(Reason.BAD_INPUT, f"{name} must be a finite positive price", oid)
    if order.side == Side.SELL:
        if order.purpose != OrderPurpose.EXIT:
            raise OrderRejected(Reason.NOT_LONG, "sell to open would be a short option", oid)
        available = max(0, held_qty) - max(0, committed_sell_qty)
        if order.qty > available:
            raise OrderRejected(
                Reason.NOT_LONG,
                f"sell {order.qty} but only {available} held and not already being sold "
                f"(held {held_qty}, working sells {committed_sell_qty}): would be short",
                oid,
            )
    else:
        if order.purpose != OrderPurpose.ENTRY:
            raise OrderRejected(Reason.BAD_INPUT, "a BUY is always an entry (there are no shorts to cover)", oid)
        if contract.expiry < ny(order.created_ts).date():
            raise OrderRejected(Reason.EXPIRED_CONTRACT, f"{contract.label()} expired", oid)
    return contract
