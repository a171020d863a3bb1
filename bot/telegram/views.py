"""Template contexts built from events and state, field by field.

Everything that came from outside the bot's own code (triggers, concerns, explanations,
alert messages, summaries, reasons, names) goes through :func:`clip` here; the templates
escape it for HTML.
"""

from __future__ import annotations

from typing import Any

from bot.telegram.render import clip, clip_list
from core.bus.events import AlertEvent, ApprovalEvent, ControlEvent, PositionEvent, ReportEvent
from core.format import numbers


def contract_label(symbol: str, expiry: Any, strike: Any, right: Any) -> str:
    """``SPY 12/03/26 590C`` (``core.format.numbers.contract_label``), outside text clipped first."""
    return numbers.contract_label(clip(symbol, 12), expiry, strike, clip(right, 1))


def signal_view(ev: ApprovalEvent, account_value: float) -> dict[str, Any]:
    s = ev.signal
    try:
        c = s.contract()
        occ, label = c.occ, contract_label(c.symbol, c.expiry, c.strike, c.right.value)
    except ValueError:
        occ, label = "", f"{clip(s.symbol, 12)} {s.instrument.type.value} (not a listed option)"
    full_qty = max(1, s.qty)
    qty = ev.qty or full_qty  # rejected / expired events carry qty 0
    par = ev.premium_at_risk or full_qty * s.limit * s.instrument.multiplier  # at full size
    risk_pct = ev.risk_pct or (par / account_value * 100.0 if account_value > 0 else 0.0)
    if qty != full_qty:  # approved at half size: the risk scales with it
        par, risk_pct = par * qty / full_qty, risk_pct * qty / full_qty
    return {
        "id": s.id,
        "occ": occ,
        "label": label,
        "side": s.side.value,
        "qty": qty,
        "full_qty": full_qty,
        "half_qty": max(1, full_qty // 2),
        "limit": s.limit,
        "stop": s.stop,
        "targets": list(s.targets),
        "premium_at_risk": par,
        "risk_pct": risk_pct,
        "strategy": clip(s.strategy, 40),
        "horizon": s.horizon.value if s.horizon else "",
        "direction": s.direction.value if s.direction else "",
        "confidence": s.confidence,
        "triggers": clip_list(s.triggers, 100, 10),
        "verdict": clip(ev.verdict, 20) or "n/a",
        "concerns": clip_list(ev.concerns, 200, 8),
        "ai_ok": ev.ai_status == "ok",
        "explanation": clip(ev.explanation, 600),
        "expires_ms": ev.expires_ts,
        "policy": clip(ev.policy, 20),
    }


def outcome_view(state: str, by_label: str, at_ms: int, qty: int = 0, full_qty: int = 0) -> dict[str, Any]:
    return {"state": state, "by": clip(by_label, 60), "at_ms": at_ms, "qty": qty,
            "half": state == "approved" and 0 < qty < full_qty}


def refusal_view(reason: Any, detail: Any, at_ms: int) -> dict[str, Any]:
    """An approved entry the execution service refused at placement (``order_refused`` audit)."""
    return {"reason": clip(reason, 40), "detail": clip(detail, 400), "at_ms": at_ms}


def report_view(ev: ReportEvent) -> dict[str, Any]:
    return {"id": clip(ev.report_id, 80), "kind": ev.kind, "summary": clip(ev.summary, 700),
            "file": clip(ev.path.rsplit("/", 1)[-1], 80) if ev.path else ""}


def alert_view(ev: AlertEvent, halted: bool) -> dict[str, Any]:
    return {"severity": ev.severity, "state": ev.state, "code": clip(ev.code, 60),
            "subject": clip(ev.subject, 60), "message": clip(ev.message, 500),
            "explanation": clip(ev.explanation, 800), "count": ev.count, "halted": halted, "ts": ev.ts}


def position_view(ev: PositionEvent) -> dict[str, Any]:
    return {"kind": ev.kind, "id": clip(ev.position_id, 60),
            "label": contract_label(ev.symbol, ev.expiry, ev.strike, ev.right),
            "strategy": clip(ev.strategy, 40), "qty": ev.qty, "qty_open": ev.qty_open, "price": ev.price,
            "entry_price": ev.entry_price, "stop": ev.stop, "targets": list(ev.targets),
            "realized_pnl": ev.realized_pnl, "reason": clip(ev.reason, 120), "ts": ev.ts}


def control_view(ev: ControlEvent, by_label: str) -> dict[str, Any]:
    return {"action": ev.action, "by": clip(by_label, 60), "reason": clip(ev.reason, 300), "ts": ev.ts,
            "args": {clip(k, 30): clip(v, 60) for k, v in list(ev.args.items())[:6]}}
