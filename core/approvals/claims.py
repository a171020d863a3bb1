"""Cards and the atomic claim.

A card (a signal or a report waiting for the admin) is the hash
``k:card:<item_id>`` with fields ``kind``, ``state`` (pending / approved /
rejected / expired), ``expires_ms``, ``decided_by``, ``decided_ms``,
``payload`` (JSON). Pending cards are indexed in the sorted set ``z:cards`` by
expiry. One Lua script decides a card: it checks the card is still pending
and not past its expiry, records the decision, and XADDs the outcome event —
all or nothing, so a double press or a press after expiry changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from core.bus.bus import Bus, Tx
from core.bus.events import Event, encode

CLAIM_LUA = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'unknown', '', ''} end
if state ~= 'pending' then
  return {'already', state, redis.call('HGET', KEYS[1], 'decided_by') or ''}
end
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires_ms'))
local now = tonumber(ARGV[3])
if ARGV[1] ~= 'expired' and expires and now >= expires then
  return {'late', 'pending', ''}
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'decided_by', ARGV[2], 'decided_ms', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 't', ARGV[5], 'd', ARGV[6])
return {'ok', ARGV[1], ARGV[2]}
"""


@dataclass(frozen=True)
class ClaimResult:
    status: str      # ok | already | late | unknown
    state: str       # the card's state after the call
    decided_by: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def card_key(bus: Bus, item_id: str) -> str:
    return bus.keys.key("card", item_id)


def open_card(tx: Tx, item_id: str, kind: str, expires_ms: int, payload: dict[str, Any]) -> None:
    """Create a pending card inside a handler's transaction (idempotent: HSETNX on state)."""
    key = card_key(tx.bus, item_id)
    tx.pipe.hsetnx(key, "state", "pending")
    tx.pipe.hset(key, mapping={"kind": kind, "expires_ms": str(expires_ms),
                               "payload": json.dumps(payload, sort_keys=True, default=str)})
    tx.pipe.expire(key, 14 * 86400)
    tx.pipe.zadd(tx.bus.keys.zset("cards"), {item_id: expires_ms})


def close_card(tx: Tx, item_id: str, kind: str, state: str, by: str, payload: dict[str, Any]) -> None:
    """Record a card decided at creation (auto policy) so listings stay consistent."""
    key = card_key(tx.bus, item_id)
    tx.pipe.hset(key, mapping={"kind": kind, "state": state, "decided_by": by,
                               "decided_ms": str(tx.bus.clock.ms()), "expires_ms": "0",
                               "payload": json.dumps(payload, sort_keys=True, default=str)})
    tx.pipe.expire(key, 14 * 86400)


async def claim(bus: Bus, item_id: str, decision: str, by: str, outcome: Event) -> ClaimResult:
    """Atomically decide a pending card and publish ``outcome`` if (and only if) it wins."""
    stream = bus.stream_key(outcome)
    fields = encode(outcome)
    res = await bus.redis.eval(CLAIM_LUA, 3, card_key(bus, item_id), bus.keys.zset("cards"), stream,
                               decision, by, str(bus.clock.ms()), item_id, fields["t"], fields["d"],
                               str(bus.maxlen))
    result = ClaimResult(*(str(x) for x in res))
    if result.ok:
        bus.notify({stream})
    return result


async def read_card(redis: aioredis.Redis, bus: Bus, item_id: str) -> dict[str, Any] | None:
    h = await redis.hgetall(card_key(bus, item_id))
    if not h:
        return None
    out: dict[str, Any] = dict(h)
    try:  # another service wrote it: unreadable parts are left empty for the caller to refuse
        out["payload"] = json.loads(h.get("payload") or "{}")
    except ValueError:
        out["payload"] = {}
    try:
        out["expires_ms"] = int(h.get("expires_ms") or 0)
    except ValueError:
        out["expires_ms"] = 0
    return out


async def pending_cards(redis: aioredis.Redis, bus: Bus) -> list[tuple[str, int]]:
    """(item_id, expires_ms) of every pending card, soonest expiry first."""
    rows = await redis.zrange(bus.keys.zset("cards"), 0, -1, withscores=True)
    return [(item, int(score)) for item, score in rows]
