"""Every threshold is exact at its boundary, as its doc states: exactly at the limit, and one cent
(or one millisecond, or one position) either side. Cases where binary floating point lands a
hair over the limit (a 0.95/1.05 spread is 10.000000000000009 % of mid) are included: they are
the ones a plain comparison gets wrong."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from core.config.loader import load_settings
from core.domain.contract import OptionContract, Right
from core.domain.signal import Side, Signal
from core.execution import OrderPurpose, OrderRequest, OrderState, OrderStatus, QuoteSnapshot
from core.execution.guard import OrderRejected, check_order
from core.execution.policy import OrderPolicy
from core.execution.pretrade import check_placement
from core.risk import RiskLimits, RiskState, check_signal_dict, daily_loss_level
from core.risk.compare import exceeds, reaches
from overseer.review.rules import overseer_checks
from tests.risk._builders import NOW, base_dict, ny

LIM = RiskLimits()
MS = timedelta(milliseconds=1)


def codes(d: dict, state: dict | None = None, now: datetime = NOW) -> set[str]:
    return {r.value for r in check_signal_dict(d, state or {}, LIM, now).reasons}


def priced(bid: float, ask: float, limit: float, qty: int = 1, **over) -> dict:
    """A clean signal at these prices (stop and target kept on the right side of the limit)."""
    d = base_dict(qty=qty, limit=limit, stop=round(limit / 2, 2), targets=[round(limit * 2, 2)], **over)
    d["quote"] = {**d["quote"], "bid": bid, "ask": ask}
    return d


# ---------------------------------------------------------------- the helper
@pytest.mark.parametrize(("value", "limit"), [
    ((1.05 - 0.95) / 1.0 * 100.0, 10.0),  # 10.000000000000009
    (2 * 1.1 * 100, 220.0),  # 220.00000000000003
    (0.62 + 0.60 * 10 / 100.0, 0.68),  # 0.6799999999999999
])
def test_float_noise_at_the_limit_is_at_the_limit(value, limit):
    assert value != limit
    assert not exceeds(value, limit) and reaches(value, limit)


def test_one_cent_either_side_is_not_noise():
    assert exceeds(10_000.01, 10_000.0) and not reaches(9_999.99, 10_000.0)
    assert exceeds(0.01, 0.0) and not reaches(-0.01, 0.0)


def test_nan_fails_closed():
    assert exceeds(float("nan"), 1.0) and reaches(float("nan"), 1.0) and exceeds(1.0, float("nan"))
    assert exceeds(float("inf"), 1e300) and not exceeds(1e300, float("inf"))


# ---------------------------------------------------------------- core.risk.rules
@pytest.mark.parametrize(("bid", "ask", "wide"), [
    (0.95, 1.05, False),  # exactly 10 % of mid (10.000000000000009 in floats)
    (4.75, 5.25, False),  # exactly 10 %
    (0.95, 1.06, True),  # one cent wider
    (0.96, 1.05, False),  # one cent narrower
])
def test_spread_over_ten_percent_of_mid(bid, ask, wide):
    assert ("SPREAD_TOO_WIDE" in codes(priced(bid, ask, 1.0))) is wide


@pytest.mark.parametrize(("age", "stale"), [(15.0, False), (15.001, True), (14.999, False)])
def test_quote_age(age, stale):
    d = base_dict()
    d["quote"]["ts"] = (NOW - timedelta(seconds=age)).isoformat()
    assert ("STALE_DATA" in codes(d)) is stale


@pytest.mark.parametrize(("age", "stale"), [(60.0, False), (60.001, True), (59.999, False)])
def test_data_age(age, stale):
    assert ("STALE_DATA" in codes(base_dict(), {"data_age_s": {"SPY": age}})) is stale


@pytest.mark.parametrize(("ahead", "bad"), [(5.0, False), (5.001, True), (4.999, False)])
def test_clock_skew(ahead, bad):
    d = base_dict(ts=(NOW + timedelta(seconds=ahead)).isoformat())
    assert ("BAD_INPUT" in codes(d)) is bad


@pytest.mark.parametrize(("limit", "over"), [(1.10, False), (1.11, True), (1.09, False)])
def test_risk_per_trade_cap(limit, over):
    """2 x 1.10 x 100 = $220 (220.00000000000003 in floats) = exactly 5 % of $4,400."""
    state = {"account_value": 4400.0, "buying_power": 1e6}
    assert ("RISK_PER_TRADE" in codes(priced(limit - 0.01, limit + 0.01, limit, qty=2), state)) is over


@pytest.mark.parametrize(("limit", "over"), [(1.10, False), (1.11, True), (1.09, False)])
def test_buying_power(limit, over):
    state = {"account_value": 1e6, "buying_power": 220.0}
    assert ("BUYING_POWER" in codes(priced(limit - 0.01, limit + 0.01, limit, qty=2), state)) is over


@pytest.mark.parametrize(("pnl", "level"), [
    (-600.42, "halt"),  # exactly 6 % of $10,007 (-60041.99999999999 vs -60042 in floats)
    (-600.41, "warning"),
    (-600.43, "halt"),
    (-400.28, "warning"),  # exactly 4 %
    (-400.27, "ok"),
])
def test_daily_loss_levels(pnl, level):
    state = {"account_value": 10007.0, "daily_pnl": pnl}
    assert daily_loss_level(state, LIM) == level
    assert ("DAILY_LOSS_LIMIT" in codes(base_dict(), state)) is (level == "halt")


def _open(n: int, right: str) -> list[dict]:
    return [{"symbol": "QQQ", "right": right, "qty": 1}] * n


@pytest.mark.parametrize(("n", "refused"), [(5, False), (6, True)])
def test_max_open_positions(n, refused):
    state = {"open_positions": _open(2, "C") + _open(n - 2, "P")}  # under the same-direction cap
    assert ("MAX_POSITIONS" in codes(base_dict(), state)) is refused


@pytest.mark.parametrize(("n", "refused"), [(2, False), (3, True)])
def test_same_direction_cap(n, refused):
    assert ("SAME_DIRECTION_CAP" in codes(base_dict(), {"open_positions": _open(n, "C")})) is refused


@pytest.mark.parametrize(("at", "outside"), [
    (ny(2026, 11, 20, 9, 45), False),  # directional_swing window 09:45-15:45, start inclusive
    (ny(2026, 11, 20, 9, 45) - MS, True),
    (ny(2026, 11, 20, 15, 45), True),  # end exclusive
    (ny(2026, 11, 20, 15, 45) - MS, False),
])
def test_strategy_window(at, outside):
    assert ("OUTSIDE_WINDOW" in codes(base_dict(now=at), now=at)) is outside


@pytest.mark.parametrize(("at", "outside"), [
    (ny(2026, 11, 20, 9, 30), False),  # session 09:30-16:00, open inclusive
    (ny(2026, 11, 20, 9, 30) - MS, True),
    (ny(2026, 11, 20, 16, 0) - MS, False),
    (ny(2026, 11, 20, 16, 0), True),  # close exclusive
])
def test_session(at, outside):
    d = base_dict(now=at, strategy="no_window")
    assert ("OUTSIDE_WINDOW" in codes(d, now=at)) is outside


@pytest.mark.parametrize(("at", "outside"), [
    (ny(2026, 11, 20, 15, 30), True),  # no new 0DTE entries at/after 15:30
    (ny(2026, 11, 20, 15, 30) - MS, False),
])
def test_zero_dte_cutoff(at, outside):
    d = base_dict(now=at, strategy="no_window", horizon="0dte")
    d["instrument"]["expiry"] = "2026-11-20"
    assert ("OUTSIDE_WINDOW" in codes(d, now=at)) is outside


@pytest.mark.parametrize(("at", "expired"), [
    (ny(2026, 11, 20, 16, 0), True),  # today's expiry at/after the close
    (ny(2026, 11, 20, 16, 0) - MS, False),
])
def test_expiry_at_the_close(at, expired):
    d = base_dict(now=at, strategy="no_window")
    d["instrument"]["expiry"] = "2026-11-20"
    assert ("EXPIRED_CONTRACT" in codes(d, now=at)) is expired


# ---------------------------------------------------------------- overseer.review.rules
SETTINGS = load_settings(environ={})


def _overseer(d: dict, **kw) -> set[str]:
    return {r.value for r in overseer_checks(Signal.model_validate(d), NOW, LIM, SETTINGS, **kw)}


@pytest.mark.parametrize(("limit", "bad"), [(0.68, False), (0.69, True), (0.67, False)])
def test_limit_more_than_ten_percent_of_mid_above_the_ask(limit, bad):
    """0.58 / 0.62: the ask plus 10 % of mid is 0.68 (0.6799999999999999 in floats)."""
    assert ("BAD_INPUT" in _overseer(priced(0.58, 0.62, limit))) is bad


@pytest.mark.parametrize(("strike", "bad"), [(885.0, False), (885.01, True), (884.99, False),
                                             (295.0, False), (294.99, True)])
def test_strike_more_than_half_away_from_spot(strike, bad):
    d = base_dict(spot=590.0)
    d["instrument"]["strike"] = strike
    assert ("BAD_INPUT" in _overseer(d)) is bad


@pytest.mark.parametrize(("age_s", "stale"), [(180.0, False), (180.001, True)])
def test_snapshot_age(age_s, stale):
    asof = int((NOW.timestamp() - age_s) * 1000)
    assert ("STALE_DATA" in _overseer(base_dict(), analytics={"asof": asof})) is stale


# ---------------------------------------------------------------- core.execution.policy and guard
T0 = ny(2026, 1, 13, 10, 0)
C = OptionContract(symbol="SPY", expiry=date(2026, 1, 13), strike=590, right=Right.CALL)


def _quote(bid: float, ask: float) -> QuoteSnapshot:
    return QuoteSnapshot(contract_key=C.key, bid=bid, ask=ask, bid_size=10, ask_size=10, ts=T0)


def _working(side: Side = Side.BUY, qty: int = 2) -> OrderState:
    purpose = OrderPurpose.ENTRY if side == Side.BUY else OrderPurpose.EXIT
    req = OrderRequest(order_id="o1", correlation_id="c1", contract=C, side=side, qty=qty, purpose=purpose,
                       created_ts=T0, limit=1.00)
    return OrderState(order_id="o1", correlation_id="c1", request=req, status=OrderStatus.WORKING, limit=1.00,
                      placed_ts=T0, last_priced_ts=T0, updated_ts=T0)


@pytest.mark.parametrize(("bid", "ask", "wide"), [(0.95, 1.05, False), (0.95, 1.06, True), (0.96, 1.05, False)])
def test_policy_cancel_spread(bid, ask, wide):
    assert OrderPolicy().too_wide(_quote(bid, ask)) is wide


@pytest.mark.parametrize(("age", "problem"), [(15.0, False), (15.001, True)])
def test_policy_quote_age(age, problem):
    req = _working().request
    assert (OrderPolicy().quote_age_problem(req, T0 - timedelta(seconds=age)) is not None) is problem


@pytest.mark.parametrize(("after", "why"), [(120.0, "timeout"), (119.999, None)])
def test_policy_entry_timeout(after, why):
    assert OrderPolicy().time_cancel(_working(), T0 + timedelta(seconds=after)) == why


@pytest.mark.parametrize(("idle", "kind"), [(30.0, "reprice"), (29.999, None)])
def test_policy_reprice_after(idle, kind):
    assert OrderPolicy().on_quote(_working(), _quote(0.98, 1.06), T0 + timedelta(seconds=idle)).kind == kind


@pytest.mark.parametrize(("qty", "refused"), [(2, False), (3, True)])
def test_guard_sells_at_most_what_is_held(qty, refused):
    req = _working(Side.SELL, qty).request
    if refused:
        with pytest.raises(OrderRejected):
            check_order(req, held_qty=3, committed_sell_qty=1)
    else:
        check_order(req, held_qty=3, committed_sell_qty=1)


# ---------------------------------------------------------------- core.execution.pretrade: the clipped chase
@pytest.mark.parametrize(("account", "max_price"), [
    (4400.0, 1.10),  # the cap (5 % = $220) is exactly the limit's premium: no chase room
    (4439.8, 1.10),  # $221.99: one cent of chase (2 x 1.11 x 100 = $222) would breach it
    (4440.0, 1.11),  # $222.00 exactly: one cent of room
    (100_000.0, 1.16),  # far from the cap: the chase ceiling, round(1.10 x 1.05, 2)
])
def test_chase_ceiling_is_clipped_exactly_at_the_cap(account, max_price):
    sig = Signal.model_validate(priced(1.09, 1.11, 1.10, qty=2))
    state = RiskState(account_value=account, buying_power=1e6)
    verdict = check_placement(sig, 2, state, LIM, NOW)
    assert verdict.ok and verdict.max_price == max_price
    assert not exceeds(2 * verdict.max_price * 100, 0.05 * account)
