"""The fake TWS / IB Gateway (tests/fakes/ib_tws.py), driven through the real ib_async client."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from typing import Any

import pytest
from ib_async import IB, Contract, LimitOrder, MarketOrder, Option, Stock

from tests.fakes import ib_tws
from tests.fakes.ib_tws import FakeTWS
from tests.helpers import until

fake_tws = ib_tws.fake_tws  # the module's fixture: a started, empty FakeTWS

EXP = dt.date(2026, 12, 18)
EXP2 = dt.date(2027, 1, 15)
STRIKES = [585.0, 590.0, 595.0]
CID = 23
ACCOUNT = "DU1234567"
WRAPPER_COMPLAINTS = ("Unknown reqId", "No order found")
IN_USE = "Unable to connect as the client id is already in use. Retry with a unique client id."


def record_errors(ib: IB) -> list[tuple[int, int, str]]:
    errors: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, msg, contract: errors.append((req_id, code, msg))
    return errors


@pytest.fixture(autouse=True)
def _no_protocol_errors(caplog: pytest.LogCaptureFixture):
    """Any message ib_async failed to decode, or the fake failed to handle, fails the test."""
    caplog.set_level(logging.INFO)
    yield
    bad = [
        r.getMessage()
        for r in caplog.records
        if (r.name == "ib_async.Decoder" and r.levelno >= logging.ERROR)
        or (r.name == "ib_async.wrapper" and any(m in r.getMessage() for m in WRAPPER_COMPLAINTS))
        or (r.name == "tests.fakes.ib_tws" and r.levelno >= logging.ERROR)
    ]
    assert not bad, bad


def _make_tws(**kwargs: Any) -> FakeTWS:
    tws = FakeTWS(**kwargs)
    tws.add_stock("SPY", bid=589.95, ask=590.05, last=590.0)
    tws.add_option_chain("SPY", [EXP, EXP2], STRIKES)
    tws.set_option_quote("SPY", EXP, 590.0, "C", bid=4.1, ask=4.3, iv=0.18, delta=0.52, gamma=0.012, vega=0.9,
                         theta=-0.05, open_interest=1234, volume=10)
    tws.set_option_quote("SPY", EXP, 590.0, "P", bid=3.9, ask=4.1, iv=0.2, delta=-0.48, open_interest=777)
    tws.set_option_quote("SPY", EXP, 595.0, "C", bid=2.0, ask=2.2)
    return tws


@pytest.fixture
def tws():
    fake = _make_tws()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
async def ib(tws: FakeTWS):
    client = IB()
    await client.connectAsync(tws.host, tws.port, clientId=CID, timeout=5, raiseSyncErrors=True)
    yield client
    client.disconnect()


async def qualified(ib: IB, *contracts: Contract) -> list[Contract]:
    result = await ib.qualifyContractsAsync(*contracts)
    assert all(c is not None for c in result), result
    return list(contracts)


def call590() -> Option:
    return Option("SPY", "20261218", 590.0, "C", "SMART")


# ----------------------------------------------------------------------------- session
async def test_connect_with_non_default_client_id(tws: FakeTWS) -> None:
    ib = IB()
    started = time.monotonic()
    await ib.connectAsync("127.0.0.1", tws.port, clientId=CID, timeout=5, raiseSyncErrors=True)
    try:
        assert time.monotonic() - started < 1.0  # every start-up request was answered
        assert ib.isConnected()
        assert ib.managedAccounts() == [ACCOUNT]
        assert ib.client.serverVersion() == 176
        assert tws.connected_clients == [CID]
        start_api = [e for e in tws.request_log if e[1] == 71]
        assert [(e[2], e[3][2]) for e in start_api] == [(CID, str(CID))]
        assert {e[1] for e in tws.request_log} >= {61, 5, 99, 6, 76, 7}
    finally:
        ib.disconnect()
    await tws.wait_for_async(lambda t: t.connected_clients == [], timeout=2)


async def test_empty_fake_from_fixture(fake_tws: FakeTWS) -> None:
    ib = IB()
    await ib.connectAsync(fake_tws.host, fake_tws.port, clientId=0, timeout=5, raiseSyncErrors=True)
    try:
        assert await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD")) == [None]
        assert ib.positions() == [] and ib.openTrades() == [] and ib.fills() == []
        assert any(msg_id == 15 for _, msg_id, _, _ in fake_tws.request_log)  # reqAutoOpenOrders (client 0)
    finally:
        ib.disconnect()


async def test_client_id_in_use_is_refused(tws: FakeTWS, ib: IB) -> None:
    for client_id, timeout in ((CID, 1.0), (7, 0.5)):  # already connected / refuse_client_ids
        tws.refuse_client_ids.add(7)
        other = IB()
        errors = record_errors(other)
        api_errors: list[tuple[float, str]] = []
        other.client.apiError += lambda msg, sink=api_errors: sink.append((time.monotonic(), msg))
        started = time.monotonic()
        # ib_async itself only gives up when its timeout expires; the 326 and the closed
        # socket are visible at once (errorEvent / client.apiError).
        with pytest.raises((TimeoutError, ConnectionError)):
            await other.connectAsync(tws.host, tws.port, clientId=client_id, timeout=timeout)
        assert time.monotonic() - started < timeout + 1.0
        assert (-1, 326, IN_USE) in errors
        assert api_errors and "already in use" in api_errors[0][1]
        assert api_errors[0][0] - started < 0.5
        assert not other.isConnected()
    assert tws.connected_clients == [CID]
    assert ib.isConnected()


# ----------------------------------------------------------------------------- reference data
async def test_qualify_contracts_and_option_chain(tws: FakeTWS, ib: IB) -> None:
    stk, opt = await qualified(ib, Stock("SPY", "SMART", "USD"), call590())
    assert stk.conId == tws.stock_con_id("SPY") and stk.primaryExchange == "ARCA"
    assert opt.conId == tws.option_con_id("SPY", EXP, 590.0, "C")
    assert (opt.localSymbol, opt.multiplier, opt.tradingClass, opt.exchange) == (
        "SPY   261218C00590000", "100", "SPY", "SMART")

    by_id = await ib.reqContractDetailsAsync(Contract(conId=opt.conId, exchange="SMART"))
    assert [d.contract.localSymbol for d in by_id] == ["SPY   261218C00590000"]
    assert by_id[0].underConId == stk.conId and by_id[0].realExpirationDate == "20261218"
    no_exchange = await ib.reqContractDetailsAsync(Contract(conId=opt.conId))
    assert sorted(d.contract.exchange for d in no_exchange) == ["CBOE", "SMART"]  # one row per exchange

    calls = await ib.reqContractDetailsAsync(Option("SPY", "20261218", right="C", exchange="SMART"))
    assert [d.contract.strike for d in calls] == STRIKES
    assert all(d.contract.right == "C" and d.contract.conId for d in calls)

    errors = record_errors(ib)
    assert await ib.qualifyContractsAsync(Option("SPY", "20261218", 123.0, "C", "SMART")) == [None]
    assert [e[1:] for e in errors] == [(200, "No security definition has been found for the request")]

    chains = await ib.reqSecDefOptParamsAsync("SPY", "", "STK", stk.conId)
    assert sorted(c.exchange for c in chains) == ["CBOE", "SMART"]
    for chain in chains:
        assert chain.expirations == ["20261218", "20270115"]
        assert chain.strikes == STRIKES
        assert (chain.multiplier, chain.tradingClass, int(chain.underlyingConId)) == ("100", "SPY", stk.conId)


async def test_several_trading_classes_per_symbol(tws: FakeTWS, ib: IB) -> None:
    tws.add_option_chain("SPX", [EXP], [5900.0])
    tws.add_option_chain("SPX", [EXP], [5900.0], trading_class="SPXW")
    both = await ib.reqContractDetailsAsync(Option("SPX", "20261218", 5900.0, "C", "SMART"))
    assert sorted(d.contract.tradingClass for d in both) == ["SPX", "SPXW"]
    [weekly] = await qualified(ib, Option("SPX", "20261218", 5900.0, "C", "SMART", tradingClass="SPXW"))
    assert weekly.localSymbol == "SPXW  261218C05900000"
    assert weekly.conId == tws.option_con_id("SPX", EXP, 5900.0, "C", trading_class="SPXW")
    with pytest.raises(KeyError):
        tws.option_con_id("SPX", EXP, 5900.0, "C")  # ambiguous without the trading class
    chains = await ib.reqSecDefOptParamsAsync("SPX", "", "IND", 0)
    assert sorted({c.tradingClass for c in chains}) == ["SPX", "SPXW"]


# ----------------------------------------------------------------------------- market data
async def test_option_market_data_with_greeks_and_open_interest(tws: FakeTWS, ib: IB) -> None:
    stk, call, put, call595 = await qualified(ib, Stock("SPY", "SMART", "USD"), call590(),
                                              Option("SPY", "20261218", 590.0, "P", "SMART"),
                                              Option("SPY", "20261218", 595.0, "C", "SMART"))
    tc = ib.reqMktData(call, "100,101")
    tp = ib.reqMktData(put, "100,101")
    t595 = ib.reqMktData(call595)
    await until(lambda: tc.modelGreeks and tp.modelGreeks and t595.bid == 2.0, what="first ticks")
    assert (tc.bid, tc.ask, tc.bidSize, tc.askSize) == (4.1, 4.3, 10, 10)
    g = tc.modelGreeks
    assert (g.impliedVol, g.delta, g.gamma, g.vega, g.theta) == (0.18, 0.52, 0.012, 0.9, -0.05)
    assert g.undPrice == 590.0 and g.optPrice == pytest.approx(4.2)
    assert tc.callOpenInterest == 1234 and tc.callVolume == 10 and tc.volume == 10
    assert tp.putOpenInterest == 777 and tp.modelGreeks.delta == -0.48
    assert math.isnan(t595.callOpenInterest)  # no generic tick 101 -> no open interest

    tws.set_option_quote("SPY", EXP, 590.0, "C", bid=4.4, ask=4.6, iv=0.19, delta=0.55, open_interest=1300,
                         volume=50, und_price=591.0)
    await until(lambda: tc.bid == 4.4 and tc.modelGreeks.delta == 0.55, what="pushed option quote")
    assert (tc.ask, tc.callOpenInterest, tc.volume, tc.modelGreeks.undPrice) == (4.6, 1300, 50, 591.0)

    ts = ib.reqMktData(stk, "101")
    await until(lambda: ts.last == 590.0 and ts.bid == 589.95, what="stock ticks")
    assert ts.callOpenInterest == 1300 + 0 and ts.putOpenInterest == 777  # underlying-level OI
    tws.set_stock_quote("SPY", bid=590.5, ask=590.6, bid_size=300)
    await until(lambda: ts.bid == 590.5 and ts.bidSize == 300 and ts.ask == 590.6, what="pushed stock quote")
    assert ts.marketDataType == 1

    [snap] = await ib.reqTickersAsync(Stock("SPY", "SMART", "USD", conId=stk.conId))
    assert snap.bid == 590.5 and snap.last == 590.0
    assert tws.market_data_lines() == 4  # the snapshot holds no line


async def test_market_depth(tws: FakeTWS, ib: IB) -> None:
    [stk] = await qualified(ib, Stock("SPY", "SMART", "USD"))
    tws.set_depth("SPY", bids=[(589.95, 300), (589.90, 500), (589.85, 700)],
                  asks=[(590.05, 200), (590.10, 400)])
    t = ib.reqMktDepth(stk, numRows=5)
    await until(lambda: len(t.domBids) == 3 and len(t.domAsks) == 2, what="book")
    assert [(lv.price, lv.size) for lv in t.domBids] == [(589.95, 300), (589.90, 500), (589.85, 700)]
    assert [(lv.price, lv.size) for lv in t.domAsks] == [(590.05, 200), (590.10, 400)]
    tws.set_depth("SPY", bids=[(590.00, 100)], asks=[(590.05, 250), (590.10, 400), (590.15, 900)])
    await until(lambda: len(t.domBids) == 1 and len(t.domAsks) == 3, what="book update")
    assert [(lv.price, lv.size) for lv in t.domBids] == [(590.00, 100)]
    assert [(lv.price, lv.size) for lv in t.domAsks] == [(590.05, 250), (590.10, 400), (590.15, 900)]


async def test_delayed_market_data_without_permission(tws: FakeTWS, ib: IB) -> None:
    tws.market_data_permission = False
    [stk] = await qualified(ib, Stock("SPY", "SMART", "USD"))
    answered: list[tuple[int, int]] = []
    original = ib.wrapper.marketDataType

    def spy_market_data_type(req_id: int, md_type: int) -> None:
        answered.append((req_id, md_type))
        original(req_id, md_type)

    ib.wrapper.marketDataType = spy_market_data_type  # type: ignore[method-assign]
    ib.reqMarketDataType(1)
    await until(lambda: (-1, 3) in answered, what="marketDataType 3")

    errors = record_errors(ib)
    t = ib.reqMktData(stk)
    seen: set[int] = set()
    t.updateEvent += lambda tk: seen.update(tick.tickType for tick in tk.ticks)
    await until(lambda: t.bid == 589.95 and t.last == 590.0, what="delayed ticks")
    assert t.marketDataType == 3
    assert [e[1:] for e in errors] == [
        (10167, "Requested market data is not subscribed. Displaying delayed market data.")]
    assert {66, 67, 68} <= seen and not seen & {1, 2, 4}  # delayed bid / ask / last tick types
    tws.set_stock_quote("SPY", bid=590.2)
    await until(lambda: t.bid == 590.2, what="pushed delayed quote")

    ib.reqMarketDataType(3)
    await until(lambda: answered[-1] == (-1, 3) and len(answered) >= 3, what="second marketDataType")


async def test_market_data_line_and_depth_limits(tws: FakeTWS, ib: IB) -> None:
    contracts = await qualified(ib, Stock("SPY", "SMART", "USD"), call590(),
                                Option("SPY", "20261218", 590.0, "P", "SMART"),
                                Option("SPY", "20261218", 595.0, "C", "SMART"))
    tws.max_market_data_lines = 2
    errors = record_errors(ib)
    tickers = [ib.reqMktData(c) for c in contracts[:3]]
    await until(lambda: any(code == 101 for _, code, _ in errors), what="error 101")
    [(req_id, _, msg)] = [e for e in errors if e[1] == 101]
    assert msg == "Max number of tickers has been reached"
    assert ib.wrapper.reqId2Ticker[req_id] is tickers[2]
    assert tws.market_data_lines() == 2
    ib.cancelMktData(contracts[0])
    await tws.wait_for_async(lambda f: f.market_data_lines() == 1, timeout=2)

    tws.set_depth("SPY", [(589.95, 100)], [(590.05, 100)])
    depth = [ib.reqMktDepth(c) for c in contracts]
    await until(lambda: any(code == 309 for _, code, _ in errors), what="error 309")
    [(req_id, _, msg)] = [e for e in errors if e[1] == 309]
    assert msg == "Max number (3) of market depth requests has been reached"
    assert ib.wrapper.reqId2Ticker[req_id] is depth[3]
    await until(lambda: depth[0].domBids, what="book of the first depth request")


# ----------------------------------------------------------------------------- orders
async def test_limit_order_partial_then_full_fill(tws: FakeTWS, ib: IB) -> None:
    [opt] = await qualified(ib, call590())
    reports: list[Any] = []
    ib.commissionReportEvent += lambda trade, fill, report: reports.append(report)
    trade = ib.placeOrder(opt, LimitOrder("BUY", 3, 4.2, orderRef="q-1"))
    fills_when_filled: list[int] = []
    trade.filledEvent += lambda t: fills_when_filled.append(len(t.fills))
    await until(lambda: trade.orderStatus.status in ("Submitted", "PreSubmitted"), what="Submitted")
    assert trade.order.permId > 0

    exec_id = tws.fill_order("q-1", qty=1)
    await until(lambda: trade.orderStatus.filled == 1, what="partial fill")
    assert (trade.orderStatus.status, trade.orderStatus.remaining) == ("Submitted", 2)
    await until(lambda: len(reports) == 1, what="first commission report")
    assert reports[0].execId == exec_id and reports[0].commission == pytest.approx(0.65)
    assert reports[0].currency == "USD"

    second = tws.fill_order(trade.order.orderId)  # by IB order id, rest of the quantity
    await until(lambda: trade.orderStatus.status == "Filled", what="Filled")
    st = trade.orderStatus
    assert (st.filled, st.remaining, st.avgFillPrice) == (3, 0, 4.2)
    assert fills_when_filled == [2]  # execDetails arrive before the Filled status
    await until(lambda: len(reports) == 2, what="second commission report")
    assert reports[1].execId == second and reports[1].commission == pytest.approx(1.3)
    assert [f.execution.execId for f in trade.fills] == [exec_id, second]
    ex = trade.fills[0].execution
    assert (ex.side, ex.shares, ex.price, ex.orderRef, ex.acctNumber, ex.clientId) == (
        "BOT", 1, 4.2, "q-1", ACCOUNT, CID)
    assert trade.fills[0].commissionReport.commission == pytest.approx(0.65)
    assert trade.order.orderRef == "q-1"

    [order] = tws.orders
    assert (order["status"], order["filled"], order["order_ref"], order["client_id"], order["con_id"]) == (
        "Filled", 3, "q-1", CID, opt.conId)
    qty, avg = tws.positions[opt.conId]
    assert qty == 3 and avg == pytest.approx(420.65)  # IB's avgCost: price * multiplier + commission
    await until(lambda: [p.position for p in ib.positions() if p.contract.conId == opt.conId] == [3],
                what="position update")
    await until(lambda: [p.position for p in ib.portfolio() if p.contract.conId == opt.conId] == [3],
                what="portfolio update")
    with pytest.raises(ValueError):
        tws.fill_order("q-1")  # nothing left to fill


async def test_modify_keeps_perm_id(tws: FakeTWS, ib: IB) -> None:
    [opt] = await qualified(ib, call590())
    order = LimitOrder("BUY", 2, 4.0, orderRef="mod-1")
    trade = ib.placeOrder(opt, order)
    await until(lambda: trade.orderStatus.status == "Submitted", what="Submitted")
    order.lmtPrice = 4.05
    ib.placeOrder(opt, order)
    await tws.wait_for_async(lambda t: len(t.order_log) == 2, timeout=2)
    first, second = tws.order_log
    assert (first["lmt_price"], second["lmt_price"]) == (4.0, 4.05)
    assert first["perm_id"] == second["perm_id"] == trade.order.permId
    assert second["modification"] and second["ts"] >= first["ts"]
    await until(lambda: any(e.message == "Modified" for e in trade.log), what="modification acknowledged")
    assert trade.order.lmtPrice == 4.05
    [current] = tws.orders
    assert (current["lmt_price"], current["perm_id"], current["status"]) == (
        4.05, trade.order.permId, "Submitted")


async def test_cancel_order(tws: FakeTWS, ib: IB) -> None:
    [opt] = await qualified(ib, call590())
    errors = record_errors(ib)
    trade = ib.placeOrder(opt, LimitOrder("SELL", 1, 5.0, orderRef="c-1"))
    await until(lambda: trade.orderStatus.status == "Submitted", what="Submitted")
    ib.cancelOrder(trade.order)
    await until(lambda: trade.orderStatus.status == "Cancelled", what="Cancelled")
    await until(lambda: (trade.order.orderId, 202, "Order Canceled - reason:") in errors, what="error 202")
    assert tws.cancel_log == [trade.order.orderId]
    assert tws.orders[0]["status"] == "Cancelled"
    with pytest.raises(ValueError):
        tws.fill_order("c-1")

    other = ib.placeOrder(opt, LimitOrder("SELL", 1, 5.0, orderRef="c-2"))
    await until(lambda: other.orderStatus.status == "Submitted", what="Submitted")
    tws.cancel_order("c-2")  # cancelled by IB (e.g. a DAY order at the close)
    await until(lambda: other.orderStatus.status == "Cancelled", what="server-side cancel")
    assert (other.order.orderId, 202, "Order Canceled - reason:") in errors
    assert tws.cancel_log == [trade.order.orderId]


async def test_rejected_order(tws: FakeTWS, ib: IB) -> None:
    [opt] = await qualified(ib, call590())
    errors = record_errors(ib)
    tws.reject_next_order()
    trade = ib.placeOrder(opt, LimitOrder("BUY", 1, 4.2, orderRef="rej-1"))
    await until(trade.isDone, what="rejected order done")
    assert trade.orderStatus.status in ("Cancelled", "Inactive")
    assert (trade.order.orderId, 201, "Order rejected - reason:TEST") in errors
    assert tws.orders[0]["status"] == "Inactive"
    ok = ib.placeOrder(opt, LimitOrder("BUY", 1, 4.2, orderRef="ok-1"))  # only the next order is rejected
    await until(lambda: ok.orderStatus.status == "Submitted", what="next order accepted")


async def test_fill_while_disconnected_is_replayed(tws: FakeTWS, ib: IB) -> None:
    [opt] = await qualified(ib, call590())
    filled = ib.placeOrder(opt, LimitOrder("BUY", 2, 4.2, orderRef="offline-1"))
    working = ib.placeOrder(opt, LimitOrder("BUY", 1, 3.5, orderRef="resting-1"))
    await until(lambda: working.orderStatus.status == "Submitted" == filled.orderStatus.status,
                what="Submitted")
    disconnected = asyncio.Event()
    ib.disconnectedEvent += disconnected.set
    tws.drop_connections()
    await asyncio.wait_for(disconnected.wait(), 2)
    assert tws.connected_clients == []
    exec_id = tws.fill_order("offline-1")

    ib2 = IB()
    await ib2.connectAsync(tws.host, tws.port, clientId=CID, timeout=5, raiseSyncErrors=True)
    try:
        [fill] = [f for f in ib2.fills() if f.execution.execId == exec_id]
        assert (fill.execution.orderRef, fill.execution.shares, fill.execution.permId) == (
            "offline-1", 2, filled.order.permId)
        assert fill.commissionReport.commission == pytest.approx(1.3)
        assert exec_id in [f.execution.execId for f in await ib2.reqExecutionsAsync()]
        held = [(p.account, p.position, p.avgCost) for p in ib2.positions() if p.contract.conId == opt.conId]
        assert held == [(ACCOUNT, 2, pytest.approx(420.65))]
        completed = await ib2.reqCompletedOrdersAsync(False)
        [done] = [t for t in completed if t.order.permId == filled.order.permId]
        assert (done.orderStatus.status, done.order.orderRef, done.order.lmtPrice) == (
            "Filled", "offline-1", 4.2)
        [still] = ib2.openTrades()
        assert (still.order.orderId, still.order.orderRef, still.orderStatus.status) == (
            working.order.orderId, "resting-1", "Submitted")
        fresh = ib2.placeOrder(opt, LimitOrder("BUY", 1, 3.0, orderRef="after"))
        assert fresh.order.orderId > working.order.orderId  # nextValidId starts above used ids
        await until(lambda: fresh.orderStatus.status == "Submitted", what="new order")
    finally:
        ib2.disconnect()

    other = IB()  # another client sees the orders only through reqAllOpenOrders
    await other.connectAsync(tws.host, tws.port, clientId=CID + 1, timeout=5, raiseSyncErrors=True)
    try:
        assert other.openTrades() == []
        refs = sorted(t.order.orderRef for t in await other.reqAllOpenOrdersAsync())
        assert refs == ["after", "resting-1"]
    finally:
        other.disconnect()


async def test_marketable_fill_mode(tws: FakeTWS, ib: IB) -> None:
    [opt] = await qualified(ib, call590())
    tws.fill_mode = "marketable"
    reports: list[Any] = []
    ib.commissionReportEvent += lambda trade, fill, report: reports.append(report)
    buy = ib.placeOrder(opt, LimitOrder("BUY", 2, 4.3, orderRef="m-buy"))  # at the ask -> fills
    await until(lambda: buy.orderStatus.status == "Filled", what="marketable buy filled")
    assert buy.orderStatus.avgFillPrice == 4.3
    sell = ib.placeOrder(opt, LimitOrder("SELL", 1, 4.5, orderRef="m-sell"))  # above the bid -> rests
    await until(lambda: sell.orderStatus.status == "Submitted", what="sell resting")
    await asyncio.sleep(0.05)
    assert sell.orderStatus.filled == 0
    tws.set_option_quote("SPY", EXP, 590.0, "C", bid=4.5, ask=4.7)  # the bid reaches the limit
    await until(lambda: sell.orderStatus.status == "Filled", what="resting sell filled")
    assert sell.orderStatus.avgFillPrice == 4.5
    mkt = ib.placeOrder(opt, MarketOrder("BUY", 1, orderRef="m-mkt"))
    await until(lambda: mkt.orderStatus.status == "Filled", what="market order filled")
    assert mkt.orderStatus.avgFillPrice == 4.7
    await until(lambda: len(reports) == 3, what="commission reports")
    # closing 1 of 2 bought at 4.30 (+0.65 commission each): 450 - 430.65 - 0.65
    assert reports[1].realizedPNL == pytest.approx(18.7)
    assert reports[0].realizedPNL == 0.0  # opening fill: TWS sends "no value"
    assert tws.positions[opt.conId][0] == 2


async def test_commission_delay_and_withholding(tws: FakeTWS, ib: IB) -> None:
    [opt] = await qualified(ib, call590())
    reports: list[tuple[float, Any]] = []
    ib.commissionReportEvent += lambda trade, fill, report: reports.append((time.monotonic(), report))
    tws.commission_delay_s = 0.3
    trade = ib.placeOrder(opt, LimitOrder("BUY", 1, 4.2, orderRef="d-1"))
    await until(lambda: trade.orderStatus.status == "Submitted", what="Submitted")
    started = time.monotonic()
    tws.fill_order("d-1")
    await until(lambda: trade.fills, what="fill")
    assert trade.fills[0].commissionReport.commission == 0
    await until(lambda: reports, what="delayed commission")
    assert reports[0][0] - started >= 0.25

    tws.withhold_commission = True
    trade2 = ib.placeOrder(opt, LimitOrder("BUY", 1, 4.2, orderRef="d-2"))
    await until(lambda: trade2.orderStatus.status == "Submitted", what="Submitted")
    tws.fill_order("d-2")
    await until(lambda: trade2.orderStatus.status == "Filled" and trade2.fills, what="second fill")
    await asyncio.sleep(0.4)
    assert len(reports) == 1 and trade2.fills[0].commissionReport.commission == 0
    assert [e["commissionSent"] for e in tws.executions] == [True, False]


async def test_what_if_order(tws: FakeTWS, ib: IB) -> None:
    [opt] = await qualified(ib, call590())
    state = await asyncio.wait_for(ib.whatIfOrderAsync(opt, LimitOrder("BUY", 2, 4.2)), 2)
    assert float(state.initMarginChange) == pytest.approx(840.0)
    assert state.commission == pytest.approx(1.3)
    assert tws.orders == []


# ----------------------------------------------------------------------------- account, faults, protocol
async def test_account_values_positions_and_summary(tws: FakeTWS, ib: IB) -> None:
    values = {v.tag: v.value for v in ib.accountValues() if v.currency == "USD" and not v.modelCode}
    assert values["NetLiquidation"] == "100000" and values["BuyingPower"] == "400000"
    assert values["TotalCashValue"] == "100000" and values["AvailableFunds"] == "100000"
    summary = {v.tag: v.value for v in await ib.accountSummaryAsync(ACCOUNT)}
    assert summary["NetLiquidation"] == "100000" and summary["AccountType"] == "INDIVIDUAL"

    tws.set_position("SPY", EXP, 590.0, "C", 5, 410.0)
    await until(lambda: [(p.position, p.avgCost) for p in ib.positions()] == [(5, 410.0)],
                what="position push")
    await until(lambda: [(p.position, p.averageCost) for p in ib.portfolio()] == [(5, 410.0)],
                what="portfolio push")
    assert tws.positions == {tws.option_con_id("SPY", EXP, 590.0, "C"): (5, 410.0)}
    tws.set_account_value("BuyingPower", 1234.5)
    await until(lambda: any(v.tag == "BuyingPower" and v.value == "1234.5" for v in ib.accountValues()),
                what="account value push")
    tws.set_position("SPY", EXP, 590.0, "C", 0, 0.0)
    await until(lambda: ib.positions() == [], what="position closed")


async def test_error_notices_and_dropped_connection(tws: FakeTWS, ib: IB) -> None:
    errors = record_errors(ib)
    tws.send_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
    await until(lambda: (-1, 1100, "Connectivity between IB and Trader Workstation has been lost.") in errors,
                what="1100")
    tws.send_error(2103, "Market data farm connection is broken:usfarm")
    tws.send_error(1102, "Connectivity between IB and Trader Workstation has been restored - data maintained")
    await until(lambda: {c for _, c, _ in errors} >= {1100, 2103, 1102}, what="notices")
    # ib_async re-requests the account summary on 1102
    await until(lambda: any(e[1] == 62 for e in tws.request_log), what="account summary request")

    disconnected = asyncio.Event()
    ib.disconnectedEvent += disconnected.set
    tws.drop_connections()
    await asyncio.wait_for(disconnected.wait(), 2)
    assert not ib.isConnected() and tws.connected_clients == []


async def test_request_log_and_message_rate_limit(tws: FakeTWS, ib: IB) -> None:
    tws.clear_logs()
    errors = record_errors(ib)
    tws.max_messages_per_second = 20
    for _ in range(30):
        ib.client.reqIds(1)
    await tws.wait_for_async(lambda t: len(t.request_log) == 30, timeout=2)
    log = tws.request_log
    assert {(msg_id, client_id) for _, msg_id, client_id, _ in log} == {(8, CID)}
    assert log[-1][0] - log[0][0] < 1.0  # 30 messages inside one second: over the limit of 20
    await until(lambda: sum(code == 100 for _, code, _ in errors) == 10, what="error 100 x10")
    await asyncio.to_thread(tws.wait_for, lambda t: t.connected_clients == [CID], 1.0)


@pytest.mark.parametrize("version", [170, 177, 178])
async def test_other_server_versions(version: int) -> None:
    with _make_tws(server_version=version) as tws:
        ib = IB()
        await ib.connectAsync(tws.host, tws.port, clientId=5, timeout=5, raiseSyncErrors=True)
        try:
            assert ib.client.serverVersion() == version
            [opt] = await qualified(ib, call590())
            trade = ib.placeOrder(opt, LimitOrder("BUY", 1, 4.2, orderRef=f"v{version}"))
            await until(lambda: trade.orderStatus.status == "Submitted", what="Submitted")
            tws.fill_order(f"v{version}")
            await until(lambda: trade.orderStatus.status == "Filled" and trade.fills, what="Filled")
            assert trade.fills[0].execution.orderRef == f"v{version}" == trade.order.orderRef
            [done] = await ib.reqCompletedOrdersAsync(False)
            assert (done.order.permId, done.orderStatus.status) == (trade.order.permId, "Filled")
        finally:
            ib.disconnect()
