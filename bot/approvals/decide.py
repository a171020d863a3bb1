"""Deciding cards: what a Telegram button press (or the expiry sweep) calls."""

from __future__ import annotations

from bot.approvals.claims import ClaimResult, claim, read_card
from core.bus.bus import Bus
from core.bus.events import ApprovalEvent, ReportEvent
from core.domain.signal import Signal


async def decide_signal(bus: Bus, signal_id: str, decision: str, by: str, *, half: bool = False) -> ClaimResult:
    """decision: approved | rejected | expired. ``half`` approves half the size (at least 1)."""
    card = await read_card(bus.redis, bus, f"sig:{signal_id}")
    if card is None:
        return ClaimResult("unknown", "", "")
    payload = card["payload"]
    signal = Signal.model_validate(payload["signal"])
    qty = 0
    if decision == "approved":
        qty = max(1, signal.qty // 2) if half else signal.qty
    event = bus.make(ApprovalEvent, correlation_id=payload.get("correlation_id") or signal.id, signal=signal,
                     decision=decision, qty=qty, decided_by=by, policy=payload.get("policy", "manual"),
                     verdict=payload.get("verdict", ""), explanation=payload.get("explanation", ""),
                     concerns=payload.get("concerns", []), ai_status=payload.get("ai_status", ""),
                     premium_at_risk=payload.get("premium_at_risk", 0.0), risk_pct=payload.get("risk_pct", 0.0))
    return await claim(bus, f"sig:{signal_id}", decision, by, event)


async def decide_report(bus: Bus, report_id: str, decision: str, by: str) -> ClaimResult:
    card = await read_card(bus.redis, bus, f"rep:{report_id}")
    if card is None:
        return ClaimResult("unknown", "", "")
    p = card["payload"]
    event = bus.make(ReportEvent, correlation_id=p.get("correlation_id") or report_id, kind=p["kind"],
                     status=decision, path=p.get("path", ""), summary=p.get("summary", ""), by=by,
                     report_id=report_id, paths=p.get("paths", {}))
    return await claim(bus, f"rep:{report_id}", decision, by, event)
