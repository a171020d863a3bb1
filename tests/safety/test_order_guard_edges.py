"""Safety line: the order guard refuses what the order model would refuse, even when the model's
validation was bypassed (``model_copy(update=...)`` - how a reprice or a hand-made order is built -
does not validate), and it is exact at its boundaries: a zero or negative size, a zero, negative,
infinite or NaN price is refused; a 0DTE contract can be bought on its expiry day, not the day after.
Every refusal carries its reason code, the order id and a detail that says what was wrong."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.domain.contract import Instrument, OptionContract, Right, SecType
from core.domain.reasons import Reason
from core.domain.signal import Leg, Side
from core.execution import OrderPurpose, OrderRejected, OrderRequest, check_order

NY = ZoneInfo("America/New_York")
T0 = datetime(2026, 1, 16, 15, 55, tzinfo=NY)  # the contract's expiry day, five minutes before the close
C = OptionContract(symbol="SPY", expiry=date(2026, 1, 16), strike=590, right=Right.CALL)


def order(side: Side = Side.BUY, **update: object) -> OrderRequest:
    base = OrderRequest(order_id="ord-7", correlation_id="c", contract=C, side=side, qty=2,
                        purpose=OrderPurpose.ENTRY if side == Side.BUY else OrderPurpose.EXIT, created_ts=T0,
                        limit=0.35, max_price=0.40, min_price=0.05)
    return base.model_copy(update=update)  # no validation: what a careless update would produce


def refused(o: OrderRequest, **kw: int) -> OrderRejected:
    with pytest.raises(OrderRejected) as ei:
        check_order(o, **kw)
    err = ei.value
    assert err.order_id == "ord-7" and "ord-7" in str(err), str(err)
    assert err.detail and err.reason.value in str(err) and err.detail in str(err)
    return err


@pytest.mark.parametrize("qty", [0, -1, -50])
@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_non_positive_size_is_refused(qty: int, side: Side) -> None:
    err = refused(order(side, qty=qty), held_qty=10)
    assert err.reason == Reason.BAD_INPUT and str(qty) in err.detail


@pytest.mark.parametrize("field", ["limit", "max_price", "min_price"])
@pytest.mark.parametrize("value", [0.0, -0.01, -5.0, math.inf, -math.inf, math.nan])
def test_bad_prices_are_refused(field: str, value: float) -> None:
    err = refused(order(**{field: value}))
    assert err.reason == Reason.BAD_INPUT and field in err.detail


@pytest.mark.parametrize("value", [0.01, 0.05, 0.5, 0.99, 1.0, 1234.5])
def test_small_and_large_finite_prices_pass(value: float) -> None:
    """Most 0DTE options trade under $1: a guard that refused them would stop the desk."""
    assert check_order(order(limit=value, max_price=value, min_price=value)) == C


def test_a_contract_can_be_bought_on_its_expiry_day_not_after() -> None:
    assert check_order(order()) == C
    late = order(created_ts=T0 + timedelta(days=1))
    err = refused(late)
    assert err.reason == Reason.EXPIRED_CONTRACT and C.label() in err.detail
    midnight = order(created_ts=datetime(2026, 1, 16, 23, 59, 59, tzinfo=NY))
    assert check_order(midnight) == C  # still the expiry date in New York


def test_a_sell_never_exceeds_what_is_held_and_not_already_being_sold() -> None:
    assert check_order(order(Side.SELL, qty=2), held_qty=2) == C
    err = refused(order(Side.SELL, qty=2), held_qty=3, committed_sell_qty=2)
    assert err.reason == Reason.NOT_LONG and "only 1 held" in err.detail
    assert refused(order(Side.SELL, purpose=OrderPurpose.ENTRY), held_qty=5).reason == Reason.NOT_LONG
    assert refused(order(Side.BUY, purpose=OrderPurpose.EXIT)).reason == Reason.BAD_INPUT


@pytest.mark.parametrize("kind", [SecType.STK, SecType.FUT, SecType.CASH])
def test_a_non_option_is_named_in_the_refusal(kind: SecType) -> None:
    err = refused(order(contract=Instrument(type=kind)))
    assert err.reason == Reason.NOT_OPTION and f"{kind.value} is not an option" == err.detail


def test_an_incomplete_option_is_named_in_the_refusal() -> None:
    err = refused(order(contract=Instrument(type=SecType.OPT, strike=590)))
    assert err.reason == Reason.NOT_OPTION and err.detail == "option is not fully specified"


def test_a_refusal_without_an_order_id_has_no_order_suffix() -> None:
    err = OrderRejected(Reason.NOT_LONG, "x")
    assert str(err) == f"{Reason.NOT_LONG.value}: x" and err.order_id is None and err.detail == "x"


# The refusal's detail is what the admin reads on the Telegram card and in the audit stream: it must
# say which rule refused the order (pinned verbatim, so a reworded refusal is a deliberate change),
# and every refusal names its order.
LEG_OPT = Instrument(type=SecType.OPT, expiry=date(2026, 1, 16), strike=590, right=Right.CALL)


@pytest.mark.parametrize(("update", "reason", "detail"), [
    ({"contract": Instrument(type=SecType.BAG)}, Reason.NOT_SINGLE_LEG, "combo/spread (BAG) orders are not allowed"),
    ({"legs": [Leg(instrument=LEG_OPT, side=Side.BUY), Leg(instrument=LEG_OPT, side=Side.SELL)]},
     Reason.NOT_SINGLE_LEG, "2 legs: only single-leg orders"),
    ({"legs": [Leg(instrument=Instrument(type=SecType.STK), side=Side.BUY)]}, Reason.NOT_OPTION,
     "leg is STK, not an option"),
    ({"legs": [Leg(instrument=LEG_OPT, side=Side.SELL)]}, Reason.NOT_LONG, "a SELL leg opens a short option"),
])
def test_each_leg_refusal_says_why(update: dict, reason: Reason, detail: str) -> None:
    err = refused(order(**update))
    assert err.reason == reason and err.detail == detail


def test_side_and_purpose_mismatches_say_why() -> None:
    assert refused(order(Side.SELL, purpose=OrderPurpose.ENTRY), held_qty=5).detail == \
        "sell to open would be a short option"
    assert refused(order(Side.BUY, purpose=OrderPurpose.EXIT)).detail == \
        "a BUY is always an entry (there are no shorts to cover)"
