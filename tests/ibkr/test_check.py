"""``ibkr check`` against the fake TWS: what it reports, and the one-line error (exit 2) when it cannot connect."""

from __future__ import annotations

import socket
import time

import pytest
from ib_async import IB, LimitOrder, Option

from core.ibkr.check import check, format_check
from core.ibkr.connection import IbUnavailable
from tests.fakes.ib_tws import FakeTWS
from tests.ibkr.conftest import EXPIRIES, until

pytestmark = pytest.mark.usefixtures("no_decoder_errors")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_check_reports_the_account(tws: FakeTWS, ib_settings) -> None:
    tws.set_position("SPY", EXPIRIES[1], 590.0, "C", qty=2, avg_cost=420.65)
    other = IB()  # an order working from the execution client id
    await other.connectAsync("127.0.0.1", tws.port, clientId=12, timeout=5)
    try:
        [opt] = await other.qualifyContractsAsync(Option("SPY", f"{EXPIRIES[1]:%Y%m%d}", 590.0, "C", "SMART"))
        trade = other.placeOrder(opt, LimitOrder("BUY", 3, 4.2, orderRef="q-1"))
        await until(lambda: trade.orderStatus.status == "Submitted", what="order working")
        d = await check(ib_settings)
    finally:
        other.disconnect()
    assert {"server_version", "accounts", "net_liquidation", "positions", "open_orders"} <= set(d)
    assert d["server_version"] == 176 and d["accounts"] == ["DU1234567"]  # unmasked here only
    assert d["net_liquidation"] == pytest.approx(float(tws.account_values()["NetLiquidation"]))
    assert d["client_id"] == 19
    [p] = d["positions"]
    assert {k: p[k] for k in ("symbol", "expiry", "strike", "right", "qty", "avg_cost")} == {
        "symbol": "SPY", "expiry": EXPIRIES[1].isoformat(), "strike": 590.0, "right": "C", "qty": 2.0,
        "avg_cost": 420.65}
    [o] = d["open_orders"]
    assert (o["client_id"], o["action"], o["qty"], o["limit"], o["status"], o["order_ref"]) == (
        12, "BUY", 3.0, 4.2, "Submitted", "q-1")
    assert [e[2] for e in tws.request_log if e[1] == 71][-1] == 19  # the check client id
    await tws.wait_for_async(lambda t: 19 not in t.connected_clients, timeout=2)  # disconnected after
    text = format_check(d)
    assert "server version 176" in text and "DU1234567" in text and f"{d['net_liquidation']:,.2f}" in text
    assert f"SPY {EXPIRIES[1].isoformat()} 590C" in text and "qty 2" in text and "ref q-1" in text


async def test_check_overrides_host_port_and_client_id(tws: FakeTWS, ib_settings) -> None:
    moved = ib_settings.model_copy(update={"ibkr": ib_settings.ibkr.model_copy(update={"port": free_port()})})
    d = await check(moved, host="127.0.0.1", port=tws.port, client_id=23)
    assert d["client_id"] == 23 and d["positions"] == [] and d["open_orders"] == []
    assert [e[2] for e in tws.request_log if e[1] == 71] == [23]


async def test_check_refused_connection_is_one_line(ib_settings) -> None:
    port = free_port()
    with pytest.raises(IbUnavailable) as err:
        await check(ib_settings, port=port)
    line = str(err.value)
    assert "\n" not in line and f"127.0.0.1:{port}" in line and "refused" in line


async def test_check_client_id_in_use_is_one_line_and_fast(tws: FakeTWS, ib_settings) -> None:
    tws.refuse_client_ids = {19}
    started = time.monotonic()
    with pytest.raises(IbUnavailable) as err:
        await check(ib_settings, timeout=5)
    assert time.monotonic() - started < 2.0
    assert "\n" not in str(err.value) and "326" in str(err.value) and "client id 19" in str(err.value)
