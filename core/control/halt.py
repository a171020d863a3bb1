"""The persistent halt. Set by Telegram ``/halt``, a circuit breaker or an
overseer CRITICAL; stored in Redis (survives restarts) and checked before every
order placement. Only an explicit resume clears it."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from core.bus.bus import Bus, Tx
from core.bus.events import AuditEvent, ControlEvent
from core.bus.keys import Keys


@dataclass(frozen=True)
class HaltState:
    halted: bool
    reason: str = ""
    by: str = ""
    since_ms: int = 0


async def read_halt(redis: aioredis.Redis, keys: Keys) -> HaltState:
    h = await redis.hgetall(keys.halt())
    if not h or h.get("halted") != "1":
        return HaltState(False)
    return HaltState(True, h.get("reason", ""), h.get("by", ""), int(h.get("since_ms", "0") or 0))


async def is_halted(redis: aioredis.Redis, keys: Keys) -> bool:
    return await redis.hget(keys.halt(), "halted") == "1"


def _write(tx: Tx, halted: bool, reason: str, by: str) -> None:
    keys = tx.bus.keys
    tx.pipe.hset(keys.halt(), mapping={"halted": "1" if halted else "0", "reason": reason, "by": by,
                                       "since_ms": str(tx.bus.clock.ms())})
    tx.emit(ControlEvent, action="halt" if halted else "resume", by=by, reason=reason)
    tx.emit(AuditEvent, actor=by, action="halt" if halted else "resume", detail={"reason": reason})


async def set_halt(bus: Bus, reason: str, by: str, tx: Tx | None = None) -> None:
    """Halt trading (idempotent). Inside a handler pass its ``tx`` so it commits atomically."""
    if tx is not None:
        _write(tx, True, reason, by)
        return
    own = bus.tx()
    _write(own, True, reason, by)
    await own.commit()


async def clear_halt(bus: Bus, by: str, reason: str = "", tx: Tx | None = None) -> None:
    if tx is not None:
        _write(tx, False, reason, by)
        return
    own = bus.tx()
    _write(own, False, reason, by)
    await own.commit()
