"""The shared order policy: the one place that prices, reprices and cancels working orders for
every broker (paper in demo and dry-run, IBKR in live)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.domain.contract import OptionContract, Right
from core.domain.signal import Side
from core.execution import OrderPurpose, OrderRequest, OrderState, OrderStatus, OrderType, QuoteSnapshot
from core.execution.policy import OrderPolicy, PolicyConfig

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 1, 13, 10, 0, tzinfo=NY)
C = OptionContract(symbol="SPY", expiry=date(2026, 1, 13), strike=590, right=Right.CALL)


def q(bid: float, ask: float, s: float = 0) -> QuoteSnapshot:
    return QuoteSnapshot(contract_key=C.key, bid=bid, ask=ask, bid_size=10, ask_size=10,
                         ts=T0 + timedelta(seconds=s))


def working(side: Side = Side.BUY, limit: float = 2.10, **kw) -> OrderState:
    purpose = OrderPurpose.ENTRY if side == Side.BUY else OrderPurpose.EXIT
    req = OrderRequest(order_id="o1", correlation_id="c1", contract=C, side=side, qty=2, purpose=purpose,
                       created_ts=T0, **kw)
    return OrderState(order_id="o1", correlation_id="c1", request=req, status=OrderStatus.WORKING, limit=limit,
                      placed_ts=T0, last_priced_ts=T0, updated_ts=T0)


def test_entry_limit_is_mid_rounded_down_and_capped():
    p = OrderPolicy()
    o = working()
    assert p.initial_limit(o.request, q(2.00, 2.25)) == 2.12
    capped = working(max_price=2.05)
    assert p.initial_limit(capped.request, q(2.00, 2.25)) == 2.05
    assert p.initial_limit(working(Side.SELL).request, q(2.00, 2.25)) == 2.00
    mkt = working(order_type=OrderType.MKT)
    assert p.initial_limit(mkt.request, q(2.00, 2.25)) is None


def test_reprice_after_idle_toward_the_ask_by_a_quarter_spread_at_most_twice():
    p = OrderPolicy()
    o = working()
    assert p.on_quote(o, q(2.00, 2.20), T0 + timedelta(seconds=29)).kind is None
    a = p.on_quote(o, q(2.00, 2.20), T0 + timedelta(seconds=30))
    assert (a.kind, a.new_limit) == ("reprice", 2.15)
    o.limit, o.repricings, o.last_priced_ts = 2.15, 1, T0 + timedelta(seconds=30)
    a = p.on_quote(o, q(2.00, 2.20), T0 + timedelta(seconds=60))
    assert (a.kind, a.new_limit) == ("reprice", 2.20)
    o.limit, o.repricings, o.last_priced_ts = 2.20, 2, T0 + timedelta(seconds=60)
    assert p.on_quote(o, q(2.00, 2.20), T0 + timedelta(seconds=95)).kind is None  # max_reprices reached


def test_exit_reprices_toward_the_bid_without_cap_and_never_times_out():
    p = OrderPolicy()
    o = working(Side.SELL, limit=2.20)
    a = p.on_quote(o, q(2.00, 2.20), T0 + timedelta(seconds=30))
    assert (a.kind, a.new_limit) == ("reprice", 2.15)
    o.repricings = 50
    assert p.on_quote(o, q(2.00, 2.20), T0 + timedelta(seconds=600)).kind == "reprice"
    assert p.time_cancel(o, T0 + timedelta(hours=6)) == "day_end"  # DAY orders still end at the close


def test_cancels_timeout_wide_spread_and_day_end():
    p = OrderPolicy(PolicyConfig(order_timeout_s=120))
    o = working()
    assert p.on_quote(o, q(2.00, 2.20), T0 + timedelta(seconds=120)).reason == "timeout"
    assert p.on_quote(o, q(1.50, 2.50), T0 + timedelta(seconds=5)).reason == "SPREAD_TOO_WIDE"
    late = datetime(2026, 1, 13, 16, 0, tzinfo=NY)
    assert OrderPolicy(PolicyConfig(order_timeout_s=None)).time_cancel(o, late) == "day_end"


def test_entry_refused_on_a_wide_spread_and_a_stale_quote():
    p = OrderPolicy()
    o = working()
    assert p.refuse_entry(o.request, q(1.00, 2.00)) is not None
    assert p.refuse_entry(o.request, q(2.00, 2.10)) is None
    assert p.quote_age_problem(o.request, None) == f"no quote for {C.key}"
    assert "old" in (p.quote_age_problem(o.request, T0 - timedelta(seconds=16)) or "")
    assert p.quote_age_problem(o.request, T0 - timedelta(seconds=10)) is None
