"""Bus event -> ledger rows: the whole event for ``events`` and its typed row.

Only the trade's life and what was said about it are ledgered (``LEDGERED``); market data,
analytics snapshots and order requests stay on the bus (they are inputs, recomputable, and
about 97 % of a day's entries).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table

from core.bus.events import (
    AlertEvent,
    ApprovalEvent,
    ControlEvent,
    DeliveryEvent,
    Event,
    FillEvent,
    OrderEvent,
    PositionEvent,
    ReportEvent,
    SignalEvent,
    VerdictEvent,
)
from core.ledger import schema as s

LEDGERED: tuple[type[Event], ...] = (SignalEvent, VerdictEvent, ApprovalEvent, OrderEvent, FillEvent,
                                     PositionEvent, DeliveryEvent, ReportEvent, AlertEvent, ControlEvent)
LEDGERED_TYPES: frozenset[str] = frozenset(str(c.model_fields["type"].default) for c in LEDGERED)
LEDGERED_STREAMS: tuple[str, ...] = tuple(dict.fromkeys(c.STREAM for c in LEDGERED))


def _common(ev: Event) -> dict[str, Any]:
    return {"event_id": ev.id, "ts": ev.ts, "correlation_id": ev.correlation_id}


def _signal(ev: SignalEvent) -> dict[str, Any]:
    sig = ev.signal
    ins = sig.instrument
    return {"signal_id": sig.id, "strategy": sig.strategy, "symbol": sig.symbol,
            "expiry": ins.expiry.isoformat() if ins.expiry else None, "strike": ins.strike,
            "right": str(ins.right.value) if ins.right else None,
            "direction": sig.direction.value if sig.direction else None,
            "horizon": sig.horizon.value if sig.horizon else None,
            "qty": sig.qty, "limit_price": sig.limit, "stop": sig.stop, "confidence": sig.confidence}


def _verdict(ev: VerdictEvent) -> dict[str, Any]:
    return {"signal_id": ev.signal.id, "strategy": ev.signal.strategy, "decision": ev.decision,
            "reasons": list(ev.reasons), "reviewed_by": list(ev.reviewed_by),
            "premium_at_risk": ev.premium_at_risk, "risk_pct": ev.risk_pct}


def _approval(ev: ApprovalEvent) -> dict[str, Any]:
    return {"signal_id": ev.signal.id, "strategy": ev.signal.strategy, "decision": ev.decision,
            "qty": ev.qty, "decided_by": ev.decided_by, "policy": ev.policy}


def _order(ev: OrderEvent) -> dict[str, Any]:
    return {"order_id": ev.order_id, "purpose": ev.purpose, "status": ev.status, "symbol": ev.symbol,
            "expiry": ev.expiry or None, "strike": ev.strike or None, "right": ev.right or None,
            "side": ev.side, "qty": ev.qty, "limit_price": ev.limit, "filled_qty": ev.filled_qty,
            "avg_price": ev.avg_price, "reason": ev.reason, "position_id": ev.position_id}


def _fill(ev: FillEvent) -> dict[str, Any]:
    return {"fill_id": ev.fill_id, "order_id": ev.order_id, "purpose": ev.purpose, "strategy": ev.strategy,
            "symbol": ev.symbol, "expiry": ev.expiry, "strike": ev.strike, "right": ev.right, "side": ev.side,
            "qty": ev.qty, "price": ev.price, "commission": ev.commission, "slippage": ev.slippage,
            "position_id": ev.position_id}


def _position(ev: PositionEvent) -> dict[str, Any]:
    return {"position_id": ev.position_id, "kind": ev.kind, "strategy": ev.strategy, "symbol": ev.symbol,
            "expiry": ev.expiry, "strike": ev.strike, "right": ev.right, "direction": ev.direction,
            "horizon": ev.horizon, "qty": ev.qty, "qty_open": ev.qty_open, "price": ev.price,
            "entry_price": ev.entry_price, "stop": ev.stop, "realized_pnl": ev.realized_pnl, "reason": ev.reason}


def _delivery(ev: DeliveryEvent) -> dict[str, Any]:
    return {"channel": ev.channel, "tier": ev.tier, "event": ev.event, "status": ev.status,
            "message_id": ev.message_id, "reply_to": ev.reply_to, "attempts": ev.attempts, "error": ev.error,
            "due_ts": ev.due_ts}


def _report(ev: ReportEvent) -> dict[str, Any]:
    return {"kind": ev.kind, "status": ev.status, "report_id": ev.report_id, "by": ev.by, "path": ev.path,
            "paths": dict(ev.paths)}


def _alert(ev: AlertEvent) -> dict[str, Any]:
    return {"code": ev.code, "severity": ev.severity, "state": ev.state, "subject": ev.subject,
            "message": ev.message}


def _control(ev: ControlEvent) -> dict[str, Any]:
    return {"action": ev.action, "by": ev.by, "reason": ev.reason, "args": dict(ev.args)}


_TYPED: dict[type[Event], tuple[Table, Any]] = {
    SignalEvent: (s.signals, _signal), VerdictEvent: (s.verdicts, _verdict),
    ApprovalEvent: (s.approvals, _approval), OrderEvent: (s.orders, _order), FillEvent: (s.fills, _fill),
    PositionEvent: (s.position_events, _position), DeliveryEvent: (s.deliveries, _delivery),
    ReportEvent: (s.reports, _report), AlertEvent: (s.alerts, _alert), ControlEvent: (s.controls, _control),
}


def rows_for(ev: Event) -> list[tuple[Table, dict[str, Any]]]:
    """The rows one event writes (none for an event the ledger does not keep)."""
    typed = _TYPED.get(type(ev))
    if typed is None:
        return []
    table, build = typed
    common = _common(ev)
    whole = {**common, "type": ev.type, "stream": ev.STREAM, "payload": ev.model_dump_json()}
    return [(s.events, whole), (table, {**common, **build(ev)})]
