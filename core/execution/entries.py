"""Approved entries: stored until the contract's next live quote, re-checked, then placed.

An approval is checked before it is stored (halt; an order that the guard would refuse or that
cannot be built is refused at once, never stored). A stored entry waits for the contract's next
live quote (at most ``ENTRY_QUOTE_WAIT_S``; the timer expires it, :mod:`core.execution.service`)
and is placed only after the pre-trade re-check (:func:`core.execution.pretrade.check_placement`).
A refusal is a rejected ``OrderEvent`` with its ``Reason`` code plus an ``order_refused`` audit.
One bad pending entry is removed and refused alone (:mod:`core.execution.pending`). A halt or a
flatten cancels the working entries and refuses every entry still waiting.
"""

from __future__ import annotations

import json
from datetime import datetime

from core.bus.bus import Tx
from core.bus.events import ApprovalEvent, AuditEvent, ControlEvent
from core.control.halt import is_halted
from core.domain.reasons import Reason
from core.execution.guard import OrderRejected, check_order
from core.execution.orders import OrderPurpose, entry_order_from_signal
from core.execution.outputs import ExecutionOutputs, sig_fields
from core.execution.pending import UNREADABLE, contract_key_of, parse_pending, salvage_fields
from core.execution.pretrade import chase_ceiling, check_placement, with_working_entries
from core.risk import RiskLimits
from core.runtime import metrics
from core.state.account import load_risk_state

ENTRY_QUOTE_WAIT_S = 60


