"""Connecting to Redis: an explicit URL must work; otherwise local Redis; otherwise
the embedded in-process Redis (fakeredis with Lua), announced on one start-up line."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("quanticity.redis")
LOCAL_URL = "redis://127.0.0.1:6379/0"


class RedisUnavailable(Exception):
    """An explicitly configured Redis could not be reached (one-line message, no secrets)."""


@dataclass
class RedisHandle:
    client: aioredis.Redis
    description: str
    embedded: bool

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # noqa: BLE001 - closing best-effort
            pass


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


async def _try(url: str, timeout: float) -> aioredis.Redis:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=None,
                                     decode_responses=True, health_check_interval=30)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise RedisUnavailable(f"cannot reach Redis at {_redact(url)}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'no answer'}") from None
    return client


def embedded() -> RedisHandle:
    import fakeredis

    client = fakeredis.FakeAsyncRedis(decode_responses=True, lua_modules=set())
    return RedisHandle(client, "embedded in-process Redis (fakeredis; state is lost at exit)", True)


async def connect(url: str | None, *, fallback: bool = True, timeout: float = 1.0) -> RedisHandle:
    """``url`` given (config or REDIS_URL): must connect, else RedisUnavailable.
    No url: try 127.0.0.1:6379, then (if allowed) the embedded Redis."""
    if url:
        return RedisHandle(await _try(url, timeout), f"Redis at {_redact(url)}", False)
    try:
        return RedisHandle(await _try(LOCAL_URL, timeout), f"Redis at {LOCAL_URL}", False)
    except RedisUnavailable:
        if not fallback:
            raise
    handle = embedded()
    log.warning("no Redis configured and none reachable at %s: using the %s", LOCAL_URL, handle.description)
    return handle
