"""IbkrBroker order lifecycle through the real ib_async client against the fake TWS and the real Redis:
placement (record before placeOrder, orderRef = our order id), acknowledgement, partial fills with
IB's commission joined by execId (and the estimate when no report comes), a reprice that modifies
the same IB order id, a cancel confirmed by IB, a reject with IB's message (account masked), and
every status change queued with the wakeup called. The helpers here are shared by the other IBKR
broker tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.domain.contract import OptionContract, Right
from core.domain.signal import Side
from core.execution.broker import BrokerEvent, BrokerEventKind
from core.execution.orders import OrderPurpose, OrderRequest, OrderStatus, OrderType, TimeInForce
from core.execution.policy import PolicyConfig
from core.execution.pricing import to_tick
from core.ibkr.broker import IbkrBroker
from core.ibkr.order_store import Phase
from core.ibkr.orders import build_ib_order, clean_message, map_status
from tests.fakes.ib_tws import FakeTWS
from tests.ibkr.conftest import EXPIRIES, SPY_SPOT, make_ib_context, make_ib_settings, option_values, until

pytestmark = pytest.mark.usefixtures("no_decoder_errors")

EXPIRY = EXPIRIES[1]
POLICY = PolicyConfig(commission_per_contract=0.7)  # the fake charges 0.65: an estimate is visible
COMMISSION_WAIT_S = 0.3


def option(strike: float = 590.0, right: str = "C") -> OptionContract:
    return OptionContract(symbol="SPY", expiry=EXPIRY, strike=strike, right=Right(right))


def fake_quote(strike: float = 590.0, right: str = "C") -> dict[str, Any]:
    return option_values(SPY_SPOT, EXPIRY, strike, right)


def request(ctx: Any, oid: str, *, qty: int = 3, side: Side = Side.BUY, contract: Any = None,
            purpose: OrderPurpose | None = None, order_type: OrderType = OrderType.LMT, **kw: Any) -> OrderRequest:
    purpose = purpose or (OrderPurpose.ENTRY if side == Side.BUY else OrderPurpose.EXIT)
    return OrderRequest(order_id=oid, correlation_id=f"c-{oid}", contract=contract or option(), side=side, qty=qty,
                        order_type=order_type, tif=TimeInForce.DAY, purpose=purpose, created_ts=ctx.clock.now(),
                        **kw)


class Recorder:
    """The service side of the push channel: counts wakeups, keeps every drained event."""

    def __init__(self, broker: IbkrBroker) -> None:
        self.broker = broker
        self.wakeups = 0
        self.events: list[BrokerEvent] = []
        broker.set_wakeup(self.wake)

    def wake(self) -> None:
        self.wakeups += 1

    def drain(self) -> list[BrokerEvent]:
        got = self.broker.drain_events()
        self.events += got
        return got

    def of(self, kind: BrokerEventKind, order_id: str | None = None) -> list[BrokerEvent]:
        return [e for e in self.events if e.kind == kind and (order_id is None or e.order_id == order_id)]

    async def wait(self, kind: BrokerEventKind, n: int = 1, order_id: str | None = None,
                   timeout: float = 5.0) -> list[BrokerEvent]:
        def enough() -> bool:
            self.drain()
            return len(self.of(kind, order_id)) >= n

        await until(enough, timeout, f"{n} {kind.value} event(s)")
        return self.of(kind, order_id)


def new_broker(ctx: Any, **ibkr: Any) -> IbkrBroker:
    """A broker on the test's fake with its own connection (a restart is a new broker)."""
    port = ctx.settings.ibkr.port
    settings = make_ib_settings(port, ibkr={"commission_wait_s": COMMISSION_WAIT_S, **ibkr})
    return IbkrBroker.from_context(make_ib_context(ctx.bus, settings), POLICY)


async def quote(broker: IbkrBroker, ctx: Any, strike: float = 590.0, right: str = "C",
                **over: float) -> list[BrokerEvent]:
    q = {**fake_quote(strike, right), **over}
    return await broker.on_quote(option(strike, right).key, q["bid"], q["ask"], q["bid_size"], q["ask_size"],
                                 ctx.clock.now())


