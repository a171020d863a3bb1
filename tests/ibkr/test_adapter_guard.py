"""The last-line guard inside IbkrBroker.place, through the real ib_async client against the fake TWS:
a stock order, a SELL to open, a SELL of more than IB says the account holds (alone or together
with a working exit), a BAG and a two-leg spread, an entry while halted and any order while
disconnected are refused before IB sees anything (the fake's order log stays empty). An exit while
halted still goes: a halt must never block /flatten or a stop."""

from __future__ import annotations

from typing import Any

import pytest

from core.control.halt import set_halt
from core.domain.contract import Instrument, Right, SecType
from core.domain.reasons import Reason
from core.domain.signal import Leg, Side
from core.execution.broker import BrokerEventKind
from core.execution.guard import OrderRejected
from core.execution.orders import OrderPurpose, OrderStatus, OrderType
from core.ibkr.broker import UNAVAILABLE, IbkrBroker
from core.runtime.service import Context
from tests.fakes.ib_tws import FakeTWS
from tests.ibkr.conftest import until
from tests.ibkr.test_orders import EXPIRY, option, quote, request, running, sent_orders

pytestmark = pytest.mark.usefixtures("no_decoder_errors")

OPT = Instrument(type=SecType.OPT, expiry=EXPIRY, strike=590.0, right=Right.CALL)


@pytest.fixture
async def broker(tws: FakeTWS, ib_ctx: Context):
    async with running(ib_ctx) as pair:
        yield pair


async def refused(b: IbkrBroker, req: Any, reason: Reason) -> OrderRejected:
    with pytest.raises(OrderRejected) as info:
        await b.place(req)
    assert info.value.reason == reason, info.value
    return info.value


async def hold(tws: FakeTWS, b: IbkrBroker, qty: int) -> None:
    tws.set_position("SPY", EXPIRY, 590.0, "C", qty, 300.0 * qty)
    await until(lambda: b.held_qty(option().key) == qty)


async def test_stock_order_never_reaches_ib(tws: FakeTWS, ib_ctx: Context, broker) -> None:
    b, _ = broker
    await refused(b, request(ib_ctx, "stk", contract=Instrument(type=SecType.STK)), Reason.NOT_OPTION)
    assert await sent_orders(tws, b) == [] and b.records == {}


async def test_sell_to_open_and_short_sales_never_reach_ib(tws: FakeTWS, ib_ctx: Context, broker) -> None:
    b, _ = broker
    await quote(b, ib_ctx)
    # SELL to open (an entry that sells), with nothing held and with contracts held
    await refused(b, request(ib_ctx, "sto", side=Side.SELL, purpose=OrderPurpose.ENTRY), Reason.NOT_LONG)
    # a SELL exit of contracts IB says the account does not hold
    await refused(b, request(ib_ctx, "short-0", side=Side.SELL, qty=1), Reason.NOT_LONG)
    await hold(tws, b, 1)
    await refused(b, request(ib_ctx, "sto-1", side=Side.SELL, qty=1, purpose=OrderPurpose.ENTRY), Reason.NOT_LONG)
    await refused(b, request(ib_ctx, "short-2", side=Side.SELL, qty=2), Reason.NOT_LONG)
    assert await sent_orders(tws, b) == []
    # selling what is held goes; a second sale of the same contract would be short together with it
    st = await b.place(request(ib_ctx, "exit-1", side=Side.SELL, qty=1))
    assert st.status == OrderStatus.WORKING
    await refused(b, request(ib_ctx, "exit-2", side=Side.SELL, qty=1), Reason.NOT_LONG)
    assert [o["order_ref"] for o in await sent_orders(tws, b)] == ["exit-1"]


async def test_combo_and_two_leg_spread_never_reach_ib(tws: FakeTWS, ib_ctx: Context, broker) -> None:
    b, _ = broker
    await quote(b, ib_ctx)
    await refused(b, request(ib_ctx, "bag", contract=Instrument(type=SecType.BAG)), Reason.NOT_SINGLE_LEG)
    other = Instrument(type=SecType.OPT, expiry=EXPIRY, strike=595.0, right=Right.CALL)
    legs = [Leg(instrument=OPT, side=Side.BUY), Leg(instrument=other, side=Side.SELL)]
    await refused(b, request(ib_ctx, "spread", legs=legs), Reason.NOT_SINGLE_LEG)
    assert await sent_orders(tws, b) == []


async def test_entry_while_halted_never_reaches_ib_but_exits_still_go(tws: FakeTWS, ib_ctx: Context,
                                                                      broker) -> None:
    b, rec = broker
    await quote(b, ib_ctx)
    await hold(tws, b, 2)
    await set_halt(ib_ctx.bus, "test", "admin")
    await refused(b, request(ib_ctx, "ent-h", qty=1), Reason.HALTED)
    assert await sent_orders(tws, b) == []
    st = await b.place(request(ib_ctx, "stop-h", side=Side.SELL, qty=1))  # a stop-loss exit
    assert st.status == OrderStatus.WORKING
    [flat] = await b.flatten(ib_ctx.clock.now())  # /flatten: a MKT sell of the rest
    assert (flat.request.order_type, flat.request.qty) == (OrderType.MKT, 1)
    assert [(o["order_ref"], o["action"]) for o in await sent_orders(tws, b)] == [("stop-h", "SELL"),
                                                                                 (flat.order_id, "SELL")]
    await rec.wait(BrokerEventKind.STATUS, 2)


async def test_nothing_is_placed_while_disconnected(tws: FakeTWS, ib_ctx: Context, broker) -> None:
    b, _ = broker
    await quote(b, ib_ctx)
    await b.conn.stop()
    await refused(b, request(ib_ctx, "ent-x", qty=1), UNAVAILABLE)
    assert tws.order_log == [] and b.describe()["connected"] == "0"
