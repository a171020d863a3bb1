"""Who did it, in words: ``tg:<user id>`` (how the bot signs decisions and control actions)
shown as the admin's @username / first name, remembered in hash ``telegram_users``."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from bot.telegram.render import clip
from core.bus.keys import Keys


def actor(user_id: int) -> str:
    """The ``by`` / ``decided_by`` string of an admin's action."""
    return f"tg:{user_id}"


def actor_words(by: str, name: str | None = None) -> str:
    """``by`` / ``decided_by`` in words: the admin's remembered ``name`` when given, else the id."""
    if by.startswith("tg:"):
        uid = by[3:]
        return f"{name} ({uid})" if name else f"admin {uid}"
    if by == "timeout":
        return "timeout"
    if by.startswith("policy:"):
        return f"policy {by.split(':', 1)[1]}"
    return clip(by, 40) or "unknown"


class Names:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.key = keys.hash("telegram_users")

    async def remember(self, user: Any) -> None:
        name = f"@{user.username}" if getattr(user, "username", None) else getattr(user, "first_name", "") or ""
        if name:
            await self.redis.hset(self.key, str(user.id), clip(name, 40))

    async def label(self, by: str) -> str:
        name = await self.redis.hget(self.key, by[3:]) if by.startswith("tg:") else None
        return actor_words(by, name)
