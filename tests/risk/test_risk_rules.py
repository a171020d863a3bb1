"""Each hard rule in isolation, a clean pass, and combined failures."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from core.domain.reasons import EXECUTION_ONLY, Reason
from core.domain.signal import Signal
from core.risk import (
    RiskDecision,
    RiskLimits,
    RiskState,
    check_signal,
    check_signal_dict,
    premium_at_risk,
    risk_pct_of_account,
)

from ._builders import DELETE, NOW, base_dict, base_signal, ny, positions, state, with_path

LIMITS = RiskLimits()

Case = tuple[dict[str, Any], RiskState, datetime]


def _leg(side: str = "BUY", **inst: Any) -> dict[str, Any]:
    i = dict(base_dict()["instrument"])
    i.update(inst)
    return {"instrument": i, "side": side, "ratio": 1}


# One crafted (signal, state, now) per code; each must fail ONLY that rule.
ISOLATED: dict[Reason, Callable[[], Case]] = {
    Reason.NOT_OPTION: lambda: (
        base_dict(instrument={"type": "STK"}), state(), NOW),
    Reason.NOT_LONG: lambda: (base_dict(side="SELL"), state(), NOW),
    Reason.NOT_SINGLE_LEG: lambda: (base_dict(legs=[_leg(), _leg()]), state(), NOW),
    Reason.EXPIRED_CONTRACT: lambda: (
        with_path(base_dict(), "instrument.expiry", "2026-11-19"), state(), NOW),
    Reason.BAD_INPUT: lambda: (base_dict(stop=6.0), state(), NOW),
    Reason.RISK_PER_TRADE: lambda: (base_dict(qty=11), state(), NOW),  # $5,500 > 5% of $100k
    Reason.DAILY_LOSS_LIMIT: lambda: (base_dict(), state(daily_pnl=-6000.0), NOW),
    Reason.MAX_POSITIONS: lambda: (base_dict(), state(open_positions=positions(calls=2, puts=4)), NOW),
    Reason.SAME_DIRECTION_CAP: lambda: (base_dict(), state(open_positions=positions(calls=3)), NOW),
    Reason.SPREAD_TOO_WIDE: lambda: (
        with_path(with_path(base_dict(), "quote.bid", 4.5), "quote.ask", 5.1), state(), NOW),
    Reason.STALE_DATA: lambda: (
        with_path(base_dict(), "quote.ts", (NOW - timedelta(seconds=30)).isoformat()), state(), NOW),
    Reason.OUTSIDE_WINDOW: lambda: (
        base_dict(ny(2026, 11, 20, 9, 40)), state(), ny(2026, 11, 20, 9, 40)),  # before 09:45
    Reason.HALTED: lambda: (base_dict(), state(halted=True), NOW),
    Reason.BUYING_POWER: lambda: (base_dict(), state(buying_power=999.0), NOW),
    Reason.STRATEGY_DISABLED: lambda: (
        base_dict(), state(disabled_strategies=["directional_swing"]), NOW),
}


def test_every_reason_code_has_an_isolated_case() -> None:
    assert set(ISOLATED) == set(Reason) - EXECUTION_ONLY
    assert len(Reason) == 16


def test_clean_signal_passes() -> None:
    d = check_signal(base_signal(), RiskState(), LIMITS, NOW)
    assert d.ok and d.reasons == [] and d.details == {}
    assert check_signal_dict(base_dict(), RiskState(), LIMITS, NOW).ok
    assert check_signal(base_signal(), None, None, NOW).ok  # default state & limits


@pytest.mark.parametrize("code", sorted(set(Reason) - EXECUTION_ONLY), ids=lambda r: r.value)
def test_each_code_in_isolation(code: Reason) -> None:
    raw, st, now = ISOLATED[code]()
    decision = check_signal_dict(raw, st, LIMITS, now)
    assert decision.reasons == [code], decision.summary()
    assert not decision.ok
    assert set(decision.details) == {code} and decision.details[code]
    try:
        sig = Signal.model_validate(raw)
    except ValidationError:
        return  # only representable as a raw dict
    assert check_signal(sig, st, LIMITS, now).reasons == [code]


def test_multiple_failures_are_all_listed_in_enum_order() -> None:
    raw = with_path(base_dict(side="SELL", qty=30, stop=9.0), "quote.ts",
                    (NOW - timedelta(minutes=5)).isoformat())
    st = state(halted=True, daily_pnl=-7000, buying_power=100.0,
               open_positions=positions(calls=3, puts=3), disabled_strategies=["DIRECTIONAL_SWING"])
    d = check_signal(Signal.model_validate(raw), st, LIMITS, NOW)
    assert d.reasons == [
        Reason.NOT_LONG, Reason.BAD_INPUT, Reason.RISK_PER_TRADE, Reason.DAILY_LOSS_LIMIT,
        Reason.MAX_POSITIONS, Reason.SAME_DIRECTION_CAP, Reason.STALE_DATA, Reason.HALTED,
        Reason.BUYING_POWER, Reason.STRATEGY_DISABLED,
    ]
    assert list(d.details) == d.reasons
    assert len(set(d.reasons)) == len(d.reasons)


def test_several_findings_for_one_code_are_one_reason_with_joined_detail() -> None:
    raw = base_dict(stop=-1.0, limit=math.nan)  # the Signal model refuses these: checked as raw JSON
    d = check_signal_dict(raw, RiskState(), LIMITS, NOW)
    assert d.reasons.count(Reason.BAD_INPUT) == 1
    assert "limit" in d.details[Reason.BAD_INPUT] and "stop" in d.details[Reason.BAD_INPUT]


# ----------------------------------------------------------------------------- structure
def test_bag_is_not_option_and_not_single_leg() -> None:
    d = check_signal_dict(base_dict(instrument={"type": "BAG"}), None, LIMITS, NOW)
    assert d.reasons == [Reason.NOT_OPTION, Reason.NOT_SINGLE_LEG]


def test_leg_that_sells_is_not_long() -> None:
    d = check_signal_dict(base_dict(legs=[_leg("SELL")]), None, LIMITS, NOW)
    assert d.reasons == [Reason.NOT_LONG]


def test_leg_with_non_option_is_not_option() -> None:
    d = check_signal_dict(base_dict(legs=[_leg(), {"instrument": {"type": "STK"}, "side": "BUY"}]),
                          None, LIMITS, NOW)
    assert Reason.NOT_OPTION in d.reasons and Reason.NOT_SINGLE_LEG in d.reasons


def test_single_matching_leg_is_fine() -> None:
    assert check_signal_dict(base_dict(legs=[_leg()]), None, LIMITS, NOW).ok


# ----------------------------------------------------------------------------- BAD_INPUT
BAD_PATHS: list[tuple[str, Any]] = [
    ("limit", math.nan), ("limit", math.inf), ("limit", -math.inf), ("limit", 0.0), ("limit", -5.0),
    ("qty", 0), ("qty", -3),
    ("quote.bid", -0.01), ("quote.bid", math.nan), ("quote.bid", math.inf),
    ("quote.ask", 0.0), ("quote.ask", -1.0), ("quote.ask", math.nan),
    ("instrument.strike", 0.0), ("instrument.strike", -590.0), ("instrument.strike", math.nan),
    ("instrument.strike", None), ("instrument.expiry", None), ("instrument.right", None),
    ("instrument.multiplier", 0),
    ("stop", 5.0), ("stop", 6.0), ("stop", -0.5), ("stop", math.inf),
    ("targets", [4.0]), ("targets", [5.0]), ("targets", [8.0, math.nan]),
    ("quote.ts", (NOW + timedelta(seconds=30)).isoformat()),
    ("ts", (NOW + timedelta(minutes=10)).isoformat()),
    ("direction", "bearish"),  # a long call is bullish
]


@pytest.mark.parametrize(("path", "value"), BAD_PATHS, ids=[f"{p}={v!r}" for p, v in BAD_PATHS])
def test_bad_input_values_are_bad_input_only(path: str, value: Any) -> None:
    raw = with_path(base_dict(), path, value)
    d = check_signal_dict(raw, RiskState(), LIMITS, NOW)
    assert d.reasons == [Reason.BAD_INPUT], d.summary()
    try:
        sig = Signal.model_validate(raw)
    except ValidationError:
        return
    assert check_signal(sig, RiskState(), LIMITS, NOW).reasons == [Reason.BAD_INPUT]


def test_crossed_quote_is_bad_input() -> None:
    raw = with_path(with_path(base_dict(), "quote.bid", 5.2), "quote.ask", 5.0)  # refused by the model too
    d = check_signal_dict(raw, None, LIMITS, NOW)
    assert d.reasons == [Reason.BAD_INPUT] and "crossed" in d.details[Reason.BAD_INPUT]


def test_quote_a_little_in_the_future_is_tolerated() -> None:
    raw = with_path(base_dict(), "quote.ts", (NOW + timedelta(seconds=3)).isoformat())
    assert check_signal_dict(raw, None, LIMITS, NOW).ok


def test_missing_quote_and_fields_in_raw_dict() -> None:
    raw = with_path(base_dict(), "quote", DELETE)
    d = check_signal_dict(raw, None, LIMITS, NOW)
    assert d.reasons == [Reason.BAD_INPUT]
    assert "quote" in d.details[Reason.BAD_INPUT]


def test_naive_now_is_bad_input_not_an_exception() -> None:
    d = check_signal(base_signal(), None, LIMITS, datetime(2026, 11, 20, 11, 0))
    assert d.reasons == [Reason.BAD_INPUT]


def test_unusable_state_fails_closed() -> None:
    d = check_signal(base_signal(), {"account_value": "lots", "halted": "maybe"}, LIMITS, NOW)
    assert d.reasons == [Reason.BAD_INPUT]
    d = check_signal(base_signal(), state(account_value=math.nan), LIMITS, NOW)
    assert {Reason.BAD_INPUT, Reason.RISK_PER_TRADE, Reason.DAILY_LOSS_LIMIT} <= set(d.reasons)
    assert not d.ok


# ----------------------------------------------------------------------------- check_signal_dict
def test_dict_failing_validation_reports_determinable_codes() -> None:
    raw = base_dict(qty="two", side="SELL", instrument={"type": "STK"})
    d = check_signal_dict(raw, state(halted=True), LIMITS, NOW)
    assert d.reasons == [Reason.NOT_OPTION, Reason.NOT_LONG, Reason.BAD_INPUT, Reason.HALTED]
    assert "qty" in d.details[Reason.BAD_INPUT]


def test_dict_with_unknown_enum_values() -> None:
    raw = base_dict(side="SELL_SHORT", instrument={"type": "SWAP"}, horizon="weekly")
    d = check_signal_dict(raw, None, LIMITS, NOW)
    assert Reason.BAD_INPUT in d.reasons and Reason.NOT_OPTION in d.reasons and Reason.NOT_LONG in d.reasons


@pytest.mark.parametrize("obj", [None, 42, "SIGNAL", [1, 2], {}, {"instrument": None}, {"quote": "x"}])
def test_dict_garbage_is_bad_input(obj: Any) -> None:
    d = check_signal_dict(obj, None, LIMITS, NOW)
    assert Reason.BAD_INPUT in d.reasons and not d.ok


def test_check_signal_accepts_a_mapping_too() -> None:
    assert check_signal(base_dict(), None, LIMITS, NOW).ok  # type: ignore[arg-type]


def test_signal_json_round_trip() -> None:
    sig = base_signal()
    again = json.loads(sig.model_dump_json())
    assert check_signal_dict(again, None, LIMITS, NOW) == check_signal(sig, None, LIMITS, NOW)


# ----------------------------------------------------------------------------- thresholds
def test_risk_per_trade_boundaries_by_horizon() -> None:
    # swing: 5% of 100k = $5,000 -> 10 lots x $5 x 100 passes exactly at the cap, 11 fails
    assert check_signal(base_signal(qty=10), None, LIMITS, NOW).ok
    assert check_signal(base_signal(qty=11), None, LIMITS, NOW).reasons == [Reason.RISK_PER_TRADE]


def test_horizon_inferred_from_trading_day_dte() -> None:
    # Friday -> Monday expiry is 1 trading day: 1dte cap 3% ($3,000)
    inst = dict(base_dict()["instrument"], expiry="2026-11-23")
    ok = base_dict(instrument=inst, qty=6, horizon=None)          # $3,000
    bad = base_dict(instrument=inst, qty=7, horizon=None)         # $3,500
    assert check_signal_dict(ok, None, LIMITS, NOW).ok
    d = check_signal_dict(bad, None, LIMITS, NOW)
    assert d.reasons == [Reason.RISK_PER_TRADE] and "1dte" in d.details[Reason.RISK_PER_TRADE]


def test_mislabelled_horizon_gets_the_stricter_cap() -> None:
    inst = dict(base_dict()["instrument"], expiry="2026-11-20")  # 0DTE, but labelled swing
    raw = base_dict(instrument=inst, qty=5, horizon="swing", strategy="manual")  # $2,500 = 2.5%
    assert check_signal_dict(raw, None, LIMITS, NOW).reasons == [Reason.RISK_PER_TRADE]


def test_daily_loss_just_above_halt_passes() -> None:
    assert check_signal(base_signal(), state(daily_pnl=-5999.99), LIMITS, NOW).ok
    assert check_signal(base_signal(), state(daily_pnl=-6000.0), LIMITS, NOW).reasons == [
        Reason.DAILY_LOSS_LIMIT]


def test_positions_below_caps_pass_and_closed_positions_do_not_count() -> None:
    assert check_signal(base_signal(), state(open_positions=positions(calls=2, puts=3)), LIMITS, NOW).ok
    pos = positions(calls=3)
    for p in pos:
        p["qty"] = 0
    assert check_signal(base_signal(), state(open_positions=pos), LIMITS, NOW).ok


def test_same_direction_counts_puts_for_a_put() -> None:
    inst = dict(base_dict()["instrument"], right="P")
    raw = base_dict(instrument=inst, direction="bearish")
    assert check_signal_dict(raw, state(open_positions=positions(calls=3)), LIMITS, NOW).ok
    assert check_signal_dict(raw, state(open_positions=positions(puts=3)), LIMITS, NOW).reasons == [
        Reason.SAME_DIRECTION_CAP]


def test_spread_boundary() -> None:
    ok = with_path(with_path(base_dict(), "quote.bid", 4.75), "quote.ask", 5.25)   # exactly 10%
    bad = with_path(with_path(base_dict(), "quote.bid", 4.7), "quote.ask", 5.25)
    assert check_signal_dict(ok, None, LIMITS, NOW).ok
    assert check_signal_dict(bad, None, LIMITS, NOW).reasons == [Reason.SPREAD_TOO_WIDE]


def test_zero_bid_is_valid_but_wide() -> None:
    raw = with_path(base_dict(), "quote.bid", 0.0)
    assert check_signal_dict(raw, None, LIMITS, NOW).reasons == [Reason.SPREAD_TOO_WIDE]


def test_stale_data_from_state_ages() -> None:
    assert check_signal(base_signal(), state(data_age_s={"SPY": 60.0}), LIMITS, NOW).ok
    for age in (60.5, math.inf, math.nan):
        d = check_signal(base_signal(), state(data_age_s={"SPY": age}), LIMITS, NOW)
        assert d.reasons == [Reason.STALE_DATA], age
    assert check_signal(base_signal(), state(data_age_s={"QQQ": 999.0}), LIMITS, NOW).ok


def test_quote_age_boundary() -> None:
    at = with_path(base_dict(), "quote.ts", (NOW - timedelta(seconds=15)).isoformat())
    past = with_path(base_dict(), "quote.ts", (NOW - timedelta(seconds=15.5)).isoformat())
    assert check_signal_dict(at, None, LIMITS, NOW).ok
    assert check_signal_dict(past, None, LIMITS, NOW).reasons == [Reason.STALE_DATA]


def test_strategy_disabled_is_case_insensitive() -> None:
    d = check_signal(base_signal(), state(disabled_strategies=["Directional_Swing"]), LIMITS, NOW)
    assert d.reasons == [Reason.STRATEGY_DISABLED]


def test_buying_power_defaults_to_account_value() -> None:
    st = state(account_value=20_000.0)
    assert st.buying_power == 20_000.0
    # $1,000 = 5% of 20k: at the swing cap, within buying power
    assert check_signal(base_signal(), st, LIMITS, NOW).ok
    d = check_signal(base_signal(qty=50), state(account_value=1e6, buying_power=9_999.0), LIMITS, NOW)
    assert d.reasons == [Reason.BUYING_POWER]


def test_expired_today_after_close() -> None:
    inst = dict(base_dict()["instrument"], expiry="2026-11-20")
    now = ny(2026, 11, 20, 16, 0)
    d = check_signal_dict(base_dict(now, instrument=inst, strategy="manual", horizon="0dte"), None, LIMITS, now)
    assert Reason.EXPIRED_CONTRACT in d.reasons and Reason.OUTSIDE_WINDOW in d.reasons


def test_custom_limits() -> None:
    lim = RiskLimits(max_open_positions=1, risk_per_trade_pct={"0dte": 1, "1dte": 1, "swing": 0.5})
    d = check_signal(base_signal(), state(open_positions=positions(puts=1)), lim, NOW)
    assert d.reasons == [Reason.RISK_PER_TRADE, Reason.MAX_POSITIONS]


# ----------------------------------------------------------------------------- helpers
def test_premium_and_pct() -> None:
    sig = base_signal(qty=3, limit=2.5, stop=1.0, targets=[4.0])
    assert premium_at_risk(sig) == pytest.approx(750.0)
    assert premium_at_risk(sig) == pytest.approx(sig.premium_at_risk)
    assert risk_pct_of_account(sig, state(account_value=50_000)) == pytest.approx(1.5)
    assert risk_pct_of_account(sig, None) == pytest.approx(0.75)
    assert math.isnan(premium_at_risk(base_dict(limit=math.nan)))
    assert risk_pct_of_account(sig, state(account_value=0.0)) == math.inf


def test_decision_model_normalises() -> None:
    d = RiskDecision(reasons=[Reason.HALTED, Reason.NOT_OPTION, Reason.HALTED],
                     details={Reason.HALTED: "h"})
    assert d.reasons == [Reason.NOT_OPTION, Reason.HALTED] and not d.ok
    assert d.details[Reason.NOT_OPTION]
    assert RiskDecision(ok=True, reasons=[], details={}).ok
    with pytest.raises(ValueError):
        RiskDecision(ok=True, reasons=[Reason.HALTED], details={})
    again = RiskDecision.model_validate_json(d.model_dump_json())
    assert again == d


def test_state_json_defaults() -> None:
    st = RiskState.model_validate_json("{}")
    assert st.account_value == 100_000.0 and st.buying_power == 100_000.0
    assert st.daily_pnl == 0.0 and st.open_positions == [] and st.halted is False
    assert st.disabled_strategies == [] and st.data_age_s == {}
    assert st.session_open is None and st.session_close is None
    st = RiskState.model_validate_json('{"open_positions": [{}], "extra_key": 1}')
    p = st.open_positions[0]
    assert (p.qty, p.multiplier, p.right, p.direction) == (1, 100, None, None)


def test_check_is_deterministic_and_pure() -> None:
    sig, st = base_signal(), state(open_positions=positions(calls=1))
    before = (sig.model_dump(), st.model_dump())
    a = check_signal(sig, st, LIMITS, NOW)
    b = check_signal(sig, st, LIMITS, NOW)
    assert a == b and (sig.model_dump(), st.model_dump()) == before


def test_now_in_another_timezone_is_the_same_instant() -> None:
    assert check_signal(base_signal(), None, LIMITS, NOW.astimezone(UTC)).ok
    assert date(2026, 11, 20) == NOW.astimezone(UTC).date()
