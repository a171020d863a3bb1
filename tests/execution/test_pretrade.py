"""The pre-trade check at placement: the execution service on the real Redis, state changed
between the approval and the contract's next quote. Each refusal is a rejected OrderEvent with
its Reason and an ``order_refused`` audit with the detail; exits are placed also when halted;
poison pending entries are refused alone and never fail the genuine quote."""

from __future__ import annotations

import json
from datetime import date, time

import pytest

from core.bus.bus import Bus
from core.bus.events import ApprovalEvent, OptionQuoteEvent, OrderRequestEvent
from core.bus.ids import IdFactory
from core.clock.clock import SimClock
from core.control.halt import set_halt
from core.domain.signal import Side, Signal
from core.execution.service import ExecutionService
from core.runtime.sim_runner import SimRunner
from tests.helpers import make_context
from tests.pipeline.conftest import DAY, at, stream

EXPIRY = date(2026, 11, 27)  # 1DTE-and-more from DAY (Fri 2026-11-20): a swing contract
KEY0 = f"SPY:{DAY:%Y%m%d}:C:590:100"  # 0DTE
ACCOUNT = 100_000.0


@pytest.fixture
async def sim_bus(redis_client, keys) -> Bus:
    return Bus(redis_client, keys, SimClock(at(time(10, 0))), IdFactory(seed=5))


