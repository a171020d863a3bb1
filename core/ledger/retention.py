"""Stream retention: bus entries older than ``ledger.retention_days`` leave Redis, but never one
that some consumer group still needs.

This is what keeps Redis memory flat over months: the durable copy of every trade event is the
ledger database; the bus keeps a working window (the length cap ``redis.stream_maxlen`` stays
as the last resort against a runaway producer).

Decisions:
- **Age is measured on Redis's clock.** Entry ids are stamped by the Redis server (``XADD *``),
  so "older than N days" compares them with the server's ``TIME``, not with the service clock: a
  demo's simulated clock (a past or future session day) would otherwise trim a run's fresh entries
  or none at all. A demo run lasts minutes of Redis time, so it never trims anything.
- **The group floor.** For every consumer group of a stream the oldest entry it may still need is
  the smaller of its oldest pending (delivered, not acknowledged) entry (``XPENDING``) and the
  entry after its ``last-delivered-id`` (``XINFO GROUPS``: not delivered yet). ``XTRIM MINID``
  trims strictly below the smallest of those floors and the age cutoff. A stream with no group is
  trimmed by age alone (nobody reads it through a group; the ledger, when it runs, is a group).
- **Atomic per stream.** The floor is computed and the trim applied in one Lua script, so a group
  that reads, acks or is created in between cannot be overtaken by the trim.
- Stream ids are compared exactly as digit strings (the millisecond and sequence parts can exceed
  a Lua double's integer range in theory); the "next id" after a sequence too long to increment
  exactly is the id itself (one entry kept longer, never one trimmed early).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from core.bus.keys import Keys

log = logging.getLogger("quanticity.ledger.retention")
DAY_MS = 86_400_000

# KEYS[1] the stream; ARGV[1] the age cutoff id "<ms>-0". Returns {trimmed, floor id used, held}:
# held = 1 when entries older than the cutoff remain because some group still needs them.
TRIM_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '', 0} end
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms, seq
end
local function digits_less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function less(a, b)
  local am, as = parts(a)
  local bm, bs = parts(b)
  if am ~= bm then return digits_less(am, bm) end
  return digits_less(as, bs)
end
local function after(id)
  local ms, seq = parts(id)
  if #seq <= 13 then return ms .. '-' .. tostring(tonumber(seq) + 1) end
  return id
end
local floor = ARGV[1]
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  local undelivered = after(last)
  if less(undelivered, floor) then floor = undelivered end
  local pending = redis.call('XPENDING', KEYS[1], name)
  if pending[1] > 0 and pending[2] and less(pending[2], floor) then floor = pending[2] end
end
local n = redis.call('XTRIM', KEYS[1], 'MINID', floor)
local held = 0
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
if first and less(first[1], ARGV[1]) then held = 1 end
return {n, floor, held}
"""


@dataclass
class TrimReport:
    cutoff_ms: int = 0
    trimmed: dict[str, int] = field(default_factory=dict)  # stream -> entries removed (only > 0)
    held: list[str] = field(default_factory=list)  # streams where a group's floor limited the trim

    @property
    def total(self) -> int:
        return sum(self.trimmed.values())


async def redis_now_ms(redis: aioredis.Redis) -> int:
    sec, usec = await redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def trim_streams(redis: aioredis.Redis, keys: Keys, streams: Iterable[str], retention_days: float,
                       now_ms: int | None = None) -> TrimReport:
    """Trim every stream of ``streams`` (names, under ``keys``) to the entries younger than
    ``retention_days`` or still needed by a group. ``now_ms`` defaults to Redis's ``TIME``.
    ``retention_days`` <= 0 trims nothing."""
    if retention_days <= 0:
        return TrimReport()
    if now_ms is None:
        now_ms = await redis_now_ms(redis)
    cutoff = now_ms - int(retention_days * DAY_MS)
    report = TrimReport(cutoff_ms=cutoff)
    if cutoff <= 0:
        return report
    script = redis.register_script(TRIM_LUA)
    for name in streams:
        n, _floor, held = await script(keys=[keys.stream(name)], args=[f"{cutoff}-0"])
        if int(n):
            report.trimmed[name] = int(n)
        if int(held):
            report.held.append(name)
    if report.total:
        log.info("retention: trimmed %d entries older than %g days (%s)%s", report.total, retention_days,
                 ", ".join(f"{k} {v}" for k, v in sorted(report.trimmed.items())),
                 f"; held back by a group's unread or unacknowledged entries: {', '.join(report.held)}"
                 if report.held else "")
    elif report.held:
        log.debug("retention: nothing trimmed; held back by groups on %s", ", ".join(report.held))
    return report
