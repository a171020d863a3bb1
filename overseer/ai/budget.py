"""Model-call budget: calls per minute and tokens per New York day.

With Redis the counters are shared by every overseer process:
``keys.key("ai_calls", <epoch minute>)`` (INCR, expires after 2 minutes) and
``keys.key("ai_tokens", <NY date>)`` (INCRBY, expires after 3 days). Without Redis
(the CLI) the same counters live in memory.

The counters are written at call time, outside a handler's ``tx``, on purpose: they
record money already spent upstream, which a rolled-back handling does not give back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.bus.keys import Keys
from overseer._util import ny_day, text


class Budget:
    """In-memory budget (one process). :class:`RedisBudget` shares it through Redis."""

    def __init__(self, max_calls_per_minute: int, max_tokens_per_day: int) -> None:
        self.max_calls = max_calls_per_minute
        self.max_tokens = max_tokens_per_day
        self._calls: dict[int, int] = {}
        self._tokens: dict[str, int] = {}

    async def tokens_used(self, now: datetime) -> int:
        return self._tokens.get(ny_day(now), 0)

    async def _incr_calls(self, minute: int) -> int:
        self._calls = {m: n for m, n in self._calls.items() if m >= minute - 1}
        self._calls[minute] = self._calls.get(minute, 0) + 1
        return self._calls[minute]

    async def reserve(self, now: datetime, estimated_tokens: int) -> bool:
        """True when one more call (of about ``estimated_tokens``) fits; counts the call."""
        if await self.tokens_used(now) + max(0, estimated_tokens) > self.max_tokens:
            return False
        minute = int(now.timestamp()) // 60
        return await self._incr_calls(minute) <= self.max_calls

    async def spend(self, now: datetime, tokens: int) -> None:
        if tokens > 0:
            day = ny_day(now)
            self._tokens[day] = self._tokens.get(day, 0) + int(tokens)


class RedisBudget(Budget):
    def __init__(self, redis: Any, keys: Keys, max_calls_per_minute: int, max_tokens_per_day: int) -> None:
        super().__init__(max_calls_per_minute, max_tokens_per_day)
        self.redis = redis
        self.keys = keys

    async def tokens_used(self, now: datetime) -> int:
        raw = await self.redis.get(self.keys.key("ai_tokens", ny_day(now)))
        try:
            return int(text(raw) or 0)
        except ValueError:
            return 0

    async def _incr_calls(self, minute: int) -> int:
        key = self.keys.key("ai_calls", str(minute))
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 120)
        n, _ = await pipe.execute()
        return int(n)

    async def spend(self, now: datetime, tokens: int) -> None:
        if tokens > 0:
            key = self.keys.key("ai_tokens", ny_day(now))
            pipe = self.redis.pipeline(transaction=True)
            pipe.incrby(key, int(tokens))
            pipe.expire(key, 3 * 86400)
            await pipe.execute()
