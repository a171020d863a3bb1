"""The delivery schedule in Redis: records, due times, chains, thread ids and the atomic claim.

Scheduling
    Every event the distributor publishes becomes one delivery per (channel, tier) of
    ``render.ROUTES``, due at ``event.ts + tiers[tier].delay_s`` (premium 0, basic 60, free
    300 s; X and Reddit use the free delay). ``Schedule.add`` renders the text at once (so the
    payload is fixed and hashable) and, atomically with the consumer's ack, writes the delivery
    record and adds it to the sorted set ``keys.zset("deliveries")`` scored by due time (ms).
    The lowest score is the next due time (``read_head``, behind a ``DueHead``).

Threading
    A chain is (correlation id, channel, tier). Its first delivered message is the root;
    later ones reply under it (Discord thread created once from the root; X replies to
    the chain's LAST tweet; Reddit comments on the submission). Root / thread / last ids
    live in ``keys.hash("delivery_threads")`` and survive restarts. A delivery waits while
    an earlier delivery of its chain is still pending (a retrying root), so updates never
    overtake their root (``CLAIM_LUA``); when the earlier one finishes, the waiting ones are
    woken at once (``WAKE_LUA``, ``Schedule.finish``). If a root is dead-lettered, the next
    delivery of the chain becomes the root.

Claim (``CLAIM_LUA``, one script, atomic): only if due and not waiting for its chain; pushes
the score out by the in-flight lease (no other worker takes it), writes the in-flight marker
BEFORE anything is posted, and returns the previous marker (see ``send.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.distribution.render import Rendered
from bot.publishers.base import Payload, Sink, ThreadRef
from core.bus.bus import Tx
from core.bus.events import AlertEvent
from core.runtime import metrics
from core.runtime.due_head import DueHead

log = logging.getLogger("quanticity.distributor")

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


def member(spec: dict[str, Any]) -> str:
    return chain_member(spec["seq"], int(spec["due_ts"]), spec["idem"])


def thread_ref(raw: str) -> ThreadRef | None:
    if not raw:
        return None
    try:
        d = json.loads(raw)
        return ThreadRef(root_id=d["root"], thread_id=d.get("thread"), last_id=d.get("last"))
    except (ValueError, KeyError, TypeError, AttributeError):  # unreadable: the post starts a new thread
        metrics.REJECTED.labels("distributor", "bad_thread_record").inc()
        log.warning("thread record unreadable, posting without a thread: %r", raw[:80])
        return None


def payload(spec: dict[str, Any]) -> Payload:
    """What this delivery posts (fixed when it was scheduled): how the platform lookup recognises it."""
    return Payload(text=spec["text"], embed=spec.get("embed"), title=spec.get("title"))


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


class Schedule:
    """The distributor's delivery records, schedule zset, chain sets and thread ids."""

    def __init__(self, redis: Any, keys: Any, actor: str) -> None:
        self.redis = redis
        self.keys = keys
        self.actor = actor
        self.queue = keys.zset("deliveries")
        self.threads = keys.hash("delivery_threads")
        self.dead = keys.key("dead_letter", "deliveries")
        self._claim = redis.register_script(CLAIM_LUA)
        # Head of the delivery schedule for next_due (core/runtime/due_head.py). Only the distributor writes
        # the schedule: handlings add deliveries (noted on the tx and after its commit); the rest (claims,
        # retries, chain wake-ups, removals) happens in on_timer / an immediate send, which re-read it
        # after. (One distributor per deployment, as the deploy/README.md split runs it.)
        self.due = DueHead()

    def delivery_key(self, idem: str) -> str:
        return self.keys.key("delivery", idem)

    def chain_key(self, chain: str) -> str:
        return self.keys.key("delivery_chain", chain)

    def add(self, tx: Tx, sinks: Mapping[str, Sink], *, correlation_id: str, source_id: str, seq: str,
            chain_base: str, kind: str, channel: str, tier: str, due_ms: int, render: Any) -> dict[str, Any] | None:
        sink = sinks.get(channel)
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
            metrics.REJECTED.labels(self.actor, "render_error").inc()
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
        tx.pipe.zadd(self.queue, {idem: due_ms}, nx=True)
        tx.pipe.sadd(self.chain_key(chain), chain_member(seq, due_ms, idem))
        # NX: an idem already scheduled keeps its score, so the noted head can only be too early (harmless)
        self.due.scheduled(tx, due_ms)
        return spec

    async def claim(self, spec: dict[str, Any], now_ms: int, lease_ms: int, marker: str) -> Any:
        """Run ``CLAIM_LUA`` for one delivery (see the module docstring for what it returns)."""
        return await self._claim(
            keys=[self.queue, self.delivery_key(spec["idem"]), self.chain_key(spec["chain"]), self.threads],
            args=[spec["idem"], now_ms, lease_ms, member(spec), spec["chain"], marker])

    def finish(self, tx: Tx, spec: dict[str, Any], now_ms: int) -> None:
        """Take a delivered / dead delivery off the schedule and its chain; wake what waited for it."""
        tx.pipe.zrem(self.queue, spec["idem"])
        tx.pipe.srem(self.chain_key(spec["chain"]), member(spec))
        tx.pipe.eval(WAKE_LUA, 2, self.queue, self.chain_key(spec["chain"]), member(spec), now_ms,
                     self.delivery_key(""))

    async def read_head(self) -> float | None:
        first = await self.redis.zrange(self.queue, 0, 0, withscores=True)
        return float(first[0][1]) if first else None
