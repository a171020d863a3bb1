"""VPIN, order-book imbalance, sweep detection, liquidity grades."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from core.analytics.book import book_imbalance, imbalance_l1, imbalance_l5
from core.analytics.liquidity import LiquidityThresholds, liquidity_grade, liquidity_grades, relative_spread
from core.analytics.sweeps import SweepParams, TradePrint, detect_sweeps
from core.analytics.vpin import Vpin, bucket_volume_for


# ------------------------------------------------------------------------ VPIN
def test_bucket_volume_is_adv_over_50() -> None:
    assert bucket_volume_for(1_000_000) == 20_000
    v = Vpin.from_daily_volume(1_000_000)
    assert v.bucket_volume == 20_000 and v.n_buckets == 50
    with pytest.raises(ValueError):
        bucket_volume_for(0)
    with pytest.raises(ValueError):
        Vpin(0.0)


def test_vpin_bucket_splitting_by_hand() -> None:
    # sigma fixed at 0: buy fraction is 1 / 0.5 / 0 by the sign of dP.
    v = Vpin(bucket_volume=100, n_buckets=2, sigma_dp=0.0)
    assert v.update(0.0, 150) is None       # bucket 1: 50 buy/50 sell -> |imb| 0; open bucket 50 (25 buy)
    assert v.buckets_completed == 1
    # bar 2 all buys: open bucket gets 50 more buys -> 75 buy / 25 sell -> |imb| 50;
    # the remaining 100 fill bucket 3 entirely with buys -> |imb| 100.
    assert v.update(+1.0, 150) == pytest.approx((50 + 100) / (2 * 100))
    assert v.buckets_completed == 3
    # bar 3 all sells, exactly one bucket -> window [100, 100]
    assert v.update(-0.5, 100) == pytest.approx(1.0)
    # a balanced bucket halves it: window [100, 0]
    assert v.update(0.0, 100) == pytest.approx(0.5)


def test_vpin_none_until_n_buckets_and_bvc_fraction() -> None:
    v = Vpin(bucket_volume=1000, n_buckets=50, sigma_dp=0.2)
    for _ in range(49):
        assert v.update(0.1, 1000) is None
    frac = ndtr(0.1 / 0.2)
    assert v.buy_fraction(0.1) == pytest.approx(frac, rel=1e-12)
    assert v.update(0.1, 1000) == pytest.approx(abs(2 * frac - 1), rel=1e-12)


def test_vpin_large_bar_and_invalid_bars() -> None:
    v = Vpin(bucket_volume=10, n_buckets=5, sigma_dp=0.0)
    assert v.update(1.0, 1_000) == pytest.approx(1.0)  # 100 buy-only buckets, window holds 5
    assert v.buckets_completed == 100
    before = v.buckets_completed
    v.update(float("nan"), 10)
    v.update(1.0, -5)
    v.update(1.0, float("inf"))
    assert v.buckets_completed == before


def test_vpin_online_sigma_is_sample_std() -> None:
    v = Vpin(bucket_volume=1e9)
    changes = [0.5, -0.25, 0.1, 0.3, -0.6]
    for dp in changes:
        v.update(dp, 1.0)
    assert v.sigma == pytest.approx(float(np.std(changes, ddof=1)), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(0.0, 5_000)), min_size=1, max_size=300),
       st.integers(1, 20))
def test_vpin_in_unit_interval(bars: list[tuple[float, float]], n: int) -> None:
    v = Vpin(bucket_volume=500, n_buckets=n)
    total = 0.0
    for dp, vol in bars:
        out = v.update(dp, vol)
        total += vol
        assert out is None or 0.0 <= out <= 1.0
    assert abs(v.buckets_completed - total / 500) <= 1.0  # every full bucket counted once


# ------------------------------------------------------------------------ book
def test_book_imbalance_levels_by_hand() -> None:
    bids = np.array([300, 100, 100, 100, 100, 999])
    asks = np.array([100, 200, 200, 200, 200, 1])
    assert imbalance_l1(bids, asks) == pytest.approx((300 - 100) / 400)           # 0.5
    assert imbalance_l5(bids, asks) == pytest.approx((700 - 900) / 1600)          # -0.125
    assert book_imbalance(bids, asks, levels=6) == pytest.approx((1699 - 901) / 2600)


def test_book_imbalance_edge_cases() -> None:
    assert imbalance_l1([0], [0]) == 0.0
    assert imbalance_l1([50], [0]) == 1.0
    assert imbalance_l1([0], [50]) == -1.0
    assert imbalance_l5([10, 10], [30]) == pytest.approx(-10 / 50)               # short ladders
    assert imbalance_l1([float("nan")], [10]) == -1.0                           # NaN counts as 0
    assert imbalance_l1([-5], [10]) == -1.0                                     # negative counts as 0
    snaps = book_imbalance(np.array([[1, 1], [3, 0]]), np.array([[1, 0], [1, 5]]), levels=2)
    assert snaps.tolist() == pytest.approx([1 / 3, -3 / 9])
    with pytest.raises(ValueError):
        book_imbalance([1], [1], levels=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e9), min_size=1, max_size=10), st.lists(st.floats(0, 1e9), min_size=1, max_size=10),
       st.integers(1, 10))
def test_book_imbalance_bounded(bids: list[float], asks: list[float], levels: int) -> None:
    x = book_imbalance(bids, asks, levels)
    assert -1.0 <= x <= 1.0


# ------------------------------------------------------------------------ sweeps
def _p(ts: int, price: float, size: float, side: str, ex: str) -> TradePrint:
    return TradePrint(ts_ms=ts, price=price, size=size, side=side, exchange=ex)  # type: ignore[arg-type]


def test_detect_buy_sweep_across_levels_and_exchanges() -> None:
    prints = [
        _p(1_000, 2.10, 50, "B", "CBOE"),
        _p(1_050, 2.11, 40, "B", "PHLX"),
        _p(1_120, 2.12, 60, "B", "ISE"),
        _p(1_100, 2.05, 500, "S", "CBOE"),   # other side in between: ignored, does not break
        _p(1_130, 2.12, 10, "?", "ARCA"),    # unknown side ignored
        _p(5_000, 2.20, 500, "B", "CBOE"),   # later, alone -> not a sweep
    ]
    sweeps = detect_sweeps(prints, SweepParams(window_ms=500, min_size=100))
    assert len(sweeps) == 1
    s = sweeps[0]
    assert (s.side, s.start_ms, s.end_ms, s.n_prints) == ("B", 1_000, 1_120, 3)
    assert s.total_size == 150
    assert s.notional == pytest.approx(2.10 * 50 + 2.11 * 40 + 2.12 * 60)
    assert s.vwap == pytest.approx(s.notional / 150)
    assert (s.low_price, s.high_price, s.levels) == (2.10, 2.12, 3)
    assert s.exchanges == ("CBOE", "ISE", "PHLX")


def test_sweep_thresholds() -> None:
    same_level_many_venues = [_p(0, 1.0, 60, "S", "A"), _p(10, 1.0, 60, "S", "B")]
    one_venue_many_levels = [_p(0, 1.0, 60, "S", "A"), _p(10, 0.99, 60, "S", "A")]
    one_venue_one_level = [_p(0, 1.0, 60, "S", "A"), _p(10, 1.0, 60, "S", "A")]
    params = SweepParams(window_ms=100, min_size=100)
    assert len(detect_sweeps(same_level_many_venues, params)) == 1
    assert len(detect_sweeps(one_venue_many_levels, params)) == 1
    assert detect_sweeps(one_venue_one_level, params) == []
    assert detect_sweeps(same_level_many_venues, SweepParams(window_ms=100, min_size=121)) == []  # too small
    assert detect_sweeps(same_level_many_venues, SweepParams(window_ms=5, min_size=100)) == []    # too slow
    assert detect_sweeps([], params) == []


def test_sweeps_are_split_by_window_and_sorted() -> None:
    prints = [_p(t, 1.0 + t / 1e4, 100, "B", f"X{t}") for t in (0, 100, 200, 1000, 1100)]
    prints += [_p(50, 3.0, 100, "S", "A"), _p(60, 2.9, 100, "S", "B")]
    sweeps = detect_sweeps(list(reversed(prints)), SweepParams(window_ms=300))
    assert [(s.side, s.start_ms, s.n_prints) for s in sweeps] == [("B", 0, 3), ("S", 50, 2), ("B", 1000, 2)]


# ------------------------------------------------------------------------ liquidity
def test_liquidity_grades_by_hand() -> None:
    # mid 1.00: spreads 1%, 4%, 8%, 20%
    bid = np.array([0.995, 0.98, 0.96, 0.90, 0.995, 0.995])
    ask = np.array([1.005, 1.02, 1.04, 1.10, 1.005, 1.005])
    bsz = np.array([500, 60, 10, 1000, 40, 500])
    asz = np.array([200, 80, 20, 1000, 500, 5])
    assert relative_spread(bid, ask)[:4] == pytest.approx([0.01, 0.04, 0.08, 0.20])
    # last two: tight but thin (depth 40 -> C, depth 5 -> D)
    assert liquidity_grades(bid, ask, bsz, asz).tolist() == ["A", "B", "C", "D", "C", "D"]
    assert liquidity_grade(0.995, 1.005, 500, 200) == "A"
    strict = LiquidityThresholds(a_spread=0.005)
    assert liquidity_grade(0.995, 1.005, 500, 200, strict) == "B"


def test_liquidity_invalid_quotes_grade_d() -> None:
    assert liquidity_grade(1.1, 1.0, 1000, 1000) == "D"           # crossed
    assert liquidity_grade(0.0, 0.0, 1000, 1000) == "D"           # no ask
    assert liquidity_grade(float("nan"), 1.0, 1000, 1000) == "D"
    assert liquidity_grade(0.99, 1.0, float("nan"), 1000) == "D"
    assert liquidity_grade(0.0, 0.05, 1000, 1000) == "D"          # zero bid: 200% spread
    assert math.isnan(relative_spread(np.array([2.0]), np.array([1.0]))[0])
