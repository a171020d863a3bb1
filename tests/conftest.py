"""Shared fixtures. Tests run against the REAL Redis server on 127.0.0.1:6379
(``.ci/run`` starts it); each test gets its own key prefix, wiped afterwards."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from core.bus.bus import Bus
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.clock import SimClock

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
async def redis_client():
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except (aioredis.RedisError, OSError) as exc:  # pragma: no cover - CI always has Redis
        pytest.fail(f"tests need the real Redis at {REDIS_URL}: {exc}")
    yield client
    await client.aclose()


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def keys(redis_client, key_prefix):
    k = Keys(key_prefix)
    yield k
    async for key in redis_client.scan_iter(match=k.pattern(), count=1000):
        await redis_client.delete(key)


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock(datetime(2026, 11, 20, 14, 30, tzinfo=UTC))  # 09:30 New York


@pytest.fixture
async def bus(redis_client, keys, sim_clock) -> Bus:
    return Bus(redis_client, keys, sim_clock, IdFactory(seed=1))
