"""Review logic shared by :class:`~overseer.review.service.ReviewService` and the CLI.

    reviewer = Reviewer(settings, gateway)
    outcome = await reviewer.review(signal_or_dict, ReviewContext(state=...), now, tx=tx)

1. Hard rules first (:func:`overseer.review.rules.hard_rules`). Any failure -> ``reject`` with
   every code, ``reviewed_by=["rules"]``, ``ai={"status": "skipped"}``; the model is not called.
2. Otherwise the model reviews (:class:`~overseer.ai.gateway.AiGateway`, forced tool
   ``submit_review``). The final decision is the stricter of the rules' ``approve`` and the
   model's decision; when the model is unavailable the rules decide alone (``approve``).
3. The trade explanation for premium subscribers (``summary`` and ``ai["explanation"]``) is the
   model's ``explanation`` field when it passes the text guards, else the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from core.bus.bus import Tx
from core.config.model import Settings
from core.domain.signal import Signal
from core.risk import RiskDecision, RiskLimits, RiskState, premium_at_risk, risk_pct_of_account
from overseer._util import finite, risk_limits
from overseer.ai.gateway import AiGateway, AiResult
from overseer.narratives import templates as tpl
from overseer.narratives.guard import check_text, clean
from overseer.narratives.narrator import template_trade_explanation, trade_facts
from overseer.review.models import REVIEW_TOOL, AiReview, stricter
from overseer.review.prompt import REVIEW_SYSTEM, review_payload, review_prompt
from overseer.review.rules import hard_rules


@dataclass
class ReviewContext:
    """What a review is checked against and what the model sees besides the signal."""

    state: RiskState | Mapping[str, Any] | None = None
    analytics: dict[str, Any] | None = None  # keys.snapshot("analytics", symbol) JSON
    chain: dict[str, Any] | None = None  # keys.snapshot("chain_meta", symbol) JSON (freshness only)
    positions: list[dict[str, Any]] | None = None  # None: taken from state.open_positions
    alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReviewOutcome:
    decision: str
    reasons: list[str]
    details: dict[str, str]
    reviewed_by: list[str]
    ai: dict[str, Any]
    concerns: list[str]
    summary: str
    premium_at_risk: float
    risk_pct: float
    signal: Signal | None = None
    signal_id: str | None = None

    def verdict_fields(self) -> dict[str, Any]:
        """Keyword arguments of a :class:`core.bus.events.VerdictEvent` (needs a valid signal)."""
        if self.signal is None:
            raise ValueError("a verdict event needs a valid signal")
        return {
            "signal": self.signal,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "reviewed_by": list(self.reviewed_by),
            "ai": dict(self.ai),
            "concerns": list(self.concerns),
            "summary": self.summary,
            "premium_at_risk": self.premium_at_risk,
            "risk_pct": self.risk_pct,
        }

    def as_dict(self) -> dict[str, Any]:
        """The CLI's JSON output."""
        return {
            "signal_id": self.signal_id,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "details": dict(self.details),
            "reviewed_by": list(self.reviewed_by),
            "ai": dict(self.ai),
            "concerns": list(self.concerns),
            "summary": self.summary,
            "premium_at_risk": self.premium_at_risk,
            "risk_pct": self.risk_pct,
        }


def _state_model(state: Any) -> RiskState | None:
    if isinstance(state, RiskState):
        return state
    if state is None:
        return RiskState()
    try:
        return RiskState.model_validate(state)
    except (ValidationError, TypeError, ValueError):
        return None


def _positions_from_state(state: RiskState | None) -> list[dict[str, Any]]:
    if state is None:
        return []
    return [p.model_dump(mode="json") for p in state.open_positions if p.is_open]


def _signal_id(signal: Any) -> str | None:
    sid = signal.get("id") if isinstance(signal, Mapping) else getattr(signal, "id", None)
    return sid if isinstance(sid, str) else None