class Desk:
    """The execution service alone: the test writes the account and positions it checks."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        ctx = make_context(bus)
        ctx.extras["seed"] = 7
        self.svc = ExecutionService(ctx)
        self.runner = SimRunner([self.svc], bus.clock)

    async def start(self) -> Desk:
        await self.svc.start()
        for _svc, cons in self.runner.consumers:
            await cons.ensure_groups()
        return self

    async def send(self, event, advance_s: float = 0) -> None:
        if advance_s:
            self.bus.clock.advance(advance_s)
        await self.bus.publish(event)
        await self.runner.drain()

    def quote(self, bid: float, ask: float, key: str = KEY0) -> OptionQuoteEvent:
        _sym, exp, right, strike, _m = key.split(":")
        return self.bus.make(OptionQuoteEvent, symbol="SPY", contract_key=key,
                             expiry=f"{exp[:4]}-{exp[4:6]}-{exp[6:]}", strike=float(strike), right=right,
                             bid=bid, ask=ask, bid_size=50, ask_size=50, quote_ts=self.bus.clock.ms())

    def approval(self, qty: int = 4, limit: float = 1.02, expiry: date = DAY, strategy: str = "gamma_0dte",
                 horizon: str = "0dte", right: str = "C") -> ApprovalEvent:
        now = self.bus.clock.now()
        sig = Signal(id=self.bus.new_id(), ts=now, strategy=strategy, symbol="SPY",
                     instrument={"type": "OPT", "expiry": expiry, "strike": 590, "right": right},
                     qty=qty, limit=limit, quote={"bid": limit - 0.02, "ask": limit + 0.02, "ts": now},
                     stop=round(limit / 2, 2), targets=[round(limit * 1.5, 2)], horizon=horizon,
                     triggers=["test"], confidence=70)
        return self.bus.make(ApprovalEvent, correlation_id=sig.id, signal=sig, decision="approved", qty=qty,
                             decided_by="test", policy="manual", explanation="Because.", risk_pct=0.4)

    async def orders(self) -> list:
        return [e for e in await stream(self.bus, "orders") if e.type == "order.update"]

    async def refusals(self) -> list[dict]:
        return [a.detail for a in await stream(self.bus, "audit") if a.action == "order_refused"]

    async def set_account(self, **fields) -> None:
        await self.bus.redis.hset(self.bus.keys.hash("account"), mapping={
            "account_value": str(ACCOUNT), "day": DAY.isoformat(), **{k: str(v) for k, v in fields.items()}})

    async def add_positions(self, n: int, right: str = "C") -> None:
        for i in range(n):
            await self.bus.redis.hset(self.bus.keys.hash("positions"), f"p{right}{i}", json.dumps({
                "symbol": "QQQ", "strategy": "x", "right": right, "qty_open": 1, "avg_entry": 1.0,
                "multiplier": 100, "expiry": EXPIRY.isoformat(), "strike": 500}))


async def _refused_at_placement(desk: Desk, reason: str) -> None:
    orders = await desk.orders()
    assert [(o.status, o.reason) for o in orders] == [("rejected", reason)]
    refusals = await desk.refusals()
    assert [(r["stage"], r["reason"]) for r in refusals] == [("placement", reason)]
    assert refusals[0]["detail"]  # the human text the admin's card shows
    assert await desk.bus.redis.hlen(desk.bus.keys.hash("pending_entries")) == 0


# ---------------------------------------------------------------- each rule, state changed after approval
async def test_the_genuine_case_places_the_entry(sim_bus):
    desk = await Desk(sim_bus).start()
    await desk.set_account()
    await desk.send(desk.approval())
    await desk.send(desk.quote(1.00, 1.04), 10)
    assert [(o.status, o.reason) for o in await desk.orders()] == [("working", "")]
    assert await desk.refusals() == []


async def test_halt_set_after_approval_refuses_at_placement(sim_bus):
    desk = await Desk(sim_bus).start()
    await desk.send(desk.approval())
    await set_halt(sim_bus, "late halt", by="admin")
    await desk.send(desk.quote(1.00, 1.04), 10)
    await _refused_at_placement(desk, "HALTED")


async def test_daily_loss_hit_after_approval_refuses_at_placement(sim_bus):
    desk = await Desk(sim_bus).start()
    await desk.set_account()
    await desk.send(desk.approval())
    await desk.set_account(realized_today=-6000.0)  # exactly the 6 % halt level: "at/below" refuses
    await desk.send(desk.quote(1.00, 1.04), 10)
    await _refused_at_placement(desk, "DAILY_LOSS_LIMIT")


async def test_positions_filled_up_after_approval_refuses_at_placement(sim_bus):
    desk = await Desk(sim_bus).start()
    await desk.send(desk.approval(right="P"))
    await desk.add_positions(3, "C")
    await desk.add_positions(3, "P")  # 6 open: max_open_positions
    await desk.send(desk.quote(1.00, 1.04, key=KEY0.replace(":C:", ":P:")), 10)
    await _refused_at_placement(desk, "MAX_POSITIONS")


async def test_same_direction_cap_reached_after_approval_refuses_at_placement(sim_bus):
    desk = await Desk(sim_bus).start()
    await desk.send(desk.approval())
    await desk.add_positions(3, "C")  # three bullish: max_same_direction
    await desk.send(desk.quote(1.00, 1.04), 10)
    await _refused_at_placement(desk, "SAME_DIRECTION_CAP")


async def test_buying_power_dropped_after_approval_refuses_at_placement(sim_bus):
    desk = await Desk(sim_bus).start()
    await desk.set_account()
    await desk.send(desk.approval(qty=4, limit=1.02))  # $408
    await desk.set_account(premium_open=ACCOUNT - 400.0)  # $400 of buying power left
    await desk.send(desk.quote(1.00, 1.04), 10)
    await _refused_at_placement(desk, "BUYING_POWER")


async def test_a_working_entry_counts_against_the_next_placement(sim_bus):
    """Two approvals placed back to back: the first still working holds the sixth slot."""
    desk = await Desk(sim_bus).start()
    await desk.add_positions(2, "C")
    await desk.add_positions(3, "P")
    await desk.send(desk.approval())
    await desk.send(desk.approval())
    await desk.send(desk.quote(1.00, 1.04), 10)
    assert sorted((o.status, o.reason) for o in await desk.orders()) == [
        ("rejected", "MAX_POSITIONS"), ("working", "")]


async def test_account_value_dropped_so_even_the_limit_breaches_the_cap(sim_bus):
    desk = await Desk(sim_bus).start()
    await desk.set_account()
    await desk.send(desk.approval(qty=10, limit=1.99))  # $1,990 = 1.99 % of $100k: approved
    await desk.bus.redis.hset(sim_bus.keys.hash("account"), "account_value", "90000")  # cap now $1,800
    await desk.send(desk.quote(1.97, 2.01), 10)
    await _refused_at_placement(desk, "RISK_PER_TRADE")


async def test_strategy_window_closed_while_waiting_refuses_at_placement(sim_bus):
    sim_bus.clock.set(at(time(14, 59, 50)))
    desk = await Desk(sim_bus).start()
    await desk.send(desk.approval())  # gamma_0dte window 09:45-15:00
    await desk.send(desk.quote(1.00, 1.04), 10)  # 15:00:00: the end is exclusive
    await _refused_at_placement(desk, "OUTSIDE_WINDOW")


async def test_zero_dte_cutoff_passed_while_waiting_refuses_at_placement(sim_bus):
    sim_bus.clock.set(at(time(15, 29, 50)))
    desk = await Desk(sim_bus).start()
    await desk.send(desk.approval(strategy="no_window_0dte"))
    await desk.send(desk.quote(1.00, 1.04), 9.999)  # 15:29:59.999: still allowed
    assert [o.status for o in await desk.orders()] == ["working"]
    await desk.send(desk.approval(strategy="no_window_0dte"))
    await desk.send(desk.quote(1.00, 1.04), 0.001)  # 15:30:00.000: no new 0DTE entries at/after 15:30
    orders = await desk.orders()
    assert [(o.status, o.reason) for o in orders][-1] == ("rejected", "OUTSIDE_WINDOW")
    assert "0DTE" in (await desk.refusals())[0]["detail"]


async def test_contract_expired_while_waiting_refuses_at_placement(sim_bus):
    sim_bus.clock.set(at(time(15, 59, 40)))
    desk = await Desk(sim_bus).start()
    await desk.send(desk.approval(strategy="no_window", horizon="swing"))  # expires today, at the close
    await desk.send(desk.quote(1.00, 1.04), 20)  # 16:00:00
    orders = await desk.orders()
    assert [(o.status, o.reason) for o in orders] == [("rejected", "EXPIRED_CONTRACT")]
    detail = (await desk.refusals())[0]["detail"]
    assert "EXPIRED_CONTRACT" in detail and "OUTSIDE_WINDOW" in detail  # every failing rule is named


async def test_strategy_disabled_after_approval_refuses_at_placement(sim_bus):
    desk = await Desk(sim_bus).start()
    await desk.send(desk.approval())
    await sim_bus.redis.hset(sim_bus.keys.hash("strategies"), "gamma_0dte", "disabled")
    await desk.send(desk.quote(1.00, 1.04), 10)
    await _refused_at_placement(desk, "STRATEGY_DISABLED")


# ---------------------------------------------------------------- the per-trade cap on the highest price
async def test_per_trade_cap_holds_for_the_worst_fill_across_reprices(sim_bus):
    """A 1.99 % trade (10 x 1.99 on $100k, 0DTE cap 2 % = $2,000). Unclipped, the policy could
    chase to 2.09 (2.09 %); clipped, the order never works above 2.00 and fills at most there."""
    desk = await Desk(sim_bus).start()
    await desk.set_account()
    await desk.send(desk.approval(qty=10, limit=1.99))
    await desk.send(desk.quote(1.94, 2.04), 10)  # placed at the mid, 1.99
    await desk.send(desk.quote(1.98, 2.12), 31)  # the ask runs away: repriced toward it, to the cap
    await desk.send(desk.quote(1.99, 2.09), 31)  # inside the unclipped chase ceiling (2.09)
    await desk.send(desk.quote(1.92, 2.00), 20)  # the ask comes back to the cap
    orders = await desk.orders()
    limits = [o.limit for o in orders if o.limit is not None]
    assert limits and max(limits) <= 2.00
    assert any(o.status == "working" and o.limit == 2.00 for o in orders)  # it did chase, up to the cap
    fills = [e for e in await stream(sim_bus, "orders") if e.type == "order.fill"]
    assert [(f.qty, f.price) for f in fills] == [(10, 2.00)]
    assert sum(f.qty * f.price * 100 for f in fills) <= 0.02 * ACCOUNT


async def test_half_size_approval_is_checked_at_half_size(sim_bus):
    """10 x 3.00 = $3,000 is over the 2 % cap, but the admin approved 5: $1,500 places."""
    desk = await Desk(sim_bus).start()
    await desk.set_account()
    appr = desk.approval(qty=10, limit=3.00)
    await desk.send(appr.model_copy(update={"qty": 5}))
    await desk.send(desk.quote(2.98, 3.02), 10)
    assert [(o.status, o.qty) for o in await desk.orders()] == [("working", 5)]


# ---------------------------------------------------------------- exits
async def test_exit_is_placed_and_filled_while_halted(sim_bus):
    desk = await Desk(sim_bus).start()
    appr = desk.approval(qty=2)
    await desk.send(appr)
    await desk.send(desk.quote(1.00, 1.04), 10)
    await desk.send(desk.quote(0.98, 1.02), 10)  # entry filled
    assert desk.svc.broker.held_qty(KEY0) == 2
    await set_halt(sim_bus, "halt with a position open", by="admin")
    await desk.send(sim_bus.make(OrderRequestEvent, correlation_id=appr.correlation_id, request_id="r1",
                                 position_id="pos-1", symbol="SPY", expiry=DAY.isoformat(), strike=590.0,
                                 right="C", qty=2, order_type="MKT", reason="stop"), 5)
    exits = [o for o in await desk.orders() if o.purpose == "exit"]
    assert exits and all(o.status != "rejected" for o in exits)
    fills = [e for e in await stream(sim_bus, "orders") if e.type == "order.fill" and e.purpose == "exit"]
    assert [(f.qty, f.price) for f in fills] == [(2, 0.98)]
    assert desk.svc.broker.held_qty(KEY0) == 0


# ---------------------------------------------------------------- poison isolation
async def test_bad_approval_is_refused_before_it_is_stored(sim_bus):
    """A qty of -5 no longer even decodes (the event model refuses it: dead-lettered by the
    consumer); an approval that decodes but the order guard refuses (a sale to open) is refused at
    approval with the guard's reason. Neither is stored to wait for a quote."""
    desk = await Desk(sim_bus).start()
    raw = json.loads(desk.approval().model_dump_json())
    raw["qty"] = -5  # as a producer bug would write it, past the models
    await sim_bus.redis.xadd(sim_bus.keys.stream("approvals"), {"t": "approval.decision", "d": json.dumps(raw)})
    await desk.runner.drain()
    short = desk.approval()
    short = short.model_copy(update={"signal": short.signal.model_copy(update={"side": Side.SELL})})
    await desk.send(short)
    assert [(o.order_id, o.status) for o in await desk.orders()] == [(f"ent-{short.signal.id}", "rejected")]
    assert [r["stage"] for r in await desk.refusals()] == ["approval"]
    assert await sim_bus.redis.hlen(sim_bus.keys.hash("pending_entries")) == 0
    assert await sim_bus.redis.xlen(sim_bus.keys.dlq("execution")) == 1


