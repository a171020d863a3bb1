"""Signal de-duplication: idempotency + cooldown + enqueue in ONE Lua script.

Fingerprint of a signal: (NY trading day, symbol, strategy, side, expiry, right, strike,
multiplier). Same contract, same day, same strategy = same fingerprint, whatever the
snapshot or the confidence.

The script (atomic on the Redis server, so any number of workers / processes can race):

1. **idempotency**: the key ``k:sig_idem:<snapshot_id>:<strategy>`` exists -> ``duplicate``
   (a redelivered analytics event, a restarted worker, a second replica);
2. **cooldown**: the fingerprint hash ``k:sig_fp:<fingerprint>`` holds the confidence and
   time of the last emitted signal; within ``cooldown_s`` of it a new one passes only on a
   *material* confidence change ``|new - last| >= max(3 points, 5% of last)``, else
   ``cooldown``;
3. otherwise it records ``conf`` / ``ts`` / ``signal_id`` on the fingerprint and
   ``XADD``\\ s the :class:`SignalEvent` to the ``signals`` stream with exactly the fields of
   :func:`core.bus.events.encode` (``MAXLEN ~``) -> ``emitted`` + the entry id.

Every outcome records the idempotency key (value: the entry id, or ``cooldown``), so a
replay of the same key is always ``duplicate``. Times come from the service clock
(``now_ms`` argument), never from the Redis server, so simulated days behave exactly.
TTLs: idempotency keys ``idempotency_ttl_s`` (default = ``redis.processed_ttl_s``);
fingerprints ``max(cooldown_s, 1 day) + 1 hour`` (they are per trading day anyway).

Redis Cluster note: the script touches three keys in different hash slots; on a cluster
they would need a common hash tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis

from core.bus.bus import Bus
from core.bus.events import SignalEvent, encode
from core.clock.calendar import NY
from core.domain.signal import Signal

__all__ = ["DEDUPE_LUA", "DedupeResult", "Fingerprint", "Outcome", "SignalDeduper", "fingerprint",
           "is_material_change"]

DAY_S = 86_400

DEDUPE_LUA = r"""
-- KEYS[1] idempotency key, KEYS[2] fingerprint hash, KEYS[3] signals stream
-- ARGV[1] confidence, ARGV[2] cooldown ms, ARGV[3] now ms, ARGV[4] idempotency ttl s,
-- ARGV[5] fingerprint ttl s, ARGV[6] stream maxlen, ARGV[7] signal id, ARGV[8..] field, value ...
local unpack_ = unpack or table.unpack
local seen = redis.call('GET', KEYS[1])
if seen then
  return {'duplicate', seen}
end
local conf = tonumber(ARGV[1])
local cooldown = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local last = redis.call('HMGET', KEYS[2], 'conf', 'ts')
if last[1] and last[2] then
  local lc = tonumber(last[1])
  local lt = tonumber(last[2])
  if now - lt < cooldown then
    local need = math.max(3.0, 0.05 * math.abs(lc))
    if math.abs(conf - lc) + 1e-9 < need then
      redis.call('SET', KEYS[1], 'cooldown', 'EX', ARGV[4])
      return {'cooldown', last[1]}
    end
  end
end
local fields = {}
for i = 8, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack_(fields))
redis.call('HSET', KEYS[2], 'conf', ARGV[1], 'ts', ARGV[3], 'signal_id', ARGV[7], 'entry', id)
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[1], id, 'EX', ARGV[4])
return {'emitted', id}
"""


class Outcome(StrEnum):
    EMITTED = "emitted"
    DUPLICATE = "duplicate"
    COOLDOWN = "cooldown"


@dataclass(frozen=True, slots=True)
class DedupeResult:
    outcome: Outcome
    detail: str  # emitted: stream entry id; duplicate: what the key recorded; cooldown: last confidence

    @property
    def emitted(self) -> bool:
        return self.outcome == Outcome.EMITTED


@dataclass(frozen=True, slots=True)
class Fingerprint:
    day: date
    symbol: str
    strategy: str
    side: str
    expiry: date
    right: str
    strike: float
    multiplier: int

    @property
    def ident(self) -> str:
        return (f"{self.day:%Y%m%d}:{self.symbol}:{self.strategy}:{self.side}:{self.expiry:%Y%m%d}:"
                f"{self.right}:{self.strike:g}:{self.multiplier}")


def fingerprint(signal: Signal, now: datetime) -> Fingerprint:
    """The contract fingerprint of ``signal``, bucketed by the New York day of ``now``."""
    c = signal.contract()  # raises ValueError for anything but a fully specified option
    return Fingerprint(day=now.astimezone(NY).date(), symbol=signal.symbol, strategy=signal.strategy,
                       side=signal.side.value, expiry=c.expiry, right=c.right.value, strike=c.strike,
                       multiplier=c.multiplier)


def is_material_change(new: float, last: float) -> bool:
    """The cooldown rule, in Python (mirrors the script; for callers and tests)."""
    return abs(new - last) + 1e-9 >= max(3.0, 0.05 * abs(last))


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class SignalDeduper:
    """Runs the dedupe script for one bus (its Redis connection, keys and stream MAXLEN)."""

    def __init__(self, bus: Bus, *, idempotency_ttl_s: int = 7 * DAY_S,
                 redis: aioredis.Redis | None = None) -> None:
        self.bus = bus
        self.keys = bus.keys
        self.redis = redis if redis is not None else bus.redis
        self.idempotency_ttl_s = int(idempotency_ttl_s)
        self._script = self.redis.register_script(DEDUPE_LUA)

    def idempotency_key(self, snapshot_id: str, strategy: str) -> str:
        return self.keys.key("sig_idem", f"{snapshot_id}:{strategy}")

    def fingerprint_key(self, fp: Fingerprint) -> str:
        return self.keys.key("sig_fp", fp.ident)

    @property
    def stream_key(self) -> str:
        return self.keys.stream(SignalEvent.STREAM)

    async def submit(self, event: SignalEvent, *, cooldown_s: float, idempotency: str | None = None,
                     now: datetime | None = None) -> DedupeResult:
        """Emit ``event`` unless it is a duplicate or inside the cooldown (atomically).

        ``idempotency`` defaults to ``<signal.snapshot_id or event id>:<strategy>``.
        ``now`` defaults to the bus clock; it sets the day bucket and the cooldown time.
        """
        sig = event.signal
        now = now or self.bus.clock.now()
        fp = fingerprint(sig, now)
        ident = idempotency or f"{sig.snapshot_id or event.id}:{sig.strategy}"
        now_ms = int(now.timestamp() * 1000)
        cooldown_ms = max(0, round(cooldown_s * 1000))
        fp_ttl = max(int(cooldown_s), DAY_S) + 3600
        fields = encode(event)
        argv: list[Any] = [repr(float(sig.confidence)), cooldown_ms, now_ms, self.idempotency_ttl_s, fp_ttl,
                           self.bus.maxlen, sig.id]
        for k, v in fields.items():
            argv.extend((k, v))
        res = await self._script(keys=[self.keys.key("sig_idem", ident), self.fingerprint_key(fp),
                                       self.stream_key], args=argv)
        outcome, detail = Outcome(_s(res[0])), _s(res[1])
        if outcome == Outcome.EMITTED:
            self.bus.notify({self.stream_key})
        return DedupeResult(outcome, detail)