async def sent_orders(tws: FakeTWS, b: IbkrBroker) -> list[dict[str, Any]]:
    """The fake's order log once it has processed everything this client sent (a round trip)."""
    await b.ib.reqCurrentTimeAsync()
    return tws.order_log


async def stored(ctx: Any, oid: str) -> dict[str, Any]:
    raw = await ctx.redis.hget(ctx.keys.hash("ib_orders"), oid)
    assert raw is not None, f"no store record for {oid}"
    return json.loads(raw)


@contextlib.asynccontextmanager
async def running(ctx: Any) -> AsyncIterator[tuple[IbkrBroker, Recorder]]:
    """A started broker (start-up reconciliation drained) and its recorder; stopped afterwards."""
    b = new_broker(ctx)
    rec = Recorder(b)
    await b.start()
    rec.drain()
    try:
        yield b, rec
    finally:
        await b.stop()


@pytest.fixture
async def broker(tws: FakeTWS, ib_ctx: Any):
    async with running(ib_ctx) as pair:
        yield pair


# ---------------------------------------------------------------------- pure translation
def test_translation_builds_limit_and_market_orders_and_maps_statuses(ib_ctx: Any) -> None:
    req = request(ib_ctx, "o-1")
    o = build_ib_order(req, 3.25, account="DU1234567", order_id=41)
    assert (o.orderType, o.action, o.totalQuantity, o.lmtPrice, o.tif, o.orderRef, o.account, o.outsideRth,
            o.transmit, o.orderId) == ("LMT", "BUY", 3.0, 3.25, "DAY", "o-1", "DU1234567", False, True, 41)
    m = build_ib_order(request(ib_ctx, "o-2", side=Side.SELL, order_type=OrderType.MKT), None, account="A",
                       order_id=42)
    assert (m.orderType, m.action) == ("MKT", "SELL")
    with pytest.raises(ValueError):
        build_ib_order(req, None, account="A", order_id=43)
    assert [map_status(s) for s in ("PendingSubmit", "PreSubmitted", "Submitted", "Filled", "Cancelled",
                                    "ApiCancelled", "Inactive", "ValidationError")] == [
        OrderStatus.WORKING, OrderStatus.WORKING, OrderStatus.WORKING, OrderStatus.FILLED, OrderStatus.CANCELLED,
        OrderStatus.CANCELLED, OrderStatus.REJECTED, None]
    assert map_status("Submitted", filled_qty=1) == OrderStatus.PARTIALLY_FILLED
    assert clean_message("Order rejected -\n reason: account U7654321 and DU1234567", "DU1234567") == \
        "Order rejected - reason: account U7****321 and DU****567"


