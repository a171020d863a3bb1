"""IbConnection through the real ib_async client against the fake TWS: client ids, state in Redis
and on the bus, reconnects with backoff and resubscription, 1100/1101, 2103/2104, 326, delayed
data, competing sessions."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.bus.events import AlertEvent, AuditEvent
from core.ibkr.connection import IbConnection, IbUnavailable
from core.ibkr.market_data import IbkrMarketSource
from tests.fakes.ib_tws import FakeTWS
from tests.ibkr.conftest import make_ib_context, make_ib_settings, requests, stream_events, until

pytestmark = pytest.mark.usefixtures("no_decoder_errors")

START_API, REQ_MKT_DATA, CANCEL_MKT_DATA = 71, 1, 2


def make_conn(ctx, role="market", **over) -> IbConnection:
    settings = ctx.settings.ibkr.model_copy(update=over) if over else ctx.settings.ibkr
    return IbConnection(settings, role, redis=ctx.redis, keys=ctx.keys, bus=ctx.bus, clock=ctx.clock)


async def audit_states(ctx, role="market") -> list[str]:
    return [e.detail["state"] for e in await stream_events(ctx.bus, "audit")
            if isinstance(e, AuditEvent) and e.actor == f"ibkr:{role}"]


async def alerts(ctx, code: str) -> list[AlertEvent]:
    return [e for e in await stream_events(ctx.bus, "alerts") if isinstance(e, AlertEvent) and e.code == code]


@pytest.mark.parametrize(("role", "hash_name", "client_id"), [("market", "feed_ibkr", 11), ("execution", "broker", 12)])
async def test_connects_with_its_client_id_and_publishes_state(tws: FakeTWS, ib_ctx, role, hash_name,
                                                                client_id) -> None:
    conn = make_conn(ib_ctx, role)
    await conn.start()
    try:
        assert conn.connected and conn.client_id == client_id
        assert tws.connected_clients == [client_id]
        assert [e[2] for e in requests(tws, START_API)] == [client_id]
        assert conn.account == "DU1234567" and conn.server_version == 176 and conn.market_data_type == 1
        await conn.flush()
        h = await ib_ctx.redis.hgetall(ib_ctx.keys.hash(hash_name))
        assert {k: h[k] for k in ("connected", "name", "account", "server_version", "market_data_type")} == {
            "connected": "1", "name": "ibkr", "account": "DU****567", "server_version": "176",
            "market_data_type": "1"}
        assert int(h["since_ms"]) == ib_ctx.clock.ms()
        [ev] = [e for e in await stream_events(ib_ctx.bus, "audit") if isinstance(e, AuditEvent)]
        assert (ev.actor, ev.action, ev.detail) == (f"ibkr:{role}", "connection",
                                                    {"state": "connected", "code": 0, "client_id": client_id})
    finally:
        await conn.stop()
    assert (await ib_ctx.redis.hget(ib_ctx.keys.hash(hash_name), "connected")) == "0"
    await tws.wait_for_async(lambda t: t.connected_clients == [], timeout=2)


def test_mask_account() -> None:
    assert IbConnection.mask_account("DU1234567") == "DU****567"
    assert IbConnection.mask_account("U12") == "****"
    assert IbConnection.mask_account(None) == ""


def test_backoff_is_exponential_with_full_jitter(ib_ctx) -> None:
    conn = make_conn(ib_ctx, reconnect_min_s=1.0, reconnect_max_s=60.0)
    for attempt, cap in enumerate([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]):
        delays = [conn.backoff(attempt) for _ in range(300)]
        assert all(1.0 <= d <= cap for d in delays), (attempt, min(delays), max(delays))
        if cap > 1.0:  # spread over the whole window, not a fixed delay
            assert max(delays) - min(delays) > (cap - 1.0) * 0.5
    assert conn.backoff(10_000) <= 60.0


async def test_drop_reconnects_with_backoff_and_quotes_flow_again(tws: FakeTWS, ib_ctx) -> None:
    src = IbkrMarketSource(ib_ctx)
    lost: list[float] = []
    src.conn.on_lost(lambda: lost.append(time.monotonic()))
    await src.start(ib_ctx.clock.now())
    try:
        await until(lambda: src.quote("SPY") is not None, what="first SPY quote")
        assert await src.advance(ib_ctx.clock.now())
        lines_before = tws.market_data_lines()
        tws.drop_connections()
        dropped = time.monotonic()
        await until(lambda: lost, what="on_lost")
        assert not src.conn.connected
        assert not await src.advance(ib_ctx.clock.now())  # nothing to publish while down
        assert src.quote("SPY").stale
        await until(lambda: src.conn.connected, what="reconnect")
        starts = requests(tws, START_API, 11)
        assert len(starts) == 2
        assert starts[1][0] - dropped >= ib_ctx.settings.ibkr.reconnect_min_s  # waited the backoff first
        # resubscribed: the same lines again, and new prices flow
        await until(lambda: tws.market_data_lines() == lines_before, what="lines back")
        tws.set_stock_quote("SPY", bid=591.0, ask=591.1, last=591.05)
        await until(lambda: src.quote("SPY").bid == 591.0, what="quote after reconnect")
        assert not src.quote("SPY").stale
        await src.conn.flush()
        assert await audit_states(ib_ctx) == ["connected", "lost", "reconnecting", "connected"]
        assert (await ib_ctx.redis.hget(ib_ctx.keys.hash("feed_ibkr"), "connected")) == "1"
    finally:
        await src.stop()


async def test_1100_then_1101_resubscribes_on_the_same_socket(tws: FakeTWS, ib_ctx) -> None:
    src = IbkrMarketSource(ib_ctx)
    await src.start(ib_ctx.clock.now())
    try:
        await until(lambda: src.quote("QQQ") is not None, what="first quote")
        subs, lines = len(requests(tws, REQ_MKT_DATA, 11)), tws.market_data_lines()
        tws.send_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
        await until(lambda: not src.conn.connected, what="1100 -> lost")
        await src.conn.flush()
        assert (await ib_ctx.redis.hget(ib_ctx.keys.hash("feed_ibkr"), "connected")) == "0"
        tws.send_error(1101, "Connectivity between IB and TWS has been restored- data lost.")
        await until(lambda: src.conn.connected, what="1101 -> connected")
        await until(lambda: len(requests(tws, REQ_MKT_DATA, 11)) == subs + lines, what="every line re-requested")
        assert len(requests(tws, CANCEL_MKT_DATA, 11)) == lines  # the old ids cancelled first
        assert tws.market_data_lines() == lines  # no line held twice
        assert len(requests(tws, START_API)) == 1  # same socket, no reconnect
        tws.set_stock_quote("QQQ", bid=512.0, ask=512.1)
        await until(lambda: src.quote("QQQ").bid == 512.0, what="quote after 1101")
    finally:
        await src.stop()


async def test_1100_without_restore_reconnects_the_socket(tws: FakeTWS, ib_ctx) -> None:
    conn = make_conn(ib_ctx)
    ready: list[bool] = []

    async def on_ready(first: bool) -> None:
        ready.append(first)

    conn.on_ready(on_ready)
    await conn.start()
    try:
        tws.send_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
        await until(lambda: not conn.connected, what="1100 -> lost")
        assert len(requests(tws, START_API, 11)) == 1  # TWS gets reconnect_max_s to restore it first
        await until(lambda: len(requests(tws, START_API, 11)) == 2 and conn.connected, what="socket reconnect")
        assert ready == [True, False]
        await conn.flush()
        assert await audit_states(ib_ctx) == ["connected", "lost", "reconnecting", "connected"]
    finally:
        await conn.stop()


async def test_1300_reconnects_at_once(tws: FakeTWS, ib_ctx) -> None:
    conn = make_conn(ib_ctx)
    await conn.start()
    try:
        tws.send_error(1300, "TWS socket port has been reset and this connection is being dropped.")
        await until(lambda: len(requests(tws, START_API, 11)) == 2 and conn.connected, what="reconnect")
        assert tws.connected_clients == [11]
    finally:
        await conn.stop()


async def test_pacing_errors_are_counted(tws: FakeTWS, ib_ctx) -> None:
    from core.runtime.metrics import REJECTED

    conn = make_conn(ib_ctx)
    await conn.start()
    try:
        before = REJECTED.labels("ibkr_market", "pacing")._value.get()
        tws.max_messages_per_second = 5  # tighter than what this client was told
        for _ in range(8):
            conn.ib.client.reqCurrentTime()
        await until(lambda: conn.pacing_violations >= 3, what="error 100 (messages beyond 5 in a second)")
        await asyncio.sleep(0.05)
        assert REJECTED.labels("ibkr_market", "pacing")._value.get() == before + conn.pacing_violations
        assert conn.connected
    finally:
        await conn.stop()


async def test_2104_resubscribes_only_after_2103(tws: FakeTWS, ib_ctx) -> None:
    src = IbkrMarketSource(ib_ctx)
    await src.start(ib_ctx.clock.now())
    try:
        await until(lambda: src.quote("SPY") is not None, what="first quote")
        subs = len(requests(tws, REQ_MKT_DATA, 11))
        tws.send_error(2104, "Market data farm connection is OK:usfarm")  # routine notice: nothing to do
        await asyncio.sleep(0.3)
        assert len(requests(tws, REQ_MKT_DATA, 11)) == subs
        tws.send_error(2103, "Market data farm connection is broken:usfarm")
        tws.send_error(2104, "Market data farm connection is OK:usfarm")
        await until(lambda: len(requests(tws, REQ_MKT_DATA, 11)) > subs, what="resubscribe after 2103/2104")
        assert src.conn.connected
    finally:
        await src.stop()


async def test_client_id_in_use_at_start_is_one_critical_alert_and_no_retry(tws: FakeTWS, ib_ctx) -> None:
    tws.refuse_client_ids = {11}
    conn = make_conn(ib_ctx)
    started = time.monotonic()
    with pytest.raises(IbUnavailable) as err:
        await conn.start()
    assert time.monotonic() - started < 1.5  # seen at once, not after the 3 s connect timeout
    line = str(err.value)
    assert "\n" not in line and "client id 11" in line and "326" in line
    [alert] = await alerts(ib_ctx, "IB_CLIENT_ID_IN_USE")
    assert (alert.severity, alert.state, alert.subject) == ("CRITICAL", "raised", "ibkr:market")
    assert "11" in alert.message and "market" in alert.message
    await asyncio.sleep(5 * ib_ctx.settings.ibkr.reconnect_max_s)
    assert len(requests(tws, START_API, 11)) == 1
    assert (await ib_ctx.redis.hget(ib_ctx.keys.hash("feed_ibkr"), "state")) == "refused"
    await conn.stop()


async def test_client_id_in_use_on_reconnect_stops_the_loop(tws: FakeTWS, ib_ctx) -> None:
    conn = make_conn(ib_ctx)
    await conn.start()
    try:
        tws.refuse_client_ids = {11}
        tws.drop_connections()
        await until(lambda: len(requests(tws, START_API, 11)) == 2, what="one reconnect attempt")
        await until(lambda: conn.refused, what="326 seen")
        await conn.flush()
        await asyncio.sleep(5 * ib_ctx.settings.ibkr.reconnect_max_s)
        assert len(requests(tws, START_API, 11)) == 2  # no loop
        assert not conn.connected
        assert len(await alerts(ib_ctx, "IB_CLIENT_ID_IN_USE")) == 1
        assert (await audit_states(ib_ctx))[-1] == "refused"
    finally:
        await conn.stop()


async def test_delayed_data_is_visible_once(bus, tws: FakeTWS) -> None:
    tws.market_data_permission = False
    ctx = make_ib_context(bus, make_ib_settings(tws.port))
    src = IbkrMarketSource(ctx)
    await src.start(ctx.clock.now())
    try:
        await until(lambda: src.conn.market_data_type == 3, what="delayed reported")
        await until(lambda: src.quote("SPY") is not None, what="delayed quotes still usable")
        for _ in range(3):
            await src.advance(ctx.clock.now())
            await asyncio.sleep(0.05)
        await src.conn.flush()
        assert (await ctx.redis.hget(ctx.keys.hash("feed_ibkr"), "market_data_type")) == "3"
        [alert] = await alerts(ctx, "MARKET_DATA_DELAYED")  # once, not once per 10167
        assert (alert.severity, alert.state) == ("WARNING", "raised") and "delayed" in alert.message
        assert "market data: delayed" in src.describe()
        tws.market_data_permission = True  # subscribed again: the next session is live
        tws.drop_connections()
        await until(lambda: src.conn.connected and src.conn.market_data_type == 1, what="live again")
        await src.conn.flush()
        assert [(a.state, a.severity) for a in await alerts(ctx, "MARKET_DATA_DELAYED")] == [
            ("raised", "WARNING"), ("cleared", "WARNING")]
        assert (await ctx.redis.hget(ctx.keys.hash("feed_ibkr"), "market_data_type")) == "1"
    finally:
        await src.stop()


async def test_competing_session_is_a_warning(tws: FakeTWS, ib_ctx) -> None:
    conn = make_conn(ib_ctx)
    await conn.start()
    try:
        tws.send_error(10197, "No market data during competing live session")
        tws.send_error(10197, "No market data during competing live session")
        await until(lambda: conn._competing_alerted, what="10197 seen")
        await asyncio.sleep(0.1)  # the second 10197 arrives too
        await conn.flush()
        [alert] = await alerts(ib_ctx, "IB_COMPETING_SESSION")
        assert alert.severity == "WARNING"
    finally:
        await conn.stop()


async def test_unreachable_port_is_one_line(ib_ctx) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = make_conn(ib_ctx, port=port)
    with pytest.raises(IbUnavailable) as err:
        await conn.start()
    assert "\n" not in str(err.value) and f"127.0.0.1:{port}" in str(err.value) and "refused" in str(err.value)
    await conn.stop()
