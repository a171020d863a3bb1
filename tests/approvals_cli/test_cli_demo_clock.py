"""In demo mode cards expire in simulated time: the CLI decides with the stored demo timeline's
clock (a card one simulated minute from expiry on a past session day is still open), not the wall
clock (by which that card expired long ago)."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, time

import redis.asyncio as aioredis

import main
from core.approvals.cli import operator_bus
from core.bus.bus import Bus
from core.bus.events import ApprovalEvent
from core.bus.keys import Keys
from core.clock.calendar import NY
from core.clock.clock import LiveClock
from core.clock.timeline import seed_timeline
from tests.approvals_cli.conftest import open_signal, stream

DAY = date(2026, 3, 2)


async def test_demo_cards_are_decided_on_the_simulated_clock(redis_url, key_prefix, cli_env, capsys) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(f"{key_prefix}.demo")
    try:
        await seed_timeline(client, keys, DAY, datetime.combine(DAY, time(10, 0), tzinfo=NY), 1.0, time(16, 15))
        sim = await operator_bus(Bus(client, keys, LiveClock()))
        assert abs(sim.clock.now() - datetime.combine(DAY, time(10, 0), tzinfo=NY)).total_seconds() < 60
        await open_signal(sim, "SIGDEMO", ttl_ms=600_000)
        capsys.readouterr()
        assert await asyncio.to_thread(main.main, ["pending", "--json", "--mode", "demo"]) == 0
        assert [i["id"] for i in json.loads(capsys.readouterr().out)] == ["SIGDEMO"]
        assert await asyncio.to_thread(main.main, ["approve", "SIGDEMO", "--mode", "demo"]) == 0
        [ev] = [e for e in await stream(sim, "approvals") if isinstance(e, ApprovalEvent)]
        assert (ev.decision, ev.decided_by) == ("approved", "cli:ann")
    finally:
        async for key in client.scan_iter(match=keys.pattern(), count=1000):
            await client.delete(key)
        await client.aclose()