async def test_poison_pending_entries_are_refused_alone_and_the_genuine_quote_places(sim_bus):
    """Stored entries that no longer read back or cannot become an order (written as an older
    version or a corruption would): each is removed and refused, the genuine one is placed, and
    the quote's handling does not fail (nothing dead-lettered, nothing left pending)."""
    desk = await Desk(sim_bus).start()
    genuine = desk.approval()
    await desk.send(genuine)
    pending = sim_bus.keys.hash("pending_entries")
    body = json.loads(await sim_bus.redis.hget(pending, f"ent-{genuine.signal.id}"))
    negative = json.loads(json.dumps(body))
    negative["approval"]["qty"] = -5
    negative["approval"]["signal"]["id"] = "neg"
    unreadable = json.loads(json.dumps(body))
    unreadable["approval"]["signal"]["instrument"] = {"type": "OPT", "strike": "wide"}
    unreadable["approval"]["signal"]["id"] = "bad"
    await sim_bus.redis.hset(pending, mapping={"ent-neg": json.dumps(negative), "ent-bad": json.dumps(unreadable),
                                               "ent-junk": "{not json"})
    desk.svc._pending = None  # as a restarted process would read the hash
    await desk.send(desk.quote(1.00, 1.04), 10)
    orders = {o.order_id: (o.status, o.reason) for o in await desk.orders()}
    assert orders[f"ent-{genuine.signal.id}"] == ("working", "")
    assert orders["ent-neg"] == ("rejected", "BAD_INPUT")
    assert orders["ent-bad"] == ("rejected", "BAD_INPUT")
    assert {r["order_id"] for r in await desk.refusals()} == {"ent-neg", "ent-bad", "ent-junk"}
    assert await sim_bus.redis.hlen(pending) == 0
    assert await sim_bus.redis.xlen(sim_bus.keys.dlq("execution")) == 0
    groups = await sim_bus.redis.xinfo_groups(sim_bus.keys.stream("option_quotes"))
    assert all(g["pending"] == 0 for g in groups)