# ---------------------------------------------------------------------- lifecycle
async def test_lifecycle_partial_fills_reprice_same_ib_order_and_cancel(tws: FakeTWS, ib_ctx: Any, broker) -> None:
    b, rec = broker
    await quote(b, ib_ctx)
    q = fake_quote()
    st = await b.place(request(ib_ctx, "ent-1", qty=3))
    mid = (q["bid"] + q["ask"]) / 2
    assert st.status == OrderStatus.WORKING and st.limit == to_tick(mid, 0.01, "down")
    [sent] = await tws.wait_for_async(lambda t: t.order_log)
    assert (sent["order_ref"], sent["action"], sent["total_qty"], sent["lmt_price"], sent["sec_type"],
            sent["account"]) == ("ent-1", "BUY", 3, st.limit, "OPT", "DU1234567")
    ib_id = sent["order_id"]
    # acknowledged: a STATUS event, the record linked (perm id) and the service woken
    [ack] = await rec.wait(BrokerEventKind.STATUS, order_id="ent-1")
    assert ack.detail["ib_status"] == "Submitted" and ack.order.status == OrderStatus.WORKING
    assert rec.wakeups >= 1
    await until(lambda: b.records["ent-1"].phase == Phase.ACKED)
    await b.store.flush()
    body = await stored(ib_ctx, "ent-1")
    assert (body["ib_order_id"], body["phase"]) == (ib_id, "acked") and body["perm_id"] > 0

    # partial fill: one FILL with IB's commission, cumulative state
    wakeups = rec.wakeups
    ex1 = tws.fill_order("ent-1", qty=1)
    [f1] = await rec.wait(BrokerEventKind.FILL, order_id="ent-1")
    assert rec.wakeups > wakeups
    assert (f1.fill.fill_id, f1.fill.qty, f1.fill.price, f1.fill.commission) == (ex1, 1, st.limit, 0.65)
    assert "commission" not in f1.detail
    assert (f1.order.status, f1.order.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 1)
    assert f1.fill.slippage == pytest.approx(round(st.limit - round(mid, 6), 6))

    # reprice after reprice_after_s: the SAME IB order id, new limit in the fake's order log
    ib_ctx.clock.advance(POLICY.reprice_after_s)
    [rep] = await quote(b, ib_ctx)
    assert rep.kind == BrokerEventKind.REPRICED and rep.old_limit == st.limit and rep.new_limit > st.limit
    await tws.wait_for_async(lambda t: len(t.order_log) == 2)
    mod = tws.order_log[1]
    assert (mod["order_id"], mod["modification"], mod["lmt_price"]) == (ib_id, True, rep.new_limit)
    assert [o["lmt_price"] for o in tws.orders] == [rep.new_limit]
    assert await quote(b, ib_ctx) == []  # idle time starts again

    ex2 = tws.fill_order("ent-1", qty=1)
    fills = await rec.wait(BrokerEventKind.FILL, 2, order_id="ent-1")
    assert (fills[1].fill.fill_id, fills[1].fill.price, fills[1].order.filled_qty) == (ex2, rep.new_limit, 2)

    # cancel: cancelOrder once, PendingCancel is a STATUS, IB's confirmation a CANCELLED with our reason
    st = await b.cancel("ent-1", ib_ctx.clock.now())
    assert st.status == OrderStatus.PARTIALLY_FILLED  # not cancelled until IB says so
    await b.cancel("ent-1", ib_ctx.clock.now())
    [done] = await rec.wait(BrokerEventKind.CANCELLED, order_id="ent-1")
    assert tws.cancel_log == [ib_id]
    assert (done.reason, done.order.status, done.order.filled_qty) == ("client", OrderStatus.CANCELLED, 2)
    statuses = [e.detail["ib_status"] for e in rec.of(BrokerEventKind.STATUS, "ent-1")]
    assert statuses == ["Submitted", "PendingCancel"]
    assert await b.open_orders() == []
    assert rec.wakeups >= len(rec.events) - 1  # each queued batch woke the service
    await b.store.flush()
    assert (await stored(ib_ctx, "ent-1"))["phase"] == "done"


async def test_policy_cancel_on_timeout_waits_for_ib_confirmation(tws: FakeTWS, ib_ctx: Any, broker) -> None:
    b, rec = broker
    await quote(b, ib_ctx)
    await b.place(request(ib_ctx, "ent-t", qty=1))
    await rec.wait(BrokerEventKind.STATUS, order_id="ent-t")
    ib_ctx.clock.advance(POLICY.order_timeout_s)
    assert await b.on_timer(ib_ctx.clock.now()) == []
    assert await b.on_timer(ib_ctx.clock.now()) == []  # asked once
    [done] = await rec.wait(BrokerEventKind.CANCELLED, order_id="ent-t")
    assert done.reason == "timeout" and len(tws.cancel_log) == 1


async def test_commission_joined_after_a_delay_and_estimated_when_withheld(tws: FakeTWS, ib_ctx: Any,
                                                                           broker) -> None:
    b, rec = broker
    await quote(b, ib_ctx)
    await b.place(request(ib_ctx, "ent-c", qty=2))
    await rec.wait(BrokerEventKind.STATUS, order_id="ent-c")
    tws.commission_delay_s = 0.15
    ex1 = tws.fill_order("ent-c", qty=1)
    await until(lambda: ex1 in b.seen_execs)
    rec.drain()
    assert rec.of(BrokerEventKind.FILL) == []  # waits for the commission report
    [f1] = await rec.wait(BrokerEventKind.FILL, order_id="ent-c")
    assert (f1.fill.fill_id, f1.fill.commission) == (ex1, 0.65) and "commission" not in f1.detail

    tws.withhold_commission = True
    ex2 = tws.fill_order("ent-c", qty=1)
    fills = await rec.wait(BrokerEventKind.FILL, 2, order_id="ent-c", timeout=COMMISSION_WAIT_S + 3)
    f2 = fills[1]
    assert (f2.fill.fill_id, f2.fill.commission, f2.detail["commission"]) == (ex2, 0.7, "estimated")
    assert (f2.order.status, f2.order.filled_qty, f2.order.commission) == (OrderStatus.FILLED, 2, 1.35)
    assert len(rec.of(BrokerEventKind.FILL)) == 2  # each execution once


