"""Connecting to Redis: an explicit URL must work; otherwise local Redis; otherwise
the embedded in-process Redis (fakeredis with Lua), announced on one start-up line."""

from __future__ import annotations

import logging
import re
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
        except Exception as exc:  # noqa: BLE001 - closing best-effort
            log.debug("closing the Redis client failed: %s", type(exc).__name__)


def _secret_parts(url: str) -> list[str]:
    """What of ``url`` must never be printed: the user-info before the host and any
    ``password=`` query value (both are accepted by redis-py)."""
    rest = url.split("://", 1)[-1]
    parts = [rest.rsplit("@", 1)[0]] if "@" in rest else []
    host = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""
    if port and not port.isdigit():  # "redis://user:password" with the "@host" forgotten
        parts.append(port)
    parts += [m for m in re.findall(r"(?i)password=([^&#]*)", rest) if m]
    return sorted((p for p in parts if p), key=len, reverse=True)


def _scrub(text: str, url: str) -> str:
    for secret in _secret_parts(url):
        text = text.replace(secret, "***")
    return text


def _redact(url: str) -> str:
    return _scrub(url, url)


async def _try(url: str, timeout: float) -> aioredis.Redis:
    try:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=None,
                                         decode_responses=True, health_check_interval=30)
    except (ValueError, TypeError) as exc:  # unparsable URL (bad scheme, port, db, IPv6 brackets...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RedisUnavailable(f"invalid Redis URL {_redact(url)!r}: {_scrub(reason, url)} "
                               f"(expected redis://[user:password@]host[:port][/db])") from None
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise RedisUnavailable(f"cannot reach Redis at {_redact(url)}: {type(exc).__name__}: "
                               f"{_scrub(str(exc).splitlines()[0], url) if str(exc) else 'no answer'}") from None
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
