"""Answers to identical prompts, keyed by the SHA-256 of the canonical prompt.

Redis: ``keys.key("ai_cache", <hash>)`` with TTL ``overseer.cache_ttl_s`` (an idempotent
SET, safe outside a handler's tx). Without Redis: an in-memory dict expiring on the clock.
"""

from __future__ import annotations

import json
from typing import Any

from core.bus.keys import Keys
from core.clock.clock import Clock
from overseer._util import text


class Cache:
    def __init__(self, clock: Clock, ttl_s: int) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self._items: dict[str, tuple[int, str]] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    async def get(self, digest: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        raw = await self._get(digest)
        if raw is None:
            return None
        try:
            val = json.loads(raw)
        except ValueError:
            return None
        return val if isinstance(val, dict) else None

    async def put(self, digest: str, value: dict[str, Any]) -> None:
        if self.enabled:
            await self._put(digest, json.dumps(value, sort_keys=True))

    async def _get(self, digest: str) -> str | None:
        hit = self._items.get(digest)
        if hit is None:
            return None
        if hit[0] <= self.clock.ms():
            self._items.pop(digest, None)
            return None
        return hit[1]

    async def _put(self, digest: str, raw: str) -> None:
        self._items[digest] = (self.clock.ms() + self.ttl_s * 1000, raw)


class RedisCache(Cache):
    def __init__(self, redis: Any, keys: Keys, clock: Clock, ttl_s: int) -> None:
        super().__init__(clock, ttl_s)
        self.redis = redis
        self.keys = keys

    async def _get(self, digest: str) -> str | None:
        raw = await self.redis.get(self.keys.key("ai_cache", digest))
        return None if raw is None else text(raw)

    async def _put(self, digest: str, raw: str) -> None:
        await self.redis.set(self.keys.key("ai_cache", digest), raw, ex=self.ttl_s)
