"""Inline-button callback data: ``<action>:<argument>``, at most 64 bytes (Telegram's limit).

Actions: ``a`` / ``r`` / ``h`` approve / reject / half-size a signal card, ``ra`` / ``rr``
approve / reject a report, ``m`` set the approval policy, ``se`` / ``sd`` enable / disable
a strategy, ``ok`` / ``no`` confirm / cancel a pending confirmation (/flatten, /resume).

An argument too long for the limit is replaced by ``~<token>`` (a hash of it) and the token
is stored in hash ``telegram_cb`` (token -> argument); writing it is idempotent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis.asyncio as aioredis

from core.bus.keys import Keys

MAX_BYTES = 64
ACTIONS = frozenset({"a", "r", "h", "ra", "rr", "m", "se", "sd", "ok", "no"})


@dataclass(frozen=True)
class Callback:
    action: str
    arg: str


def _token(arg: str) -> str:
    return "~" + hashlib.sha256(arg.encode()).hexdigest()[:24]


async def pack(redis: aioredis.Redis, keys: Keys, action: str, arg: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown callback action {action!r}")
    data = f"{action}:{arg}"
    if len(data.encode()) <= MAX_BYTES and not arg.startswith("~"):
        return data
    token = _token(arg)
    await redis.hset(keys.hash("telegram_cb"), token, arg)
    return f"{action}:{token}"


async def unpack(redis: aioredis.Redis, keys: Keys, data: str | None) -> Callback | None:
    """The callback of a button press, or None for anything malformed / unknown."""
    if not data or ":" not in data or len(data.encode()) > MAX_BYTES:
        return None
    action, _, arg = data.partition(":")
    if action not in ACTIONS or not arg:
        return None
    if arg.startswith("~"):
        full = await redis.hget(keys.hash("telegram_cb"), arg)
        if not full:
            return None
        arg = full
    return Callback(action, arg)
