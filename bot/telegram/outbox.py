"""The durable outbound queue: every message the bot sends goes through it.

Storage (all names from ``core.bus.keys``):

- ``z:telegram_outbox``   sorted set, score = due time (epoch ms), member
  ``<chat>|<seq>|<idem>``; ``seq`` is a global counter so that, within one chat, ties
  sort in the order messages were queued.
- ``h:telegram_outbox``   hash idem -> payload (JSON of :class:`Outgoing`).
- ``k:tg_sent:<idem>``    marker of a delivered message (TTL ``sent_ttl_s``): the same
  idempotency key is never queued twice, so a re-delivered event sends nothing new.
- ``h:telegram_chat_block`` chat -> epoch ms before which nothing may be sent to it
  (a 429's retry_after, a network-error backoff); new messages for a blocked chat are
  queued behind it, so order within a chat is kept.

Enqueueing is one Lua script (dedupe + sequence + block + add), usable inside a handler's
MULTI (``enqueue_on``) or on its own (``enqueue``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from bot.telegram.splitter import split_html
from core.bus.keys import Keys

Op = Literal["send", "document", "edit", "edit_card"]

ENQUEUE_LUA = """
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[4])
local due = tonumber(ARGV[3])
local blk = tonumber(redis.call('HGET', KEYS[5], ARGV[4]) or '0')
if blk and blk > due then due = blk end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], due, ARGV[4] .. '|' .. string.format('%012d', seq) .. '|' .. ARGV[1])
return 1
"""

BLOCK_LUA = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local prefix = ARGV[1] .. '|'
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
for _, m in ipairs(rows) do
  if string.sub(m, 1, #prefix) == prefix then redis.call('ZADD', KEYS[1], ARGV[2], m) end
end
return #rows
"""

Buttons = list[list[tuple[str, str]]]


@dataclass
class Outgoing:
    """One queued message or edit. ``text`` is HTML (parse mode HTML) unless ``plain``."""

    idem: str
    chat_id: int | str
    op: Op = "send"
    text: str = ""
    parts: list[str] = field(default_factory=list)  # "send": the text split at the length limit
    part: int = 0  # next part to send (a long message resumes where it stopped)
    buttons: Buttons | None = None  # rows of (label, callback data); on the last part only
    silent: bool = False  # disable_notification
    plain: bool = False  # no parse mode (fallback after a markup rejection)
    record_card: str | None = None  # card item id: remember the sent message id under it
    edit_card: str | None = None  # "edit_card": the card whose message is edited
    reply_card: str | None = None  # send as a reply to this card's message, when known
    message_id: int | None = None  # "edit": the message to edit
    path: str | None = None  # "document": file to upload (``text`` is sent instead when it is missing)
    caption: str = ""  # "document": the caption (HTML, at most 1024 characters)
    filename: str | None = None
    attempts: int = 0
    created_ms: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Outgoing:
        data: dict[str, Any] = json.loads(raw)
        if data.get("buttons"):
            data["buttons"] = [[tuple(b) for b in row] for row in data["buttons"]]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def parse_member(member: str) -> tuple[str, int, str]:
    chat, seq, idem = member.split("|", 2)
    return chat, int(seq), idem


class Outbox:
    def __init__(self, redis: aioredis.Redis, keys: Keys, max_chars: int = 4096) -> None:
        self.redis = redis
        self.keys = keys
        self.max_chars = max_chars
        self.k_queue = keys.zset("telegram_outbox")
        self.k_payloads = keys.hash("telegram_outbox")
        self.k_block = keys.hash("telegram_chat_block")
        self.k_seq = keys.key("tg_seq", "outbox")
        self.k_dead = keys.key("dead_letter", "telegram")

    def sent_key(self, idem: str) -> str:
        return self.keys.key("tg_sent", idem)

    def _prepare(self, msg: Outgoing, now_ms: int) -> tuple[list[str], list[str]]:
        if msg.op == "send" and not msg.parts:
            msg.parts = split_html(msg.text, self.max_chars)
        if not msg.created_ms:
            msg.created_ms = now_ms
        keys = [self.k_queue, self.k_payloads, self.sent_key(msg.idem), self.k_seq, self.k_block]
        return keys, [msg.idem, msg.to_json(), str(now_ms), str(msg.chat_id)]

    def enqueue_on(self, pipe: Pipeline, msg: Outgoing, now_ms: int) -> None:
        """Queue inside a transaction (a handler's ``tx.pipe``); idempotent."""
        keys, argv = self._prepare(msg, now_ms)
        pipe.eval(ENQUEUE_LUA, len(keys), *keys, *argv)

    async def enqueue(self, msg: Outgoing, now_ms: int) -> bool:
        keys, argv = self._prepare(msg, now_ms)
        return bool(await self.redis.eval(ENQUEUE_LUA, len(keys), *keys, *argv))

    async def due(self, now_ms: int, limit: int = 200) -> list[tuple[str, int]]:
        rows = await self.redis.zrangebyscore(self.k_queue, "-inf", now_ms, start=0, num=limit, withscores=True)
        return [(m, int(s)) for m, s in rows]

    async def next_due_ms(self) -> int | None:
        rows = await self.redis.zrange(self.k_queue, 0, 0, withscores=True)
        return int(rows[0][1]) if rows else None

    async def load(self, idem: str) -> Outgoing | None:
        raw = await self.redis.hget(self.k_payloads, idem)
        return Outgoing.from_json(raw) if raw else None

    async def size(self) -> int:
        return int(await self.redis.zcard(self.k_queue))

    async def block_chat(self, chat: str, until_ms: int) -> None:
        """Nothing goes to ``chat`` before ``until_ms``: its queued messages move behind it
        (atomically with recording the block, so a message queued meanwhile cannot overtake)."""
        await self.redis.eval(BLOCK_LUA, 2, self.k_queue, self.k_block, chat, str(until_ms))
