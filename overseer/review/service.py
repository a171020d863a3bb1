"""ReviewService: every SignalEvent -> one VerdictEvent (stream ``verdicts``).

Service name ``overseer`` (its consumer group), streams ``("signals",)``. Reads (``self.redis``):
the risk state (``core.state.account.load_risk_state`` at the clock's now, for the signal's
symbol), ``keys.snapshot("analytics", symbol)`` and ``keys.snapshot("chain_meta", symbol)`` JSON,
the open positions (hash ``positions``) and the last alerts (stream ``alerts``). Writes, all on
the handler's ``tx``: the VerdictEvent and the AuditEvent of the model call. Budget counters
and the answer cache are written at call time (see :mod:`overseer.ai.budget`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.bus.bus import Tx
from core.bus.events import AlertEvent, BadEvent, Event, SignalEvent, VerdictEvent, decode
from core.domain.signal import Signal
from core.runtime import metrics
from core.runtime.service import Context, Service
from core.state.account import load_risk_state, open_positions
from overseer._util import load_json_obj, risk_limits, snapshot_asof_ms
from overseer.ai.gateway import AiGateway
from overseer.review.reviewer import ReviewContext, Reviewer, ReviewOutcome

RECENT_ALERTS = 10
POSITION_FIELDS = ("symbol", "strategy", "right", "strike", "expiry", "qty_open", "avg_entry", "multiplier")


class ReviewService(Service):
    name = "overseer"
    streams = ("signals",)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.gateway = AiGateway(
            self.settings, ctx.secrets, self.clock, redis=self.redis, keys=self.keys, bus=self.bus
        )
        self.reviewer = Reviewer(self.settings, self.gateway, risk_limits(self.settings))

    async def stop(self) -> None:
        await self.gateway.aclose()

    async def context_for(self, signal: Signal, now: datetime) -> ReviewContext:
        state = await load_risk_state(self.redis, self.keys, self.settings, now, symbols=[signal.symbol])
        analytics = load_json_obj(await self.redis.get(self.keys.snapshot("analytics", signal.symbol)))
        chain_asof = snapshot_asof_ms(await self.redis.get(self.keys.snapshot("chain_meta", signal.symbol)))
        positions = [
            {k: p.get(k) for k in POSITION_FIELDS if k in p}
            for p in await open_positions(self.redis, self.keys)
        ]
        return ReviewContext(
            state=state,
            analytics=analytics,
            chain={"asof": chain_asof} if chain_asof is not None else None,
            positions=positions,
            alerts=await self.recent_alerts(),
        )

    async def recent_alerts(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        entries = await self.redis.xrevrange(self.keys.stream(AlertEvent.STREAM), count=RECENT_ALERTS)
        for _eid, fields in entries or []:
            if not fields:
                continue
            try:
                ev = decode(fields)
            except BadEvent:
                continue
            if isinstance(ev, AlertEvent):
                out.append(
                    {
                        "code": ev.code,
                        "severity": ev.severity,
                        "state": ev.state,
                        "subject": ev.subject,
                        "message": ev.message,
                        "at": ev.iso_ny(),
                    }
                )
        return out

    async def review(
        self, signal: Signal, *, tx: Tx | None = None, correlation_id: str | None = None
    ) -> ReviewOutcome:
        now = self.clock.now()
        ctx = await self.context_for(signal, now)
        return await self.reviewer.review(signal, ctx, now, tx=tx, correlation_id=correlation_id)

    async def handle(self, event: Event, tx: Tx) -> None:
        if not isinstance(event, SignalEvent):
            return
        outcome = await self.review(event.signal, tx=tx, correlation_id=event.correlation_id)
        tx.emit(VerdictEvent, correlation_id=event.correlation_id, **outcome.verdict_fields())
        if outcome.decision == "reject":
            for code in outcome.reasons or ["AI_REJECT"]:
                metrics.REJECTED.labels(self.name, code).inc()
        self.log.info(
            "signal=%s strategy=%s symbol=%s decision=%s reasons=%s ai=%s",
            event.signal.id,
            event.signal.strategy,
            event.signal.symbol,
            outcome.decision,
            ",".join(outcome.reasons),
            outcome.ai.get("status"),
        )
