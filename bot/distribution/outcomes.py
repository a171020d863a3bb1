"""Outcome bookkeeping of one delivery attempt: delivered, retry or dead letter.

Recording (step 4 of "exactly one post", see ``send.py``)
    One MULTI/EXEC records the result, removes marker + schedule entry, updates the
    thread ids, wakes the chain and emits DeliveryEvent + AuditEvent.

Failures
    Rate limits (Discord retry_after, X x-rate-limit-reset, Reddit RATELIMIT / 429) wait
    at least what the platform says (and back off exponentially), pause that channel for
    the pass, and do not count as failed attempts (capped by ``max_rate_limit_retries``).
    Other failures back off ``min(backoff_max_s, backoff_base_s * 2**(n-1))``. After
    ``max_attempts`` failures (or a permanent rejection) the delivery goes to the dead
    letter stream ``keys.key("dead_letter", "deliveries")`` and DeliveryEvent "dead_letter"
    + one AlertEvent WARNING are emitted in the same transaction (once per delivery). An
    ambiguous final failure asks the platform once more before giving up.
    Every attempt emits a DeliveryEvent (delivered / retry / dead_letter) and an AuditEvent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from prometheus_client import Counter

from bot.distribution.schedule import Schedule, payload
from bot.publishers.base import PostMeta, PostResult, PublishError, Sink, ThreadRef
from core.bus.bus import Tx
from core.bus.events import AlertEvent, AuditEvent, DeliveryEvent

log = logging.getLogger("quanticity.distributor")

DELIVERIES = Counter("quanticity_deliveries_total", "Outbound deliveries by outcome",
                     ["channel", "tier", "status"])


class Outcomes:
    """Writes what became of an attempt. ``blocked_until`` (channel -> ms) is shared with the sender:
    a rate limit pauses that channel for the rest of the pass."""

    def __init__(self, bus: Any, sched: Schedule, dist: Any, actor: str, blocked_until: dict[str, int]) -> None:
        self.bus = bus
        self.sched = sched
        self.dist = dist
        self.actor = actor
        self.blocked_until = blocked_until

    def emit(self, tx: Tx, spec: dict[str, Any], status: str, *, attempts: int, message_id: str | None = None,
             reply_to: str | None = None, error: str = "", extra: dict[str, Any] | None = None) -> None:
        tx.emit(DeliveryEvent, correlation_id=spec["correlation_id"], channel=spec["channel"], tier=spec["tier"],
                event=spec["event"], status=status, message_id=message_id, reply_to=reply_to,
                payload_hash=spec["payload_hash"], text=spec["text"], attempts=attempts, error=error,
                due_ts=spec["due_ts"])
        detail = {"channel": spec["channel"], "tier": spec["tier"], "event": spec["event"],
                  "idempotency_key": spec["idem"], "message_id": message_id, "reply_to": reply_to,
                  "payload_hash": spec["payload_hash"], "attempts": attempts, "due_ts": spec["due_ts"],
                  "error": error, **(extra or {})}
        tx.emit(AuditEvent, correlation_id=spec["correlation_id"], actor=self.actor, action=f"delivery.{status}",
                detail=detail)
        DELIVERIES.labels(spec["channel"], spec["tier"], status).inc()

    async def delivered(self, spec: dict[str, Any], result: PostResult, thread: ThreadRef | None,
                        attempts: int, now_ms: int, *, reconciled: bool = False) -> None:
        dkey = self.sched.delivery_key(spec["idem"])
        reply_to = result.reply_to
        if reply_to is None and thread is not None:
            reply_to = thread.root_id if spec["channel"] != "x" else (thread.last_id or thread.root_id)
        new_thread = {
            "root": thread.root_id if thread is not None else result.message_id,
            "thread": result.thread_id or (thread.thread_id if thread is not None else None),
            "last": result.message_id,
        }
        tx = self.bus.tx()
        tx.pipe.hset(dkey, mapping={"status": "delivered", "message_id": result.message_id,
                                    "reply_to": reply_to or "", "thread_id": result.thread_id or "",
                                    "attempts": attempts, "delivered_ms": now_ms,
                                    "reconciled": "1" if reconciled else "0"})
        tx.pipe.hdel(dkey, "inflight", "error")
        tx.pipe.expire(dkey, self.dist.record_ttl_s)
        self.sched.finish(tx, spec, now_ms)
        tx.pipe.hset(self.sched.threads, spec["chain"], json.dumps(new_thread, sort_keys=True))
        self.emit(tx, spec, "delivered", attempts=attempts, message_id=result.message_id, reply_to=reply_to,
                  extra={"reconciled": reconciled, "delivered_ts": now_ms})
        await tx.commit()

    def backoff_s(self, n: int) -> float:
        return min(self.dist.backoff_max_s, self.dist.backoff_base_s * (2 ** max(0, n - 1)))

    async def failure(self, spec: dict[str, Any], err: PublishError, attempts: int, rl: int, now_ms: int,
                      sink: Sink, thread: ThreadRef | None, meta: PostMeta) -> None:
        idem = spec["idem"]
        if err.rate_limited:
            rl += 1
            delay = max(err.retry_after or 0.0, self.backoff_s(rl))
            self.blocked_until[spec["channel"]] = now_ms + int(delay * 1000)
            final = rl > self.dist.max_rate_limit_retries
        else:
            attempts += 1
            delay = max(err.retry_after or 0.0, self.backoff_s(attempts))
            final = err.permanent or attempts >= self.dist.max_attempts
        log.warning("delivery %s %s/%s %s failed (attempt %d, rate-limited %d): %s", idem, spec["channel"],
                    spec["tier"], spec["event"], attempts, rl, err)
        if final:
            if err.ambiguous:  # last chance: it may have gone through after all
                try:
                    found = await asyncio.wait_for(
                        sink.find_existing(idem, channel_target=spec["target"], reply_to=thread, meta=meta,
                                           expected=payload(spec)),
                        timeout=self.dist.post_timeout_s)
                except Exception:  # noqa: BLE001
                    found = None
                if found is not None:
                    await self.delivered(spec, found, thread, max(1, attempts), now_ms, reconciled=True)
                    return
            await self.dead_letter(spec, attempts=attempts, rl=rl, err=err, now_ms=now_ms)
            return
        due = now_ms + int(delay * 1000)
        dkey = self.sched.delivery_key(idem)
        tx = self.bus.tx()
        tx.pipe.hset(dkey, mapping={"attempts": attempts, "rl": rl, "error": str(err)})
        if not err.ambiguous:
            tx.pipe.hdel(dkey, "inflight")  # known not to be posted: no lookup needed next time
        tx.pipe.zadd(self.sched.queue, {idem: due})
        self.emit(tx, spec, "retry", attempts=attempts + rl, error=str(err),
                  extra={"retry_at": due, "rate_limited": err.rate_limited, "ambiguous": err.ambiguous})
        await tx.commit()

    async def dead_letter(self, spec: dict[str, Any], *, attempts: int, rl: int, err: PublishError,
                          now_ms: int) -> None:
        idem = spec["idem"]
        dkey = self.sched.delivery_key(idem)
        tx = self.bus.tx()
        tx.pipe.hset(dkey, mapping={"status": "dead", "attempts": attempts, "rl": rl, "error": str(err)})
        tx.pipe.hdel(dkey, "inflight")
        tx.pipe.expire(dkey, self.dist.record_ttl_s)
        self.sched.finish(tx, spec, now_ms)
        tx.pipe.xadd(self.sched.dead, {"idempotency_key": idem, "correlation_id": spec["correlation_id"],
                                       "channel": spec["channel"], "tier": spec["tier"], "event": spec["event"],
                                       "attempts": str(attempts + rl), "error": str(err), "at": str(now_ms),
                                       "spec": json.dumps(spec, ensure_ascii=False, sort_keys=True)},
                     maxlen=100_000, approximate=True)
        self.emit(tx, spec, "dead_letter", attempts=attempts + rl, error=str(err))
        tx.emit(AlertEvent, correlation_id=spec["correlation_id"], code="delivery_dead_letter", severity="WARNING",
                state="raised", subject=f"{spec['channel']}/{spec['tier']}",
                message=(f"{spec['event']} post to {spec['channel']} {spec['tier']} gave up after "
                         f"{attempts + rl} attempts; moved to the dead letter"),
                explanation=str(err))
        await tx.commit()
        log.error("delivery %s %s/%s %s dead-lettered: %s", idem, spec["channel"], spec["tier"], spec["event"], err)