class Reviewer:
    def __init__(self, settings: Settings, gateway: AiGateway, limits: RiskLimits | None = None) -> None:
        self.settings = settings
        self.gateway = gateway
        self.limits = limits or risk_limits(settings)

    async def review(
        self,
        signal: Signal | Mapping[str, Any],
        ctx: ReviewContext,
        now: datetime,
        *,
        tx: Tx | None = None,
        correlation_id: str | None = None,
    ) -> ReviewOutcome:
        decision, sig = hard_rules(
            signal, ctx.state, self.limits, now, self.settings, analytics=ctx.analytics, chain=ctx.chain
        )
        state = _state_model(ctx.state)
        prem = finite(premium_at_risk(sig if sig is not None else signal))  # type: ignore[arg-type]
        rpct = finite(risk_pct_of_account(sig if sig is not None else signal, state))  # type: ignore[arg-type]
        base: dict[str, Any] = {
            "premium_at_risk": round(prem, 2),
            "risk_pct": round(rpct, 4),
            "signal": sig,
            "signal_id": _signal_id(signal),
        }

        if not decision.ok or sig is None:
            return _rules_rejection(decision, base)
        facts, payload, res = await self._ask_model(sig, ctx, state, tx, correlation_id)
        return _model_outcome(res, facts, payload, base)

    async def _ask_model(
        self,
        sig: Signal,
        ctx: ReviewContext,
        state: RiskState | None,
        tx: Tx | None,
        correlation_id: str | None,
    ) -> tuple[dict[str, Any], dict[str, Any], AiResult]:
        """(trade facts, review payload, model answer) for a signal the rules let through."""
        account = state.account_value if state is not None else None
        facts = trade_facts(sig, ctx.analytics, account)
        positions = ctx.positions if ctx.positions is not None else _positions_from_state(state)
        payload = review_payload(
            sig, facts, state, self.limits, analytics=ctx.analytics, positions=positions, alerts=ctx.alerts
        )
        res = await self.gateway.call_tool(
            purpose="review",
            system=REVIEW_SYSTEM,
            user=review_prompt(payload),
            tool=REVIEW_TOOL,
            model_cls=AiReview,
            max_tokens=self.settings.overseer.review_max_tokens,
            tx=tx,
            correlation_id=correlation_id or sig.id,
        )
        return facts, payload, res


def _rules_rejection(decision: RiskDecision, base: dict[str, Any]) -> ReviewOutcome:
    """The hard rules failed: reject with every code; the model is not called."""
    codes = [r.value for r in decision.reasons] or ["BAD_INPUT"]
    details = {r.value: t for r, t in decision.details.items()}
    first = next(iter(details.values()), "")
    return ReviewOutcome(
        decision="reject",
        reasons=codes,
        details=details,
        reviewed_by=["rules"],
        ai={"status": "skipped", "reason": "rules rejected"},
        concerns=[f"{c}: {details.get(c, c)}" for c in codes],
        summary=tpl.render("reject_summary.j2", codes=codes, first_detail=first[:200]),
        **base,
    )


def _model_outcome(
    res: AiResult, facts: dict[str, Any], payload: dict[str, Any], base: dict[str, Any]
) -> ReviewOutcome:
    """The stricter of the rules' approve and the model's decision, with the explanation
    (the model's when it passes the text guards, else the template)."""
    ai = res.summary()
    final = "approve"
    concerns: list[str] = []
    reviewed_by = ["rules"]
    explanation: str | None = None
    if res.ok and res.data is not None:
        review = AiReview.model_validate(res.data)
        final = stricter("approve", review.decision)
        concerns = [c for c in (clean(x)[:300] for x in review.concerns) if c]
        reviewed_by = ["rules", "ai"]
        ai.update(
            {
                "decision": review.decision,
                "confidence": review.confidence,
                "summary": clean(review.summary)[:600],
            }
        )
        explanation = check_text(review.explanation, payload, max_sentences=3, max_chars=600)
        if explanation is None and review.explanation:
            ai["explanation_rejected"] = "guard"
    source = "model" if explanation is not None else "template"
    if explanation is None:
        explanation = template_trade_explanation(facts)
    ai.update({"explanation": explanation, "explanation_source": source})
    return ReviewOutcome(
        decision=final,
        reasons=[],
        details={},
        reviewed_by=reviewed_by,
        ai=ai,
        concerns=concerns,
        summary=explanation,
        **base,
    )
