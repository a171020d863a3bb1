"""State changes only with their commit: the real ExecutionService + PaperBroker (and the
PositionService) on the real Redis, with the commit of the fill-producing handling failing once
(the connection is cut in the middle of its MULTI/EXEC, ``tests/bus/cut_redis``) or its handler
failing after the broker filled.

Fails when: the broker keeps the uncommitted fill in memory (no FillEvent ever, and the next
commit persists a "filled" book nothing tracks); the failed event waits for a restart; the
fill is published twice.
"""

from __future__ import annotations

import asyncio
from datetime import date, time

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.bus.bus import Bus
from core.bus.events import ApprovalEvent, OptionQuoteEvent, decode
from core.bus.ids import IdFactory
from core.clock.calendar import NyseCalendar
from core.clock.clock import SimClock
from core.domain.contract import OptionContract, Right
from core.domain.signal import Side, Signal
from core.execution.broker import Broker, BrokerEvent, BrokerEventKind
from core.execution.orders import OrderPurpose, OrderRequest, OrderState, OrderStatus
from core.execution.paper import PaperBrokerState
from core.execution.service import ExecutionService
from core.positions.service import PositionService
from core.runtime.consumers import consumer_for
from tests.bus.cut_redis import Cut, cut_client
from tests.helpers import make_context

EXPIRY = date(2026, 11, 20)
A = f"SPY:{EXPIRY:%Y%m%d}:C:590:100"
B = f"SPY:{EXPIRY:%Y%m%d}:P:580:100"


@pytest.fixture
async def cut_bus(redis_url, keys):
    cut = Cut()
    client = cut_client(redis_url, cut, retry=Retry(NoBackoff(), 0))
    clock = SimClock(NyseCalendar().session(EXPIRY).at(time(10, 0)))
    yield Bus(client, keys, clock, IdFactory(seed=11)), cut
    await client.aclose()


class Desk:
    """Execution + positions driven by their own consumers (what the runners do)."""

    def __init__(self, bus: Bus, execution_cls: type[ExecutionService] = ExecutionService) -> None:
        self.bus = bus
        ctx = make_context(bus)
        self.execution = execution_cls(ctx)
        self.parts = [(svc, consumer_for(svc)) for svc in (self.execution, PositionService(ctx))]

    async def start(self) -> None:
        for svc, cons in self.parts:
            await svc.start()
            await cons.ensure_groups()

    async def settle(self) -> None:
        """Poll every consumer until none has anything left to do now."""
        while True:
            n = 0
            for svc, cons in self.parts:
                n += await cons.poll(svc.handle)
            if not n and not any(cons.needs_poll for _, cons in self.parts):
                return

    async def send(self, event) -> None:
        await self.bus.publish(event)
        await self.settle()

    def quote(self, key: str, bid: float, ask: float) -> OptionQuoteEvent:
        strike, right = (590.0, "C") if key == A else (580.0, "P")
        return self.bus.make(OptionQuoteEvent, symbol="SPY", contract_key=key, expiry=EXPIRY.isoformat(),
                             strike=strike, right=right, bid=bid, ask=ask, bid_size=50, ask_size=50,
                             quote_ts=self.bus.clock.ms())

    def approval(self, key: str, qty: int = 4) -> ApprovalEvent:
        now = self.bus.clock.now()
        strike, right = (590, "C") if key == A else (580, "P")
        sig = Signal(id=self.bus.new_id(), ts=now, strategy="gamma_0dte", symbol="SPY",
                     instrument={"type": "OPT", "expiry": EXPIRY, "strike": strike, "right": right},
                     qty=qty, limit=1.02, quote={"bid": 1.0, "ask": 1.04, "ts": now}, stop=0.51,
                     targets=[1.53], horizon="0dte", triggers=["test"], confidence=70)
        return self.bus.make(ApprovalEvent, correlation_id=sig.id, signal=sig, decision="approved", qty=qty,
                             decided_by="test", policy="manual", explanation="Because.", risk_pct=0.4)

    async def stream(self, name: str) -> list:
        return [decode(f) for _id, f in await self.bus.redis.xrange(self.bus.keys.stream(name))]

    async def fills(self) -> list:
        return [e for e in await self.stream("orders") if e.type == "order.fill"]

    async def persisted(self) -> PaperBrokerState:
        raw = await self.bus.redis.get(self.execution._state_key)
        return PaperBrokerState.model_validate_json(raw)


def book(state: PaperBrokerState) -> tuple[dict, dict]:
    """The paper book: orders and positions (the quotes are market observations, not outputs)."""
    return ({k: o.model_dump() for k, o in state.orders.items()},
            {k: p.model_dump() for k, p in state.positions.items() if p.qty})


