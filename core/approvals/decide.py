"""Deciding cards: what a Telegram button press (or the expiry sweep) calls.

A card is shared state another service wrote; it is validated with the typed models when it
is read. A card whose values cannot be traded (a qty of -5 or 0, a NaN limit, a size above
the signal's) is never approved: the press is refused (:class:`ClaimResult` status
``invalid``, ``decided_by`` says why, for the admin's reply), and the card is closed as
``rejected`` by ``validation`` in the same atomic claim, which writes an audit event instead
of an approval. The refusal is counted (``REJECTED{service="approvals", reason="invalid_card"}``)
and logged; nothing about it reaches execution, so it cannot block a genuine trade.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from core.approvals.claims import ClaimResult, claim, read_card
from core.bus.bus import Bus
from core.bus.events import ApprovalEvent, AuditEvent, ReportEvent
from core.domain.signal import Signal
from core.runtime import metrics

log = logging.getLogger("quanticity.approvals")


def _problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "card"
    return f"{where}: {err.get('msg')}"[:200]


async def decide_signal(bus: Bus, signal_id: str, decision: str, by: str, *, half: bool = False) -> ClaimResult:
    """decision: approved | rejected | expired. ``half`` approves half the size (at least 1).
    Never raises on a bad card: it is refused and closed (see the module docstring)."""
    item_id = f"sig:{signal_id}"
    card = await read_card(bus.redis, bus, item_id)
    if card is None:
        return ClaimResult("unknown", "", "")
    payload: dict[str, Any] = card["payload"] if isinstance(card["payload"], dict) else {}
    try:
        signal = Signal.model_validate(payload.get("signal"))
        qty = 0
        if decision == "approved":
            qty = max(1, signal.qty // 2) if half else signal.qty
        event = bus.make(ApprovalEvent, correlation_id=payload.get("correlation_id") or signal.id, signal=signal,
                         decision=decision, qty=qty, decided_by=by, policy=payload.get("policy", "manual"),
                         verdict=payload.get("verdict", ""), explanation=payload.get("explanation", ""),
                         concerns=payload.get("concerns", []), ai_status=payload.get("ai_status", ""),
                         premium_at_risk=payload.get("premium_at_risk", 0.0),
                         risk_pct=payload.get("risk_pct", 0.0))
    except ValidationError as exc:
        return await _refuse_invalid(bus, item_id, decision, by, _problem(exc))
    return await claim(bus, item_id, decision, by, event)


async def _refuse_invalid(bus: Bus, item_id: str, decision: str, by: str, why: str) -> ClaimResult:
    metrics.REJECTED.labels("approvals", "invalid_card").inc()
    log.warning("card %s holds invalid values (%s): %s by %s refused, card closed as rejected",
                item_id, why, decision, by)
    audit = bus.make(AuditEvent, correlation_id=item_id, actor="approvals", action="card_invalid",
                     detail={"item_id": item_id, "decision": decision, "by": by, "problem": why})
    res = await claim(bus, item_id, "rejected", "validation", audit)
    if not res.ok:  # already decided, or past its expiry: as it stands
        return res
    return ClaimResult("invalid", "rejected", why)


async def decide_report(bus: Bus, report_id: str, decision: str, by: str) -> ClaimResult:
    card = await read_card(bus.redis, bus, f"rep:{report_id}")
    if card is None:
        return ClaimResult("unknown", "", "")
    p = card["payload"]
    event = bus.make(ReportEvent, correlation_id=p.get("correlation_id") or report_id, kind=p["kind"],
                     status=decision, path=p.get("path", ""), summary=p.get("summary", ""), by=by,
                     report_id=report_id, paths=p.get("paths", {}))
    return await claim(bus, f"rep:{report_id}", decision, by, event)
