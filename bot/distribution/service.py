"""DistributorService: confirmed fills and approved reports -> tiered, threaded posts.

Consumes ``positions`` (PositionEvent: entry, stop_moved, partial_exit, closed -
these only exist after a fill) and ``reports`` (ReportEvent, status "approved" only).

Scheduling
    Trailing-stop moves are coalesced per trade first (``coalesce.py``: a minimum interval and
    a minimum move; breakeven, scale-outs and the close always post); a held-back move gets no
    delivery at all (the PositionEvent itself is unchanged). Every other event becomes one
    delivery per (channel, tier) of ``render.ROUTES``, due at
    ``event.ts + tiers[tier].delay_s`` (premium 0, basic 60, free 300 s; X and Reddit
    use the free delay). ``handle`` renders the text at once (so the payload is fixed
    and hashable) and, atomically with the consumer's ack, writes the delivery record
    and adds it to the sorted set ``keys.zset("deliveries")`` scored by due time (ms).
    ``next_due`` is the lowest score; ``on_timer`` sends everything due. In live mode a
    delivery that is already due (premium) is sent right after the commit, not at the
    next timer poll.

Threading
    A chain is (correlation id, channel, tier). Its first delivered message is the root;
    later ones reply under it (Discord thread created once from the root; X replies to
    the chain's LAST tweet; Reddit comments on the submission). Root / thread / last ids
    live in ``keys.hash("delivery_threads")`` and survive restarts. A delivery waits while
    an earlier delivery of its chain is still pending (a retrying root), so updates never
    overtake their root; when the earlier one finishes, the waiting ones are woken at
    once. If a root is dead-lettered, the next delivery of the chain becomes the root.

Exactly one post per idempotency key (correlation id, event id, channel, tier)
    1. claim (one Lua script, atomic): only if due and not waiting for its chain; pushes
       the score out by ``inflight_lease_s`` (no other worker takes it), writes the
       in-flight marker BEFORE anything is posted, and returns the previous marker.
    2. if there was a previous marker, an earlier attempt may have posted (killed after
       posting, timeout, lost answer): ``sink.find_existing`` asks the platform for a post
       with the delivery's exact payload (``Payload``: the text / embed / title stored in
       the delivery record, deterministic for the key) in the same place: Discord: the
       bot's own message in the recent history of the channel or thread (or the nonce,
       where Discord hands one back); X: the account's recent tweets replying to the same
       parent; Reddit: recent submissions (title + body) / comments on the submission;
       outbox: the file. Found -> recorded as delivered without posting again. No internal
       id is put into any text; every position text carries its event time to the second,
       so two posts of two trades never share a payload.
    3. post (Discord also sends ``nonce=<key>`` with ``enforce_nonce``: a re-send inside
       Discord's window returns the existing message; X refuses a repeat of a recent
       status with a "duplicate content" 403, resolved by the same lookup).
    4. one MULTI/EXEC records the result, removes marker + schedule entry, updates the
       thread ids, wakes the chain and emits DeliveryEvent + AuditEvent.
    Killed between 3 and 4: the marker and the leased schedule entry remain; after the
    lease, step 2 finds the message. Blocking clients (tweepy, praw) run one call at a
    time per sink, so a lookup never races a post that timed out but is still running.
    Webhook mode cannot read the channel: at-least-once there.

Concurrency
    ``on_timer`` may run concurrently (timer loop, post-commit sends, several processes):
    the claim decides. On a SimClock chains are sent one after another in a fixed order
    (byte-identical demo outbox); on the wall clock ``send_concurrency`` chains at a time.

Failures
    Rate limits (Discord retry_after, X x-rate-limit-reset, Reddit RATELIMIT / 429) wait
    at least what the platform says (and back off exponentially), pause that channel for
    the pass, and do not count as failed attempts (capped by ``max_rate_limit_retries``).
    Other failures back off ``min(backoff_max_s, backoff_base_s * 2**(n-1))``. After
    ``max_attempts`` failures (or a permanent rejection) the delivery goes to the dead
    letter stream ``keys.key("dead_letter", "deliveries")`` and DeliveryEvent "dead_letter"
    + one AlertEvent WARNING are emitted in the same transaction (once per delivery).
    Every attempt emits a DeliveryEvent (delivered / retry / dead_letter) and an AuditEvent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from bot.distribution.coalesce import StopPolicy, StopUpdates
from bot.distribution.render import ROUTES, Rendered, Renderer, validate_position
from bot.publishers.base import Payload, PostMeta, PostResult, PublishError, Sink, ThreadRef
from bot.publishers.factory import build_sinks
from core.bus.bus import Tx
from core.bus.events import AlertEvent, AuditEvent, DeliveryEvent, Event, PositionEvent, ReportEvent
from core.positions.service import ADOPTED
from core.runtime import metrics
from core.runtime.due_head import DueHead
from core.runtime.service import Context, Service

log = logging.getLogger("quanticity.distributor")

DELIVERIES = Counter("quanticity_deliveries_total", "Outbound deliveries by outcome",
                     ["channel", "tier", "status"])

BATCH = 200

# Claim one due delivery, atomically.
# KEYS: 1 schedule zset, 2 delivery hash, 3 chain set, 4 thread ids hash
# ARGV: 1 idem, 2 now ms, 3 lease-until ms, 4 chain member, 5 thread field, 6 new in-flight marker
# -> false (not due / taken by another worker) | {"done", status} | {"blocked", wait-until}
#    | {"claimed", previous in-flight marker, attempts, rate-limited count, thread ids json}
CLAIM_LUA = """
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not s) or tonumber(s) > tonumber(ARGV[2]) then return false end
local st = redis.call('HMGET', KEYS[2], 'status', 'inflight', 'attempts', 'rl')
if st[1] == 'delivered' or st[1] == 'dead' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[4])
  return {'done', st[1]}