async def _working_entry(desk: Desk) -> None:
    await desk.start()
    await desk.send(desk.approval(A))
    desk.bus.clock.advance(10)
    await desk.send(desk.quote(A, 1.00, 1.04))  # the entry is placed at mid 1.02
    assert await desk.fills() == []


async def test_failed_commit_of_a_fill_rolls_the_broker_back_and_retries_in_process(cut_bus):
    bus, cut = cut_bus
    desk = Desk(bus)
    await _working_entry(desk)
    bus.clock.advance(10)
    cut.arm(keep=3)  # the next transaction (the fill) loses its connection after two outputs
    await desk.send(desk.quote(A, 0.98, 1.02))  # the ask reaches the limit: the paper broker fills
    assert cut.cuts == 1
    assert await desk.fills() == []  # nothing of the failed commit is visible
    persisted = await desk.persisted()
    assert persisted.orders[f"ent-{(await desk.stream('approvals'))[0].signal.id}"].filled_qty == 0

    # other activity comes first (a second entry is approved and placed): it commits the
    # broker's state, which must be the committed book, not the uncommitted fill
    await desk.send(desk.approval(B))
    await desk.send(desk.quote(B, 1.00, 1.04))
    persisted = await desk.persisted()
    assert book(desk.execution.broker.snapshot()) == book(persisted)  # memory == Redis
    assert persisted.positions.get(A) is None or persisted.positions[A].qty == 0
    assert sorted(o.status.value for o in persisted.orders.values()) == ["working", "working"]

    # the failed quote is retried by the running consumer once its backoff has passed
    bus.clock.advance(1)
    await desk.settle()
    fills = await desk.fills()
    assert [(f.symbol, f.strike, f.qty, f.price) for f in fills] == [("SPY", 590.0, 4, 1.02)]
    assert book(desk.execution.broker.snapshot()) == book(await desk.persisted())
    entries = [p for p in await desk.stream("positions") if p.kind == "entry"]
    assert [(p.qty, p.correlation_id) for p in entries] == [(4, fills[0].correlation_id)]

    # a restart (new services from Redis) has exactly that one fill and the position
    restarted = Desk(Bus(bus.redis, bus.keys, bus.clock, IdFactory(seed=12)))
    await restarted.start()
    await restarted.settle()
    assert len(await restarted.fills()) == 1
    held = await restarted.execution.broker.positions()
    assert [(p.contract.key, p.qty) for p in held] == [(A, 4)]
    assert len([p for p in await restarted.stream("positions") if p.kind == "entry"]) == 1


class FailsAfterTheFill(ExecutionService):
    """The handler fails after the broker has filled (here: placing pending entries raises once)."""

    failures = 1

    async def _place_pending(self, contract_key, tx, now):
        if self.failures and self.broker.held_qty(contract_key):
            self.failures -= 1
            raise RuntimeError("injected: handler failed after the broker moved")
        return await super()._place_pending(contract_key, tx, now)


async def test_failed_handler_after_a_fill_rolls_the_broker_back(cut_bus):
    bus, _cut = cut_bus
    desk = Desk(bus, FailsAfterTheFill)
    await _working_entry(desk)
    bus.clock.advance(10)
    await desk.send(desk.quote(A, 0.98, 1.02))
    assert desk.execution.failures == 0 and await desk.fills() == []
    bus.clock.advance(1)
    await desk.settle()
    assert [(f.qty, f.price) for f in await desk.fills()] == [(4, 1.02)]
    assert book(desk.execution.broker.snapshot()) == book(await desk.persisted())
    assert desk.execution.broker.held_qty(A) == 4


async def test_failed_commit_of_the_position_opening_is_retried_without_double_counting(cut_bus):
    """The position service keeps positions and the account in memory between handlings: a failed
    commit of the fill's handling must not leave the fill applied there."""
    bus, cut = cut_bus
    desk = Desk(bus)
    await _working_entry(desk)
    bus.clock.advance(10)
    await bus.publish(desk.quote(A, 0.98, 1.02))
    (execution, exec_cons), (positions, pos_cons) = desk.parts
    while await exec_cons.poll(execution.handle):  # the fill is published (this commit succeeds)
        pass
    assert len(await desk.fills()) == 1
    cut.arm(keep=3)
    await pos_cons.poll(positions.handle)  # the position service's commit of the fill is cut
    assert cut.cuts == 1 and pos_cons.failed == 1
    assert [p for p in await desk.stream("positions") if p.kind == "entry"] == []
    bus.clock.advance(1)
    await desk.settle()
    entries = [p for p in await desk.stream("positions") if p.kind == "entry"]
    assert [(p.qty, p.qty_open) for p in entries] == [(4, 4)]
    held = [(p.contract.key, p.qty_open) for p in await positions._open_positions()]
    assert held == [(A, 4)]
    restarted = PositionService(make_context(bus))
    assert [(p.contract.key, p.qty_open) for p in await restarted._open_positions()] == [(A, 4)]


