"""clean_chain: every bad-row kind is dropped and counted; good rows survive."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.analytics.validate import REJECT_REASONS, RejectCounts, clean_chain

from ._chains import ASOF, make_chain

NY = ZoneInfo("America/New_York")
GOOD = {"expiry": "2025-01-17", "strike": 100.0, "call": True, "bid": 1.0, "ask": 1.1, "iv": 0.2, "oi": 10.0}


def _one_bad(**overrides: object) -> tuple[int, RejectCounts]:
    chain = make_chain([GOOD, {**GOOD, **overrides}, GOOD])
    clean, counts = clean_chain(chain, ASOF)
    assert len(clean) + counts.total == 3
    return len(clean), counts


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"bid": float("nan")}, "non_finite"),
        ({"ask": float("inf")}, "non_finite"),
        ({"iv": float("nan")}, "non_finite"),
        ({"oi": float("nan")}, "non_finite"),
        ({"strike": float("-inf")}, "non_finite"),
        ({"volume": float("nan")}, "non_finite"),
        ({"gamma": float("inf")}, "non_finite"),
        ({"expiry": "NaT"}, "non_finite"),
        ({"strike": 0.0}, "non_positive_strike"),
        ({"strike": -5.0}, "non_positive_strike"),
        ({"iv": 0.0}, "non_positive_iv"),
        ({"iv": -0.1}, "non_positive_iv"),
        ({"bid": -0.01}, "bad_quote"),
        ({"bid": 0.0, "ask": 0.0}, "bad_quote"),
        ({"ask": -1.0, "bid": -2.0}, "bad_quote"),
        ({"bid": 1.2, "ask": 1.1}, "crossed"),
        ({"oi": -1.0}, "negative_oi"),
        ({"volume": -3.0}, "negative_volume"),
        ({"delta": 1.5}, "bad_greeks"),
        ({"delta": -0.3}, "bad_greeks"),                 # call with a put's delta
        ({"call": False, "delta": 0.3}, "bad_greeks"),   # put with a call's delta
        ({"gamma": -0.01}, "bad_greeks"),
        ({"expiry": "2025-01-09"}, "expired"),
    ],
)
def test_each_bad_row_kind_is_rejected_and_counted(overrides: dict, reason: str) -> None:
    kept, counts = _one_bad(**overrides)
    assert kept == 2
    assert counts.total == 1
    assert getattr(counts, reason) == 1, counts.as_dict()


@pytest.mark.parametrize(
    "overrides",
    [
        {"bid": 0.0},                           # zero bid (far OTM) is allowed
        {"bid": 1.1, "ask": 1.1},               # locked quote allowed
        {"oi": 0.0},
        {"delta": float("nan"), "gamma": float("nan")},  # absent vendor greeks
        {"delta": 0.55, "gamma": 0.04},
        {"call": False, "delta": -0.45},
        {"expiry": "2025-01-10"},               # 0DTE before the close
    ],
)
def test_acceptable_rows_are_kept(overrides: dict) -> None:
    kept, counts = _one_bad(**overrides)
    assert kept == 3 and counts.total == 0


def test_todays_expiry_after_the_close_is_expired() -> None:
    chain = make_chain([{**GOOD, "expiry": "2025-01-10"}, GOOD])
    for hour, minute, expected in [(15, 59, 0), (16, 0, 1), (18, 30, 1)]:
        asof = datetime(2025, 1, 10, hour, minute, tzinfo=NY)
        _, counts = clean_chain(chain, asof)
        assert counts.expired == expected


def test_first_failing_reason_wins_and_order_is_preserved() -> None:
    rows = [
        {**GOOD, "strike": 90.0},
        {**GOOD, "bid": float("nan"), "strike": -1.0, "iv": -1.0},  # non_finite first
        {**GOOD, "strike": -1.0, "iv": -1.0, "oi": -1.0},           # non_positive_strike first
        {**GOOD, "iv": 0.0, "bid": 2.0},                            # iv before crossed
        {**GOOD, "bid": 2.0, "oi": -1.0},                           # crossed before oi
        {**GOOD, "strike": 110.0},
    ]
    clean, counts = clean_chain(make_chain(rows), ASOF)
    assert clean.strike.tolist() == [90.0, 110.0]
    assert counts.as_dict() == {
        "bad_spot": 0, "non_finite": 1, "non_positive_strike": 1, "non_positive_iv": 1, "bad_quote": 0,
        "crossed": 1, "negative_oi": 0, "negative_volume": 0, "bad_greeks": 0, "expired": 0,
    }
    assert counts.total == 4
    assert set(counts.as_dict()) == set(REJECT_REASONS)


def test_bad_spot_rejects_every_row_without_raising() -> None:
    for spot in (0.0, -1.0, float("nan"), float("inf")):
        clean, counts = clean_chain(make_chain([GOOD, GOOD], spot=spot), ASOF)
        assert len(clean) == 0 and counts.bad_spot == 2 and counts.total == 2


def test_empty_and_all_garbage_chains_do_not_raise() -> None:
    clean, counts = clean_chain(make_chain([]), ASOF)
    assert len(clean) == 0 and counts.total == 0
    garbage = make_chain([
        {"strike": np.nan, "bid": np.inf, "ask": -np.inf, "iv": np.nan, "oi": np.nan, "expiry": "NaT"},
        {"strike": -1, "bid": -1, "ask": -1, "iv": -1, "oi": -1, "volume": -1, "delta": 9, "gamma": -9},
    ])
    clean, counts = clean_chain(garbage, ASOF)
    assert len(clean) == 0 and counts.total == 2


_value = st.one_of(
    st.floats(-2.0, 200.0), st.just(0.0), st.just(float("nan")), st.just(float("inf")), st.just(-1.0),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "strike": _value, "bid": _value, "ask": _value, "iv": _value, "oi": _value, "volume": _value,
    "delta": _value, "gamma": _value, "call": st.booleans(),
    "expiry": st.sampled_from(["2025-01-08", "2025-01-10", "2025-01-17", "2025-03-21", "NaT"]),
}), max_size=30))
def test_counts_add_up_and_cleaning_is_idempotent(rows: list[dict]) -> None:
    chain = make_chain(rows)
    clean, counts = clean_chain(chain, ASOF)
    assert len(clean) + counts.total == len(chain)
    again, counts2 = clean_chain(clean, ASOF)
    assert counts2.total == 0 and len(again) == len(clean)
    # survivors satisfy every rule
    assert np.all(np.isfinite(clean.strike) & (clean.strike > 0))
    assert np.all((clean.iv > 0) & (clean.bid >= 0) & (clean.ask > 0) & (clean.bid <= clean.ask))
    assert np.all(clean.open_interest >= 0)
