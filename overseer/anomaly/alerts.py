"""Alerts raised once and cleared once, with severity routing.

State: hash ``keys.hash("anomaly_alerts")``, field ``"<code>|<subject>"`` -> JSON
``{code, subject, severity, message, count, since_ms, last_ms, absent, raised_id}``.

- A finding with no state entry is **raised**: INFO is only logged; WARNING emits an
  :class:`AlertEvent` (state "raised", with a short explanation); CRITICAL also sets the
  persistent halt (``core.control.halt.set_halt(by="overseer")``) in the same transaction.
- While it persists only ``count`` (occurrences) grows; nothing is emitted. An escalation
  (WARNING -> CRITICAL) emits one more "raised" event (and halts); a de-escalation emits nothing.
- When a detector that was evaluated no longer reports it for ``clear_after`` consecutive
  evaluations it is **cleared**: one AlertEvent (state "cleared", ``count`` = occurrences),
  correlated with the raise. Clearing never resumes a halt: only an admin does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from core.bus.bus import Bus, Tx
from core.bus.events import AlertEvent
from core.control.halt import set_halt
from overseer._util import text
from overseer.anomaly.detectors import SEVERITY_RANK, Finding
from overseer.narratives import templates as tpl
from overseer.narratives.narrator import Narrator

log = logging.getLogger("quanticity.anomaly")

Scope = Callable[[dict[str, Any]], bool]


class AlertBook:
    def __init__(self, bus: Bus, narrator: Narrator, actor: str = "overseer") -> None:
        self.bus = bus
        self.redis = bus.redis
        self.keys = bus.keys
        self.narrator = narrator
        self.actor = actor

    @property
    def key(self) -> str:
        return self.keys.hash("anomaly_alerts")

    async def load(self) -> dict[str, dict[str, Any]]:
        return self.parse(await self.redis.hgetall(self.key))

    @staticmethod
    def parse(raw: dict[Any, Any]) -> dict[str, dict[str, Any]]:
        """The alert entries of the hash as read (HGETALL); unreadable entries are skipped."""
        out: dict[str, dict[str, Any]] = {}
        for k, v in raw.items():
            try:
                val = json.loads(text(v))
            except ValueError:
                continue
            if isinstance(val, dict):
                out[text(k)] = val
        return out

    async def apply(
        self,
        tx: Tx,
        findings: Iterable[Finding],
        scope: Scope,
        *,
        state: dict[str, dict[str, Any]] | None = None,
        clear_after: int = 1,
    ) -> list[AlertEvent]:
        """Raise/escalate/count ``findings``; clear entries matched by ``scope`` that are absent.

        ``state`` (from :meth:`load`) is updated in place so several calls in one handling agree.
        """
        state = await self.load() if state is None else state
        now_ms = self.bus.clock.ms()
        emitted: list[AlertEvent] = []
        current: dict[str, Finding] = {}
        for f in findings:
            prev = current.get(f.ident)
            if prev is None or SEVERITY_RANK[f.severity] > SEVERITY_RANK[prev.severity]:
                current[f.ident] = f

        for ident, f in current.items():
            cur = state.get(ident)
            entry: dict[str, Any]
            if cur is None:
                entry = {
                    "code": f.code,
                    "subject": f.subject,
                    "severity": f.severity,
                    "message": f.message,
                    "count": 1,
                    "since_ms": now_ms,
                    "last_ms": now_ms,
                    "absent": 0,
                    "raised_id": "",
                }
                ev = await self._raise(tx, f, 1, None)
                if ev is not None:
                    entry["raised_id"] = ev.id
                    emitted.append(ev)
            else:
                entry = {
                    **cur,
                    "count": int(cur.get("count", 1)) + 1,
                    "last_ms": now_ms,
                    "absent": 0,
                    "message": f.message,
                }
                if SEVERITY_RANK[f.severity] > SEVERITY_RANK.get(str(cur.get("severity")), 0):
                    entry["severity"] = f.severity
                    ev = await self._raise(tx, f, int(str(entry["count"])), cur.get("raised_id") or None)
                    if ev is not None:
                        emitted.append(ev)
                        entry["raised_id"] = entry.get("raised_id") or ev.id
            state[ident] = entry
            tx.pipe.hset(self.key, ident, json.dumps(entry, sort_keys=True))

        for ident in sorted(state):
            if ident in current:
                continue
            cur = state[ident]
            if not scope(cur):
                continue
            absent = int(cur.get("absent", 0)) + 1
            if absent < clear_after:
                cur = {**cur, "absent": absent}
                state[ident] = cur
                tx.pipe.hset(self.key, ident, json.dumps(cur, sort_keys=True))
                continue
            ev = self._clear(tx, cur)
            if ev is not None:
                emitted.append(ev)
            del state[ident]
            tx.pipe.hdel(self.key, ident)
        return emitted

    async def _raise(self, tx: Tx, f: Finding, count: int, correlation_id: str | None) -> AlertEvent | None:
        if f.severity == "INFO":
            log.info("anomaly raised code=%s subject=%s: %s", f.code, f.subject, f.message)
            return None
        log.warning(
            "anomaly raised code=%s subject=%s severity=%s: %s", f.code, f.subject, f.severity, f.message
        )
        explanation = await self.narrator.explain_alert(
            code=f.code,
            severity=f.severity,
            subject=f.subject,
            message=f.message,
            facts=f.facts,
            tx=tx,
            correlation_id=correlation_id,
        )
        ev = tx.emit(
            AlertEvent,
            correlation_id=correlation_id,
            code=f.code,
            severity=f.severity,
            state="raised",
            subject=f.subject,
            message=f.message,
            explanation=explanation,
            count=count,
        )
        if f.severity == "CRITICAL":
            await set_halt(self.bus, f"{f.code} {f.subject}: {f.message}", by=self.actor, tx=tx)
        return ev

    def _clear(self, tx: Tx, cur: dict[str, Any]) -> AlertEvent | None:
        code, subject = str(cur.get("code")), str(cur.get("subject"))
        severity = str(cur.get("severity", "INFO"))
        count = int(cur.get("count", 1))
        if severity not in ("WARNING", "CRITICAL"):
            log.info("anomaly cleared code=%s subject=%s after %d occurrence(s)", code, subject, count)
            return None
        log.info(
            "anomaly cleared code=%s subject=%s severity=%s after %d occurrence(s)",
            code,
            subject,
            severity,
            count,
        )
        return tx.emit(
            AlertEvent,
            correlation_id=cur.get("raised_id") or None,
            code=code,
            severity=severity,
            state="cleared",
            subject=subject,
            message=f"cleared: {cur.get('message', '')}",
            explanation=tpl.render("alert_cleared.j2", count=count, severity=severity),
            count=count,
        )
