"""GEX/DEX, walls, zero-gamma and max pain against small hand-computed chains."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.analytics.expiry_time import year_fraction
from core.analytics.exposure import compute_exposure, find_walls, sum_by
from core.analytics.gamma_flip import find_zero_gamma, gex_profile, zero_gamma_profile
from core.analytics.greeks import delta as bs_delta
from core.analytics.greeks import gamma as bs_gamma
from core.analytics.max_pain import max_pain, pain_by_candidate, pain_matrix

from ._chains import ASOF, make_chain

S = 100.0
E1 = "2025-01-17"
E2 = "2025-02-21"


def gex_hand(gamma: float, oi: float, call: bool, spot: float = S) -> float:
    """gamma x OI x 100 x S^2 x 0.01, calls +, puts -."""
    return (1 if call else -1) * gamma * oi * 100 * spot**2 * 0.01


def dex_hand(delta: float, oi: float, spot: float = S) -> float:
    return delta * oi * 100 * spot


# Four contracts with vendor greeks, so every figure is arithmetic by hand.
VENDOR_ROWS = [
    {"expiry": E1, "strike": 100.0, "call": True, "oi": 1000, "gamma": 0.04, "delta": 0.5},
    {"expiry": E1, "strike": 110.0, "call": True, "oi": 3000, "gamma": 0.02, "delta": 0.2},
    {"expiry": E1, "strike": 95.0, "call": False, "oi": 2000, "gamma": 0.03, "delta": -0.3},
    {"expiry": E2, "strike": 100.0, "call": False, "oi": 500, "gamma": 0.04, "delta": -0.5},
]


def test_gex_dex_totals_by_strike_and_expiry_by_hand() -> None:
    res = compute_exposure(make_chain(VENDOR_ROWS), 0.05, 0.0, grid_levels=0)
    # per contract: 0.04*1000*100*100^2*0.01 = 400_000, etc.
    assert res.gex.tolist() == pytest.approx([400_000.0, 600_000.0, -600_000.0, -200_000.0])
    assert res.dex.tolist() == pytest.approx([5_000_000.0, 6_000_000.0, -6_000_000.0, -2_500_000.0])
    assert res.gex_total == pytest.approx(400_000 + 600_000 - 600_000 - 200_000)  # 200_000
    assert res.dex_total == pytest.approx(5e6 + 6e6 - 6e6 - 2.5e6)               # 2_500_000
    assert res.call_gex_total == pytest.approx(1_000_000.0)
    assert res.put_gex_total == pytest.approx(-800_000.0)
    assert res.gex_by_strike_dict() == pytest.approx({95.0: -600_000.0, 100.0: 200_000.0, 110.0: 600_000.0})
    assert res.call_gex_by_strike.tolist() == pytest.approx([0.0, 400_000.0, 600_000.0])
    assert res.put_gex_by_strike.tolist() == pytest.approx([-600_000.0, -200_000.0, 0.0])
    assert res.dex_by_strike.tolist() == pytest.approx([-6e6, 2.5e6, 6e6])
    assert res.expiries.astype(str).tolist() == [E1, E2]
    assert res.gex_by_expiry.tolist() == pytest.approx([400_000.0, -200_000.0])
    assert res.dex_by_expiry.tolist() == pytest.approx([5e6, -2.5e6])
    # walls: call 110 (600k > 400k); put 95 (|-600k| > |-200k|);
    # max |net|: 95 and 110 tie at 600k -> lowest strike
    assert res.call_wall == 110.0
    assert res.put_wall == 95.0
    assert res.max_gamma_strike == 95.0
    assert res.zero_gamma is None and res.gamma_profile is None


def test_gex_scales_with_spot_squared() -> None:
    rows = [{"strike": 100.0, "call": True, "oi": 10, "gamma": 0.05}]
    for spot in (50.0, 100.0, 200.0):
        res = compute_exposure(make_chain(rows, spot=spot), 0.0, 0.0, grid_levels=0)
        assert res.gex_total == pytest.approx(0.05 * 10 * 100 * spot * spot * 0.01)


def test_model_greeks_fill_missing_vendor_values() -> None:
    rows = [
        {"expiry": E1, "strike": 105.0, "call": True, "oi": 700, "iv": 0.25},                 # both computed
        {"expiry": E1, "strike": 95.0, "call": False, "oi": 300, "iv": 0.3, "delta": -0.2},   # gamma computed
        {"expiry": E2, "strike": 100.0, "call": True, "oi": 100, "gamma": 0.01},              # delta computed
    ]
    chain = make_chain(rows)
    res = compute_exposure(chain, 0.04, 0.01, grid_levels=0)
    T = year_fraction(ASOF, chain.expiry)
    g = bs_gamma(S, chain.strike, T, 0.04, 0.01, chain.iv)
    d = bs_delta(S, chain.strike, T, 0.04, 0.01, chain.iv, chain.is_call)
    assert res.gamma.tolist() == pytest.approx([g[0], g[1], 0.01], rel=1e-12)
    assert res.delta.tolist() == pytest.approx([d[0], -0.2, d[2]], rel=1e-12)
    assert res.gex_total == pytest.approx(gex_hand(g[0], 700, True) + gex_hand(g[1], 300, False)
                                          + gex_hand(0.01, 100, True), rel=1e-12)


def test_chain_rate_overrides_argument() -> None:
    chain = make_chain([{"strike": 100.0, "call": True, "oi": 100}])
    base = compute_exposure(chain, 0.05, 0.0, grid_levels=0)
    chain.rate = 0.05
    assert compute_exposure(chain, 0.0, 0.0, grid_levels=0).dex_total == pytest.approx(base.dex_total, rel=1e-14)
    assert compute_exposure(chain, 0.0, 0.0, grid_levels=0).rate == 0.05


def test_walls_none_when_no_exposure() -> None:
    w = find_walls(np.array([90.0, 100.0]), np.array([0.0, 0.0]), np.array([0.0, 0.0]))
    assert (w.call_wall, w.put_wall, w.max_gamma_strike) == (None, None, None)
    only_calls = compute_exposure(make_chain([{"strike": 100.0, "call": True, "oi": 5, "gamma": 0.1}]), 0.0, 0.0,
                                  grid_levels=0)
    assert only_calls.call_wall == 100.0 and only_calls.put_wall is None


def test_empty_chain() -> None:
    res = compute_exposure(make_chain([]), 0.045, 0.0)
    assert res.gex_total == 0.0 and res.dex_total == 0.0
    assert res.strikes.size == 0 and res.expiries.size == 0
    assert (res.call_wall, res.put_wall, res.max_gamma_strike, res.zero_gamma) == (None, None, None, None)
    assert res.max_pain == {}


def test_sum_by() -> None:
    keys, a, b = sum_by(np.array([3.0, 1.0, 3.0]), np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 1.0]))
    assert keys.tolist() == [1.0, 3.0] and a.tolist() == [2.0, 5.0] and b.tolist() == [1.0, 2.0]


# --------------------------------------------------------------------- max pain
MAX_PAIN_ROWS = [
    # expiry 1: calls 90:100, 100:200, 110:300; puts 90:300, 100:200, 110:100
    {"expiry": E1, "strike": 90.0, "call": True, "oi": 100},
    {"expiry": E1, "strike": 100.0, "call": True, "oi": 200},
    {"expiry": E1, "strike": 110.0, "call": True, "oi": 300},
    {"expiry": E1, "strike": 90.0, "call": False, "oi": 300},
    {"expiry": E1, "strike": 100.0, "call": False, "oi": 200},
    {"expiry": E1, "strike": 110.0, "call": False, "oi": 100},
]


def test_max_pain_by_hand() -> None:
    # pain(90)  = calls 0                     + puts 200*10 + 100*20 = 4000
    # pain(100) = calls 100*10 = 1000         + puts 100*10 = 1000   -> 2000  (minimum)
    # pain(110) = calls 100*20 + 200*10 = 4000 + puts 0               = 4000
    chain = make_chain(MAX_PAIN_ROWS)
    e, k, pain = pain_by_candidate(chain.expiry, chain.strike, chain.is_call, chain.open_interest)
    assert e.astype(str).tolist() == [E1, E1, E1]
    assert k.tolist() == [90.0, 100.0, 110.0]
    assert pain.tolist() == pytest.approx([4000.0, 2000.0, 4000.0])
    assert compute_exposure(chain, 0.0, 0.0, grid_levels=0).max_pain == {np.datetime64(E1).astype(object): 100.0}


def test_max_pain_per_expiry_and_ties() -> None:
    rows = MAX_PAIN_ROWS + [
        # expiry 2: call 100 x500, put 105 x100 -> pain(100) = 100*5 = 500, pain(105) = 500*5 = 2500
        {"expiry": E2, "strike": 100.0, "call": True, "oi": 500},
        {"expiry": E2, "strike": 105.0, "call": False, "oi": 100},
    ]
    chain = make_chain(rows)
    mp = max_pain(chain.expiry, chain.strike, chain.is_call, chain.open_interest)
    assert [d.isoformat() for d in mp] == [E1, E2]
    assert list(mp.values()) == [100.0, 100.0]
    # a flat bottom (tie) goes to the lowest strike: call 100 x1, put 110 x1
    # pain(100) = 10, pain(105) = 5 + 5 = 10, pain(110) = 10 -> 100
    tie = make_chain([
        {"strike": 100.0, "call": True, "oi": 1}, {"strike": 105.0, "call": True, "oi": 0},
        {"strike": 110.0, "call": False, "oi": 1},
    ])
    assert list(max_pain(tie.expiry, tie.strike, tie.is_call, tie.open_interest).values()) == [100.0]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([E1, E2, "2025-03-21"]), st.sampled_from([80.0, 90.0, 95.0, 97.5, 100.0,
                                                                                      102.5, 110.0, 125.0]),
                          st.booleans(), st.integers(0, 10_000)), min_size=1, max_size=40))
def test_max_pain_matches_brute_force(rows: list[tuple]) -> None:
    chain = make_chain([{"expiry": e, "strike": k, "call": c, "oi": oi} for e, k, c, oi in rows])
    mp = max_pain(chain.expiry, chain.strike, chain.is_call, chain.open_interest)
    assert len(mp) == len({e for e, *_ in rows})
    for d, strike in mp.items():
        m = chain.expiry == np.datetime64(d)
        cands, pain = pain_matrix(chain.strike[m], chain.is_call[m], chain.open_interest[m])
        assert strike in cands.tolist()
        assert pain[cands.tolist().index(strike)] == pytest.approx(pain.min(), rel=1e-12, abs=1e-9)
        assert strike == cands[np.argmin(pain)]  # integer OI: exact, lowest strike on ties


# -------------------------------------------------------------------- zero gamma
def test_find_zero_gamma_interpolation_by_hand() -> None:
    lv = np.array([1.0, 2.0, 3.0, 4.0])
    assert find_zero_gamma(lv, np.array([-2.0, -1.0, 1.0, 3.0]), 2.0) == pytest.approx(2.5)
    assert find_zero_gamma(lv, np.array([-3.0, -1.0, 3.0, 5.0]), 2.0) == pytest.approx(2.25)  # 2 + 1/(1+3)
    five = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    two_flips = np.array([1.0, -1.0, -1.0, 1.0, 1.0])  # crossings at 1.5 and 3.5
    assert find_zero_gamma(five, two_flips, 4.0) == pytest.approx(3.5)
    assert find_zero_gamma(five, two_flips, 1.0) == pytest.approx(1.5)
    assert find_zero_gamma(np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.0, 1.0]), 2.9) == 2.0
    assert find_zero_gamma(lv, np.array([1.0, 2.0, 0.5, 3.0]), 2.0) is None
    assert find_zero_gamma(lv, np.zeros(4), 2.0) is None


@pytest.mark.parametrize(("r", "q"), [(0.0, 0.0), (0.05, 0.02)])
def test_zero_gamma_of_symmetric_call_put_pair_is_analytic(r: float, q: float) -> None:
    # Call K=110 and put K=90 with equal OI, T and vol: their gammas are equal where
    # d1(110) = -d1(90), i.e. ln(L/110) + ln(L/90) + 2 (r - q + sigma^2/2) T = 0
    #   => L* = sqrt(110 * 90) * exp(-(r - q + sigma^2/2) T); GEX < 0 below L*, > 0 above.
    sigma = 0.2
    rows = [{"expiry": E2, "strike": 110.0, "call": True, "oi": 1000, "iv": sigma},
            {"expiry": E2, "strike": 90.0, "call": False, "oi": 1000, "iv": sigma}]
    chain = make_chain(rows)
    T = float(year_fraction(ASOF, chain.expiry)[0])
    expected = math.sqrt(110.0 * 90.0) * math.exp(-(r - q + 0.5 * sigma * sigma) * T)
    res = compute_exposure(chain, r, q)  # default 200-level grid over +-20%
    assert res.zero_gamma == pytest.approx(expected, abs=1e-3)
    fine = compute_exposure(chain, r, q, grid_levels=4001)
    assert fine.zero_gamma == pytest.approx(expected, abs=1e-5)
    prof = res.gamma_profile
    assert prof is not None and prof.levels.shape == (200,)
    assert prof.levels[0] == pytest.approx(80.0) and prof.levels[-1] == pytest.approx(120.0)
    assert np.all(prof.gex[prof.levels < expected] < 0) and np.all(prof.gex[prof.levels > expected] > 0)


def test_zero_gamma_none_when_profile_keeps_sign() -> None:
    calls_only = make_chain([{"strike": k, "call": True, "oi": 100} for k in (95.0, 100.0, 105.0)])
    assert compute_exposure(calls_only, 0.04, 0.0).zero_gamma is None
    puts_only = make_chain([{"strike": k, "call": False, "oi": 100} for k in (95.0, 100.0, 105.0)])
    assert compute_exposure(puts_only, 0.04, 0.0).zero_gamma is None


def test_gex_profile_matches_direct_repricing_and_chunking() -> None:
    rng = np.random.default_rng(3)
    n = 57
    K = rng.uniform(80, 120, n)
    T = rng.uniform(1 / 365, 0.5, n)
    iv = rng.uniform(0.1, 0.6, n)
    oi = rng.integers(0, 5000, n).astype(float)
    call = rng.random(n) < 0.5
    levels = np.linspace(80, 120, 31)
    direct = np.array([
        np.sum(np.where(call, 1.0, -1.0) * bs_gamma(L, K, T, 0.03, 0.01, iv) * oi * 100 * L * L * 0.01)
        for L in levels
    ])
    for max_elements in (1, 7, 100, 1 << 20):
        prof = gex_profile(levels, K, T, iv, oi, call, 0.03, 0.01, max_elements=max_elements)
        np.testing.assert_allclose(prof, direct, rtol=1e-10, atol=1e-6)
    zp = zero_gamma_profile(100.0, K, T, iv, oi, call, 0.03, 0.01, grid_levels=31)
    np.testing.assert_allclose(zp.gex, direct, rtol=1e-10, atol=1e-6)
    expected = find_zero_gamma(levels, direct, 100.0)
    assert (zp.zero_gamma is None and expected is None) or zp.zero_gamma == pytest.approx(expected, rel=1e-9)


def test_flip_grid_parameters_validated() -> None:
    with pytest.raises(ValueError):
        zero_gamma_profile(100.0, np.array([100.0]), np.array([0.1]), np.array([0.2]), np.array([1.0]),
                           np.array([True]), 0.0, 0.0, grid_levels=1)


# --------------------------------------------------------------------- properties
_contract = st.tuples(
    st.floats(60.0, 140.0),            # strike
    st.sampled_from([E1, E2, "2025-06-20"]),
    st.floats(0.05, 1.5),              # iv
    st.integers(1, 50_000),            # open interest
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_contract, min_size=1, max_size=25), st.floats(0.0, 1.0))
def test_gex_sign_flips_when_oi_moves_from_calls_to_puts(contracts: list[tuple], alpha: float) -> None:
    def chain_with(put_share: float):
        rows = []
        for k, e, iv, oi in contracts:
            rows.append({"strike": k, "expiry": e, "iv": iv, "call": True, "oi": oi * (1 - put_share)})
            rows.append({"strike": k, "expiry": e, "iv": iv, "call": False, "oi": oi * put_share})
        return make_chain(rows)

    all_calls = compute_exposure(chain_with(0.0), 0.045, 0.01, grid_levels=0)
    all_puts = compute_exposure(chain_with(1.0), 0.045, 0.01, grid_levels=0)
    mixed = compute_exposure(chain_with(alpha), 0.045, 0.01, grid_levels=0)
    assume(all_calls.gex_total > 1e-6)  # deep OTM short-dated contracts can have gamma underflow to 0
    assert all_calls.gex_total > 0 and all_puts.gex_total < 0
    assert all_puts.gex_total == pytest.approx(-all_calls.gex_total, rel=1e-12)
    # moving a share alpha of OI to puts scales GEX by (1 - 2 alpha)
    assert mixed.gex_total == pytest.approx((1 - 2 * alpha) * all_calls.gex_total, rel=1e-9, abs=1e-6)
    np.testing.assert_allclose(all_puts.gex_by_strike, -all_calls.gex_by_strike, rtol=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_contract, st.booleans()), min_size=1, max_size=25))
def test_aggregates_are_consistent(rows: list[tuple]) -> None:
    chain = make_chain([{"strike": k, "expiry": e, "iv": iv, "oi": oi, "call": c} for (k, e, iv, oi), c in rows])
    res = compute_exposure(chain, 0.045, 0.0, grid_levels=50)
    scale = max(1.0, float(np.abs(res.gex).sum()))
    assert res.gex_by_strike.sum() == pytest.approx(res.gex_total, abs=1e-9 * scale)
    assert res.gex_by_expiry.sum() == pytest.approx(res.gex_total, abs=1e-9 * scale)
    assert res.call_gex_total >= 0 >= res.put_gex_total
    assert np.all(np.where(chain.is_call, res.gex >= 0, res.gex <= 0))
    for wall in (res.call_wall, res.put_wall, res.max_gamma_strike):
        assert wall is None or wall in chain.strike.tolist()
    if res.zero_gamma is not None:
        assert 0.8 * S <= res.zero_gamma <= 1.2 * S
