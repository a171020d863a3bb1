"""Safety guard: options only, long only, single leg - at the guard and through PaperBroker.place."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.contract import Instrument, OptionContract, Right, SecType
from core.domain.reasons import Reason
from core.domain.signal import Leg, Quote, Side, Signal
from core.execution import (
    Fill,
    OrderPurpose,
    OrderRejected,
    OrderRequest,
    OrderState,
    OrderStatus,
    PaperBroker,
    check_order,
    entry_order_from_signal,
)

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 1, 13, 10, 0, tzinfo=NY)
C = OptionContract(symbol="SPY", expiry=date(2026, 1, 16), strike=590, right=Right.PUT)
OPT = Instrument(type=SecType.OPT, expiry=C.expiry, strike=590, right=Right.PUT)


def req(order_id="o1", side=Side.BUY, qty=1, purpose=None, contract=C, **kw) -> OrderRequest:
    purpose = purpose or (OrderPurpose.ENTRY if side == Side.BUY else OrderPurpose.EXIT)
    return OrderRequest(order_id=order_id, correlation_id="c", contract=contract, side=side, qty=qty,
                        purpose=purpose, created_ts=kw.pop("ts", T0), **kw)


def reason_of(order: OrderRequest, **kw) -> Reason:
    with pytest.raises(OrderRejected) as ei:
        check_order(order, **kw)
    return ei.value.reason


def test_guard_accepts_a_long_single_option_buy_and_a_covered_sell():
    assert check_order(req()) == C
    assert check_order(req(side=Side.SELL, qty=2), held_qty=2) == C
    assert check_order(req(side=Side.SELL, qty=1), held_qty=3, committed_sell_qty=2) == C


@pytest.mark.parametrize("kind", [SecType.STK, SecType.FUT, SecType.CASH])
def test_guard_refuses_non_options(kind):
    assert reason_of(req(contract=Instrument(type=kind))) == Reason.NOT_OPTION
    assert reason_of(req(contract=Instrument(type=kind), side=Side.SELL), held_qty=10) == Reason.NOT_OPTION


def test_guard_refuses_an_option_that_is_not_fully_specified():
    assert reason_of(req(contract=Instrument(type=SecType.OPT, strike=590))) == Reason.NOT_OPTION


def test_guard_refuses_spreads_and_bags():
    assert reason_of(req(contract=Instrument(type=SecType.BAG))) == Reason.NOT_SINGLE_LEG
    other = OPT.model_copy(update={"strike": 580.0})
    legs = [Leg(instrument=OPT, side=Side.BUY), Leg(instrument=other, side=Side.SELL)]
    assert reason_of(req(legs=legs)) == Reason.NOT_SINGLE_LEG
    assert reason_of(req(legs=[Leg(instrument=OPT, side=Side.BUY, ratio=2)])) == Reason.NOT_SINGLE_LEG
    assert reason_of(req(legs=[Leg(instrument=OPT, side=Side.SELL)])) == Reason.NOT_LONG
    assert reason_of(req(legs=[Leg(instrument=Instrument(type=SecType.STK), side=Side.BUY)])) == Reason.NOT_OPTION
    assert check_order(req(legs=[Leg(instrument=OPT, side=Side.BUY)])) == C  # one long leg is fine


def test_guard_refuses_short_sales():
    assert reason_of(req(side=Side.SELL)) == Reason.NOT_LONG  # nothing held
    assert reason_of(req(side=Side.SELL, qty=3), held_qty=2) == Reason.NOT_LONG  # more than held
    assert reason_of(req(side=Side.SELL, qty=2), held_qty=2, committed_sell_qty=1) == Reason.NOT_LONG
    assert reason_of(req(side=Side.SELL, purpose=OrderPurpose.ENTRY), held_qty=5) == Reason.NOT_LONG  # sell to open
    assert reason_of(req(side=Side.BUY, purpose=OrderPurpose.EXIT)) == Reason.BAD_INPUT  # buy to cover: no shorts


def test_guard_refuses_expired_contracts_for_buys():
    assert reason_of(req(ts=datetime(2026, 1, 17, 10, 0, tzinfo=NY))) == Reason.EXPIRED_CONTRACT


def test_request_model_refuses_nonsense_quantities_and_prices():
    with pytest.raises(ValueError):
        req(qty=0)
    with pytest.raises(ValueError):
        req(limit=-1.0)
    with pytest.raises(ValueError):
        req(limit=float("nan"))


# ---------------------------------------------------------- through the broker
async def _broker_with_quote() -> PaperBroker:
    b = PaperBroker()
    await b.on_quote(C.key, 2.00, 2.20, 10, 10, T0)
    return b


async def test_paper_broker_refuses_equity_short_sale_and_spread():
    b = await _broker_with_quote()
    for order, reason in [
        (req("eq", contract=Instrument(type=SecType.STK)), Reason.NOT_OPTION),
        (req("bag", contract=Instrument(type=SecType.BAG)), Reason.NOT_SINGLE_LEG),
        (req("short", side=Side.SELL, qty=1), Reason.NOT_LONG),
    ]:
        with pytest.raises(OrderRejected) as ei:
            await b.place(order)
        assert ei.value.reason == reason and ei.value.order_id == order.order_id
        st = b.order(order.order_id)
        assert st.status == OrderStatus.REJECTED and st.reason == reason.value
    assert await b.open_orders() == [] and await b.positions() == []


async def test_paper_broker_refuses_selling_more_than_held_including_working_sells():
    b = await _broker_with_quote()
    await b.place(req("buy", qty=2))
    await b.on_quote(C.key, 2.00, 2.10, 10, 10, T0 + timedelta(seconds=1))
    assert b.held_qty(C.key) == 2
    with pytest.raises(OrderRejected) as ei:
        await b.place(req("s3", side=Side.SELL, qty=3, ts=T0 + timedelta(seconds=2)))
    assert ei.value.reason == Reason.NOT_LONG
    await b.place(req("s1", side=Side.SELL, qty=1, limit=5.0, ts=T0 + timedelta(seconds=2)))
    await b.place(req("s2", side=Side.SELL, qty=1, limit=5.0, ts=T0 + timedelta(seconds=2)))
    with pytest.raises(OrderRejected) as ei:  # both held contracts are already being sold
        await b.place(req("s4", side=Side.SELL, qty=1, limit=5.0, ts=T0 + timedelta(seconds=2)))
    assert ei.value.reason == Reason.NOT_LONG


async def test_signal_for_a_spread_or_equity_is_refused_not_crashed():
    quote = Quote(bid=2.0, ask=2.2, ts=T0)
    base = {"id": "sig", "ts": T0, "strategy": "s", "symbol": "SPY", "qty": 1, "limit": 2.1, "quote": quote, "stop": 1.0}
    b = await _broker_with_quote()

    spread = Signal(**base, instrument=OPT, legs=[Leg(instrument=OPT, side=Side.BUY),
                                                  Leg(instrument=OPT.model_copy(update={"strike": 580.0}),
                                                      side=Side.SELL)])
    with pytest.raises(OrderRejected) as ei:
        await b.place(entry_order_from_signal(spread, order_id="a", created_ts=T0))
    assert ei.value.reason == Reason.NOT_SINGLE_LEG

    equity = Signal(**base, instrument=Instrument(type=SecType.STK))
    with pytest.raises(OrderRejected) as ei:
        await b.place(entry_order_from_signal(equity, order_id="b", created_ts=T0))
    assert ei.value.reason == Reason.NOT_OPTION

    short = Signal(**base, instrument=OPT, side=Side.SELL)
    with pytest.raises(OrderRejected) as ei:
        await b.place(entry_order_from_signal(short, order_id="c", created_ts=T0))
    assert ei.value.reason == Reason.NOT_LONG

    good = Signal(**base, instrument=OPT)
    st = await b.place(entry_order_from_signal(good, order_id="d", created_ts=T0))
    assert st.status == OrderStatus.WORKING and st.limit == pytest.approx(2.10)


def test_order_models_round_trip_through_json():
    for contract in (C, Instrument(type=SecType.STK), Instrument(type=SecType.BAG)):
        r = req(contract=contract, legs=[Leg(instrument=OPT, side=Side.BUY)])
        assert OrderRequest.model_validate_json(r.model_dump_json()) == r
    f = Fill(fill_id="o1:1", order_id="o1", correlation_id="c", contract=C, side=Side.BUY,
             purpose=OrderPurpose.ENTRY, qty=2, price=2.2, commission=1.3, ts=T0, mid_at_placement=2.1,
             slippage=0.1)
    assert Fill.model_validate_json(f.model_dump_json()) == f
    st = OrderState(order_id="o1", correlation_id="c", request=req(), placed_ts=T0, last_priced_ts=T0,
                    updated_ts=T0, fills=[f], filled_qty=2, avg_price=2.2, status=OrderStatus.FILLED)
    assert OrderState.model_validate_json(st.model_dump_json()) == st
