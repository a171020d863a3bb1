"""Heartbeats: each loop's last completed iteration, iterations, errors and budget in one Redis hash
per mode namespace, written in one HSET at most once per flush interval, shown by ``status``
(ok / errors / stalled / stopped); the lock-step demo runner writes none."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.bus.bus import Bus
from core.bus.ids import IdFactory
from core.clock.clock import LiveClock
from core.runtime.heartbeat import Heartbeat, loop_state, read_heartbeats, service_view
from core.runtime.live_runner import LiveRunner
from core.runtime.service import Service
from core.runtime.sim_runner import SimRunner
from core.state.status import collect_status, format_status
from tests.helpers import make_context, until


class FakeWall:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


async def test_records_flush_in_one_hset_and_read_back(redis_client, keys):
    wall = FakeWall()
    hb = Heartbeat(redis_client, keys, clock_ms=wall)
    hb.begin("execution", "consume", 31.0)
    hb.begin("execution", "timer", 31.0)
    hb.begin("distributor", "timer", 31.0)
    wall.ms += 500
    hb.done("execution", "consume")
    hb.error("execution", "timer", RuntimeError("redis down"))
    assert await hb.flush() == 2 and hb.flushes == 1  # both services, one command
    assert await hb.flush() == 0 and hb.flushes == 1  # nothing changed: nothing written

    recs = await read_heartbeats(redis_client, keys)
    ex = recs["execution"]
    assert ex["errors"] == 1 and ex["pid"] > 0
    assert ex["loops"]["consume"] == {"budget_s": 31.0, "done_ms": 1_000_500, "iterations": 1, "errors": 0,
                                      "last_error": "", "last_error_ms": 0, "state": "running"}
    assert ex["loops"]["timer"]["last_error"] == "RuntimeError: redis down"
    assert await redis_client.hlen(keys.hash("heartbeat")) == 2  # one hash, one field per service

    now = wall.ms
    assert loop_state(ex["loops"]["consume"], now) == "ok"
    assert loop_state(ex["loops"]["timer"], now) == "errors"  # latest news is an error: backing off
    assert loop_state(ex["loops"]["consume"], now + 31_000) == "ok"  # exactly the budget: not late
    assert loop_state(ex["loops"]["consume"], now + 31_001) == "stalled"
    view = service_view(ex, now + 40_000)
    assert view["state"] == "stalled" and view["age_s"] == 40.5 and view["errors"] == 1


async def test_stopped_and_started_loops_are_not_judged(redis_client, keys):
    wall = FakeWall()
    hb = Heartbeat(redis_client, keys, clock_ms=wall)
    hb.begin("svc", "start", 40.0)
    hb.finish("svc", "start")
    hb.begin("svc", "consume", 31.0)
    await hb.flush()
    rec = (await read_heartbeats(redis_client, keys))["svc"]
    later = wall.ms + 3_600_000
    assert loop_state(rec["loops"]["start"], later) == "done"
    assert loop_state(rec["loops"]["consume"], later) == "stalled"
    hb.stop_all()
    await hb.flush()
    rec = (await read_heartbeats(redis_client, keys))["svc"]
    assert service_view(rec, later)["state"] == "stopped" and service_view(rec, later)["age_s"] is None


async def test_a_failed_flush_keeps_the_changes_for_the_next(redis_client, keys):
    dead = aioredis.Redis(port=1, socket_connect_timeout=0.2)  # nothing listens on port 1
    hb = Heartbeat(dead, keys)
    hb.begin("svc", "timer", 31.0)
    with pytest.raises(RedisConnectionError):
        await hb.flush()
    await dead.aclose()
    hb.redis = redis_client
    assert await hb.flush() == 1 and "svc" in await read_heartbeats(redis_client, keys)


async def test_garbage_in_the_hash_is_skipped_not_raised(redis_client, keys):
    await redis_client.hset(keys.hash("heartbeat"), mapping={"bad": "not json", "list": "[1]"})
    assert await read_heartbeats(redis_client, keys) == {}


class Ticker(Service):
    interval_s = 0.005  # far more iterations than flushes

    def __init__(self, ctx, name: str) -> None:
        self.name = name
        super().__init__(ctx)
        self.ticks = 0

    async def on_timer(self, now: datetime) -> None:
        self.ticks += 1


@pytest.fixture
def live_bus(redis_client, keys) -> Bus:
    return Bus(redis_client, keys, LiveClock(), IdFactory(seed=1))


async def test_writes_at_most_once_per_interval_however_busy_the_loops(live_bus):
    every = 0.1
    ctx = make_context(live_bus, runner={"heartbeat_every_s": every})
    services = [Ticker(ctx, f"t{i}") for i in range(3)]
    runner = LiveRunner(services)
    started = time.monotonic()
    task = asyncio.create_task(runner.run())
    try:
        await until(lambda: all(s.ticks >= 30 for s in services) and runner.heartbeat.flushes >= 3, 20,
                    "busy loops and a few flushes")
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 10)
    elapsed = time.monotonic() - started
    iterations = sum(b.iterations for loops in runner.heartbeat.loops.values() for b in loops.values())
    # one HSET per interval at most (+1: the final "stopped" flush), whatever the iteration count
    assert runner.heartbeat.flushes <= elapsed / every + 2, (runner.heartbeat.flushes, elapsed)
    assert iterations > 3 * runner.heartbeat.flushes


async def test_status_shows_each_service_state_and_age(live_bus):
    from core.config.loader import load_settings

    settings = load_settings(environ={})
    hb = Heartbeat(live_bus.redis, live_bus.keys)
    now = hb.clock_ms()
    hb.begin("healthy", "consume", 31.0)
    hb.done("healthy", "consume")
    hb.begin("failing", "timer", 31.0)
    hb.error("failing", "timer", ConnectionError("Connection refused"))
    hb.begin("stuck", "consume", 31.0)
    hb.loops["stuck"]["consume"].done_ms = now - 45_000  # its last iteration ended 45 s ago
    hb.begin("gone", "timer", 31.0)
    hb.stop_all()
    for loops in hb.loops.values():  # only "gone" stopped cleanly
        for b in loops.values():
            b.state = "running"
    hb.loops["gone"]["timer"].state = "stopped"
    await hb.flush()

    s = await collect_status(live_bus, settings)
    states = {name: v["state"] for name, v in s["services"].items()}
    assert states == {"healthy": "ok", "failing": "errors", "stuck": "stalled", "gone": "stopped"}
    assert s["services"]["stuck"]["age_s"] >= 45
    text = format_status(s)
    assert "  healthy ok " in text
    assert "  stuck STALLED 4" in text and "(consume 4" in text and "> 31s)" in text
    assert "  failing ERRORS" in text and "1 error: ConnectionError: Connection refused" in text
    assert "  gone stopped" in text


async def test_status_without_heartbeats_says_so(bus):
    from core.config.loader import load_settings

    s = await collect_status(bus, load_settings(environ={}))
    assert s["services"] == {}
    assert "services: no heartbeats" in format_status(s)


async def test_the_lock_step_demo_runner_writes_no_heartbeat(bus, sim_clock):
    ctx = make_context(bus)
    svc = Ticker(ctx, "sim")
    svc.interval_s = 60
    start = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    await SimRunner([svc], sim_clock).run(start, start.replace(minute=40))
    assert svc.ticks >= 10
    assert await read_heartbeats(bus.redis, bus.keys) == {}
