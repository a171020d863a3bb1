"""PaperBroker: pricing at mid, fills, repricing, cancels, partial fills, commission, slippage."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.contract import OptionContract, Right
from core.domain.reasons import Reason
from core.domain.signal import Side
from core.execution import (
    Broker,
    OrderPurpose,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    PaperBroker,
    PaperBrokerState,
    PaperConfig,
    TimeInForce,
)

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 1, 13, 10, 0, tzinfo=NY)  # a Tuesday
C = OptionContract(symbol="SPY", expiry=date(2026, 1, 13), strike=590, right=Right.CALL)
KEY = C.key


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def buy(order_id: str = "o1", qty: int = 2, ts: datetime = T0, **kw) -> OrderRequest:
    return OrderRequest(order_id=order_id, correlation_id="sig-1", contract=C, side=Side.BUY, qty=qty,
                        purpose=OrderPurpose.ENTRY, created_ts=ts, **kw)


def sell(order_id: str = "x1", qty: int = 2, ts: datetime = T0, **kw) -> OrderRequest:
    return OrderRequest(order_id=order_id, correlation_id="sig-1", contract=C, side=Side.SELL, qty=qty,
                        purpose=OrderPurpose.EXIT, created_ts=ts, **kw)


async def quote(b: PaperBroker, s: float, bid: float, ask: float, bs: int = 10, asz: int = 10):
    return await b.on_quote(KEY, bid, ask, bs, asz, at(s))


def kinds(events) -> list[str]:
    return [e.kind.value for e in events]


async def holding(b: PaperBroker, qty: int, price_bid: float = 2.00, price_ask: float = 2.20) -> None:
    """Get ``qty`` contracts into the paper account (bought at mid 2.10)."""
    await quote(b, 0, price_bid, price_ask)
    await b.place(buy("seed-buy", qty=qty))
    ev = await quote(b, 1, 2.00, 2.10, asz=qty)
    assert kinds(ev) == ["fill"] and b.held_qty(KEY) == qty


# ----------------------------------------------------------------- entries
async def test_entry_is_priced_at_mid_and_fills_at_mid():
    b = PaperBroker(PaperConfig())
    await quote(b, 0, 2.00, 2.20)
    st = await b.place(buy(qty=2))
    assert st.status == OrderStatus.WORKING
    assert st.limit == pytest.approx(2.10) and st.mid_at_placement == pytest.approx(2.10)

    ev = await quote(b, 5, 1.95, 2.10)  # the offer comes down to our bid at mid
    assert kinds(ev) == ["fill"]
    f = ev[0].fill
    assert (f.qty, f.price, f.commission, f.slippage, f.slippage_cost) == (2, 2.10, 1.30, 0.0, 0.0)
    assert ev[0].order.status == OrderStatus.FILLED and ev[0].order.avg_price == pytest.approx(2.10)
    (pos,) = await b.positions()
    assert pos.qty == 2 and pos.avg_cost == pytest.approx(2.10) and pos.realized_pnl == pytest.approx(-1.30)
    assert await b.open_orders() == []


async def test_mid_is_rounded_down_to_the_tick_for_a_buy():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.15)  # mid 2.075
    st = await b.place(buy())
    assert st.limit == pytest.approx(2.07)


async def test_no_fill_while_ask_is_above_the_limit():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy())
    for s, ask in [(1, 2.20), (10, 2.15), (20, 2.11), (29, 2.12)]:
        assert await quote(b, s, 2.00, ask) == []
    st = b.order("o1")
    assert st.status == OrderStatus.WORKING and st.filled_qty == 0 and st.limit == pytest.approx(2.10)


async def test_reprice_after_30s_toward_the_ask_by_25pct_of_spread_then_fill():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy(qty=3))
    assert await quote(b, 29, 2.00, 2.20) == []  # not yet 30 s

    ev = await quote(b, 30, 2.00, 2.20)  # 2.10 + 25% x 0.20 = 2.15, ask 2.20 > 2.15: no fill
    assert kinds(ev) == ["repriced"]
    assert (ev[0].old_limit, ev[0].new_limit) == (2.10, 2.15) and ev[0].order.repricings == 1

    assert await quote(b, 45, 2.00, 2.20) == []  # the timer restarts at the reprice
    ev = await quote(b, 60, 2.00, 2.20)  # 2.15 + 0.05 = 2.20 = ask: marketable, fills on this quote
    assert kinds(ev) == ["repriced", "fill"]
    assert ev[0].new_limit == pytest.approx(2.20)
    f = ev[1].fill
    assert f.price == pytest.approx(2.20) and f.qty == 3
    # commission 3 x 0.65; slippage = 2.20 - mid at placement 2.10 = +0.10 (worse for us) = $30
    assert f.commission == pytest.approx(1.95)
    assert f.slippage == pytest.approx(0.10) and f.slippage_cost == pytest.approx(30.0)
    assert ev[1].order.status == OrderStatus.FILLED and ev[1].order.repricings == 2


async def test_reprice_rounds_to_tick_and_is_capped_at_the_ask_and_max_price():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.15)  # mid 2.075 -> 2.07, spread 0.15, step 0.0375
    await b.place(buy())
    ev = await quote(b, 30, 2.00, 2.15)
    assert ev[0].new_limit == pytest.approx(2.11)  # 2.1075 -> nearest tick

    b2 = PaperBroker()
    await quote(b2, 0, 2.00, 2.20)
    await b2.place(buy(max_price=2.12))
    ev = await quote(b2, 30, 2.00, 2.20)
    assert ev[0].new_limit == pytest.approx(2.12)  # capped by max_price
    assert await quote(b2, 60, 2.00, 2.20) == []  # nothing left to move


async def test_max_two_reprices_then_cancel_on_timeout():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy())
    ev = await quote(b, 30, 2.04, 2.24)  # market lifts away from us
    assert ev[0].new_limit == pytest.approx(2.15)
    ev = await quote(b, 60, 2.10, 2.30)
    assert ev[0].new_limit == pytest.approx(2.20)
    assert await quote(b, 90, 2.10, 2.30) == []  # max_reprices=2 reached
    ev = await quote(b, 120, 2.10, 2.30)  # order_timeout_s=120
    assert kinds(ev) == ["cancelled"] and ev[0].reason == "timeout"
    st = b.order("o1")
    assert st.status == OrderStatus.CANCELLED and st.reason == "timeout" and st.repricings == 2
    assert await b.open_orders() == [] and await b.positions() == []


async def test_timeout_also_fires_without_quotes_via_expire():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy())
    assert b.expire(at(119)) == []
    ev = b.expire(at(120))
    assert kinds(ev) == ["cancelled"] and ev[0].reason == "timeout"
    assert b.expire(at(121)) == []


async def test_cancel_when_spread_widens_past_10pct_of_mid():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy())
    assert await quote(b, 5, 2.09, 2.31) == []  # spread 0.22 = exactly 10% of mid 2.20: not past it
    ev = await quote(b, 6, 1.90, 2.30)  # 0.40 / 2.10 = 19%
    assert kinds(ev) == ["cancelled"] and ev[0].reason == Reason.SPREAD_TOO_WIDE.value
    assert b.order("o1").status == OrderStatus.CANCELLED
    assert await quote(b, 7, 1.95, 2.00) == []  # a cancelled order never fills


async def test_entry_refused_when_spread_already_too_wide():
    b = PaperBroker()
    await quote(b, 0, 1.00, 1.20)  # 18% of mid
    with pytest.raises(OrderRejected) as ei:
        await b.place(buy())
    assert ei.value.reason == Reason.SPREAD_TOO_WIDE
    assert b.order("o1").status == OrderStatus.REJECTED


async def test_partial_fills_across_quotes_against_displayed_size():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy(qty=10))
    ev = await quote(b, 1, 2.00, 2.10, asz=4)
    assert [e.fill.qty for e in ev] == [4] and ev[0].order.status == OrderStatus.PARTIALLY_FILLED
    ev = await quote(b, 2, 2.00, 2.10, asz=3)
    assert [e.fill.qty for e in ev] == [3] and ev[0].order.remaining == 3
    assert await quote(b, 3, 2.00, 2.10, asz=0) == []  # nothing displayed
    ev = await quote(b, 4, 2.00, 2.10, asz=50)
    assert [e.fill.qty for e in ev] == [3] and ev[0].order.status == OrderStatus.FILLED
    st = b.order("o1")
    assert [f.fill_id for f in st.fills] == ["o1:1", "o1:2", "o1:3"]
    assert st.filled_qty == 10 and st.commission == pytest.approx(6.50)
    assert b.held_qty(KEY) == 10


async def test_partial_fill_then_reprice_gives_weighted_average_and_per_fill_slippage():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy(qty=5))
    await quote(b, 10, 2.00, 2.10, asz=2)  # 2 @ 2.10
    assert await quote(b, 39, 2.00, 2.20) == []  # idle timer restarted by the fill at 10 s
    ev = await quote(b, 40, 2.00, 2.20, asz=2)  # reprice 2.15, not marketable
    assert kinds(ev) == ["repriced"]
    ev = await quote(b, 41, 2.05, 2.15, asz=10)  # 3 @ 2.15
    st = ev[0].order
    assert st.status == OrderStatus.FILLED
    assert [(f.qty, f.price, f.slippage) for f in st.fills] == [(2, 2.10, 0.0), (3, 2.15, 0.05)]
    assert st.avg_price == pytest.approx((2 * 2.10 + 3 * 2.15) / 5)
    assert sum(f.slippage_cost for f in st.fills) == pytest.approx(15.0)


async def test_two_orders_share_the_displayed_size_oldest_first():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy("a", qty=3))
    await b.place(buy("b", qty=3, ts=at(1)))
    ev = await quote(b, 2, 2.00, 2.10, asz=4)
    assert [(e.order_id, e.fill.qty) for e in ev] == [("a", 3), ("b", 1)]


# ------------------------------------------------------------------- exits
async def test_exit_limit_at_the_bid_fills_at_the_bid_with_sell_side_slippage():
    b = PaperBroker()
    await holding(b, 2)
    await quote(b, 10, 2.40, 2.60)
    st = await b.place(sell(ts=at(10)))  # limit=None: priced at the bid (marketable)
    assert st.limit == pytest.approx(2.40) and st.mid_at_placement == pytest.approx(2.50)
    ev = await quote(b, 11, 2.40, 2.60)
    f = ev[0].fill
    assert (f.qty, f.price) == (2, 2.40)
    assert f.slippage == pytest.approx(0.10)  # sold 0.10 below mid: positive = worse
    assert f.commission == pytest.approx(1.30)
    assert await b.positions() == []
    pos = b.snapshot().positions[KEY]
    # bought 2 @2.10 (-1.30), sold 2 @2.40: +60 - 1.30
    assert pos.realized_pnl == pytest.approx(60 - 2.60)


async def test_market_exit_hits_the_current_bid_and_partials_on_bid_size():
    b = PaperBroker()
    await holding(b, 5)
    await quote(b, 10, 2.40, 2.60)
    await b.place(sell(qty=5, ts=at(10), order_type=OrderType.MKT))
    ev = await quote(b, 11, 1.80, 2.00, bs=3)  # the market drops: MKT takes the new bid
    assert [(e.fill.qty, e.fill.price) for e in ev] == [(3, 1.80)]
    ev = await quote(b, 12, 1.70, 1.90, bs=10)
    assert [(e.fill.qty, e.fill.price) for e in ev] == [(2, 1.70)]
    assert ev[0].order.status == OrderStatus.FILLED and b.held_qty(KEY) == 0


async def test_exit_survives_wide_spread_and_has_no_timeout():
    b = PaperBroker()
    await holding(b, 2)
    await quote(b, 10, 2.40, 2.60)
    await b.place(sell(ts=at(10), limit=3.00))  # far above the market
    ev = await quote(b, 11, 1.00, 3.00)  # huge spread: an entry would be cancelled, an exit is not
    assert "cancelled" not in kinds(ev)
    ev = await quote(b, 500, 1.00, 3.00)
    assert "cancelled" not in kinds(ev) and b.order("x1").is_open


async def test_exit_limit_reprices_toward_the_bid():
    b = PaperBroker()
    await holding(b, 2)
    await quote(b, 10, 2.40, 2.60)
    await b.place(sell(ts=at(10)))
    ev = await quote(b, 11, 2.30, 2.50, bs=0)  # bid dropped below our 2.40, nothing there anyway
    assert ev == []
    ev = await quote(b, 40, 2.30, 2.50)  # 2.40 - 25% x 0.20 = 2.35 > bid 2.30: rests
    assert kinds(ev) == ["repriced"] and ev[0].new_limit == pytest.approx(2.35)
    ev = await quote(b, 70, 2.30, 2.50)  # 2.30 = bid: fills
    assert kinds(ev) == ["repriced", "fill"] and ev[1].fill.price == pytest.approx(2.30)


async def test_flatten_sells_everything_held_at_the_bid():
    b = PaperBroker()
    await holding(b, 3)
    await quote(b, 10, 2.40, 2.60)
    states = await b.flatten(at(10))
    assert [(s.request.qty, s.request.order_type) for s in states] == [(3, OrderType.MKT)]
    assert await b.flatten(at(10)) == []  # everything already being sold: nothing more
    ev = await quote(b, 11, 2.45, 2.60)
    assert [(e.fill.qty, e.fill.price) for e in ev] == [(3, 2.45)]
    assert await b.positions() == []


# ------------------------------------------------------------ placement rules
async def test_place_is_idempotent_on_order_id():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    s1 = await b.place(buy())
    s2 = await b.place(buy())
    assert s1 == s2 and len(await b.open_orders()) == 1
    with pytest.raises(OrderRejected) as ei:
        await b.place(buy(qty=3))
    assert ei.value.reason == Reason.BAD_INPUT


async def test_place_needs_a_fresh_quote():
    b = PaperBroker()
    with pytest.raises(OrderRejected) as ei:
        await b.place(buy())
    assert ei.value.reason == Reason.STALE_DATA
    await quote(b, 0, 2.00, 2.20)
    with pytest.raises(OrderRejected) as ei:
        await b.place(buy("o2", ts=at(60)))  # max_quote_age_s = 15
    assert ei.value.reason == Reason.STALE_DATA
    with pytest.raises(OrderRejected):  # a rejected id stays rejected
        await b.place(buy("o2", ts=at(60)))


async def test_bad_quotes_are_ignored_and_counted():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy())
    for bid, ask in [(math.nan, 2.1), (2.0, math.inf), (-1.0, 2.0), (2.2, 2.0), (0.0, 0.0)]:
        assert await b.on_quote(KEY, bid, ask, 10, 10, at(1)) == []
    assert await b.on_quote(KEY, 2.0, 2.1, -5, 10, at(1)) == []
    assert b.snapshot().bad_quotes == 6
    assert b.order("o1").status == OrderStatus.WORKING


async def test_day_order_cancelled_at_the_close_and_ioc_cancels_the_rest():
    b = PaperBroker(PaperConfig(order_timeout_s=None))
    late = datetime(2026, 1, 13, 15, 59, 50, tzinfo=NY)
    await b.on_quote(KEY, 2.00, 2.20, 10, 10, late)
    await b.place(buy(ts=late))
    ev = await b.on_quote(KEY, 2.00, 2.20, 10, 10, datetime(2026, 1, 13, 16, 0, tzinfo=NY))
    assert kinds(ev) == ["cancelled"] and ev[0].reason == "day_end"

    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy(qty=5, tif=TimeInForce.IOC, limit=2.20))
    ev = await quote(b, 1, 2.00, 2.20, asz=2)
    assert kinds(ev) == ["fill", "cancelled"] and ev[1].order.filled_qty == 2 and ev[1].reason == "ioc"


async def test_client_cancel():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy())
    st = await b.cancel("o1", at(3))
    assert st.status == OrderStatus.CANCELLED and st.reason == "client"
    assert (await b.cancel("o1")).status == OrderStatus.CANCELLED  # terminal: unchanged
    with pytest.raises(KeyError):
        await b.cancel("nope")


# ---------------------------------------------------- passive fill model
async def test_passive_fill_model_fills_at_mid_when_enabled():
    b = PaperBroker(PaperConfig(passive_fill_prob=1.0))
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy(qty=5))
    ev = await quote(b, 1, 2.00, 2.20, asz=3)  # ask 2.20 > limit 2.10, but limit >= mid
    assert [(e.fill.qty, e.fill.price) for e in ev] == [(3, 2.10)]
    assert await quote(b, 2, 2.10, 2.30) == []  # mid 2.20 > limit: no passive fill


async def test_passive_fill_probability_is_seeded_and_reproducible():
    with pytest.raises(ValueError):
        PaperConfig(passive_fill_prob=0.5)

    async def run(seed: int) -> list[int]:
        b = PaperBroker(PaperConfig(passive_fill_prob=0.3, seed=seed, order_timeout_s=None,
                                    reprice_after_s=10_000))
        await quote(b, 0, 2.00, 2.20)
        await b.place(buy(qty=40, tif=TimeInForce.GTC))
        out = []
        for s in range(1, 60):
            ev = await quote(b, s, 2.00, 2.20, asz=1)
            out.append(sum(e.fill.qty for e in ev if e.fill))
        return out

    a, a2, c = await run(1), await run(1), await run(2)
    assert a == a2 and a != c and 0 < sum(a) < 59


# ------------------------------------------------------------- persistence
async def test_state_round_trips_through_json_and_continues_identically():
    b = PaperBroker()
    await quote(b, 0, 2.00, 2.20)
    await b.place(buy(qty=6))
    await quote(b, 1, 2.00, 2.10, asz=2)

    restored = PaperBroker.restore(PaperBrokerState.model_validate_json(b.snapshot().model_dump_json()))
    assert restored.snapshot() == b.snapshot()
    seen = []
    for s, bid, ask, asz in [(31, 2.00, 2.20, 5), (61, 2.00, 2.20, 5), (62, 2.0, 2.2, 5)]:
        e1 = await quote(b, s, bid, ask, asz=asz)
        e2 = await quote(restored, s, bid, ask, asz=asz)
        assert e1 == e2
        seen += e1
    assert restored.snapshot() == b.snapshot()
    assert kinds(seen) == ["repriced", "repriced", "fill"]
    for e in seen:
        assert type(e).model_validate_json(e.model_dump_json()) == e


def test_broker_is_an_abstract_interface():
    with pytest.raises(TypeError):
        Broker()  # type: ignore[abstract]
    assert issubclass(PaperBroker, Broker)
