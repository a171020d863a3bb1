"""Property tests: the rule engine never raises and flags bad numbers as BAD_INPUT."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.domain.contract import Instrument
from core.domain.reasons import Reason
from core.domain.signal import Quote, Signal
from core.risk import RiskDecision, RiskLimits, RiskState, check_signal, check_signal_dict

from ._builders import NOW, base_dict, positions

LIMITS = RiskLimits()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, -1e-9, 1e-300, 1e308, -1e308, 5.0, 4.95, 5.05]
any_float = st.one_of(st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True))


def _pos(x: float) -> bool:
    return math.isfinite(x) and x > 0


def _is_bad(limit: float, bid: float, ask: float, strike: float, qty: float) -> bool:
    return not (
        _pos(limit) and _pos(ask) and _pos(strike) and _pos(qty) and float(qty).is_integer()
        and math.isfinite(bid) and bid >= 0 and bid <= ask
    )


def _check_invariants(d: RiskDecision) -> None:
    assert isinstance(d, RiskDecision)
    assert d.ok == (not d.reasons)
    assert len(set(d.reasons)) == len(d.reasons)
    order = list(Reason)
    assert [order.index(r) for r in d.reasons] == sorted(order.index(r) for r in d.reasons)
    assert set(d.details) == set(d.reasons) and all(d.details.values())


def _constructed(limit: float, bid: float, ask: float, strike: float, qty: Any) -> Signal:
    """A Signal built WITHOUT validation (as a buggy producer might), floats everywhere."""
    raw = base_dict()
    inst = Instrument.model_construct(**{**raw["instrument"], "strike": strike,
                                         "expiry": datetime(2026, 12, 18).date()})
    quote = Quote.model_construct(bid=bid, ask=ask, ts=NOW - timedelta(seconds=2))
    fields = {k: v for k, v in raw.items() if k not in ("instrument", "quote", "ts")}
    fields.update(instrument=inst, quote=quote, ts=NOW - timedelta(seconds=1), limit=limit, qty=qty)
    return Signal.model_construct(**fields)


@SETTINGS
@given(limit=any_float, bid=any_float, ask=any_float, strike=any_float, qty=any_float)
def test_constructed_signal_never_raises(limit: float, bid: float, ask: float, strike: float,
                                         qty: float) -> None:
    d = check_signal(_constructed(limit, bid, ask, strike, qty), RiskState(), LIMITS, NOW)
    _check_invariants(d)
    if _is_bad(limit, bid, ask, strike, qty):
        assert Reason.BAD_INPUT in d.reasons, d.summary()
    if d.ok:
        assert not _is_bad(limit, bid, ask, strike, qty)


@SETTINGS
@given(limit=any_float, bid=any_float, ask=any_float, strike=any_float, qty=any_float)
def test_raw_dict_never_raises(limit: float, bid: float, ask: float, strike: float, qty: float) -> None:
    raw = base_dict(limit=limit, qty=qty)
    raw["quote"].update(bid=bid, ask=ask)
    raw["instrument"]["strike"] = strike
    d = check_signal_dict(raw, RiskState(), LIMITS, NOW)
    _check_invariants(d)
    if _is_bad(limit, bid, ask, strike, qty):
        assert Reason.BAD_INPUT in d.reasons, d.summary()
    if d.ok:
        assert not _is_bad(limit, bid, ask, strike, qty)


@SETTINGS
@given(limit=any_float, bid=any_float, ask=any_float, strike=any_float,
       qty=st.integers(min_value=-10**30, max_value=10**30))
def test_validated_signal_never_raises(limit: float, bid: float, ask: float, strike: float, qty: int) -> None:
    raw = base_dict(limit=limit, qty=qty)
    raw["quote"].update(bid=bid, ask=ask)
    raw["instrument"]["strike"] = strike
    try:
        sig = Signal.model_validate(raw)
    except ValidationError:  # the model refuses bad numbers at the boundary (core.domain.values) ...
        assert _is_bad(limit, bid, ask, strike, float(qty))  # ... and only bad ones
        assert Reason.BAD_INPUT in check_signal_dict(raw, RiskState(), LIMITS, NOW).reasons
        return
    d = check_signal(sig, RiskState(), LIMITS, NOW)
    _check_invariants(d)
    if _is_bad(limit, bid, ask, strike, float(qty)):
        assert Reason.BAD_INPUT in d.reasons, d.summary()
    assert d == check_signal_dict(raw, RiskState(), LIMITS, NOW)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), any_float, st.text(max_size=12))
json_value = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), c, max_size=3)),
                          max_leaves=8)
FIELDS = ["id", "ts", "strategy", "symbol", "instrument", "legs", "side", "qty", "limit", "quote",
          "stop", "targets", "confidence", "horizon", "direction", "instrument.type",
          "instrument.expiry", "instrument.strike", "instrument.right", "instrument.multiplier",
          "quote.bid", "quote.ask", "quote.ts"]


@SETTINGS
@given(junk=st.dictionaries(st.sampled_from(FIELDS), json_value, min_size=1, max_size=4))
def test_arbitrary_junk_fields_never_raise(junk: dict[str, Any]) -> None:
    raw = base_dict()
    for path, value in junk.items():
        head, _, tail = path.partition(".")
        if tail:
            if isinstance(raw.get(head), dict):
                raw[head][tail] = value
        else:
            raw[head] = value
    d = check_signal_dict(raw, RiskState(), LIMITS, NOW)
    _check_invariants(d)


@SETTINGS
@given(obj=json_value)
def test_arbitrary_json_never_raises(obj: Any) -> None:
    d = check_signal_dict(obj, None, LIMITS, NOW)
    _check_invariants(d)
    assert Reason.BAD_INPUT in d.reasons


@SETTINGS
@given(account=any_float, bp=any_float, pnl=any_float, ages=st.dictionaries(st.sampled_from(["SPY", "QQQ"]), any_float),
       n_calls=st.integers(0, 8), halted=st.booleans())
def test_arbitrary_state_never_raises(account: float, bp: float, pnl: float, ages: dict[str, float],
                                      n_calls: int, halted: bool) -> None:
    st_ = RiskState(account_value=account, buying_power=bp, daily_pnl=pnl, data_age_s=ages,
                    open_positions=positions(calls=n_calls), halted=halted)
    d = check_signal(Signal.model_validate(base_dict()), st_, LIMITS, NOW)
    _check_invariants(d)
    if not (math.isfinite(account) and account > 0 and math.isfinite(bp) and math.isfinite(pnl)):
        assert not d.ok


@SETTINGS
@given(now=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-14)),
                                                   timezone(timedelta(hours=14))]))
       | st.datetimes())
def test_arbitrary_now_never_raises(now: datetime) -> None:
    d = check_signal(Signal.model_validate(base_dict()), None, LIMITS, now)
    _check_invariants(d)
    if now.tzinfo is None:
        assert Reason.BAD_INPUT in d.reasons