class LiveLikeBroker(Broker):
    """What a live broker (the IBKR adapter) does that matters here: a reprice goes to the market
    when ``on_quote`` is called and is returned once (a second call finds it done); drained and
    given-back events wait on its push queue. It persists itself (no state for the service)."""

    name = "livelike"

    def __init__(self, order: OrderState) -> None:
        self.order_state = order
        self.repriced = False
        self.queue: list[BrokerEvent] = []

    async def on_quote(self, contract_key, bid, ask, bid_size, ask_size, now) -> list[BrokerEvent]:
        if self.repriced or contract_key != self.order_state.contract_key:
            return []
        self.repriced = True  # the modification is at the market now, whatever happens to our commit
        o = self.order_state
        old, o.limit = o.limit, 1.05
        return [BrokerEvent(kind=BrokerEventKind.REPRICED, ts=now, order_id=o.order_id,
                            correlation_id=o.correlation_id, contract_key=o.contract_key,
                            order=o.model_copy(deep=True), old_limit=old, new_limit=1.05)]

    def drain_events(self) -> list[BrokerEvent]:
        out, self.queue = self.queue, []
        return out

    def requeue(self, events: list[BrokerEvent]) -> None:
        self.queue[:0] = events

    async def place(self, order):
        raise AssertionError("not used")

    async def cancel(self, order_id, now=None):
        raise AssertionError("not used")

    async def open_orders(self):
        return [self.order_state]

    async def positions(self):
        return []


async def test_a_live_brokers_returned_reprice_is_published_once_after_a_failed_commit(cut_bus):
    bus, cut = cut_bus
    now = bus.clock.now()
    contract = OptionContract(symbol="SPY", expiry=EXPIRY, strike=590, right=Right.CALL)
    req = OrderRequest(order_id="ent-live", correlation_id="sig-live", contract=contract, side=Side.BUY, qty=1,
                       purpose=OrderPurpose.ENTRY, created_ts=now)
    st = OrderState(order_id="ent-live", correlation_id="sig-live", request=req, status=OrderStatus.WORKING,
                    limit=1.02, placed_ts=now, last_priced_ts=now, updated_ts=now)
    desk = Desk(bus)
    broker = LiveLikeBroker(st)
    desk.execution.broker = broker
    await desk.start()
    cut.arm(keep=2)
    await desk.send(desk.quote(A, 1.00, 1.10))
    assert cut.cuts == 1 and await desk.stream("orders") == []
    assert [e.kind for e in broker.queue] == [BrokerEventKind.REPRICED]  # given back, not lost
    bus.clock.advance(1)
    await desk.settle()  # the retried quote: the broker returns nothing new, the given-back reprice goes out
    orders = [e for e in await desk.stream("orders") if e.order_id == "ent-live"]
    assert [(e.status, e.limit) for e in orders] == [("working", 1.05)]
    assert broker.queue == []


async def test_a_handling_in_flight_holds_the_broker_until_its_commit(cut_bus):
    """Live mode runs the consumer, the timer and pushes concurrently: while one handling is
    between its start and its commit, another waits, and if that commit fails it starts from the
    rebuilt book (else it would persist the uncommitted fill)."""
    bus, cut = cut_bus
    desk = Desk(bus)
    await _working_entry(desk)
    await desk.send(desk.approval(B))  # waits for B's first quote
    svc = desk.execution
    bus.clock.advance(10)
    tx_a = bus.tx()
    await svc.handle(desk.quote(A, 0.98, 1.02), tx_a)  # filled in memory; not committed yet
    assert svc.broker.held_qty(A) == 4

    async def handle_b() -> None:
        tx_b = bus.tx()
        await svc.handle(desk.quote(B, 1.00, 1.04), tx_b)
        await tx_b.commit()

    other = asyncio.create_task(handle_b())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not other.done()  # waiting for A's handling to commit or fail
    cut.arm(keep=2)
    with pytest.raises(Exception, match="injected"):
        await tx_a.commit()
    await other
    persisted = await desk.persisted()
    assert book(svc.broker.snapshot()) == book(persisted)
    assert svc.broker.held_qty(A) == 0 and not any(p.qty for p in persisted.positions.values())
    assert sorted(o.status.value for o in persisted.orders.values()) == ["working", "working"]
