"""IbkrMarketSource through the real ib_async client against the fake TWS: quotes and prints, chain
discovery with greeks / OI / NaN rules, the line budget and rotation, watched contracts, depth
rotation, bad ticks, pacing; plus the contract helpers and the budget arithmetic."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest
from ib_async import Index, Option, Stock

from core.domain.contract import OptionContract, Right
from core.ibkr.contracts import (
    contract_from_key,
    from_ib_option,
    pick_expiries,
    pick_strikes,
    to_ib_option,
    underlying_contract,
)
from core.ibkr.market_data import IbkrMarketSource
from core.ibkr.market_lines import line_budget
from core.market.sources import make_source
from core.runtime.metrics import REJECTED
from tests.fakes.ib_tws import FakeTWS
from tests.ibkr.conftest import (
    EXPIRIES,
    FAR_EXPIRY,
    QQQ_SPOT,
    SPY_SPOT,
    make_ib_context,
    make_ib_settings,
    option_values,
    requests,
    until,
)

pytestmark = pytest.mark.usefixtures("no_decoder_errors")

REQ_MKT_DATA, CANCEL_MKT_DATA, REQ_CONTRACT_DETAILS = 1, 2, 9


@asynccontextmanager
async def running(ctx) -> AsyncIterator[IbkrMarketSource]:
    src = IbkrMarketSource(ctx)
    await src.start(ctx.clock.now())
    try:
        yield src
    finally:
        await src.stop()


async def tick(src: IbkrMarketSource, ctx, seconds: float = 0.0) -> bool:
    """One market tick: move the clock, advance, then let the new lines answer."""
    if seconds:
        ctx.clock.advance(seconds)
    ok = await src.advance(ctx.clock.now())
    await until(lambda: all(src._fresh.values()) and not src._throttling, what="lines answered")
    return ok


async def discovered(src: IbkrMarketSource, ctx) -> None:
    await until(lambda: all(src.quote(s) for s in src.symbols), what="underlying quotes")
    await src.advance(ctx.clock.now())
    await until(lambda: len(src._chains) == len(src.symbols), what="chains discovered")
    await tick(src, ctx)


def key(sym: str, expiry: date, strike: float, right: str) -> str:
    return OptionContract(symbol=sym, expiry=expiry, strike=strike, right=Right(right)).key


def rejected(reason: str) -> float:
    return REJECTED.labels("market", reason)._value.get()


# ----------------------------------------------------------------------------- pure helpers
def test_contract_conversions() -> None:
    c = OptionContract(symbol="SPY", expiry=date(2026, 12, 18), strike=592.5, right=Right.PUT)
    ib = to_ib_option(c, "SPY")
    assert (ib.symbol, ib.lastTradeDateOrContractMonth, ib.strike, ib.right, ib.exchange, ib.currency,
            ib.multiplier, ib.tradingClass) == ("SPY", "20261218", 592.5, "P", "SMART", "USD", "100", "SPY")
    assert from_ib_option(Option("SPY", "20261218", 592.5, "PUT", "SMART", multiplier="100")) == c
    assert contract_from_key(c.key) == c and contract_from_key("SPY:bad") is None
    assert isinstance(underlying_contract("SPX"), Index) and underlying_contract("SPX").exchange == "CBOE"
    assert isinstance(underlying_contract("SPY"), Stock) and underlying_contract("SPY").exchange == "SMART"


def test_pick_expiries_and_strikes() -> None:
    def row(tc: str, exps: list[str]):
        return SimpleNamespace(tradingClass=tc, expirations=exps, strikes=[], multiplier="100", exchange="SMART")

    rows = [row("SPX", ["20261120", "20261218"]), row("SPXW", ["20261120", "20261123", "20261218", "20270319"])]
    got = pick_expiries(rows, "SPX", date(2026, 11, 20), 3, 45)
    assert [(d.isoformat(), r.tradingClass) for d, r in got] == [
        ("2026-11-20", "SPXW"), ("2026-11-23", "SPXW"), ("2026-12-18", "SPXW")]  # 0DTE kept, PM class preferred
    assert pick_expiries(rows, "SPX", date(2026, 11, 21), 5, 45)[0][0] == date(2026, 11, 23)  # past dropped
    assert pick_strikes([580, 585, 590, 595, 600, 605], 592.0, 2) == [585.0, 590.0, 595.0, 600.0]
    assert pick_strikes([580, 585, 590], 700.0, 2) == [585.0, 590.0]


def test_budget_arithmetic_for_the_defaults() -> None:
    b = line_budget(100, 3, 0, 192, 10, 60, 45.0, 64)
    assert (b["spare"], b["usable"], b["chain_lines"], b["rotating"], b["rounds"], b["refresh_s"]) == (
        5, 95, 92, True, 3, 30)
    assert (b["messages_per_tick"], b["max_symbols_streaming"], b["max_symbols_within_chain_cadence"]) == (184, 1, 8)
    assert line_budget(100, 1, 0, 64, 10, 60, 45.0, 64)["rotating"] is False


def test_make_source_builds_the_ibkr_source(ib_ctx) -> None:
    src = make_source(ib_ctx)
    assert isinstance(src, IbkrMarketSource) and src.feed == "ibkr"
    assert src.describe() == f"IBKR 127.0.0.1:{ib_ctx.settings.ibkr.port} client 11 (market data: live)"
    b = src.budget()  # before discovery: the configured estimate
    assert b["chain_contracts"] == 2 * 2 * 2 * 2 * 2 and b["lines"] == 100


# ----------------------------------------------------------------------------- underlyings
async def test_quotes_and_prints(tws: FakeTWS, ib_ctx) -> None:
    async with running(ib_ctx) as src:
        assert not await src.advance(ib_ctx.clock.now()) or src.quote("SPY") is not None
        await until(lambda: src.quote("SPY"), what="SPY quote")
        assert await src.advance(ib_ctx.clock.now())
        q = src.quote("SPY")
        assert (q.bid, q.ask, q.last, q.bid_size, q.ask_size, q.volume_today, q.stale) == (
            589.95, 590.05, 590.0, 100, 100, 1_000_000, False)
        assert q.prev_close == 0.0 and q.ts == ib_ctx.clock.now()  # no close tick from the fake: 0.0, not NaN
        src.prints("SPY")
        for last in (590.05, 589.95, 590.01):
            tws.set_stock_quote("SPY", last=last)
            await until(lambda lp=last: src.quote("SPY").last == lp, what=f"last {last}")
        assert [(p.price, p.size, p.side, p.exchange) for p in src.prints("SPY")] == [
            (590.05, 100, "buy", "IB"), (589.95, 100, "sell", "IB"), (590.01, 100, "mid", "IB")]
        assert src.prints("SPY") == [] and src.option_flow("SPY") == [] and src.net_premium("SPY") == []
        assert src.closing_imbalance("SPY") is None
        ib_ctx.clock.advance(ib_ctx.settings.risk.max_quote_age_s + 1)  # nothing new for too long
        await src.advance(ib_ctx.clock.now())
        assert src.quote("SPY").stale


async def test_bad_ticks_are_rejected_counted_and_never_published(tws: FakeTWS, ib_ctx) -> None:
    async with running(ib_ctx) as src:
        await until(lambda: src.quote("SPY"), what="SPY quote")
        base = {r: rejected(r) for r in ("no_value", "non_finite", "crossed")}
        for bad, reason in (({"bid": -1.0}, "no_value"), ({"bid": float("nan")}, "non_finite"),
                            ({"bid": 590.2, "ask": 590.1}, "crossed")):
            tws.set_stock_quote("SPY", **bad)
            await until(lambda r=reason: src.rejected[r] >= 1, what=reason)
            q = src.quote("SPY")
            assert q.stale and (q.bid, q.ask) == (589.95, 590.05)  # the last good book, flagged stale
            assert rejected(reason) == base[reason] + src.rejected[reason]
            tws.set_stock_quote("SPY", bid=589.95, ask=590.05)
            await until(lambda: not src.quote("SPY").stale, what="valid again")
        # an option quote crossed: counted, the row is left out of the chain
        await discovered(src, ib_ctx)
        k = key("SPY", EXPIRIES[0], 590.0, "C")
        assert k in {r.contract.key for r in src._rows.values() if r.two_sided}
        tws.set_option_quote("SPY", EXPIRIES[0], 590.0, "C", bid=3.0, ask=2.5)
        await until(lambda: src.rejected["crossed"] >= 2, what="crossed option")
        chain = src.chain("SPY")
        assert not any((chain.strike == 590.0) & chain.is_call & (chain.expiry == np.datetime64(EXPIRIES[0])))
        assert np.isfinite(chain.bid).all() and (chain.bid <= chain.ask).all() and (chain.bid > 0).all()


# ----------------------------------------------------------------------------- chains
async def test_chain_discovery_greeks_oi_and_nan_rules(tws: FakeTWS, ib_ctx) -> None:
    tws.set_option_quote("SPY", EXPIRIES[1], 591.0, "P", bid=1.2, ask=1.3)  # no greeks, no OI
    tws.set_option_quote("SPY", EXPIRIES[1], 589.0, "P", bid=0.0, ask=0.05)  # one-sided: skipped
    async with running(ib_ctx) as src:
        await discovered(src, ib_ctx)
        chain = src.chain("SPY")
        assert chain.symbol == "SPY" and chain.spot == pytest.approx(SPY_SPOT) and chain.meta["feed"] == "ibkr"
        assert sorted(set(chain.expiry.astype("datetime64[D]").astype(object))) == EXPIRIES[:2]  # 0DTE + next
        assert FAR_EXPIRY not in set(chain.expiry.astype(object))
        assert sorted(set(chain.strike.tolist())) == [588.0, 589.0, 590.0, 591.0]  # 2 below, 2 at/above spot
        assert len(chain) == 2 * 4 * 2 - 1
        for i in range(len(chain)):
            exp, k = chain.expiry[i].astype(object), float(chain.strike[i])
            right = "C" if chain.is_call[i] else "P"
            if (exp, k, right) == (EXPIRIES[1], 591.0, "P"):
                assert (chain.bid[i], chain.ask[i], chain.volume[i]) == (1.2, 1.3, 0.0)
                assert math.isnan(chain.iv[i]) and math.isnan(chain.delta[i]) and math.isnan(chain.gamma[i])
                assert chain.open_interest[i] == 0.0  # IB sent OI 0: a real zero, not NaN
                continue
            v = option_values(SPY_SPOT, exp, k, right)
            assert (chain.bid[i], chain.ask[i]) == (v["bid"], v["ask"])
            assert chain.iv[i] == pytest.approx(v["iv"]) and chain.delta[i] == pytest.approx(v["delta"])
            assert chain.gamma[i] == pytest.approx(v["gamma"])
            assert (chain.open_interest[i], chain.volume[i]) == (v["open_interest"], v["volume"])
        assert chain.meta["age_s"].shape == (len(chain),) and chain.meta["max_age_s"] == 0.0
        qqq = src.chain("QQQ")
        assert sorted(set(qqq.strike.tolist())) == [508.0, 509.0, 510.0, 511.0] and qqq.spot == QQQ_SPOT


async def test_line_budget_respected_and_rotation_covers_every_strike(bus, tws: FakeTWS) -> None:
    lines = 12
    tws.max_market_data_lines = lines
    ctx = make_ib_context(bus, make_ib_settings(tws.port, ibkr={"market_data_lines": lines}))
    async with running(ctx) as src:
        errors: list[int] = []
        src.conn.ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
        watched = key("SPY", EXPIRIES[2], 595.0, "C")  # outside the chain: streams on its own line
        src.watch({watched})
        await discovered(src, ctx)
        b = src.budget()
        assert (b["usable"], b["chain_lines"], b["chain_contracts"], b["rotating"], b["rounds"]) == (11, 8, 32, True, 4)
        chain_keys = {c.key for cs in src._chains.values() for c in cs}
        seen: set[str] = set()
        watched_id = src.cache.options[watched].conId
        for _ in range(b["rounds"] + 1):
            await tick(src, ctx, seconds=10)
            assert tws.market_data_lines() <= lines and len(src._lines) <= b["usable"]
            assert watched_id in src._lines  # the watched contract never rotates out
            seen |= {k for k in src._batch}
        assert 101 not in errors
        assert seen == chain_keys
        chain = src.chain("SPY")
        assert len(chain) == 16  # every strike refreshed from the cache, lines or not
        ages = chain.meta["age_s"]
        assert ages.min() < ages.max() <= 10 * b["rounds"]  # rows carry their age
        assert src.option_quotes("SPY", {watched})[0].bid == option_values(SPY_SPOT, EXPIRIES[2], 595.0, "C")["bid"]


async def test_option_quotes_for_watched_contracts(tws: FakeTWS, ib_ctx) -> None:
    async with running(ib_ctx) as src:
        await discovered(src, ib_ctx)
        w = key("SPY", EXPIRIES[2], 585.0, "P")
        unknown = key("SPY", EXPIRIES[2], 777.0, "P")
        src.watch({w, unknown, "garbage"})
        await src.advance(ib_ctx.clock.now())
        await until(lambda: w in src.cache.options and src.cache.options[w].conId in src._lines, what="watched line")
        await until(lambda: src.option_quotes("SPY", {w}), what="watched quote")
        tws.set_option_quote("SPY", EXPIRIES[2], 585.0, "P", bid=0.5, ask=0.55, bid_size=7, ask_size=9)
        await until(lambda: src.option_quotes("SPY", {w})[0].bid == 0.5, what="updated watched quote")
        [q] = src.option_quotes("SPY", {w, unknown, "garbage"})
        assert (q.contract_key, q.expiry, q.strike, q.right, q.ask, q.bid_size, q.ask_size, q.underlying) == (
            w, EXPIRIES[2].isoformat(), 585.0, "P", 0.55, 7.0, 9.0, SPY_SPOT)
        assert q.ts_ms == ib_ctx.clock.ms()
        con_id = src.cache.options[w].conId
        cancels = len(requests(tws, CANCEL_MKT_DATA, 11))
        src.watch(set())
        await src.advance(ib_ctx.clock.now())
        assert con_id not in src._lines
        await until(lambda: len(requests(tws, CANCEL_MKT_DATA, 11)) == cancels + 1, what="cancel sent")


async def test_depth_rotation_keeps_the_last_books(bus, tws: FakeTWS) -> None:
    tws.max_depth_subscriptions = 1
    book = {"SPY": ([(589.95, 300), (589.9, 500)], [(590.05, 200), (590.1, 400)]),
            "QQQ": ([(509.95, 100)], [(510.05, 150), (510.1, 50)])}
    for sym, (bids, asks) in book.items():
        tws.set_depth(sym, bids, asks)
    ctx = make_ib_context(bus, make_ib_settings(tws.port, ibkr={"depth_subscriptions": 1, "depth_rotate_s": 30}))
    async with running(ctx) as src:
        errors: list[int] = []
        src.conn.ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
        await until(lambda: src.depth("SPY", 10), what="SPY book")
        d = src.depth("SPY", 10)
        assert d.bid_price.tolist() == [589.95, 589.9] and d.ask_size.tolist() == [200, 400] and not d.stale
        assert src.depth("SPY", 1).bid_price.tolist() == [589.95] and src.depth("QQQ", 10) is None
        await src.advance(ctx.clock.now())
        assert list(src._depth_lines) == ["SPY"]  # not yet: the symbol keeps its line depth_rotate_s
        ctx.clock.advance(30)
        await src.advance(ctx.clock.now())
        await until(lambda: src.depth("QQQ", 10), what="QQQ book after rotation")
        assert list(src._depth_lines) == ["QQQ"]
        spy = src.depth("SPY", 10)  # the last SPY book is kept, flagged stale
        assert spy.stale and spy.bid_price.tolist() == [589.95, 589.9]
        before = src.rejected["crossed_book"]
        tws.set_depth("QQQ", [(510.2, 100)], [(510.05, 150)])
        await until(lambda: src.rejected["crossed_book"] > before, what="crossed book rejected")
        assert src.depth("QQQ", 10).bid_price.tolist() == [509.95]
        assert 309 not in errors  # never more depth lines than allowed


async def test_pacing_budget_is_never_exceeded(bus, tws: FakeTWS) -> None:
    """Measured where the budget is spent: every message our client writes to the socket. (The fake's
    own arrival clock runs on a thread of this process: under CPU load the GIL bunches its reads, so
    it would count a burst our client never sent.)"""
    rate = 20
    ctx = make_ib_context(bus, make_ib_settings(tws.port, market={"symbols": ["SPY"]}, ibkr={
        "max_messages_per_s": rate, "chain_strikes_each_side": 5, "chain_expiries": 2}))
    src = IbkrMarketSource(ctx)
    sent: list[float] = []
    conn = src.conn.ib.client.conn
    write = conn.sendMsg

    def timed_write(msg: bytes) -> None:
        if not msg.startswith(b"API\0"):  # the handshake preamble is not an API message
            sent.append(time.monotonic())
        write(msg)

    conn.sendMsg = timed_write
    await src.start(ctx.clock.now())
    try:
        await discovered(src, ctx)
        for _ in range(2):
            await tick(src, ctx, seconds=10)
        assert len(src._chains["SPY"]) == 40 and src.conn.pacing_violations == 0
    finally:
        await src.stop()
    assert len(requests(tws, REQ_CONTRACT_DETAILS, 11)) >= 40 and len(sent) > 2 * rate  # throttling had work
    busiest = max(sum(1 for u in sent[i:] if u - t <= 1.0) for i, t in enumerate(sent))
    assert busiest <= rate, busiest


async def test_advance_is_false_before_start_and_data(ib_ctx) -> None:
    src = IbkrMarketSource(ib_ctx)
    assert not await src.advance(ib_ctx.clock.now())
    assert src.quote("SPY") is None and src.chain("SPY") is None and src.depth("SPY", 5) is None
    assert src.regular_hours(ib_ctx.clock.now())  # 09:30 New York on a session day
    await src.conn.stop()


async def test_reference_is_none_when_ib_has_no_history(tws: FakeTWS, ib_ctx) -> None:
    async with running(ib_ctx) as src:
        src.REF_WAIT_S = 0.2
        started = asyncio.get_running_loop().time()
        assert await src.reference("SPY") is None and await src.reference("QQQ") is None
        assert asyncio.get_running_loop().time() - started < 1.0
