"""Execution and position services together on the real Redis, driven by crafted quotes."""

from __future__ import annotations

import json
from datetime import date, time, timedelta

from core.bus.events import ApprovalEvent, ControlEvent, OptionQuoteEvent
from core.control.halt import set_halt
from core.domain.signal import Signal
from core.execution.service import ExecutionService
from core.positions.service import PositionService
from core.runtime.sim_runner import SimRunner
from tests.pipeline.conftest import at, stream

EXPIRY = date(2026, 11, 20)
KEY = f"SPY:{EXPIRY:%Y%m%d}:C:590:100"


class Desk:
    def __init__(self, bus, ctx):
        self.bus = bus
        self.runner = SimRunner([ExecutionService(ctx), PositionService(ctx)], bus.clock)

    async def start(self):
        for svc in self.runner.services:
            await svc.start()
        for _svc, cons in self.runner.consumers:
            await cons.ensure_groups()

    async def send(self, event, advance_s: float = 0):
        if advance_s:
            self.bus.clock.advance(advance_s)
        await self.bus.publish(event)
        await self.runner.drain()

    def quote(self, bid, ask):
        return self.bus.make(OptionQuoteEvent, symbol="SPY", contract_key=KEY, expiry=EXPIRY.isoformat(),
                             strike=590.0, right="C", bid=bid, ask=ask, bid_size=50, ask_size=50,
                             quote_ts=self.bus.clock.ms())

    def approval(self, qty=4, instrument=None):
        now = self.bus.clock.now()
        sig = Signal(id=self.bus.new_id(), ts=now, strategy="gamma_0dte", symbol="SPY",
                     instrument=instrument or {"type": "OPT", "expiry": EXPIRY, "strike": 590, "right": "C"},
                     qty=qty, limit=1.02, quote={"bid": 1.0, "ask": 1.04, "ts": now}, stop=0.51, targets=[1.53],
                     horizon="0dte", triggers=["test"], confidence=70)
        return self.bus.make(ApprovalEvent, correlation_id=sig.id, signal=sig, decision="approved", qty=qty,
                             decided_by="test", policy="manual", explanation="Because.", risk_pct=0.4)


async def _desk(sim_bus, ctx_for):
    sim_bus.clock.set(at(time(10, 0)))
    desk = Desk(sim_bus, ctx_for())
    await desk.start()
    return desk


async def test_approved_entry_fills_scales_out_and_trails_to_a_profit(sim_bus, ctx_for):
    desk = await _desk(sim_bus, ctx_for)
    appr = desk.approval()
    await desk.send(appr)
    assert await sim_bus.redis.hget(sim_bus.keys.hash("watch"), KEY) == "1"
    await desk.send(desk.quote(1.00, 1.04), 10)          # placed at mid 1.02
    await desk.send(desk.quote(0.98, 1.02), 10)          # ask reaches the limit: filled
    fills = [e for e in await stream(sim_bus, "orders") if e.type == "order.fill"]
    assert [(f.qty, f.price, f.purpose) for f in fills] == [(4, 1.02, "entry")]
    await desk.send(desk.quote(1.58, 1.62), 60)          # +57%: 25% off, trail on
    await desk.send(desk.quote(2.20, 2.24), 60)          # +117%: 50% off
    await desk.send(desk.quote(2.60, 2.64), 60)          # new high: stop ratchets
    await desk.send(desk.quote(1.90, 1.94), 60)          # falls through the trail: closed
    kinds = [(e.kind, e.qty, e.reason) for e in await stream(sim_bus, "positions")]
    assert kinds[0] == ("entry", 4, "entry")
    assert [k for k, _q, _r in kinds].count("partial_exit") == 2
    assert kinds[-1][0] == "closed"
    assert any(k == "stop_moved" for k, _q, _r in kinds)
    pos = await stream(sim_bus, "positions")
    assert all(p.correlation_id == appr.correlation_id for p in pos)
    assert pos[0].explanation == "Because." and pos[0].triggers == ["test"]
    assert pos[-1].realized_pnl > 0 and pos[-1].qty_open == 0
    acct = await sim_bus.redis.hgetall(sim_bus.keys.hash("account"))
    assert float(acct["realized_today"]) == pos[-1].realized_pnl and float(acct["premium_open"]) == 0
    assert await sim_bus.redis.hget(sim_bus.keys.hash("positions"), appr.correlation_id) is None
    assert await sim_bus.redis.hget(sim_bus.keys.hash("positions_closed"), appr.correlation_id)