async def test_cancel_confirmed_before_a_fills_commission_comes_after_that_fill(tws: FakeTWS, ib_ctx: Any,
                                                                                 broker) -> None:
    b, rec = broker
    await quote(b, ib_ctx)
    await b.place(request(ib_ctx, "ent-x", qty=2))
    await rec.wait(BrokerEventKind.STATUS, order_id="ent-x")
    tws.commission_delay_s = 0.2
    ex = tws.fill_order("ent-x", qty=1)
    tws.cancel_order("ent-x")  # IB ends the rest before the fill's commission report is sent
    [done] = await rec.wait(BrokerEventKind.CANCELLED, order_id="ent-x")
    kinds = [e.kind for e in rec.events if e.order_id == "ent-x" and e.kind != BrokerEventKind.STATUS]
    assert kinds == [BrokerEventKind.FILL, BrokerEventKind.CANCELLED]
    [fill] = rec.of(BrokerEventKind.FILL, "ent-x")
    assert (fill.fill.fill_id, fill.fill.commission) == (ex, 0.65)
    assert (done.reason, done.order.filled_qty) == ("ib_cancelled", 1)


async def test_reject_carries_ibs_message_without_the_account(tws: FakeTWS, ib_ctx: Any, broker) -> None:
    b, rec = broker
    await quote(b, ib_ctx)
    tws.reject_next_order(201, "Order rejected - reason: insufficient funds in account DU1234567")
    st = await b.place(request(ib_ctx, "ent-r", qty=1))
    assert st.status == OrderStatus.WORKING
    [rej] = await rec.wait(BrokerEventKind.REJECTED, order_id="ent-r")
    assert rej.reason == "Order rejected - reason: insufficient funds in account DU****567"
    assert rej.order.status == OrderStatus.REJECTED and "DU1234567" not in rej.model_dump_json()
    assert await b.open_orders() == []
    # the same order id is never placed again
    assert (await b.place(request(ib_ctx, "ent-r", qty=1))).status == OrderStatus.REJECTED
    assert len(await sent_orders(tws, b)) == 1


async def test_refused_modification_keeps_the_order_working_at_its_old_price(tws: FakeTWS, ib_ctx: Any,
                                                                              broker) -> None:
    b, rec = broker
    await quote(b, ib_ctx)
    st = await b.place(request(ib_ctx, "ent-m", qty=1))
    await rec.wait(BrokerEventKind.STATUS, order_id="ent-m")
    tws.reject_next_order(201, "Order rejected - reason: price out of range")
    ib_ctx.clock.advance(POLICY.reprice_after_s)
    [rep] = await quote(b, ib_ctx)
    assert rep.kind == BrokerEventKind.REPRICED
    refused = await rec.wait(BrokerEventKind.STATUS, 2, order_id="ent-m")
    assert refused[-1].reason.startswith("modify refused") and refused[-1].order.limit == st.limit
    assert rec.of(BrokerEventKind.REJECTED) == [] and b.order("ent-m").status == OrderStatus.WORKING
    tws.fill_order("ent-m")
    [fill] = await rec.wait(BrokerEventKind.FILL, order_id="ent-m")
    assert fill.order.status == OrderStatus.FILLED


async def test_positions_and_describe(tws: FakeTWS, ib_ctx: Any, broker) -> None:
    b, _ = broker
    tws.set_position("SPY", EXPIRY, 590.0, "C", 2, 310.0)
    tws.set_position("SPY", None, None, None, 100, 59000.0)  # stock: not ours to show
    await until(lambda: len(b.ib.positions()) == 2)
    [p] = await b.positions()
    assert (p.contract, p.qty, p.avg_cost) == (option(), 2, 3.1)
    assert b.describe() == {"name": "ibkr", "connected": "1", "account": "DU****567"}