async def test_a_halt_refuses_each_approved_entry_still_waiting_for_its_quote(sim_bus):
    """Approved, never placed, then halted: the entry is not silently dropped; it is refused with
    HALTED (the rejected OrderEvent and the audit the admin's card shows)."""
    from core.bus.events import ControlEvent

    desk = await Desk(sim_bus).start()
    waiting = desk.approval()
    await desk.send(waiting)
    await desk.send(sim_bus.make(ControlEvent, action="halt", by="tg:1", reason="news"))
    assert [(o.order_id, o.status, o.reason) for o in await desk.orders()] == [
        (f"ent-{waiting.signal.id}", "rejected", "HALTED")]
    [refusal] = await desk.refusals()
    assert refusal["stage"] == "cancelled" and "halt: news" in refusal["detail"]
    assert await sim_bus.redis.hlen(sim_bus.keys.hash("pending_entries")) == 0


async def test_an_unreadable_pending_entry_does_not_fail_the_timer(sim_bus):
    """The expiry sweep of waiting entries meets one that does not read back: it is removed and
    refused alone; the tick commits and the genuine entry still waits for its quote."""
    desk = await Desk(sim_bus).start()
    genuine = desk.approval()
    await desk.send(genuine)
    await sim_bus.redis.hset(sim_bus.keys.hash("pending_entries"), "ent-junk", "{not json")
    desk.svc._pending = None  # as a restarted process would read the hash
    await desk.svc.on_timer(sim_bus.clock.now())
    assert [r["order_id"] for r in await desk.refusals()] == ["ent-junk"]
    assert await sim_bus.redis.hkeys(sim_bus.keys.hash("pending_entries")) == [f"ent-{genuine.signal.id}"]