class EntryPlacement(ExecutionOutputs):
    """Approved entries from approval to placement; set up by ``ExecutionService.__init__``."""

    _pending_key: str  # the Redis hash of entries waiting for a quote
    # order_id -> contract key of entries waiting for a quote; this service alone writes the
    # hash, so the copy spares a Redis read per quote (dropped and re-read after a failure)
    _pending: dict[str, str] | None
    _limits: RiskLimits  # the overseer's hard-rule limits

    async def _pending_map(self) -> dict[str, str]:
        if self._pending is None:
            raw = await self.redis.hgetall(self._pending_key)
            # an entry that does not read back maps to UNREADABLE: purged by the next quote
            self._pending = {oid: contract_key_of(v) for oid, v in raw.items()}
        return self._pending

    async def _approved(self, ev: ApprovalEvent, tx: Tx) -> bool:
        sig = ev.signal
        order_id = f"ent-{sig.id}"
        if await is_halted(self.redis, self.keys):
            self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), Reason.HALTED,
                               "trading is halted", "approval")
            return False
        try:
            contract = sig.contract()
        except ValueError:
            self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), Reason.NOT_OPTION,
                               "the approved instrument is not a fully specified option", "approval")
            return False
        try:  # never store what cannot become an order (qty -5, a NaN limit): refused now, alone
            check_order(entry_order_from_signal(sig, order_id=order_id, created_ts=self.clock.now(), qty=ev.qty,
                                                max_price=chase_ceiling(sig.limit)))
        except OrderRejected as exc:
            self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), exc.reason, exc.detail, "approval")
            return False
        except (ValueError, TypeError, ArithmeticError) as exc:
            self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), Reason.BAD_INPUT,
                               f"the approved order cannot be built: {type(exc).__name__}", "approval")
            return False
        # the trade's context, for the position manager and the publishers
        tx.pipe.hset(self.keys.hash("trade_ctx"), ev.correlation_id, json.dumps({
            "signal": sig.model_dump(mode="json"), "explanation": ev.explanation, "verdict": ev.verdict,
            "risk_pct": ev.risk_pct, "decided_by": ev.decided_by, "qty": ev.qty}, sort_keys=True))
        tx.pipe.hset(self.keys.hash("watch"), contract.key, "1")
        tx.pipe.hset(self._pending_key, order_id, json.dumps({
            "approval": ev.model_dump(mode="json"), "deadline_ms": self.clock.ms() + ENTRY_QUOTE_WAIT_S * 1000}))
        (await self._pending_map())[order_id] = contract.key
        return False

    async def _place_pending(self, contract_key: str, tx: Tx, now: datetime) -> bool:
        """Place the entries waiting for this contract's quote, each only after the pre-trade
        check (:func:`core.execution.pretrade.check_placement`) at ``now``, with ``max_price``
        clipped to the per-trade cap. A pending entry that does not read back (any contract's
        quote purges those) or whose order cannot be built is removed and refused with
        ``BAD_INPUT``, counted and logged; it never fails this quote's handling. Redis and
        broker errors still fail the handling (transient: it is retried)."""
        waiting = await self._pending_map()
        poison = sorted(oid for oid, key in waiting.items() if key == UNREADABLE)
        mine = sorted(oid for oid, key in waiting.items() if key == contract_key)
        if not mine and not poison:
            return False
        pending = dict(zip(poison + mine, await self.redis.hmget(self._pending_key, poison + mine), strict=True))
        for order_id in poison:
            waiting.pop(order_id, None)
            tx.pipe.hdel(self._pending_key, order_id)
            if pending[order_id] is not None:
                self._drop_poison(tx, order_id, pending[order_id], "the stored approval does not read back")
        placed = False
        state = None
        for order_id in mine:
            raw = pending[order_id]
            if raw is None:
                waiting.pop(order_id, None)
                continue
            try:
                ev = parse_pending(raw)
                key = ev.signal.contract().key
            except Exception as exc:  # noqa: BLE001 - a changed entry: poison, isolated
                waiting.pop(order_id, None)
                tx.pipe.hdel(self._pending_key, order_id)
                self._drop_poison(tx, order_id, raw, f"the stored approval does not read back: {type(exc).__name__}")
                continue
            if key != contract_key:
                continue
            sig = ev.signal
            tx.pipe.hdel(self._pending_key, order_id)
            waiting.pop(order_id, None)
            if state is None:
                state = await load_risk_state(self.redis, self.keys, self.settings, now, symbols=[sig.symbol])
            live = with_working_entries(state, await self.broker.open_orders())
            try:
                verdict = check_placement(sig, ev.qty, live, self._limits, now)
                req = entry_order_from_signal(sig, order_id=order_id, created_ts=now, qty=ev.qty,
                                              max_price=verdict.max_price) if verdict.ok else None
            except Exception as exc:  # noqa: BLE001 - an approval that cannot become an order: poison
                self._drop_poison(tx, order_id, raw, f"the entry order cannot be built: {type(exc).__name__}")
                continue
            if req is None:
                assert verdict.reason is not None
                self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), verdict.reason,
                                   verdict.detail, "placement")
                continue
            placed |= await self._place(req, tx)
        return placed

    def _refuse_entry(self, tx: Tx, corr: str, order_id: str, fields: dict, reason: Reason, detail: str,
                      stage: str) -> None:
        """An entry refused before it reached the broker: the rejected OrderEvent with the Reason
        code, and an ``order_refused`` audit with the human detail (the admin's card shows it)."""
        metrics.REJECTED.labels(self.name, reason.value).inc()
        self.log.warning("entry %s refused at %s: %s (%s)", order_id, stage, reason.value, detail)
        self._reject_event(tx, corr, order_id, fields, "entry", reason.value)
        tx.emit(AuditEvent, correlation_id=corr, actor="execution", action="order_refused",
                detail={"order_id": order_id, "purpose": "entry", "stage": stage, "reason": reason.value,
                        "detail": detail[:500], "qty": fields.get("qty", 0)})

    def _drop_poison(self, tx: Tx, order_id: str, raw: str, why: str) -> None:
        """A pending entry that cannot be placed: refused with BAD_INPUT (an OrderEvent when its
        fields can be read back, always the audit), counted and logged. Already removed."""
        corr, fields = salvage_fields(raw, order_id)
        if fields is None:
            metrics.REJECTED.labels(self.name, Reason.BAD_INPUT.value).inc()
            self.log.error("pending entry %s dropped: %s (unreadable: no order event)", order_id, why)
            tx.emit(AuditEvent, correlation_id=corr or order_id, actor="execution", action="order_refused",
                    detail={"order_id": order_id, "purpose": "entry", "stage": "placement",
                            "reason": Reason.BAD_INPUT.value, "detail": why})
            return
        self._refuse_entry(tx, corr, order_id, fields, Reason.BAD_INPUT, why, "placement")

    async def _cancel_entries(self, ev: ControlEvent, tx: Tx) -> bool:
        now = self.clock.now()
        cancelled = 0
        for o in await self.broker.open_orders():
            if o.request.purpose == OrderPurpose.ENTRY:
                st = await self.broker.cancel(o.order_id, now)
                if st.status.is_terminal:  # a live broker confirms later, on its push channel
                    self._order_event(tx, st, st.status.value, reason=f"{ev.action}:{ev.reason}"[:80])
                cancelled += 1
        pending = await self.redis.hgetall(self._pending_key)
        for order_id, raw in sorted(pending.items()):  # approved, never placed: each refused, the card told
            tx.pipe.hdel(self._pending_key, order_id)
            corr, fields = salvage_fields(raw, order_id)
            why = f"approved entry cancelled before placement by {ev.action}: {ev.reason}"[:200]
            if fields is None:
                self._drop_poison(tx, order_id, raw, why)
            else:
                self._refuse_entry(tx, corr, order_id, fields, Reason.HALTED, why, "cancelled")
        self._pending = {}
        return bool(cancelled) or bool(pending)
