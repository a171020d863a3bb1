"""IB's answers about our orders: order-status changes and order errors (ib_async callbacks).

A status change of a working order is a STATUS event; a refused order (error 201, Inactive) is
REJECTED with IB's message; a cancel IB confirmed is CANCELLED with the reason the policy or the
client gave; a refused modification keeps the order working at its previous limit.
:class:`StatusEvents` is a mixin of :class:`~core.ibkr.broker_base.IbkrBrokerBase`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ib_async import Trade

from core.execution.broker import BrokerEventKind
from core.ibkr.broker_base import IbkrBrokerBase
from core.ibkr.order_store import IbOrderRecord, Phase
from core.ibkr.orders import ACK_STATES, CANCELLED_STATES, clean_message

__all__ = ["StatusEvents"]

log = logging.getLogger("quanticity.ibkr.broker")


class StatusEvents(IbkrBrokerBase):
    """Order statuses and order errors from IB (a mixin of the IB broker)."""

    def _on_status(self, trade: Trade) -> None:
        try:
            self._status(trade)
        except Exception:
            log.exception("ibkr: order status handling failed")

    def _status(self, trade: Trade) -> None:
        o = trade.order
        rec = self._record_for(o.orderRef, o.permId or trade.orderStatus.permId)
        if rec is None or not rec.state.is_open or rec.phase == Phase.NEVER_PLACED:
            return
        self.trades[rec.order_id] = trade
        self.link(rec, trade)
        status = trade.orderStatus.status
        entry = trade.log[-1] if trade.log else None
        code = entry.errorCode if entry is not None else 0
        message = clean_message(entry.message if entry is not None else "", self.conn.account)
        now = self.clock.now()
        if status in CANCELLED_STATES or status == "Inactive":
            if rec.modify_from is not None and code not in (0, 202) and status != "Inactive":
                self._modify_refused(rec, trade, message, now)
                return
            if status == "Inactive" or (code not in (0, 202) and rec.phase != Phase.ACKED):
                self._end(rec, BrokerEventKind.REJECTED, message or "rejected by IB", now)
            else:
                reason = rec.cancel_reason or (f"ib: {message}" if code and message else "ib_cancelled")
                self._end(rec, BrokerEventKind.CANCELLED, reason, now)
            return
        if status == "Filled":
            rec.ib_status = status
            self.store.save_soon(rec)
            return  # the FILL events carry it
        if status in ACK_STATES:
            rec.phase = Phase.ACKED
            rec.modify_from = None  # IB answered after the modification: it holds the new price
        if status != rec.ib_status:
            rec.ib_status = status
            self._queue(self._event(BrokerEventKind.STATUS, rec, now, detail=self._ids(rec)))
        self.store.save_soon(rec)

    def link(self, rec: IbOrderRecord, trade: Trade) -> None:
        """Remember IB's ids for ``rec`` (from a live status or from reconciliation)."""
        o = trade.order
        if o.orderId:
            rec.ib_order_id = int(o.orderId)
        if o.clientId:
            rec.client_id = int(o.clientId)
        perm = o.permId or trade.orderStatus.permId
        if perm:
            rec.perm_id = int(perm)
        if trade.contract is not None and trade.contract.conId:
            rec.con_id = int(trade.contract.conId)

    def _modify_refused(self, rec: IbOrderRecord, trade: Trade, message: str, now: datetime) -> None:
        """IB refused a modification: the order keeps working at its previous limit. (ib_async marks
        the trade cancelled on any order error; put its status back so it can be modified again.)"""
        old = rec.modify_from
        trade.orderStatus.status = rec.ib_status if rec.ib_status in ACK_STATES else "Submitted"
        trade.order.lmtPrice = old
        rec.modify_from = None
        rec.state.limit = old
        rec.state.updated_ts = now
        self.store.save_soon(rec)
        self._queue(self._event(BrokerEventKind.STATUS, rec, now, reason=f"modify refused: {message}"[:200],
                                detail=self._ids(rec)))

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        """Order errors are handled through the status ib_async gives the trade; log them here."""
        if req_id <= 0:
            return
        rec = next((r for r in self.records.values() if r.ib_order_id == req_id and r.client_id
                    == self.conn.client_id), None)
        if rec is not None:
            log.warning("ibkr: order %s (IB %d): %d %s", rec.order_id, req_id, code,
                        clean_message(message, self.conn.account))
