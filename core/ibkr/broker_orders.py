"""What the IB broker sends to IB: place an order, reprice it (modify the same IB order id),
cancel it; and the order policy applied to working orders on every quote.

:class:`OrderSending` is a mixin of :class:`~core.ibkr.broker_base.IbkrBrokerBase`; the placement
rules are in the :mod:`core.ibkr.broker` module docstring.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from ib_async import Contract

from core.control.halt import is_halted
from core.domain.contract import OptionContract
from core.domain.reasons import Reason
from core.execution.broker import BrokerEvent, BrokerEventKind, QuoteSnapshot
from core.execution.guard import OrderRejected, check_order
from core.execution.orders import OrderPurpose, OrderRequest, OrderState, OrderStatus, OrderType
from core.execution.policy import PolicyAction
from core.execution.pricing import ny
from core.ibkr.broker_base import UNAVAILABLE, IbkrBrokerBase
from core.ibkr.order_store import IbOrderRecord, Phase
from core.ibkr.orders import build_ib_order

__all__ = ["OrderSending"]

log = logging.getLogger("quanticity.ibkr.broker")


class OrderSending(IbkrBrokerBase):
    """Place, reprice and cancel orders at IB (a mixin of the IB broker)."""

    # ------------------------------------------------------------------ placing
    async def place(self, order: OrderRequest) -> OrderState:
        """See the module docstring (idempotent, halt for entries, guard, quote, store, placeOrder)."""
        async with self._lock:
            return await self._place(order)

    async def _place(self, order: OrderRequest) -> OrderState:
        oid = order.order_id
        known = self.records.get(oid)
        if known is not None and known.phase != Phase.NEVER_PLACED:
            if _economics(known.state.request) != _economics(order):
                raise OrderRejected(Reason.BAD_INPUT, "order_id reused with a different request", oid)
            return known.state.model_copy(deep=True)
        if not self.conn.connected:
            raise OrderRejected(UNAVAILABLE, "IBKR is not connected", oid)
        if order.purpose == OrderPurpose.ENTRY and await is_halted(self.redis, self.keys):
            raise OrderRejected(Reason.HALTED, "trading is halted: no new entries", oid)
        key = order.contract_key
        check_order(order, held_qty=self.held_qty(key), committed_sell_qty=self.committed_sell_qty(key, oid))
        q = self._quotes.get(key)
        if not (order.order_type == OrderType.MKT and order.purpose == OrderPurpose.EXIT):
            problem = self.policy.quote_age_problem(order, q.ts if q is not None else None)
            if problem is not None:
                raise OrderRejected(Reason.STALE_DATA, problem, oid)
            assert q is not None
            refusal = self.policy.refuse_entry(order, q)
            if refusal is not None:
                raise OrderRejected(refusal[0], refusal[1], oid)
        limit = self.policy.initial_limit(order, q) if q is not None else None
        if order.order_type == OrderType.LMT and limit is None:
            raise OrderRejected(Reason.STALE_DATA, f"no quote to price {key}", oid)
        contract = await self._qualify(order)
        try:
            ib_id = self.ib.client.getReqId()
        except ConnectionError:
            raise OrderRejected(UNAVAILABLE, "IBKR is not connected", oid) from None
        ts = order.created_ts
        state = OrderState(order_id=oid, correlation_id=order.correlation_id, request=order,
                           status=OrderStatus.WORKING, limit=limit,
                           mid_at_placement=round(q.mid, 6) if q is not None else None,
                           placed_ts=ts, last_priced_ts=ts, updated_ts=ts)
        rec = IbOrderRecord(state=state, phase=Phase.PLACING, ib_order_id=ib_id, client_id=self.conn.client_id,
                            con_id=int(contract.conId))
        self.records[oid] = rec
        try:
            await self.store.save(rec)  # before IB can know it: a crash from here on is recoverable
        except Exception:
            if known is None:
                self.records.pop(oid, None)
            else:
                self.records[oid] = known
            raise
        ib_order = build_ib_order(order, limit, account=self.conn.account, order_id=ib_id)
        try:
            trade = self.ib.placeOrder(contract, ib_order)
        except ConnectionError:
            rec.phase = Phase.NEVER_PLACED
            self.store.save_soon(rec)
            raise OrderRejected(UNAVAILABLE, "IBKR connection lost while placing", oid) from None
        self.trades[oid] = trade
        rec.phase = Phase.SENT
        rec.ib_status = trade.orderStatus.status or "PendingSubmit"
        placed = rec.state.model_copy(deep=True)  # what IB answers from here on comes as events, after it
        await self.store.save(rec)
        log.info("ibkr: placed %s %s %d %s @ %s (IB order %d)", oid, order.side.value, order.qty, key, limit, ib_id)
        return placed

    async def _qualify(self, order: OrderRequest) -> Contract:
        c: OptionContract = order.option
        try:
            known = await self.contracts.qualify([c], ny(order.created_ts).date())
        except (TimeoutError, ConnectionError) as exc:
            raise OrderRejected(UNAVAILABLE, f"contract lookup failed: {type(exc).__name__}",
                                order.order_id) from None
        got = known.get(c.key)
        if got is None:
            raise OrderRejected(Reason.BAD_INPUT, f"IB does not list {c.label()}", order.order_id)
        return got

    # ------------------------------------------------------------------ cancelling
    async def cancel(self, order_id: str, now: datetime | None = None) -> OrderState:
        """Ask IB to cancel (the CANCELLED event comes when IB confirms). ``KeyError`` if unknown."""
        rec = self.records[order_id]
        if rec.phase == Phase.NEVER_PLACED and rec.state.is_open:
            self._end(rec, BrokerEventKind.CANCELLED, "client", now or self.clock.now(), emit=False)
        elif rec.state.is_open:
            self._request_cancel(rec, "client")
        return rec.state.model_copy(deep=True)

    def _request_cancel(self, rec: IbOrderRecord, reason: str) -> None:
        """``cancelOrder`` once; without a connection it is sent after the next reconciliation."""
        if rec.cancel_requested:
            return
        rec.cancel_requested, rec.cancel_reason = True, reason
        self.send_cancel(rec)
        self.store.save_soon(rec)

    def send_cancel(self, rec: IbOrderRecord) -> None:
        trade = self.trades.get(rec.order_id)
        if rec.cancel_sent or trade is None or not self.conn.connected or trade.isDone():
            return
        try:
            self.ib.cancelOrder(trade.order)
        except ConnectionError:
            return
        rec.cancel_sent = True
        self.store.save_soon(rec)

    # ------------------------------------------------------------------ the order policy
    async def on_quote(self, contract_key: str, bid: float, ask: float, bid_size: int, ask_size: int,
                       now: datetime) -> list[BrokerEvent]:
        """Remember the quote; apply the policy to the working orders on that contract. A reprice
        is returned at once (REPRICED); a cancel's event comes when IB confirms it."""
        if not _valid_quote(bid, ask, bid_size, ask_size) or now.tzinfo is None:
            return []
        q = QuoteSnapshot(contract_key=contract_key, bid=float(bid), ask=float(ask), bid_size=int(bid_size),
                          ask_size=int(ask_size), ts=now)
        self._quotes[contract_key] = q
        events: list[BrokerEvent] = []
        for rec in self._working(contract_key):
            events.extend(self._apply(rec, self.policy.on_quote(rec.state, q, now), now))
        return events

    def _working(self, contract_key: str | None = None) -> list[IbOrderRecord]:
        recs = [r for r in self.records.values() if r.live and r.phase != Phase.PLACING
                and not r.cancel_requested and (contract_key is None or r.contract_key == contract_key)]
        return sorted(recs, key=lambda r: (r.state.placed_ts, r.order_id))

    def _apply(self, rec: IbOrderRecord, action: PolicyAction, now: datetime) -> list[BrokerEvent]:
        if action.kind == "cancel":
            self._request_cancel(rec, action.reason)
            return []
        if action.kind != "reprice" or action.new_limit is None:
            return []
        trade = self.trades.get(rec.order_id)
        if (rec.phase != Phase.ACKED or rec.modify_from is not None or trade is None or trade.isDone()
                or not self.conn.connected):
            return []  # not acknowledged yet, a modification in flight, or no session to modify it in
        st = rec.state
        old = st.limit
        trade.order.lmtPrice = float(action.new_limit)
        try:
            self.ib.placeOrder(trade.contract, trade.order)  # same IB order id: a modification
        except ConnectionError:
            trade.order.lmtPrice = old
            return []
        rec.modify_from = old
        st.limit = action.new_limit
        st.repricings += 1
        st.last_priced_ts = now
        st.updated_ts = now
        self.store.save_soon(rec)
        return [self._event(BrokerEventKind.REPRICED, rec, now, old_limit=old, new_limit=action.new_limit)]

def _economics(req: OrderRequest) -> dict[str, Any]:
    """What must match for a retry to be "the same order" (the creation time may differ)."""
    return req.model_dump(mode="json", exclude={"created_ts"})


def _valid_quote(bid: float, ask: float, bid_size: int, ask_size: int) -> bool:
    try:
        fb, fa, bs, az = float(bid), float(ask), int(bid_size), int(ask_size)
    except (TypeError, ValueError):
        return False
    return math.isfinite(fb) and math.isfinite(fa) and 0 <= fb <= fa and fa > 0 and bs >= 0 and az >= 0
