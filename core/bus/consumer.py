"""Consumer groups: read, handle, commit outputs + marker + XACK atomically.

- At start a consumer first re-reads its own pending entries (id ``0``) and
  claims entries idle longer than ``claim_idle_ms`` from dead consumers
  (XAUTOCLAIM), so nothing a crashed process had in hand is lost.
- An event already marked handled is only acked (idempotent re-delivery).
- A malformed entry is counted, logged, moved to the dead-letter stream, acked.
- A handler error leaves the event pending; after ``max_deliveries`` failed
  attempts it is dead-lettered with the error text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from core.bus.bus import Bus, Tx
from core.bus.events import BadEvent, Event, decode
from core.runtime import metrics

log = logging.getLogger("quanticity.bus")
Handler = Callable[[Event, Tx], Awaitable[None]]


class Consumer:
    def __init__(self, bus: Bus, group: str, streams: Sequence[str], name: str = "c1", *,
                 claim_idle_ms: int = 30_000, max_deliveries: int = 5, processed_ttl_s: int = 604_800,
                 batch: int = 100) -> None:
        self.bus = bus
        self.group = group
        self.name = name
        self.stream_keys = [bus.keys.stream(s) for s in streams]
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.processed_ttl_s = processed_ttl_s
        self.batch = batch
        self._recovered = False
        self._retry_pending = False
        self.handled = 0
        self.rejected = 0
        self.failed = 0

    async def ensure_groups(self) -> None:
        for key in self.stream_keys:
            try:
                await self.bus.redis.xgroup_create(key, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _recover(self, handler: Handler) -> int:
        """Own pending entries first, then entries idle in dead consumers."""
        n = 0
        for key in self.stream_keys:
            n += await self._read(handler, key, "0")
            start = "0-0"
            while True:
                res = await self.bus.redis.xautoclaim(key, self.group, self.name, self.claim_idle_ms,
                                                      start_id=start, count=self.batch)
                start, entries = res[0], res[1]
                for entry_id, fields in entries:
                    if fields is None:
                        continue
                    n += await self._one(handler, key, entry_id, fields)
                if start in ("0-0", b"0-0") or not entries:
                    break
        return n

    async def _read(self, handler: Handler, key: str, from_id: str) -> int:
        resp = await self.bus.redis.xreadgroup(self.group, self.name, {key: from_id}, count=self.batch)
        n = 0
        for _stream, entries in resp or []:
            for entry_id, fields in entries:
                if not fields:  # deleted entry still pending
                    await self.bus.redis.xack(key, self.group, entry_id)
                    continue
                n += await self._one(handler, key, entry_id, fields)
        return n

    async def poll(self, handler: Handler, block_ms: int | None = None) -> int:
        """Handle what is available now (or wait up to ``block_ms``); returns entries processed."""
        await self.ensure_groups() if not self._recovered else None
        n = 0
        if not self._recovered:
            self._recovered = True
            n += await self._recover(handler)
        if self._retry_pending:
            self._retry_pending = False
            for key in self.stream_keys:
                n += await self._read(handler, key, "0")
        streams = {k: ">" for k in self.stream_keys}
        resp = await self.bus.redis.xreadgroup(self.group, self.name, streams, count=self.batch,
                                               block=block_ms)
        for key, entries in resp or []:
            for entry_id, fields in entries:
                n += await self._one(handler, key, entry_id, fields)
        return n

    async def _dead_letter(self, key: str, entry_id: str, fields: dict[str, Any], error: str) -> None:
        pipe = self.bus.redis.pipeline(transaction=True)
        pipe.xadd(self.bus.keys.dlq(self.group), {"stream": key, "entry": entry_id, "error": error[:500],
                                                   **{f"f_{k}": v for k, v in fields.items()}},
                  maxlen=100_000, approximate=True)
        pipe.xack(key, self.group, entry_id)
        pipe.hdel(self.bus.keys.tries(self.group), entry_id)
        await pipe.execute()

    async def _one(self, handler: Handler, key: str, entry_id: str, fields: dict[str, Any]) -> int:
        redis = self.bus.redis
        try:
            event = decode(fields)
        except BadEvent as exc:
            self.rejected += 1
            metrics.REJECTED.labels(self.group, "bad_event").inc()
            log.warning("group=%s stream=%s entry=%s rejected malformed event: %s", self.group, key,
                        entry_id, exc)
            await self._dead_letter(key, entry_id, fields, f"malformed: {exc}")
            return 1
        done_key = self.bus.keys.done(self.group, event.id)
        if await redis.exists(done_key):
            await redis.xack(key, self.group, entry_id)
            return 1
        started = time.perf_counter()
        tx = self.bus.tx()
        try:
            await handler(event, tx)
        except Exception as exc:  # noqa: BLE001 - a handler bug must not stop the service
            await tx.pipe.reset()
            self.failed += 1
            metrics.ERRORS.labels(self.group).inc()
            tries = await redis.hincrby(self.bus.keys.tries(self.group), entry_id, 1)
            log.exception("group=%s event=%s type=%s handler failed (attempt %d/%d)", self.group,
                          event.id, event.type, tries, self.max_deliveries)
            if tries >= self.max_deliveries:
                await self._dead_letter(key, entry_id, fields, f"{type(exc).__name__}: {exc}")
            else:
                self._retry_pending = True
            return 1
        tx.pipe.set(done_key, "1", ex=self.processed_ttl_s)
        tx.pipe.xack(key, self.group, entry_id)
        await tx.commit()
        self.handled += 1
        metrics.HANDLED.labels(self.group).inc()
        metrics.LATENCY.labels(self.group).observe(time.perf_counter() - started)
        return 1
