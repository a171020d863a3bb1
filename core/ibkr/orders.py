"""Translation between the system's order models and ib_async's (no I/O, no clock).

- :func:`build_ib_order`: an :class:`OrderRequest` becomes an ib_async ``LimitOrder`` /
  ``MarketOrder`` with ``orderRef`` = our ``order_id`` (the key every reconciliation matches on:
  IB echoes it on open orders, completed orders and executions), the account, ``tif``, regular
  trading hours only and ``transmit=True``. The IB order id is reserved by the caller (it is
  written to the order store before ``placeOrder``).
- :func:`map_status`: an IB order status string becomes an :class:`OrderStatus` (None for a
  status that says nothing about the order's life, such as ib_async's ``ValidationError``).
- :func:`make_fill` / :func:`apply_fill`: an IB execution (with its commission) becomes a
  :class:`Fill` (``fill_id`` = IB ``execId``; slippage versus the mid at placement, signed
  like the paper broker's: positive = worse for us) and is added to the order's cumulative state.
- :func:`clean_message`: IB's error text, one line, trimmed, with account numbers masked.
"""

from __future__ import annotations

import re
from datetime import datetime

from ib_async import LimitOrder, MarketOrder, Order

from core.domain.signal import Side
from core.execution.orders import Fill, OrderRequest, OrderState, OrderStatus, OrderType
from core.execution.pricing import money

__all__ = [
    "ACK_STATES",
    "CANCELLED_STATES",
    "apply_fill",
    "build_ib_order",
    "clean_message",
    "estimate_commission",
    "make_fill",
    "map_status",
]

# statuses IB sends once it holds the order (PendingSubmit / PendingCancel are ib_async's own)
ACK_STATES = frozenset({"PreSubmitted", "Submitted", "ApiPending"})
WORKING_STATES = frozenset({"PendingSubmit", "PendingCancel", "ApiPending", "PreSubmitted", "Submitted"})
CANCELLED_STATES = frozenset({"Cancelled", "ApiCancelled"})
MAX_MESSAGE = 160
_ACCOUNT = re.compile(r"\b(?:DU|DF|U|F)\d{4,}\b")
_IB_ASYNC_PREFIX = re.compile(r"^(?:Error|Warning) -?\d+, reqId -?\d+: ")  # how ib_async logs an order error
_IB_ASYNC_CONTRACT = re.compile(r", contract: .*$")


def build_ib_order(req: OrderRequest, limit: float | None, *, account: str | None, order_id: int) -> Order:
    """The ib_async order for ``req`` (``limit`` from the order policy; None for MKT)."""
    common = {"orderId": order_id, "orderRef": req.order_id, "tif": req.tif.value, "account": account or "",
              "outsideRth": False, "transmit": True}
    if req.order_type == OrderType.MKT:
        return MarketOrder(req.side.value, float(req.qty), **common)
    if limit is None:
        raise ValueError(f"order {req.order_id}: a limit order needs a limit price")
    return LimitOrder(req.side.value, float(req.qty), float(limit), **common)


def map_status(ib_status: str, filled_qty: int = 0) -> OrderStatus | None:
    """IB's status as ours: working states -> WORKING (PARTIALLY_FILLED once something filled),
    Filled -> FILLED, Cancelled / ApiCancelled -> CANCELLED, Inactive -> REJECTED."""
    if ib_status in WORKING_STATES:
        return OrderStatus.PARTIALLY_FILLED if filled_qty > 0 else OrderStatus.WORKING
    if ib_status == "Filled":
        return OrderStatus.FILLED
    if ib_status in CANCELLED_STATES:
        return OrderStatus.CANCELLED
    if ib_status == "Inactive":
        return OrderStatus.REJECTED
    return None


def estimate_commission(qty: int, per_contract: float) -> float:
    return money(qty * per_contract)


def make_fill(state: OrderState, *, exec_id: str, qty: int, price: float, commission: float,
              ts: datetime) -> Fill:
    """One execution of ``state``'s order as a :class:`Fill` (``fill_id`` = IB execId)."""
    req = state.request
    mid = state.mid_at_placement
    buy = req.side == Side.BUY
    slip = 0.0 if mid is None else round((price - mid) if buy else (mid - price), 6)
    return Fill(fill_id=exec_id, order_id=state.order_id, correlation_id=state.correlation_id,
                contract=req.option, side=req.side, purpose=req.purpose, qty=qty, price=round(price, 6),
                commission=money(commission), ts=ts, mid_at_placement=mid, slippage=slip)


def apply_fill(state: OrderState, fill: Fill, now: datetime) -> None:
    """Add ``fill`` to ``state`` (cumulative quantity, average price, commission, status)."""
    prev = state.filled_qty
    state.avg_price = round(((state.avg_price or 0.0) * prev + fill.price * fill.qty) / (prev + fill.qty), 6)
    state.filled_qty = prev + fill.qty
    state.commission = money(state.commission + fill.commission)
    state.fills.append(fill)
    if not state.status.is_terminal:  # a late fill of a cancelled order counts but keeps the status
        state.status = OrderStatus.FILLED if state.remaining <= 0 else OrderStatus.PARTIALLY_FILLED
    state.updated_ts = now


def clean_message(message: str, account: str | None = None) -> str:
    """IB's text on one line (without ib_async's "Error 201, reqId 5: " prefix and contract suffix),
    at most ``MAX_MESSAGE`` characters, account numbers masked."""
    text = " ".join(str(message or "").split())
    text = _IB_ASYNC_CONTRACT.sub("", _IB_ASYNC_PREFIX.sub("", text))
    if account:
        text = text.replace(account, _mask(account))
    text = _ACCOUNT.sub(lambda m: _mask(m.group(0)), text)
    return text[:MAX_MESSAGE]


def _mask(acct: str) -> str:
    return acct[:2] + "****" + acct[-3:] if len(acct) > 5 else "****"
