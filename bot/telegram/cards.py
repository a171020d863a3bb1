"""Where each approval card was posted, so it can be edited (outcome, expiry) and replied
to (fill alerts) - also by a restarted bot.

- ``k:tg_card:<item_id>`` hash: ``chat_id``, ``kind`` (signal / report), ``correlation_id``,
  and once sent ``message_id`` and ``media`` (text / document). ``item_id`` is the approval
  card id of ``core.approvals`` (``sig:<signal id>``, ``rep:<report id>``). Kept 14 days.
- ``k:tg_card_corr:<correlation id>`` -> item id (a fill finds the card it came from).

Deciding a card is not done here: buttons call ``core.approvals.decide`` (the atomic claim).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from core.bus.keys import Keys

TTL_S = 14 * 86400


def signal_item(signal_id: str) -> str:
    return f"sig:{signal_id}"


def report_item(report_id: str) -> str:
    return f"rep:{report_id}"


class CardStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    def key(self, item_id: str) -> str:
        return self.keys.key("tg_card", item_id)

    def corr_key(self, correlation_id: str) -> str:
        return self.keys.key("tg_card_corr", correlation_id)

    def open_on(self, pipe: Pipeline, item_id: str, chat_id: int | str, kind: str, correlation_id: str) -> None:
        """Record a card being posted (inside a handler's transaction; idempotent)."""
        pipe.hset(self.key(item_id), mapping={"chat_id": str(chat_id), "kind": kind,
                                              "correlation_id": correlation_id})
        pipe.expire(self.key(item_id), TTL_S)
        if correlation_id:
            pipe.set(self.corr_key(correlation_id), item_id, ex=TTL_S)

    def record_sent_on(self, pipe: Pipeline, item_id: str, message_id: int, media: str) -> None:
        pipe.hset(self.key(item_id), mapping={"message_id": str(message_id), "media": media})
        pipe.expire(self.key(item_id), TTL_S)

    async def get(self, item_id: str) -> dict[str, str] | None:
        h = await self.redis.hgetall(self.key(item_id))
        return dict(h) if h else None

    async def message_id(self, item_id: str) -> int | None:
        raw = await self.redis.hget(self.key(item_id), "message_id")
        return int(raw) if raw and raw.isdigit() else None

    async def by_correlation(self, correlation_id: str) -> str | None:
        if not correlation_id:
            return None
        return await self.redis.get(self.corr_key(correlation_id))