end
local wait = false
for _, m in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if m < ARGV[4] then
    local other = string.match(m, '([^|]+)$')
    local sc = redis.call('ZSCORE', KEYS[1], other)
    if sc then
      if (not wait) or tonumber(sc) > wait then wait = tonumber(sc) end
    else
      redis.call('SREM', KEYS[3], m)
    end
  end
end
if wait then
  wait = math.max(wait, tonumber(ARGV[2]) + 1)
  redis.call('ZADD', KEYS[1], wait, ARGV[1])
  redis.call('HSET', KEYS[2], 'blocked', '1')
  return {'blocked', tostring(wait)}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], 'inflight', ARGV[6])
redis.call('HDEL', KEYS[2], 'blocked')
return {'claimed', st[2] or '', st[3] or '0', st[4] or '0', redis.call('HGET', KEYS[4], ARGV[5]) or ''}
"""

# After a delivery finished (delivered or dead): wake the later deliveries of its chain that were
# waiting for it (back to their own due time, or now), so they do not sit out a lease.
# KEYS: 1 schedule zset, 2 chain set; ARGV: 1 finished member, 2 now ms, 3 delivery-hash key prefix
WAKE_LUA = """
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if m > ARGV[1] then
    local due, other = string.match(m, '|(%d+)|([^|]+)$')
    if other and redis.call('HGET', ARGV[3] .. other, 'blocked') == '1' then
      local sc = redis.call('ZSCORE', KEYS[1], other)
      local target = math.max(tonumber(due), tonumber(ARGV[2]))
      if sc and tonumber(sc) > target then redis.call('ZADD', KEYS[1], target, other) end
    end
  end
