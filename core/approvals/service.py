"""ApprovalService: turns overseer verdicts and built reports into cards or decisions.

Consumes ``verdicts`` and ``reports``. A rejected verdict never becomes a card.
Other verdicts are approved at once when the policy allows, else a pending card
is opened (ApprovalEvent ``pending``; the Telegram bot shows it) that expires
after the strategy's ``card_ttl_s``. Built reports are approved at once when no
approval is required (or the demo's stand-in admin approves them), else a
``pending_approval`` ReportEvent asks the admin.
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.approvals.claims import close_card, open_card, pending_cards
from core.approvals.decide import decide_report, decide_signal
from core.approvals.policy import auto_decides, current_policy
from core.bus.bus import Tx
from core.bus.events import ApprovalEvent, AuditEvent, Event, ReportEvent, VerdictEvent
from core.runtime.due_head import DueHead
from core.runtime.service import Context, Service

DEFAULT_CARD_TTL_S = 300


class ApprovalService(Service):
    name = "approvals"
    streams = ("verdicts", "reports")
    event_types = frozenset({"review.verdict", "report"})

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # Head of the card expiry index ``z:cards`` for next_due (core/runtime/due_head.py). Only this
        # service adds cards (open_card, in its handlings) or re-reads after its own timer; the other
        # writers (Telegram buttons, the approve CLI: the claim script) only remove cards, which makes
        # the real head later, so a cached head is at worst too early: one extra on_timer finding
        # nothing due, after which the index is read again.
        self._due = DueHead()

    async def handle(self, event: Event, tx: Tx) -> None:
        if isinstance(event, VerdictEvent):
            await self._verdict(event, tx)
        elif isinstance(event, ReportEvent) and event.status == "built":
            self._report(event, tx)

    async def _verdict(self, v: VerdictEvent, tx: Tx) -> None:
        sig = v.signal
        if v.decision == "reject":
            tx.emit(AuditEvent, correlation_id=v.correlation_id, actor="approvals", action="signal_refused",
                    detail={"signal_id": sig.id, "reasons": v.reasons})
            return
        policy = await current_policy(self.redis, self.keys, self.settings)
        payload = {"signal": sig.model_dump(mode="json"), "correlation_id": v.correlation_id, "policy": policy,
                   "verdict": v.decision, "explanation": v.summary, "concerns": v.concerns,
                   "ai_status": str(v.ai.get("status", "")), "premium_at_risk": v.premium_at_risk,
                   "risk_pct": v.risk_pct}
        common = {"correlation_id": v.correlation_id, "signal": sig, "policy": policy, "verdict": v.decision,
                      "explanation": v.summary, "concerns": v.concerns, "ai_status": payload["ai_status"],
                      "premium_at_risk": v.premium_at_risk, "risk_pct": v.risk_pct}
        if auto_decides(policy, v.decision, v.risk_pct, self.settings.approval.auto_if_max_risk_pct):
            close_card(tx, f"sig:{sig.id}", "signal", "approved", f"policy:{policy}", payload)
            tx.emit(ApprovalEvent, decision="approved", qty=sig.qty, decided_by=f"policy:{policy}", **common)
            return
        cfg = self.settings.strategies.get(sig.strategy)
        ttl = cfg.card_ttl_s if cfg else DEFAULT_CARD_TTL_S
        expires = self.clock.ms() + ttl * 1000
        open_card(tx, f"sig:{sig.id}", "signal", expires, payload)
        self._due.scheduled(tx, expires)
        tx.emit(ApprovalEvent, decision="pending", qty=sig.qty, decided_by="", expires_ts=expires, **common)

    def _report(self, r: ReportEvent, tx: Tx) -> None:
        s = self.settings
        auto = (not s.reports.require_approval) or (s.mode == "demo" and s.demo.approve_reports)
        payload = {"kind": r.kind, "path": r.path, "summary": r.summary, "paths": r.paths,
                   "correlation_id": r.correlation_id}
        fields = {"correlation_id": r.correlation_id, "kind": r.kind, "path": r.path, "summary": r.summary,
                      "report_id": r.report_id, "paths": r.paths}
        if auto:
            close_card(tx, f"rep:{r.report_id}", "report", "approved", "policy:auto", payload)
            tx.emit(ReportEvent, status="approved", by="policy:auto", **fields)
            return
        expires = self.clock.ms() + 6 * 3600 * 1000
        open_card(tx, f"rep:{r.report_id}", "report", expires, payload)
        self._due.scheduled(tx, expires)
        tx.emit(ReportEvent, status="pending_approval", **fields)

    async def _read_head(self) -> float | None:
        rows = await self.redis.zrange(self.keys.zset("cards"), 0, 0, withscores=True)
        return float(rows[0][1]) if rows else None

    async def next_due(self, now: datetime) -> datetime | None:
        head = await self._due.get(self._read_head, int(now.timestamp() * 1000))
        return None if head is None else datetime.fromtimestamp(head / 1000, tz=UTC)

    async def on_timer(self, now: datetime) -> None:
        try:
            await self._expire(now)
        finally:
            self._due.invalidate()  # it removed cards (and others may have): read the head again

    async def _expire(self, now: datetime) -> None:
        now_ms = int(now.timestamp() * 1000)
        for item_id, expires in await pending_cards(self.redis, self.bus):
            if expires > now_ms:
                break
            kind, _, ident = item_id.partition(":")
            if kind == "sig":
                await decide_signal(self.bus, ident, "expired", "timeout")
            elif kind == "rep":
                await decide_report(self.bus, ident, "expired", "timeout")
            # decided, unknown or malformed: it must leave the expiry index either way
            await self.redis.zrem(self.keys.zset("cards"), item_id)
