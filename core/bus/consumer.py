"""Consumer groups: read, handle, commit outputs + marker + XACK atomically.

- At start a consumer first re-reads its own pending entries (id ``0``) and
  claims entries idle longer than ``claim_idle_ms`` from dead consumers
  (XAUTOCLAIM), so nothing a crashed process had in hand is lost.
- An event already marked handled is only acked (idempotent re-delivery).
- A malformed entry is counted, logged, moved to the dead-letter stream, acked.
- A failed handling (the handler raised, or the commit's MULTI/EXEC did) leaves the
  event pending and un-marked; it is counted (metric + the group's tries hash) and
  retried by this running consumer after a per-entry backoff (``core.bus.retry``), and
  after ``max_deliveries`` failed attempts dead-lettered with a ``DEAD_LETTER`` alert
  (``core.bus.dead_letter``). A handler raising ``core.bus.retry.Unavailable`` (its own store is
  down) is retried the same way but never dead-lettered. If a poll fails part-way (Redis gone), the next poll
  re-reads this consumer's own pending entries, so nothing waits for a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ResponseError

from core.bus.bus import Bus, Tx
from core.bus.dead_letter import dead_letter
from core.bus.events import REGISTRY, BadEvent, Event, decode
from core.bus.retry import RetrySchedule, Unavailable
from core.runtime import metrics

log = logging.getLogger("quanticity.bus")
_KNOWN = frozenset(REGISTRY)
_COMMITTED, _EMPTY, _SKIPPED, _UNSURE = 1, 2, 0, 3
Handler = Callable[[Event, Tx], Awaitable[None]]


class Consumer:
    def __init__(self, bus: Bus, group: str, streams: Sequence[str], name: str = "c1", *,
                 claim_idle_ms: int = 30_000, max_deliveries: int = 5, processed_ttl_s: int = 604_800,
                 batch: int = 100, event_types: frozenset[str] | None = None,
                 retry_base_ms: int = 250, retry_max_ms: int = 30_000) -> None:
        self.bus = bus
        self.group = group
        self.name = name
        self.stream_keys = [bus.keys.stream(s) for s in streams]
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.processed_ttl_s = processed_ttl_s
        self.batch = batch
        self.event_types = event_types  # None = every type; others are acked unread
        self._recovered = False
        self._reread = False  # a poll failed part-way: re-read own pending entries next time
        self.retries = RetrySchedule(retry_base_ms, retry_max_ms)
        self._ack_owed: dict[str, set[str]] = {}  # handled (wrote nothing), but their XACK failed
        # A tries count exists only for an entry whose handling failed: one read fresh (``>``) here
        # and never failed here has none, unless its group was created over an existing tries hash
        # (a group destroyed and made again): then every entry's HDEL is kept.
        self._fresh_may_have_tries = False
        self.handled = 0
        self.rejected = 0
        self.failed = 0

    @property
    def needs_poll(self) -> bool:
        """Work this consumer has regardless of new entries: start-up recovery or a retry now due."""
        return (not self._recovered or self._reread or bool(self._ack_owed)
                or bool(self.retries.due_keys(self.bus.clock.ms())))

    def next_retry_ms(self) -> int | None:
        """When the earliest scheduled retry is due (bus clock, ms); None if there is none."""
        return self.retries.next_ms()

    async def ensure_groups(self) -> None:
        created = False
        for key in self.stream_keys:
            try:
                await self.bus.redis.xgroup_create(key, self.group, id="0", mkstream=True)
                created = True
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        if created and not self._fresh_may_have_tries:
            self._fresh_may_have_tries = bool(await self.bus.redis.exists(self.bus.keys.tries(self.group)))

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
                n += await self._batch(handler, key, [(i, f) for i, f in entries if f is not None])
                if start in ("0-0", b"0-0") or not entries:
                    break
        return n

    async def _read(self, handler: Handler, key: str, from_id: str, seen: set[str] | None = None) -> int:
        """Re-read this consumer's own pending entries after ``from_id`` (cursor-paged)."""
        n = 0
        cursor = from_id
        while True:
            resp = await self.bus.redis.xreadgroup(self.group, self.name, {key: cursor}, count=self.batch)
            entries = resp[0][1] if resp else []
            if not entries:
                return n
            if seen is not None:
                seen.update(i for i, _ in entries)
            n += await self._batch(handler, key, entries)
            cursor = entries[-1][0]

    async def _reread_pending(self, handler: Handler, key: str) -> int:
        """Own pending entries again (retries due, or a poll that failed part-way). A scheduled
        retry whose entry is no longer pending here (its commit was applied though the reply was
        lost, or another consumer claimed it) is dropped with its tries count."""
        seen: set[str] = set()
        n = await self._read(handler, key, "0", seen)
        gone = self.retries.forget_missing(key, seen)
        if gone:
            await self.bus.redis.hdel(self.bus.keys.tries(self.group), *(self.bus.keys.tries_field(key, i) for i in gone))
        return n

    async def poll(self, handler: Handler, block_ms: int | None = None) -> int:
        """Handle what is available now (or wait up to ``block_ms``, less when a retry falls due
        sooner); returns entries processed."""
        try:
            return await self._poll(handler, block_ms)
        except ResponseError as exc:
            self._reread = True  # entries read but not finished stay pending: take them up next poll
            if "NOGROUP" not in str(exc):
                raise
            # a stream or the group vanished under any read (Redis restarted without persistence,
            # keys deleted): recreate and go on; nothing of it is pending or owed any more
            log.error("group=%s: stream or consumer group missing, recreating (%s)", self.group, exc)
            self._ack_owed.clear()
            await self.ensure_groups()
            return 0
        except BaseException:
            self._reread = True
            raise

    async def _poll(self, handler: Handler, block_ms: int | None) -> int:
        n = 0
        for key in sorted(self._ack_owed):  # handled already: only the ack is owed, never a re-handling
            await self.bus.redis.xack(key, self.group, *self._ack_owed[key])
            del self._ack_owed[key]
        if not self._recovered:
            await self.ensure_groups()
            self._recovered = True
            n += await self._recover(handler)
        now_ms = self.bus.clock.ms()
        again = set(self.stream_keys) if self._reread else self.retries.due_keys(now_ms)
        self._reread = False
        for key in self.stream_keys:
            if key in again:
                n += await self._reread_pending(handler, key)
        nxt = self.retries.next_ms()
        if block_ms and nxt is not None:
            block_ms = max(1, min(block_ms, nxt - self.bus.clock.ms()))
        streams = {k: ">" for k in self.stream_keys}
        try:
            resp = await self.bus.redis.xreadgroup(self.group, self.name, streams, count=self.batch,
                                                   block=block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # the stream or group vanished (Redis restarted without persistence, keys deleted):
            # recreate and go on; what was in it is gone and is logged as such
            log.error("group=%s: stream or consumer group missing, recreating (%s)", self.group, exc)
            await self.ensure_groups()
            return n
        for key, entries in resp or []:
            n += await self._batch(handler, key, entries, fresh=True)
        return n

    async def _batch(self, handler: Handler, key: str, entries: list[tuple[str, dict[str, Any]]],
                     fresh: bool = False) -> int:
        """Handle a batch in order. Types this consumer does not take, and handlings that wrote
        nothing, are acknowledged together in one XACK at the end (no marker needed: nothing
        to duplicate). The handled-markers of the rest are checked in one round trip. ``fresh``:
        the entries were read with ``>`` (never delivered before), so none has a tries count
        unless it failed here since."""
        now_ms = self.bus.clock.ms()
        owed = self._ack_owed.get(key, set())  # and entries only waiting for their ack
        entries = [(i, f) for i, f in entries if not self.retries.waiting(key, i, now_ms) and i not in owed]
        if not entries:
            return 0
        decoded: list[Event | BadEvent | None] = []
        for _entry_id, fields in entries:
            etype = fields.get("t") if fields else None
            if not fields or (self.event_types is not None and etype in _KNOWN and etype not in self.event_types):
                decoded.append(None)
                continue
            try:
                decoded.append(decode(fields))
            except BadEvent as exc:
                decoded.append(exc)
        ids = [d.id for d in decoded if isinstance(d, Event)]
        done: set[str] = set()
        if ids:
            hits = await self.bus.redis.mget([self.bus.keys.done(self.group, i) for i in ids])
            done = {i for i, hit in zip(ids, hits, strict=True) if hit is not None}
        ack: list[str] = []
        retried: list[str] = []  # acked here after failed attempts: their tries count goes too
        try:
            for (entry_id, fields), item in zip(entries, decoded, strict=True):
                clear = self._may_have_tries(key, entry_id, fresh)
                if item is None or (isinstance(item, Event) and item.id in done):
                    ack.append(entry_id)
                    if self.retries.done(key, entry_id) or clear:
                        retried.append(entry_id)
                    continue
                outcome = await self._one(handler, key, entry_id, fields, item, clear_tries=clear)
                if outcome == _UNSURE:
                    # the commit failed, perhaps after the server applied it: Redis is suspect and the
                    # markers read above may be stale. Stop here; the rest is re-read, markers re-checked.
                    self._reread = True
                    break
                if outcome == _EMPTY:
                    ack.append(entry_id)
                    if self.retries.done(key, entry_id) or clear:
                        retried.append(entry_id)
                if outcome in (_EMPTY, _COMMITTED) and isinstance(item, Event):
                    done.add(item.id)  # the same event twice in one batch
            if ack:
                await self.bus.redis.xack(key, self.group, *ack)
            if retried:
                await self.bus.redis.hdel(self.bus.keys.tries(self.group),
                                          *(self.bus.keys.tries_field(key, i) for i in retried))
        except BaseException:
            # a handling that wrote nothing may still have moved the handler's memory (a flow
            # window, a quote): it must not run twice, so only its ack is tried again
            if ack:
                self._ack_owed.setdefault(key, set()).update(ack)
            raise
        return len(entries)

    def _may_have_tries(self, key: str, entry_id: str, fresh: bool) -> bool:
        """Whether the group's tries hash may hold a count for this entry (then its success clears it):
        re-read from the pending list (an earlier process may have failed it), failed here, or read
        fresh from a group made over an old tries hash."""
        return not fresh or self._fresh_may_have_tries or self.retries.tries(key, entry_id) > 0

    async def _one(self, handler: Handler, key: str, entry_id: str, fields: dict[str, Any],
                   decoded: Event | BadEvent | None = None, *, clear_tries: bool = True) -> int:
        """Handle one entry: ``_COMMITTED`` (outputs + marker + ack in one MULTI/EXEC),
        ``_EMPTY`` (handler wrote nothing: the caller acks), ``_UNSURE`` (the commit failed),
        ``_SKIPPED`` otherwise."""
        redis = self.bus.redis
        checked = decoded is not None
        try:
            if isinstance(decoded, BadEvent):
                raise decoded
            event = decoded if isinstance(decoded, Event) else decode(fields)
        except BadEvent as exc:
            self.rejected += 1
            metrics.REJECTED.labels(self.group, "bad_event").inc()
            log.warning("group=%s stream=%s entry=%s rejected malformed event: %s", self.group, key,
                        entry_id, exc)
            await dead_letter(self.bus, self.group, key, entry_id, fields, f"malformed: {exc}")
            self.retries.done(key, entry_id)
            return _SKIPPED
        done_key = self.bus.keys.done(self.group, event.id)
        if not checked and await redis.exists(done_key):
            await redis.xack(key, self.group, entry_id)
            self.retries.done(key, entry_id)
            return _SKIPPED
        started = time.perf_counter()
        tx = self.bus.tx()
        try:
            await handler(event, tx)
        except Exception as exc:  # noqa: BLE001 - any handler error: logged, counted, retried in _failed
            await tx.pipe.reset()
            await self._failed(key, entry_id, fields, event, exc, "handler")
            return _SKIPPED
        self.handled += 1
        metrics.HANDLED.labels(self.group).inc()
        if tx.empty:
            await tx.run_after_commit()
            metrics.LATENCY.labels(self.group).observe(time.perf_counter() - started)
            return _EMPTY  # the caller acks it (and clears its retry)
        tx.pipe.set(done_key, "1", ex=self.processed_ttl_s)
        tx.pipe.xack(key, self.group, entry_id)
        if clear_tries:  # a count left by an earlier process too
            tx.pipe.hdel(self.bus.keys.tries(self.group), self.bus.keys.tries_field(key, entry_id))
        try:
            await tx.commit()
        except Exception as exc:  # noqa: BLE001 - all or nothing was written; pending either way
            await self._failed(key, entry_id, fields, event, exc, "commit")
            return _UNSURE
        self.retries.done(key, entry_id)
        metrics.LATENCY.labels(self.group).observe(time.perf_counter() - started)
        return _COMMITTED

    async def _failed(self, key: str, entry_id: str, fields: dict[str, Any], event: Event, exc: Exception,
                      stage: str) -> None:
        """Count a failed handling, schedule its retry, dead-letter it after ``max_deliveries``.
        The retry is scheduled before anything touches Redis (which may be what failed)."""
        self.failed += 1
        metrics.ERRORS.labels(self.group).inc()
        now_ms = self.bus.clock.ms()
        local = self.retries.tries(key, entry_id) + 1
        self.retries.failed(key, entry_id, local, now_ms)
        if isinstance(exc, Unavailable):
            # a downstream store is down: retried with backoff for as long as it lasts, never
            # counted toward dead-lettering (the entry stays pending on the bus meanwhile)
            log.warning("group=%s event=%s type=%s %s: downstream unavailable (attempt %d, next in %d ms): %s",
                        self.group, event.id, event.type, stage, local, self.retries.delay_ms(local), exc)
            return
        tries = await self.bus.redis.hincrby(self.bus.keys.tries(self.group),
                                             self.bus.keys.tries_field(key, entry_id), 1)
        log.error("group=%s event=%s type=%s corr=%s %s failed (attempt %d/%d): %s: %s", self.group, event.id,
                  event.type, event.correlation_id, stage, tries, self.max_deliveries, type(exc).__name__, exc,
                  exc_info=exc)
        if tries >= self.max_deliveries:
            await dead_letter(self.bus, self.group, key, entry_id, fields, f"{type(exc).__name__}: {exc}",
                              event=event, tries=tries)
            self.retries.done(key, entry_id)
        else:
            self.retries.failed(key, entry_id, tries, now_ms)