end
return 0
"""


def idempotency_key(correlation_id: str, source_id: str, channel: str, tier: str) -> str:
    """One key per (correlation id, event id, channel, tier); 24 hex chars (fits a Discord nonce)."""
    raw = f"{correlation_id}\x1f{source_id}\x1f{channel}\x1f{tier}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def chain_member(seq: str, due_ms: int, idem: str) -> str:
    """A chain-set member: sorts in event order; carries the due time (for wake-ups) and the key."""
    return f"{seq}|{due_ms:015d}|{idem}"


def _member(spec: dict[str, Any]) -> str:
    return chain_member(spec["seq"], int(spec["due_ts"]), spec["idem"])


def _thread_ref(raw: str) -> ThreadRef | None:
    if not raw:
        return None
    try:
        d = json.loads(raw)
        return ThreadRef(root_id=d["root"], thread_id=d.get("thread"), last_id=d.get("last"))
    except (ValueError, KeyError, TypeError, AttributeError):  # unreadable: the post starts a new thread
        metrics.REJECTED.labels("distributor", "bad_thread_record").inc()
        log.warning("thread record unreadable, posting without a thread: %r", raw[:80])
        return None


def _payload(spec: dict[str, Any]) -> Payload:
    """What this delivery posts (fixed when it was scheduled): how the platform lookup recognises it."""
    return Payload(text=spec["text"], embed=spec.get("embed"), title=spec.get("title"))


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


class DistributorService(Service):
    name = "distributor"
    streams = ("positions", "reports")
    event_types = frozenset({"position.update", "report"})

    def __init__(self, ctx: Context, sinks: Mapping[str, Sink] | None = None,
                 renderer: Renderer | None = None) -> None:
        super().__init__(ctx)
        self.dist = self.settings.distribution
        self.renderer = renderer or Renderer(free_result_pct=self.dist.free_result_pct,
                                             report_base_url=self.dist.report_base_url,
                                             report_where=self.dist.report_where,
                                             report_attach_max_bytes=self.dist.report_attach_max_bytes)
        self._sinks: dict[str, Sink] | None = dict(sinks) if sinks is not None else None
        self._kicks: set[asyncio.Task[None]] = set()
        self._blocked_until: dict[str, int] = {}
        self._stopping = False
        self._claim = self.redis.register_script(CLAIM_LUA)
        self.k_queue = self.keys.zset("deliveries")
        self.k_threads = self.keys.hash("delivery_threads")
        self.k_trades = self.keys.hash("delivery_trades")
        self.k_dead = self.keys.key("dead_letter", "deliveries")
        # Head of the delivery schedule for next_due (core/runtime/due_head.py). Only this service writes
        # the schedule: handlings add deliveries (noted on the tx and after its commit); the rest (claims,
        # retries, chain wake-ups, removals) happens in on_timer / an immediate send, which re-read it
        # after. (One distributor per deployment, as the deploy/README.md split runs it.)
        self._due = DueHead()
        su = self.dist.stop_updates
        self.stops = StopUpdates(self.redis, self.keys, StopPolicy(su.min_interval_s, su.min_move_pct),
                                 self.dist.record_ttl_s, self.name)

    # ------------------------------------------------------------------ keys
    def delivery_key(self, idem: str) -> str:
        return self.keys.key("delivery", idem)

    def chain_key(self, chain: str) -> str:
        return self.keys.key("delivery_chain", chain)

    # ------------------------------------------------------------------ lifecycle
    @property
    def sinks(self) -> dict[str, Sink]:
        if self._sinks is None:
            self._sinks = build_sinks(self.settings, self.ctx.secrets, self.clock, self.ctx.out_dir)
        return self._sinks

    async def start(self) -> None:
        self._stopping = False
        _ = self.sinks
        log.info("distributor channels=%s sink=%s", sorted(self.sinks), self.dist.sink)

    async def stop(self) -> None:
        self._stopping = True
        if self._kicks:
            await asyncio.gather(*list(self._kicks), return_exceptions=True)
        seen: set[int] = set()
        for sink in (self._sinks or {}).values():
            if id(sink) in seen:
                continue
            seen.add(id(sink))
            try:
                await sink.close()
            except Exception:
                log.exception("closing sink %s failed", sink.channel)

    # ------------------------------------------------------------------ scheduling (handle)
    def _delay_ms(self, tier: str) -> int:
        return int(self.dist.tiers[tier].delay_s * 1000)  # type: ignore[index]

    async def handle(self, event: Event, tx: Tx) -> None:
        if isinstance(event, PositionEvent):
            await self._on_position(event, tx)
        elif isinstance(event, ReportEvent) and event.status == "approved":
            self._on_report(event, tx)

    async def _on_position(self, ev: PositionEvent, tx: Tx) -> None:
        why = validate_position(ev)
        if why is not None:
            metrics.REJECTED.labels(self.name, "bad_position").inc()
            log.warning("event=%s position=%s kind=%s not published: %s", ev.id, ev.position_id, ev.kind, why)
            return
        if ev.strategy == ADOPTED:
            # reconciliation found it in the broker account: subscribers never got a signal for it
            return
        stop_ctx = await self.stops.gate(ev, tx)  # coalesce.py: which stop moves are worth a post
        if stop_ctx is None:
            return
        if ev.kind == "entry":  # contracts bought so far: every entry fill adds (core.pnl.return_pct's size)
            raw = await self.redis.hget(self.k_trades, ev.position_id)
            entry_qty: int | None = (int(raw) if raw and str(raw).isdigit() else 0) + ev.qty
            tx.pipe.hincrby(self.k_trades, ev.position_id, ev.qty)
        else:
            raw = await self.redis.hget(self.k_trades, ev.position_id)
            entry_qty = int(raw) if raw and str(raw).isdigit() else None
            if ev.kind == "closed":
                tx.pipe.hdel(self.k_trades, ev.position_id)
        seq = f"{ev.ts:015d}:{ev.id}"
        specs = [self._schedule(tx, correlation_id=ev.correlation_id, source_id=ev.id, seq=seq,
                                chain_base=ev.correlation_id, kind=ev.kind, channel=channel, tier=tier,
                                due_ms=ev.ts + self._delay_ms(tier),
                                render=lambda idem, c=channel, t=tier: self.renderer.position(ev, c, t, idem,
                                                                                              entry_qty, stop_ctx))
                 for channel, tier in ROUTES[ev.kind]]
        self._after_commit_send(tx, specs)

    def _on_report(self, ev: ReportEvent, tx: Tx) -> None:
        source_id = ev.report_id or ev.id  # the same report approved twice is posted once
        seq = f"{ev.ts:015d}:{ev.id}"
        specs = [self._schedule(tx, correlation_id=ev.correlation_id, source_id=source_id, seq=seq,
                                chain_base=f"report:{source_id}", kind="report", channel=channel, tier=tier,
                                due_ms=ev.ts + self._delay_ms(tier),
                                render=lambda idem, c=channel, t=tier: self.renderer.report(ev, c, t, idem))
                 for channel, tier in ROUTES["report"]]
        self._after_commit_send(tx, specs)

    def _schedule(self, tx: Tx, *, correlation_id: str, source_id: str, seq: str, chain_base: str, kind: str,
                  channel: str, tier: str, due_ms: int, render: Any) -> dict[str, Any] | None:
        sink = self.sinks.get(channel)
        if sink is None:
            return None  # channel not enabled / not configured
        target = sink.target_for(channel, tier)
        if target is None:
            log.debug("no %s target for tier %s: skipped", channel, tier)
            return None
        idem = idempotency_key(correlation_id, source_id, channel, tier)
        try:
            rendered: Rendered | None = render(idem)
        except Exception as exc:  # a template bug must not hold back the other tiers
            metrics.REJECTED.labels(self.name, "render_error").inc()
            log.exception("rendering %s %s/%s for %s failed", kind, channel, tier, correlation_id)
            tx.emit(AlertEvent, correlation_id=correlation_id, code="delivery_render_failed", severity="WARNING",
                    state="raised", subject=f"{channel}/{tier}",
                    message=f"{kind} message for {channel} {tier} could not be rendered; not posted",
                    explanation=f"{type(exc).__name__}: {str(exc)[:200]}")
            return None
        if rendered is None:
            return None  # e.g. a report without this tier's file
        chain = f"{chain_base}|{channel}|{tier}"
        spec = {
            "idem": idem, "correlation_id": correlation_id, "source_id": source_id, "seq": seq, "event": kind,
            "channel": channel, "tier": tier, "target": target, "due_ts": due_ms, "chain": chain,
            "text": rendered.text, "embed": rendered.embed, "title": rendered.title,
            "thread_name": rendered.thread_name, "payload_hash": rendered.payload_hash(),
        }
        if rendered.attachment:
            spec["attachment"] = rendered.attachment
        tx.pipe.hsetnx(self.delivery_key(idem), "spec", json.dumps(spec, ensure_ascii=False, sort_keys=True))
        tx.pipe.zadd(self.k_queue, {idem: due_ms}, nx=True)
        tx.pipe.sadd(self.chain_key(chain), chain_member(seq, due_ms, idem))
        # NX: an idem already scheduled keeps its score, so the noted head can only be too early (harmless)
        self._due.scheduled(tx, due_ms)
        return spec

    def _after_commit_send(self, tx: Tx, specs: list[dict[str, Any] | None]) -> None:
        """Live mode: deliveries already due (premium) are sent right after the commit, not at the
        next timer poll. (On a SimClock the lock-step runner calls on_timer at the same instant.)"""
        if self.clock.simulated:
            return
        now = self.clock.ms()
        due = [s for s in specs if s is not None and s["due_ts"] <= now]
        if due:
            tx.after_commit.append(lambda: self._kick(due))

    def _kick(self, specs: list[dict[str, Any]]) -> None:
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self._kick_run(specs))
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    async def _kick_run(self, specs: list[dict[str, Any]]) -> None:
        try:  # the claim is atomic: racing the timer loop for the same delivery is harmless
            now_ms = self.clock.ms()
            await asyncio.gather(*(self._process(spec, now_ms) for spec in specs))
        except Exception:  # the timer loop retries whatever is left
            log.exception("immediate delivery failed")
        finally:
            self._due.invalidate()

    async def _read_head(self) -> float | None:
        first = await self.redis.zrange(self.k_queue, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    # ------------------------------------------------------------------ timer
    async def next_due(self, now: datetime) -> datetime | None:
        head = await self._due.get(self._read_head)
        return None if head is None else datetime.fromtimestamp(head / 1000, tz=UTC)

    async def on_timer(self, now: datetime) -> None:
        """Send everything due at ``now``. Safe to run concurrently (every delivery is claimed
        atomically); chains run one after another on a SimClock (byte-for-byte determinism) and
        ``send_concurrency`` at a time on the wall clock."""
        try:
            await self._send_due(now)
        finally:
            self._due.invalidate()  # sent, rescheduled, woken or dropped: read the schedule again

    async def _send_due(self, now: datetime) -> None:
        now_ms = _ms(now)
        for _ in range(50):
            items: list[tuple[str, float]] = await self.redis.zrangebyscore(  # type: ignore[assignment]
                self.k_queue, "-inf", now_ms, start=0, num=BATCH, withscores=True)
            if not items:
                break
            pipe = self.redis.pipeline(transaction=False)
            for idem, _score in items:
                pipe.hget(self.delivery_key(idem), "spec")
            raws = await pipe.execute()
            chains: dict[str, list[tuple[int, dict[str, Any]]]] = {}
            for (idem, score), raw in zip(items, raws, strict=True):
                if raw is None:
                    log.error("delivery %s scheduled without a record: dropped", idem)
                    await self.redis.zrem(self.k_queue, idem)
                    continue
                try:  # one unreadable record must not hold up every delivery behind it
                    spec = json.loads(raw)
                    chains.setdefault(spec["chain"], []).append((int(score), spec))
                except (ValueError, KeyError, TypeError) as exc:
                    metrics.REJECTED.labels(self.name, "bad_delivery_record").inc()
                    log.error("delivery %s has an unreadable record (%s): dropped", idem, exc)
                    await self.redis.zrem(self.k_queue, idem)
                    continue
            # chains in order of their earliest due item; inside a chain, event order
            ordered = sorted(chains.items(), key=lambda kv: (min(sc for sc, _ in kv[1]), kv[0]))
            runs = [[spec for _, spec in sorted(group, key=lambda w: w[1]["seq"])] for _, group in ordered]
            if self.clock.simulated or self.dist.send_concurrency <= 1:
                for run in runs:
                    for spec in run:
                        await self._process(spec, now_ms)
            else:
                sem = asyncio.Semaphore(self.dist.send_concurrency)

                async def chain_run(run: list[dict[str, Any]], sem: asyncio.Semaphore = sem) -> None:
                    async with sem:
                        for spec in run:
                            await self._process(spec, now_ms)

                await asyncio.gather(*(chain_run(r) for r in runs))
            if len(items) < BATCH:
                break

    async def _process(self, spec: dict[str, Any], now_ms: int) -> None:
        idem, channel = spec["idem"], spec["channel"]
        sink = self.sinks.get(channel)
        if sink is None:
            await self._dead_letter(spec, attempts=0, rl=0, err=PublishError(f"channel {channel} not configured"),
                                    now_ms=now_ms)
            return
        gate = self._blocked_until.get(channel)
        if gate is not None and gate > now_ms:
            await self.redis.zadd(self.k_queue, {idem: gate}, xx=True)
            return
        lease = now_ms + int(self.dist.inflight_lease_s * 1000)
        marker = json.dumps({"at": now_ms})
        claimed = await self._claim(
            keys=[self.k_queue, self.delivery_key(idem), self.chain_key(spec["chain"]), self.k_threads],
            args=[idem, now_ms, lease, _member(spec), spec["chain"], marker])
        if not claimed or claimed[0] != "claimed":
            return  # not due any more (another worker has it), already finished, or waiting for its chain
        _, inflight, attempts, rl, thread_raw = (str(x) for x in claimed)
        attempts_n, rl_n = int(attempts or 0), int(rl or 0)
        thread = _thread_ref(thread_raw) if sink.threads else None
        meta = PostMeta(channel=channel, tier=spec["tier"], event=spec["event"],
                        correlation_id=spec["correlation_id"])
        if inflight:
            try:
                found = await asyncio.wait_for(
                    sink.find_existing(idem, channel_target=spec["target"], reply_to=thread, meta=meta,
                                       expected=_payload(spec)),
                    timeout=self.dist.post_timeout_s)
            except Exception as exc:  # noqa: BLE001 - cannot tell: do not post blind
                err = exc if isinstance(exc, PublishError) else PublishError(
                    f"reconcile failed: {type(exc).__name__}", ambiguous=True)
                err.ambiguous = True  # the marker stays: still unknown whether it was posted
                await self._record_failure(spec, err, attempts_n, rl_n, now_ms, sink, thread, meta)
                return
            if found is not None:
                log.info("delivery %s %s/%s found on the platform after an interrupted attempt", idem, channel,
                         spec["tier"])
                await self._record_delivered(spec, found, thread, attempts_n or 1, now_ms, reconciled=True)
                return
        # the in-flight marker was written by the claim, before this post
        try:
            result = await asyncio.wait_for(
                sink.post(spec["target"], spec["text"], spec["embed"], reply_to=thread, idempotency_key=idem,
                          title=spec["title"], thread_name=spec["thread_name"], meta=meta,
                          attachment=spec.get("attachment")),
                timeout=self.dist.post_timeout_s)
        except PublishError as exc:
            await self._record_failure(spec, exc, attempts_n, rl_n, now_ms, sink, thread, meta)
            return
        except TimeoutError:
            await self._record_failure(spec, PublishError("post timed out", ambiguous=True), attempts_n, rl_n,
                                       now_ms, sink, thread, meta)
            return
        except Exception as exc:
            log.exception("sink %s raised", channel)
            await self._record_failure(spec, PublishError(f"{type(exc).__name__}", ambiguous=True), attempts_n,
                                       rl_n, now_ms, sink, thread, meta)
            return
        await self._record_delivered(spec, result, thread, attempts_n + 1, now_ms)

    # ------------------------------------------------------------------ outcomes
    def _emit(self, tx: Tx, spec: dict[str, Any], status: str, *, attempts: int, message_id: str | None = None,
              reply_to: str | None = None, error: str = "", extra: dict[str, Any] | None = None) -> None:
        tx.emit(DeliveryEvent, correlation_id=spec["correlation_id"], channel=spec["channel"], tier=spec["tier"],
                event=spec["event"], status=status, message_id=message_id, reply_to=reply_to,
                payload_hash=spec["payload_hash"], text=spec["text"], attempts=attempts, error=error,
                due_ts=spec["due_ts"])
        detail = {"channel": spec["channel"], "tier": spec["tier"], "event": spec["event"],
                  "idempotency_key": spec["idem"], "message_id": message_id, "reply_to": reply_to,
                  "payload_hash": spec["payload_hash"], "attempts": attempts, "due_ts": spec["due_ts"],
                  "error": error, **(extra or {})}
        tx.emit(AuditEvent, correlation_id=spec["correlation_id"], actor=self.name, action=f"delivery.{status}",
                detail=detail)
        DELIVERIES.labels(spec["channel"], spec["tier"], status).inc()

    async def _record_delivered(self, spec: dict[str, Any], result: PostResult, thread: ThreadRef | None,
                                attempts: int, now_ms: int, *, reconciled: bool = False) -> None:
        idem = spec["idem"]
        dkey = self.delivery_key(idem)
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
        tx.pipe.zrem(self.k_queue, idem)
        tx.pipe.srem(self.chain_key(spec["chain"]), _member(spec))
        tx.pipe.eval(WAKE_LUA, 2, self.k_queue, self.chain_key(spec["chain"]), _member(spec), now_ms,
                     self.delivery_key(""))
        tx.pipe.hset(self.k_threads, spec["chain"], json.dumps(new_thread, sort_keys=True))
        self._emit(tx, spec, "delivered", attempts=attempts, message_id=result.message_id, reply_to=reply_to,
                   extra={"reconciled": reconciled, "delivered_ts": now_ms})
        await tx.commit()

    def _backoff_s(self, n: int) -> float:
        return min(self.dist.backoff_max_s, self.dist.backoff_base_s * (2 ** max(0, n - 1)))

    async def _record_failure(self, spec: dict[str, Any], err: PublishError, attempts: int, rl: int, now_ms: int,
                              sink: Sink, thread: ThreadRef | None, meta: PostMeta) -> None:
        idem = spec["idem"]
        if err.rate_limited:
            rl += 1
            delay = max(err.retry_after or 0.0, self._backoff_s(rl))
            self._blocked_until[spec["channel"]] = now_ms + int(delay * 1000)
            final = rl > self.dist.max_rate_limit_retries
        else:
            attempts += 1
            delay = max(err.retry_after or 0.0, self._backoff_s(attempts))
            final = err.permanent or attempts >= self.dist.max_attempts
        log.warning("delivery %s %s/%s %s failed (attempt %d, rate-limited %d): %s", idem, spec["channel"],
                    spec["tier"], spec["event"], attempts, rl, err)
        if final:
            if err.ambiguous:  # last chance: it may have gone through after all
                try:
                    found = await asyncio.wait_for(
                        sink.find_existing(idem, channel_target=spec["target"], reply_to=thread, meta=meta,
                                           expected=_payload(spec)),
                        timeout=self.dist.post_timeout_s)
                except Exception:  # noqa: BLE001
                    found = None
                if found is not None:
                    await self._record_delivered(spec, found, thread, max(1, attempts), now_ms, reconciled=True)
                    return
            await self._dead_letter(spec, attempts=attempts, rl=rl, err=err, now_ms=now_ms)
            return
        due = now_ms + int(delay * 1000)
        dkey = self.delivery_key(idem)
        tx = self.bus.tx()
        tx.pipe.hset(dkey, mapping={"attempts": attempts, "rl": rl, "error": str(err)})
        if not err.ambiguous:
            tx.pipe.hdel(dkey, "inflight")  # known not to be posted: no lookup needed next time
        tx.pipe.zadd(self.k_queue, {idem: due})
        self._emit(tx, spec, "retry", attempts=attempts + rl, error=str(err),
                   extra={"retry_at": due, "rate_limited": err.rate_limited, "ambiguous": err.ambiguous})
        await tx.commit()

    async def _dead_letter(self, spec: dict[str, Any], *, attempts: int, rl: int, err: PublishError,
                           now_ms: int) -> None:
        idem = spec["idem"]
        dkey = self.delivery_key(idem)
        tx = self.bus.tx()
        tx.pipe.hset(dkey, mapping={"status": "dead", "attempts": attempts, "rl": rl, "error": str(err)})
        tx.pipe.hdel(dkey, "inflight")
        tx.pipe.expire(dkey, self.dist.record_ttl_s)
        tx.pipe.zrem(self.k_queue, idem)
        tx.pipe.srem(self.chain_key(spec["chain"]), _member(spec))
        tx.pipe.eval(WAKE_LUA, 2, self.k_queue, self.chain_key(spec["chain"]), _member(spec), now_ms,
                     self.delivery_key(""))
        tx.pipe.xadd(self.k_dead, {"idempotency_key": idem, "correlation_id": spec["correlation_id"],
                                   "channel": spec["channel"], "tier": spec["tier"], "event": spec["event"],
                                   "attempts": str(attempts + rl), "error": str(err), "at": str(now_ms),
                                   "spec": json.dumps(spec, ensure_ascii=False, sort_keys=True)},
                     maxlen=100_000, approximate=True)
        self._emit(tx, spec, "dead_letter", attempts=attempts + rl, error=str(err))
        tx.emit(AlertEvent, correlation_id=spec["correlation_id"], code="delivery_dead_letter", severity="WARNING",
                state="raised", subject=f"{spec['channel']}/{spec['tier']}",
                message=(f"{spec['event']} post to {spec['channel']} {spec['tier']} gave up after "
                         f"{attempts + rl} attempts; moved to the dead letter"),
                explanation=str(err))
        await tx.commit()
        log.error("delivery %s %s/%s %s dead-lettered: %s", idem, spec["channel"], spec["tier"], spec["event"], err)