async def test_halt_blocks_the_next_approved_entry(sim_bus, ctx_for):
    desk = await _desk(sim_bus, ctx_for)
    await set_halt(sim_bus, "test halt", by="admin")
    await desk.send(desk.approval())
    await desk.send(desk.quote(1.00, 1.04), 10)
    orders = await stream(sim_bus, "orders")
    assert [(o.status, o.reason) for o in orders] == [("rejected", "HALTED")]


async def test_halt_after_approval_but_before_the_quote_still_blocks(sim_bus, ctx_for):
    desk = await _desk(sim_bus, ctx_for)
    await desk.send(desk.approval())
    await set_halt(sim_bus, "late halt", by="admin")
    await desk.send(desk.quote(1.00, 1.04), 10)
    assert [(o.status, o.reason) for o in await stream(sim_bus, "orders")] == [("rejected", "HALTED")]


async def test_entry_without_a_fresh_quote_is_refused_as_stale(sim_bus, ctx_for):
    desk = await _desk(sim_bus, ctx_for)
    await desk.send(desk.approval())
    await desk.runner.services[0].on_timer(sim_bus.clock.now() + timedelta(seconds=61))
    await desk.runner.drain()
    assert [(o.status, o.reason) for o in await stream(sim_bus, "orders")] == [("rejected", "STALE_DATA")]


async def test_equity_approval_is_refused_by_the_broker_guard(sim_bus, ctx_for):
    desk = await _desk(sim_bus, ctx_for)
    await desk.send(desk.approval(instrument={"type": "STK"}))
    assert [(o.status, o.reason) for o in await stream(sim_bus, "orders")] == [("rejected", "NOT_OPTION")]


async def test_flatten_sells_everything_at_market(sim_bus, ctx_for):
    desk = await _desk(sim_bus, ctx_for)
    await desk.send(desk.approval(qty=3))
    await desk.send(desk.quote(1.00, 1.04), 10)
    await desk.send(desk.quote(0.98, 1.02), 10)
    await desk.send(sim_bus.make(ControlEvent, action="flatten", by="admin:1", reason="end of test"), 5)
    pos = await stream(sim_bus, "positions")
    assert pos[-1].kind == "closed" and pos[-1].qty == 3 and "flatten" in pos[-1].reason
    exits = [e for e in await stream(sim_bus, "orders") if e.type == "order.fill" and e.purpose == "exit"]
    assert [(e.qty, e.price) for e in exits] == [(3, 0.98)]  # at the bid


async def test_restart_keeps_positions_and_broker_state(sim_bus, ctx_for):
    desk = await _desk(sim_bus, ctx_for)
    await desk.send(desk.approval(qty=2))
    await desk.send(desk.quote(1.00, 1.04), 10)
    await desk.send(desk.quote(0.98, 1.02), 10)
    again = Desk(sim_bus, ctx_for())  # a new process on the same Redis
    await again.start()
    assert again.runner.services[0].broker.held_qty(KEY) == 2
    raw = json.loads(await sim_bus.redis.hget(sim_bus.keys.hash("positions"), (await stream(sim_bus, "positions"))[0].position_id))
    assert raw["qty_open"] == 2
    await again.send(sim_bus.make(ControlEvent, action="flatten", by="admin", reason="x"), 5)
    assert (await stream(sim_bus, "positions"))[-1].kind == "closed"
