"""The real-time runner keeps every loop alive through a failure: a Redis error while asking a
service for its next due time must not stop its timers for good (it did: basic/free/X/Reddit
deliveries sat overdue for 27 minutes after a 10 s Redis outage)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from redis.exceptions import ConnectionError as RedisConnectionError

from core.runtime.live_runner import LiveRunner
from core.runtime.service import Service
from tests.helpers import make_context


class Flaky(Service):
    name = "flaky"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.asks = 0
        self.ran: list[datetime] = []

    async def next_due(self, now: datetime) -> datetime | None:
        self.asks += 1
        if self.asks == 1:
            raise RedisConnectionError("Connection refused (simulated outage)")
        return None if self.ran else now - timedelta(seconds=1)  # work is due once

    async def on_timer(self, now: datetime) -> None:
        self.ran.append(now)


async def test_a_failing_next_due_does_not_end_the_timer_loop(bus, monkeypatch):
    svc = Flaky(make_context(bus))
    runner = LiveRunner([svc], poll_block_ms=20)
    monkeypatch.setattr(runner, "_pause", lambda s: asyncio.sleep(0.01))
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(300):
            if svc.ran:
                break
            await asyncio.sleep(0.01)
        assert svc.asks >= 2 and svc.ran, "the timer loop died on the first error"
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 5)
