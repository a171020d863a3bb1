"""Reconciliation and crash safety of IbkrBroker, through the real ib_async client against the fake TWS
and the real Redis: a fill while disconnected is published exactly once (reconnects, repeated
reconciliations and a restart, with the published marks written by ``record_published`` on a real
Redis transaction); a process killed between "decided" and "IB acknowledged" never places the order
twice, and one IB never received is placed once after reconciliation; an unknown IB position is
adopted (once); a position Redis holds that IB lacks is flagged MISSING; the execution service
turns the summary into one admin alert."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis
from ib_async import IB

from core.bus.events import AlertEvent, FillEvent
from core.execution.broker import BrokerEvent, BrokerEventKind
from core.execution.orders import OrderState, OrderStatus
from core.execution.service import ExecutionService
from core.ibkr.broker import IbkrBroker
from core.ibkr.contracts import to_ib_option
from core.ibkr.order_store import IbOrderRecord, OrderStore, Phase
from core.ibkr.orders import build_ib_order
from core.runtime.service import Context
from tests.conftest import REDIS_URL
from tests.fakes.ib_tws import FakeTWS
from tests.helpers import make_context
from tests.ibkr.conftest import stream_events, until
from tests.ibkr.test_orders import (
    EXPIRY,
    Recorder,
    fake_quote,
    new_broker,
    option,
    quote,
    request,
    sent_orders,
)

pytestmark = pytest.mark.usefixtures("no_decoder_errors")


async def started(ctx: Context) -> tuple[IbkrBroker, Recorder]:
    b = new_broker(ctx)
    rec = Recorder(b)
    await b.start()
    return b, rec


async def publish(ctx: Context, broker: IbkrBroker, events: list[BrokerEvent]) -> None:
    """What the execution service does with drained events: the published marks on its transaction."""
    tx = ctx.bus.tx()
    broker.record_published(tx.pipe, events)
    await tx.commit()


def summary(events: list[BrokerEvent]) -> str:
    [rec] = [e for e in events if e.kind == BrokerEventKind.RECONCILED]
    return rec.detail["summary"]


async def reconnect(tws: FakeTWS, broker: IbkrBroker, *, fill: str | None = None, qty: int | None = None,
                    away: Callable[[], Any] | None = None) -> str | None:
    """Drop the socket, fill ``fill`` (and run ``away``) before the client can reconnect, wait for the
    reconciliation that follows the reconnect. Returns the execId of the fill."""
    n = broker.reconciliations
    tws.drop_connections()
    exec_id = tws.fill_order(fill, qty=qty) if fill else None  # the test's loop is blocked: still disconnected
    if away is not None:
        away()
    await until(lambda: broker.reconciliations > n, 10, "reconciliation after the reconnect")
    return exec_id


# ---------------------------------------------------------------------- fills while away
async def test_fill_during_disconnect_is_published_exactly_once(tws: FakeTWS, ib_ctx: Context) -> None:
    b, rec = await started(ib_ctx)
    try:
        await quote(b, ib_ctx)
        await b.place(request(ib_ctx, "ent-d", qty=2))
        await rec.wait(BrokerEventKind.STATUS, order_id="ent-d")
        await publish(ib_ctx, b, rec.drain())

        exec_id = await reconnect(tws, b, fill="ent-d")
        got = rec.drain()
        fills = [e for e in got if e.kind == BrokerEventKind.FILL]
        assert [(e.fill.fill_id, e.fill.qty, e.order.status) for e in fills] == [(exec_id, 2, OrderStatus.FILLED)]
        assert fills[0].fill.commission == 1.3  # IB's report came with the replay
        assert summary(got) == "reconciled with IBKR: 1 fill replayed, 0 positions adopted, 0 missing, 0 open orders"
        assert rec.wakeups > 0
        # reconciling again before the service published: still queued once
        await b.reconcile_now()
        assert [e.kind for e in rec.drain()] == [BrokerEventKind.RECONCILED]
        await publish(ib_ctx, b, fills)
        assert await ib_ctx.redis.hexists(ib_ctx.keys.hash("ib_exec_published"), exec_id)
        # reconnect twice more: nothing to replay
        for _ in range(2):
            await reconnect(tws, b)
            again = rec.drain()
            assert [e.kind for e in again] == [BrokerEventKind.RECONCILED], again
            assert summary(again).startswith("reconciled with IBKR: 0 fills replayed, 0 positions adopted")
    finally:
        await b.stop()
    # a restart (new process, new IB client, same client id): the published mark holds
    b2, rec2 = await started(ib_ctx)
    try:
        got = rec2.drain()
        assert [e.kind for e in got] == [BrokerEventKind.RECONCILED]
        assert b2.order("ent-d").status == OrderStatus.FILLED
    finally:
        await b2.stop()


async def test_partial_fill_and_cancel_at_ib_while_away_end_in_that_order(tws: FakeTWS, ib_ctx: Context) -> None:
    b, rec = await started(ib_ctx)
    try:
        await quote(b, ib_ctx)
        await b.place(request(ib_ctx, "ent-a", qty=3))
        await rec.wait(BrokerEventKind.STATUS, order_id="ent-a")
        rec.drain()
        exec_id = await reconnect(tws, b, fill="ent-a", qty=1, away=lambda: tws.cancel_order("ent-a"))
        got = [e for e in rec.drain() if e.order_id == "ent-a"]
        assert [e.kind for e in got] == [BrokerEventKind.FILL, BrokerEventKind.CANCELLED]
        assert got[0].fill.fill_id == exec_id
        assert (got[1].reason, got[1].order.status, got[1].order.filled_qty) == ("ib_cancelled",
                                                                                OrderStatus.CANCELLED, 1)
        assert await b.open_orders() == []
    finally:
        await b.stop()


async def test_reconciles_after_tws_lost_ib_but_not_on_a_market_data_farm_flap(tws: FakeTWS,
                                                                                 ib_ctx: Context) -> None:
    b, _ = await started(ib_ctx)
    try:
        n = b.reconciliations
        tws.send_error(2103, "Market data farm connection is broken:usfarm")
        tws.send_error(2104, "Market data farm connection is OK:usfarm")
        await asyncio.sleep(0.2)
        assert b.reconciliations == n
        tws.send_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
        tws.send_error(1101, "Connectivity between IB and TWS has been restored - data lost.")
        await until(lambda: b.reconciliations == n + 1)
    finally:
        await b.stop()


async def test_unpublished_fill_is_replayed_after_a_restart(tws: FakeTWS, ib_ctx: Context) -> None:
    """The process dies after the fill was applied to the store but before the service committed it."""
    b, rec = await started(ib_ctx)
    try:
        await quote(b, ib_ctx)
        await b.place(request(ib_ctx, "ent-u", qty=1))
        await rec.wait(BrokerEventKind.STATUS, order_id="ent-u")
        exec_id = tws.fill_order("ent-u")
        await rec.wait(BrokerEventKind.FILL, order_id="ent-u")  # drained, never published
        await b.store.flush()
    finally:
        await b.stop()
    b2, rec2 = await started(ib_ctx)
    try:
        fills = [e for e in rec2.drain() if e.kind == BrokerEventKind.FILL]
        assert [(e.fill.fill_id, e.order.filled_qty) for e in fills] == [(exec_id, 1)]  # not applied twice
    finally:
        await b2.stop()


# ---------------------------------------------------------------------- killed while placing
async def _placing_record(ctx: Context, req: Any, ib_order_id: int, con_id: int) -> IbOrderRecord:
    q = fake_quote()
    ts = req.created_ts
    state = OrderState(order_id=req.order_id, correlation_id=req.correlation_id, request=req,
                       status=OrderStatus.WORKING, limit=3.8, mid_at_placement=(q["bid"] + q["ask"]) / 2,
                       placed_ts=ts, last_priced_ts=ts, updated_ts=ts)
    rec = IbOrderRecord(state=state, phase=Phase.PLACING, ib_order_id=ib_order_id, client_id=12, con_id=con_id)
    await OrderStore(ctx.redis, ctx.keys).save(rec)
    return rec


async def test_killed_after_place_order_never_places_twice(tws: FakeTWS, ib_ctx: Context) -> None:
    req = request(ib_ctx, "ent-k", qty=1)
    # the "dead process": same client id, wrote the record, called placeOrder, died before any ack was stored
    ib = IB()
    await ib.connectAsync("127.0.0.1", tws.port, clientId=12, timeout=5)
    [contract] = await ib.qualifyContractsAsync(to_ib_option(req.option))
    rec = await _placing_record(ib_ctx, req, ib.client.getReqId(), contract.conId)
    ib.placeOrder(contract, build_ib_order(req, 3.8, account="DU1234567", order_id=rec.ib_order_id))
    await tws.wait_for_async(lambda t: len(t.orders) == 1)
    ib.disconnect()
    await tws.wait_for_async(lambda t: t.connected_clients == [])

    b, recorder = await started(ib_ctx)
    try:
        got = recorder.drain()
        assert "1 open order" in summary(got)
        linked = b.records["ent-k"]
        assert linked.phase == Phase.ACKED and linked.perm_id == tws.orders[0]["perm_id"]
        await quote(b, ib_ctx)
        st = await b.place(req)  # the retry of the same order id
        assert st.status == OrderStatus.WORKING
        assert len(await sent_orders(tws, b)) == 1 and len(tws.orders) == 1
        # and it is managed as ours: a fill reaches us
        tws.fill_order("ent-k")
        [fill] = await recorder.wait(BrokerEventKind.FILL, order_id="ent-k")
        assert fill.order.status == OrderStatus.FILLED
    finally:
        await b.stop()


class Killed(BaseException):
    """The process dies (nothing after this runs)."""


async def test_record_is_written_before_place_order_and_a_crash_right_after_is_recovered(
        tws: FakeTWS, ib_ctx: Context) -> None:
    req = request(ib_ctx, "ent-z", qty=1)
    b1, _ = await started(ib_ctx)
    await quote(b1, ib_ctx)
    ib = b1.ib
    real_place = ib.placeOrder
    at_call: list[dict | None] = []
    sync = redis.Redis.from_url(REDIS_URL, decode_responses=True)

    def place_then_die(contract: Any, order: Any) -> Any:
        raw = sync.hget(ib_ctx.keys.hash("ib_orders"), "ent-z")  # what Redis holds when IB is asked
        at_call.append(json.loads(raw) if raw else None)
        real_place(contract, order)
        ib.orderStatusEvent -= b1._on_status  # the dead process handles nothing more
        ib.execDetailsEvent -= b1._on_exec
        raise Killed

    ib.placeOrder = place_then_die
    try:
        with pytest.raises(Killed):
            await b1.place(req)
    finally:
        sync.close()
        await b1.conn.stop()
    [body] = at_call
    assert body is not None and body["phase"] == "placing" and body["ib_order_id"] > 0
    await tws.wait_for_async(lambda t: len(t.orders) == 1)
    b2, _ = await started(ib_ctx)
    try:
        await quote(b2, ib_ctx)
        assert (await b2.place(req)).status == OrderStatus.WORKING
        assert [o["order_ref"] for o in await sent_orders(tws, b2)] == ["ent-z"]
        assert b2.records["ent-z"].ib_order_id == body["ib_order_id"] == tws.orders[0]["order_id"]
    finally:
        await b2.stop()


async def test_placing_record_ib_never_received_is_placed_once_after_reconciliation(tws: FakeTWS,
                                                                                   ib_ctx: Context) -> None:
    req = request(ib_ctx, "ent-n", qty=1)
    await _placing_record(ib_ctx, req, 1, tws.option_con_id("SPY", EXPIRY, 590.0, "C"))
    b, recorder = await started(ib_ctx)
    try:
        got = recorder.drain()
        assert summary(got).endswith("0 open orders, 1 order never reached IB")
        assert b.records["ent-n"].phase == Phase.NEVER_PLACED and await b.open_orders() == []
        await quote(b, ib_ctx)
        st = await b.place(req)
        assert st.status == OrderStatus.WORKING
        await b.place(req)
        await recorder.wait(BrokerEventKind.STATUS, order_id="ent-n")
        assert [o["order_ref"] for o in await sent_orders(tws, b)] == ["ent-n"]
        assert b.records["ent-n"].phase == Phase.ACKED
    finally:
        await b.stop()


# ---------------------------------------------------------------------- positions
async def test_unknown_ib_position_is_adopted_once(tws: FakeTWS, ib_ctx: Context) -> None:
    tws.set_position("SPY", EXPIRY, 592.0, "C", 2, 310.0)
    con_id = tws.option_con_id("SPY", EXPIRY, 592.0, "C")
    b, rec = await started(ib_ctx)
    try:
        got = rec.drain()
        [ad] = [e for e in got if e.kind == BrokerEventKind.ADOPTED]
        key = option(592.0).key
        assert (ad.order_id, ad.correlation_id, ad.contract_key) == (f"adopt-{con_id}", f"adopt:{key}:20261120", key)
        assert (ad.position.qty, ad.position.avg_cost, ad.order) == (2, 3.1, None)
        assert summary(got) == "reconciled with IBKR: 0 fills replayed, 1 position adopted, 0 missing, 0 open orders"
        await b.reconcile_now()
        assert [e.kind for e in rec.drain()] == [BrokerEventKind.RECONCILED]  # queued, not adopted again
        await publish(ib_ctx, b, got)
        assert await ib_ctx.redis.hget(ib_ctx.keys.hash("ib_adopted"), key) == "2"
    finally:
        await b.stop()
    b2, rec2 = await started(ib_ctx)  # restart: the adoption was recorded
    try:
        assert [e.kind for e in rec2.drain()] == [BrokerEventKind.RECONCILED]
    finally:
        await b2.stop()


async def _redis_position(ctx: Context, pid: str, strike: float, qty: int) -> None:
    c = option(strike)
    await ctx.redis.hset(ctx.keys.hash("positions"), pid, json.dumps({
        "symbol": c.symbol, "expiry": c.expiry.isoformat(), "strike": c.strike, "right": c.right.value,
        "multiplier": c.multiplier, "strategy": "momentum", "qty_open": qty, "avg_entry": 3.0}))


async def test_position_redis_holds_and_ib_lacks_is_missing(tws: FakeTWS, ib_ctx: Context) -> None:
    await _redis_position(ib_ctx, "pos-1", 591.0, 1)
    await _redis_position(ib_ctx, "pos-2", 593.0, 2)
    tws.set_position("SPY", EXPIRY, 593.0, "C", 2, 300.0)  # this one IB holds: fine
    b, rec = await started(ib_ctx)
    try:
        got = rec.drain()
        [miss] = [e for e in got if e.kind == BrokerEventKind.MISSING]
        assert (miss.contract_key, miss.position.qty, miss.correlation_id) == (option(591.0).key, 1, "pos-1")
        assert miss.detail["ib_qty"] == 0 and miss.detail["system_qty"] == 1
        assert [e.kind for e in got if e.kind == BrokerEventKind.ADOPTED] == []
        assert summary(got) == ("reconciled with IBKR: 0 fills replayed, 0 positions adopted, "
                                "1 missing (SPY 2026-11-23 591C x1), 0 open orders")
    finally:
        await b.stop()


async def test_execution_service_publishes_the_adoption_and_one_admin_alert(tws: FakeTWS, ib_ctx: Context) -> None:
    data = ib_ctx.settings.model_dump()
    data.update(mode="live", execution={**data["execution"], "broker": "ibkr"})
    ctx = make_context(ib_ctx.bus, settings=type(ib_ctx.settings).model_validate(data))
    tws.set_position("SPY", EXPIRY, 594.0, "P", 1, 420.0)
    svc = ExecutionService(ctx)
    assert isinstance(svc.broker, IbkrBroker)
    await svc.start()
    try:
        [fill] = [e for e in await stream_events(ctx.bus, "orders") if isinstance(e, FillEvent)]
        assert (fill.symbol, fill.strike, fill.right, fill.qty, fill.price, fill.side) == ("SPY", 594.0, "P", 1,
                                                                                        4.2, "BUY")
        alerts = [e for e in await stream_events(ctx.bus, "alerts")
                  if isinstance(e, AlertEvent) and e.code == "BROKER_RECONCILED"]
        assert [a.message for a in alerts] == [
            "reconciled with IBKR: 0 fills replayed, 1 position adopted, 0 missing, 0 open orders"]
        assert await ctx.redis.hget(ctx.keys.hash("ib_adopted"), option(594.0, "P").key) == "1"
        assert (await ctx.redis.hget(ctx.keys.hash("broker"), "name")) == "ibkr"
    finally:
        await svc.stop()
