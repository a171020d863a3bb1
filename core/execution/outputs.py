"""What the execution service writes: broker events as ``OrderEvent`` / ``FillEvent`` / audits.

:class:`ExecutionOutputs` is the base of the execution service's parts
(:mod:`core.execution.service`): it places an order and emits the broker's answer, turns the
events the broker returns or pushes (fills, reprices, cancels, adoptions, reconciliation) into
bus events on the handling's transaction, and saves the broker's state (the paper book) with
them. Nothing here commits: the caller's transaction does (:mod:`core.execution.book_lock`).
"""

from __future__ import annotations

import json

from core.bus.bus import Tx
from core.bus.events import AlertEvent, ApprovalEvent, AuditEvent, FillEvent, OrderEvent
from core.domain.contract import OptionContract
from core.execution.broker import Broker, BrokerEvent, BrokerEventKind
from core.execution.guard import OrderRejected
from core.execution.orders import OrderRequest, OrderState
from core.runtime import metrics
from core.runtime.service import Service


class ExecutionOutputs(Service):
    """Order placement and the events it publishes; set up by ``ExecutionService.__init__``."""

    broker: Broker
    _state_key: str  # the Redis key of the broker's saved state

    async def _place(self, req: OrderRequest, tx: Tx, position_id: str | None = None) -> bool:
        fields = order_fields(req)
        try:
            state = await self.broker.place(req)
        except OrderRejected as exc:
            metrics.REJECTED.labels(self.name, exc.reason.value).inc()
            self._reject_event(tx, req.correlation_id, req.order_id, fields, req.purpose.value, exc.reason.value,
                               position_id)
            tx.emit(AuditEvent, correlation_id=req.correlation_id, actor="execution", action="order_refused",
                    detail={"order_id": req.order_id, "reason": exc.reason.value, "detail": str(exc)})
            return True
        tx.emit(OrderEvent, correlation_id=req.correlation_id, order_id=req.order_id, purpose=req.purpose.value,
                status=state.status.value, limit=state.limit, position_id=position_id, **fields)
        return True

    def _publish(self, tx: Tx, events: list[BrokerEvent]) -> None:
        tx.scratch.setdefault("broker_events", []).extend(events)  # given back if ``tx`` fails
        for be in events:
            o = be.order
            if o is None:
                self._reconciliation(tx, be)
                continue
            if be.kind == BrokerEventKind.FILL and be.fill is not None:
                f = be.fill
                c = f.contract
                tx.emit(FillEvent, correlation_id=f.correlation_id, order_id=f.order_id, fill_id=f.fill_id,
                        purpose=f.purpose.value, symbol=c.symbol, expiry=c.expiry.isoformat(), strike=c.strike,
                        right=c.right.value, side=f.side.value, qty=f.qty, price=f.price,
                        commission=f.commission, slippage=f.slippage, mid_at_order=f.mid_at_placement)
            self._order_event(tx, o, o.status.value, reason=be.reason or "",
                              limit=be.new_limit if be.kind == BrokerEventKind.REPRICED else o.limit)

    def _reconciliation(self, tx: Tx, be: BrokerEvent) -> None:
        """A position the account holds that nothing here explains is adopted (an entry fill the
        position manager opens with its default exit plan; never posted to subscribers); one
        held here but not in the account is flagged; the summary is one admin message."""
        p = be.position
        if be.kind == BrokerEventKind.ADOPTED and p is not None:
            c = p.contract
            tx.pipe.hset(self.keys.hash("trade_ctx"), be.correlation_id, json.dumps(
                {"adopted": True, "qty": p.qty, "explanation": "adopted from the broker account"}))
            tx.emit(FillEvent, correlation_id=be.correlation_id, order_id=be.order_id,
                    fill_id=f"{be.order_id}:1", purpose="entry", symbol=c.symbol, expiry=c.expiry.isoformat(),
                    strike=c.strike, right=c.right.value, side="BUY", qty=p.qty, price=p.avg_cost,
                    strategy="adopted")
        elif be.kind == BrokerEventKind.RECONCILED:
            d = be.detail
            tx.emit(AlertEvent, correlation_id=be.correlation_id, code="BROKER_RECONCILED", severity="WARNING",
                    state="raised", subject="broker", message=str(d.get("summary", "broker reconciled")))
        tx.emit(AuditEvent, correlation_id=be.correlation_id, actor="execution", action=f"broker_{be.kind.value}",
                detail={"contract": be.contract_key, "reason": be.reason or "", **{
                    k: v for k, v in be.detail.items() if isinstance(v, (str, int, float, bool))}})

    def _order_event(self, tx: Tx, o: OrderState, status: str, reason: str = "", limit: float | None = None) -> None:
        tx.emit(OrderEvent, correlation_id=o.correlation_id, order_id=o.order_id, purpose=o.request.purpose.value,
                status=status, limit=limit if limit is not None else o.limit,
                filled_qty=o.filled_qty, avg_price=o.avg_price, reason=reason, **order_fields(o.request))

    def _reject_event(self, tx: Tx, corr: str, order_id: str, fields: dict, purpose: str, reason: str,
                      position_id: str | None = None) -> None:
        tx.emit(OrderEvent, correlation_id=corr, order_id=order_id, purpose=purpose, status="rejected",
                reason=reason, position_id=position_id, **fields)

    def _persist(self, tx: Tx) -> None:
        """Save what the broker asks to be saved (the paper book) with this handling's outputs."""
        raw = self.broker.dump_state(self.clock.now())
        if raw is not None:
            tx.pipe.set(self._state_key, raw)


def order_fields(req: OrderRequest) -> dict:
    c = req.contract
    if isinstance(c, OptionContract):
        return {"symbol": c.symbol, "expiry": c.expiry.isoformat(), "strike": c.strike, "right": c.right.value,
                "side": req.side.value, "qty": req.qty}
    return {"symbol": "?", "expiry": str(c.expiry or ""), "strike": float(c.strike or 0),
            "right": c.right.value if c.right else "", "side": req.side.value, "qty": req.qty}


def sig_fields(ev: ApprovalEvent) -> dict:
    s = ev.signal
    i = s.instrument
    return {"symbol": s.symbol, "expiry": i.expiry.isoformat() if i.expiry else "", "strike": float(i.strike or 0),
            "right": i.right.value if i.right else "", "side": s.side.value, "qty": max(ev.qty, 1)}
