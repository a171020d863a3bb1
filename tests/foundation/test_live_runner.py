"""The real-time runner keeps every loop alive through a failure: a Redis error while asking a
service for its next due time must not stop its timers for good (it did: basic/free/X/Reddit
deliveries sat overdue for 27 minutes after a 10 s Redis outage). The same holds for ``on_timer``,
``handle``, ``on_wake``, consumer-group creation and ``start``: each error is counted in the
heartbeat and the metric, the loop backs off and goes on, and the work is done once the fault
clears -- also across a real outage of a private ``redis-server``."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.bus.bus import Bus, Tx
from core.bus.events import ControlEvent, Event
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.clock import LiveClock
from core.config.loader import ConfigError
from core.runtime import metrics
from core.runtime.heartbeat import read_heartbeats
from core.runtime.live_runner import LiveRunner
from core.runtime.service import Service
from tests.helpers import make_context, until, until_async


@pytest.fixture
def bus(redis_client, keys) -> Bus:
    """The live runner runs on the wall clock (a SimClock would never make an interval due again)."""
    return Bus(redis_client, keys, LiveClock(), IdFactory(seed=1))


FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "heartbeat_every_s": 0.05, "poll_block_ms": 20}


def ctx(bus: Bus, **runner: object):
    return make_context(bus, runner={**FAST, **runner})


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


class Running:
    """A LiveRunner run as a task; stopped (and awaited) on exit."""

    def __init__(self, *services: Service) -> None:
        self.runner = LiveRunner(list(services))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveRunner:
        self.task = asyncio.create_task(self.runner.run())
        return self.runner

    async def __aexit__(self, *exc: object) -> None:
        self.runner.request_stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


def errors(runner: LiveRunner, service: str, loop: str) -> int:
    beat = runner.heartbeat.loops.get(service, {}).get(loop)
    return beat.errors if beat else 0


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


class TimerFails(Service):
    """Interval timer whose first three ticks raise; the tick arithmetic itself is exercised too."""

    name = "timer_fails"
    interval_s = 0.01

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.calls = 0
        self.ok = 0

    async def on_timer(self, now: datetime) -> None:
        self.calls += 1
        if self.calls <= 3:
            raise RuntimeError(f"tick {self.calls} failed")
        self.ok += 1


async def test_on_timer_errors_are_counted_backed_off_and_the_ticks_go_on(bus):
    svc = TimerFails(ctx(bus))
    before = metrics.LOOP_ERRORS.labels("timer_fails", "timer")._value.get()
    async with Running(svc) as runner:
        await until(lambda: svc.ok >= 2, 10, "ticks after three failures")
        assert errors(runner, "timer_fails", "timer") == 3
        assert metrics.LOOP_ERRORS.labels("timer_fails", "timer")._value.get() - before == 3
        beat = runner.heartbeat.loops["timer_fails"]["timer"]
        assert beat.iterations >= 2 and "tick 3 failed" in beat.last_error


class BadArithmetic(Service):
    """An interval the tick arithmetic cannot add (overflow) until the service fixes itself."""

    name = "bad_tick"
    interval_s = 1e12  # timedelta(seconds=1e12) overflows

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.ran = 0

    async def on_timer(self, now: datetime) -> None:
        self.ran += 1
        if self.ran >= 2:
            self.interval_s = 0.01


async def test_an_error_in_the_tick_arithmetic_does_not_end_the_timer_loop(bus):
    svc = BadArithmetic(ctx(bus))
    async with Running(svc) as runner:
        await until(lambda: svc.ran >= 4, 10, "ticks after the overflow")
        assert errors(runner, "bad_tick", "timer") >= 1


class Consumes(Service):
    """Consumes control events; ``fail`` makes ``handle`` raise, ``gate`` makes it wait."""

    name = "consumes"
    streams = ("control",)

    def __init__(self, ctx, fail: int = 0) -> None:
        super().__init__(ctx)
        self.fail = fail
        self.seen: list[str] = []
        self.handled: list[str] = []
        self.gate: asyncio.Event | None = None

    async def handle(self, event: Event, tx: Tx) -> None:
        assert isinstance(event, ControlEvent)
        self.seen.append(event.reason)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError(f"handler failed on {event.reason}")
        self.handled.append(event.reason)


async def publish(bus: Bus, reason: str) -> None:
    await bus.publish(bus.make(ControlEvent, action="report", by="test", reason=reason))


async def test_a_failing_handle_does_not_stop_the_consumer_and_the_event_is_done_later(bus):
    svc = Consumes(ctx(bus), fail=1)
    async with Running(svc) as runner:
        await until(lambda: runner.heartbeat.loops.get("consumes", {}).get("consume"), 5, "consume loop")
        await publish(bus, "first")
        await until(lambda: svc.seen, 5, "the first event reached the handler")
        await publish(bus, "second")
        await until(lambda: {"first", "second"} <= set(svc.handled), 10, "both events handled")
        assert runner.heartbeat.loops["consumes"]["consume"].iterations >= 2


class CreatesGroupsLate(Consumes):
    """Consumer-group creation (ensure_groups) fails twice: it ran outside the guard before."""

    name = "late_groups"


async def test_consumer_group_creation_failing_is_retried(bus, monkeypatch):
    from core.bus.consumer import Consumer

    real = Consumer.ensure_groups
    fails = {"n": 2}

    async def flaky_groups(self) -> None:
        if fails["n"] > 0:
            fails["n"] -= 1
            raise RedisConnectionError("Connection refused (simulated outage)")
        await real(self)

    monkeypatch.setattr(Consumer, "ensure_groups", flaky_groups)
    svc = CreatesGroupsLate(ctx(bus))
    async with Running(svc) as runner:
        await until(lambda: errors(runner, "late_groups", "consume") == 2, 5, "two group errors")
        await publish(bus, "after")
        await until(lambda: svc.handled == ["after"], 10, "an event handled once the groups exist")


class Woken(Service):
    name = "woken"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.calls = 0
        self.done = 0

    async def on_wake(self, now: datetime) -> None:
        self.calls += 1
        if self.calls <= 2:
            raise RedisConnectionError("Connection refused (simulated outage)")
        self.done += 1


async def test_a_failing_on_wake_is_retried_until_the_pushed_work_is_done(bus):
    svc = Woken(ctx(bus))
    async with Running(svc) as runner:
        await until(lambda: runner.heartbeat.loops.get("woken", {}).get("wake"), 5, "wake loop")
        svc.wake()  # one push only: the retries come from the runner
        await until(lambda: svc.done == 1, 10, "the pushed work done after two errors")
        assert errors(runner, "woken", "wake") == 2


class StartFails(Service):
    name = "start_fails"
    interval_s = 0.01

    def __init__(self, ctx, fails: int, exc: type[Exception] = RuntimeError) -> None:
        super().__init__(ctx)
        self.fails = fails
        self.exc = exc
        self.starts = 0
        self.ticks = 0
        self.stopped = False

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self.fails:
            raise self.exc(f"start attempt {self.starts} failed")

    async def on_timer(self, now: datetime) -> None:
        self.ticks += 1

    async def stop(self) -> None:
        self.stopped = True


class Healthy(Service):
    name = "healthy"
    interval_s = 0.01

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.ticks = 0

    async def on_timer(self, now: datetime) -> None:
        self.ticks += 1


async def test_one_service_failing_to_start_holds_nobody_and_is_retried(bus):
    gate = asyncio.Event()

    class StartsWhenAllowed(StartFails):
        async def start(self) -> None:
            self.starts += 1
            if not gate.is_set():
                raise RuntimeError(f"start attempt {self.starts} failed")

    bad, good = StartsWhenAllowed(ctx(bus), fails=0), Healthy(ctx(bus))
    async with Running(bad, good) as runner:
        await until(lambda: good.ticks >= 3 and bad.starts >= 3, 10, "the healthy service ticking meanwhile")
        assert bad.ticks == 0 and "start_fails" not in runner.started
        rec = await until_async(lambda: read_heartbeats(bus.redis, bus.keys),
                                lambda r: r if r.get("start_fails", {}).get("errors", 0) >= 2 else None, 5,
                                "start errors")
        assert "start attempt" in rec["start_fails"]["loops"]["start"]["last_error"]
        gate.set()
        await until(lambda: bad.ticks >= 2, 10, "its loops once it started")
        assert runner.heartbeat.loops["start_fails"]["start"].state == "done"
    assert bad.stopped


async def test_a_configuration_error_at_first_start_still_ends_run(bus):
    bad, good = StartFails(ctx(bus), fails=1, exc=ConfigError), Healthy(ctx(bus))
    runner = LiveRunner([bad, good])
    with pytest.raises(ConfigError, match="start attempt 1"):
        await asyncio.wait_for(runner.run(), 10)
    assert bad.starts == 1


# ----------------------------------------------------------------------------- a real outage
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test alone (no persistence), stopped and restarted at will."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the ping below waits
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = aioredis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            for _ in range(200):
                try:
                    if await probe.ping():
                        return
                except RedisConnectionError:
                    await asyncio.sleep(0.05)
            raise AssertionError("private redis-server did not come up")
        finally:
            await probe.aclose()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis()
    await server.start()
    yield server
    server.stop()


class Queue(Service):
    """Scheduled work in a Redis sorted set (like the distributor) plus a consumer."""

    name = "queue"
    streams = ("control",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.done: list[str] = []

    async def next_due(self, now: datetime) -> datetime | None:
        head = await self.redis.zrange(self.keys.zset("work"), 0, 0, withscores=True)
        return None if not head else datetime.fromtimestamp(head[0][1] / 1000, UTC)

    async def on_timer(self, now: datetime) -> None:
        for item in await self.redis.zrangebyscore(self.keys.zset("work"), 0, self.clock.ms()):
            self.done.append(f"timer:{item}")
            await self.redis.zrem(self.keys.zset("work"), item)

    async def handle(self, event: Event, tx: Tx) -> None:
        assert isinstance(event, ControlEvent)
        self.done.append(f"event:{event.reason}")


async def test_a_real_redis_outage_every_loop_recovers_and_work_completes(private_redis):
    client = aioredis.Redis(port=private_redis.port, decode_responses=True, socket_connect_timeout=0.5,
                            socket_timeout=2)
    clock = LiveClock()
    bus = Bus(client, Keys("outage"), clock, IdFactory(seed=3))
    svc = Queue(ctx(bus))
    try:
        async with Running(svc) as runner:
            await client.zadd(bus.keys.zset("work"), {"before": clock.ms() - 1})
            await publish(bus, "before")
            await until(lambda: {"timer:before", "event:before"} <= set(svc.done), 10, "work before the outage")

            private_redis.stop()  # the outage: every Redis call fails
            await until(lambda: errors(runner, "queue", "timer") >= 2 and errors(runner, "queue", "consume") >= 2,
                        20, "errors counted on both loops during the outage")
            await private_redis.start()  # back, empty (no persistence): groups and queue are gone

            await until_async(lambda: read_heartbeats(client, bus.keys), lambda r: "queue" in r, 20,
                              "heartbeats written again after the outage")
            await client.zadd(bus.keys.zset("work"), {"after": clock.ms() - 1})
            await until(lambda: "timer:after" in svc.done, 20, "scheduled work after the outage")
            await publish(bus, "after")  # the consumer recreates its group (from 0) and handles it
            await until(lambda: "event:after" in svc.done, 20, "an event after the outage")
        rec = (await read_heartbeats(client, bus.keys))["queue"]
        assert {b["state"] for b in rec["loops"].values()} == {"stopped"}  # a clean stop
        assert rec["errors"] >= 4
    finally:
        await client.aclose()


def test_backoff_doubles_is_capped_and_resets():
    from core.runtime.loop_backoff import Backoff

    b = Backoff(0.5, 10.0)
    assert [b.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    b.reset()
    assert b.next() == 0.5
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)
