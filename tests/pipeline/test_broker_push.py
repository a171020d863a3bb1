"""A live broker pushes fills, cancels and rejects as they happen: the execution service publishes
them at once (woken by the broker, not on its timer), with the broker's 'published' marks in the
same transaction as the events."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

from core.domain.contract import OptionContract, Right
from core.domain.signal import Side
from core.execution import (
    BrokerEvent,
    BrokerEventKind,
    Fill,
    OrderPurpose,
    OrderRequest,
    OrderState,
    OrderStatus,
    PaperBroker,
)
from core.execution.service import ExecutionService
from core.runtime.live_runner import LiveRunner
from tests.pipeline.conftest import stream

C = OptionContract(symbol="SPY", expiry=date(2026, 11, 20), strike=590, right=Right.CALL)


class PushingBroker(PaperBroker):
    """A paper book that also queues pushed events, the way the IBKR adapter does."""

    def __init__(self, marks_key: str) -> None:
        super().__init__()
        self.queued: list[BrokerEvent] = []
        self.marks_key = marks_key

    def push(self, ev: BrokerEvent) -> None:
        self.queued.append(ev)
        assert self._wake is not None
        self._wake()

    def drain_events(self) -> list[BrokerEvent]:
        out, self.queued = self.queued, []
        return out

    def record_published(self, pipe, events) -> None:
        for e in events:
            if e.fill is not None:
                pipe.sadd(self.marks_key, e.fill.fill_id)


def _fill_event(now: datetime) -> BrokerEvent:
    req = OrderRequest(order_id="ent-1", correlation_id="sig-1", contract=C, side=Side.BUY, qty=1,
                       purpose=OrderPurpose.ENTRY, created_ts=now)
    fill = Fill(fill_id="exec-1", order_id="ent-1", correlation_id="sig-1", contract=C, side=Side.BUY,
                purpose=OrderPurpose.ENTRY, qty=1, price=2.10, commission=0.65, ts=now)
    st = OrderState(order_id="ent-1", correlation_id="sig-1", request=req, status=OrderStatus.FILLED, limit=2.10,
                    placed_ts=now, last_priced_ts=now, updated_ts=now, filled_qty=1, avg_price=2.10, fills=[fill])
    return BrokerEvent(kind=BrokerEventKind.FILL, ts=now, order_id="ent-1", correlation_id="sig-1",
                       contract_key=C.key, order=st, fill=fill)


async def test_a_pushed_fill_is_published_without_waiting_for_the_timer(sim_bus, ctx_for):
    ctx = ctx_for(market={"tick_seconds": 3600})  # the timer would not run again for an hour
    svc = ExecutionService(ctx)
    broker = PushingBroker(sim_bus.keys.key("test_marks", "exec"))
    svc.broker = broker
    runner = LiveRunner([svc], poll_block_ms=50)
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(200):  # wait for start-up
            if broker._wake is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # let the first timer tick pass
        broker.push(_fill_event(sim_bus.clock.now()))
        for _ in range(300):
            fills = [e for e in await stream(sim_bus, "orders") if e.type == "order.fill"]
            if fills:
                break
            await asyncio.sleep(0.01)
        assert [f.fill_id for f in fills] == ["exec-1"]
        assert await sim_bus.redis.sismember(broker.marks_key, "exec-1")
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 5)


class RequeueingBroker(PushingBroker):
    def requeue(self, events) -> None:
        self.queued[:0] = events


async def test_pushed_events_survive_a_failed_commit(sim_bus, ctx_for, monkeypatch):
    import redis.asyncio.client as rclient
    from redis.exceptions import ConnectionError as RedisConnectionError

    svc = ExecutionService(ctx_for())
    broker = RequeueingBroker(sim_bus.keys.key("test_marks", "exec"))
    svc.broker = broker
    broker.set_wakeup(lambda: None)
    broker.push(_fill_event(sim_bus.clock.now()))
    real = rclient.Pipeline.execute
    calls = {"n": 0}

    async def flaky(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RedisConnectionError("simulated outage during EXEC")
        return await real(self, *a, **kw)

    monkeypatch.setattr(rclient.Pipeline, "execute", flaky)
    try:
        await svc.on_wake(sim_bus.clock.now())
    except RedisConnectionError:
        pass
    assert [e.fill.fill_id for e in broker.queued] == ["exec-1"]  # given back, not lost
    await svc.on_wake(sim_bus.clock.now())
    fills = [e for e in await stream(sim_bus, "orders") if e.type == "order.fill"]
    assert [f.fill_id for f in fills] == ["exec-1"] and broker.queued == []
