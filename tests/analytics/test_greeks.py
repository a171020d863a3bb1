"""Greeks: textbook values (Hull), independent closed form, finite differences, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.analytics import greeks as G
from core.analytics.black_scholes import bs_price
from core.analytics.greeks import Greeks, greeks, theta_per_day, vega_per_point


def _close_to_printed(value: float, printed: float, decimals: int) -> bool:
    """``value`` agrees with a textbook figure printed to ``decimals`` places."""
    return abs(float(value) - printed) <= 0.5 * 10.0 ** (-decimals) + 1e-12


# --------------------------------------------------------------------------- Hull
def test_hull_price_example_42_40() -> None:
    # Hull, Options Futures & Other Derivatives, Example 15.6: c = 4.76, p = 0.81
    c, p = bs_price(42.0, 40.0, 0.5, 0.10, 0.0, 0.20, np.array([True, False]))
    assert _close_to_printed(c, 4.76, 2)
    assert _close_to_printed(p, 0.81, 2)


def test_hull_index_option_with_dividend_yield() -> None:
    # Hull Example 17.1: S=930, K=900, r=8%, q=3%, sigma=20%, T=2 months -> c = 51.83
    assert _close_to_printed(bs_price(930.0, 900.0, 2 / 12, 0.08, 0.03, 0.20, True), 51.83, 2)


def test_hull_greeks_example_49_50() -> None:
    # Hull ch. 19 worked examples: S=49, K=50, r=5%, sigma=20%, T=20 weeks = 0.3846
    g = greeks(49.0, 50.0, 0.3846, 0.05, 0.0, 0.20, True)
    assert _close_to_printed(g.delta, 0.522, 3)
    assert _close_to_printed(g.gamma, 0.066, 3)
    assert _close_to_printed(g.vega, 12.1, 1)          # per 1.00 vol
    assert _close_to_printed(g.vega_per_point(), 0.121, 3)
    assert _close_to_printed(g.theta, -4.31, 2)        # per year
    assert _close_to_printed(g.theta_per_day(), -0.0118, 4)  # per calendar day
    assert _close_to_printed(theta_per_day(g.theta, 252.0), -0.0171, 4)  # per trading day


# ----------------------------------------------------------- independent closed form
def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def reference_greeks(S: float, K: float, T: float, r: float, q: float, s: float, call: bool) -> dict[str, float]:
    """Scalar textbook formulas (Hull / Haug), written independently with math.erf."""
    st_ = math.sqrt(T)
    d1 = (math.log(S / K) + (r - q + s * s / 2.0) * T) / (s * st_)
    d2 = d1 - s * st_
    eq, er = math.exp(-q * T), math.exp(-r * T)
    gamma = eq * _npdf(d1) / (S * s * st_)
    vega = S * eq * _npdf(d1) * st_
    vanna = -eq * _npdf(d1) * d2 / s
    if call:
        delta = eq * _ncdf(d1)
        theta = -S * eq * _npdf(d1) * s / (2 * st_) - r * K * er * _ncdf(d2) + q * S * eq * _ncdf(d1)
        charm = q * eq * _ncdf(d1) - eq * _npdf(d1) * (2 * (r - q) * T - d2 * s * st_) / (2 * T * s * st_)
    else:
        delta = eq * (_ncdf(d1) - 1.0)
        theta = -S * eq * _npdf(d1) * s / (2 * st_) + r * K * er * _ncdf(-d2) - q * S * eq * _ncdf(-d1)
        charm = -q * eq * _ncdf(-d1) - eq * _npdf(d1) * (2 * (r - q) * T - d2 * s * st_) / (2 * T * s * st_)
    return {"delta": delta, "gamma": gamma, "vega": vega, "theta": theta, "vanna": vanna, "charm": charm}


CASES = [
    # S, K, T, r, q, sigma
    (49.0, 50.0, 0.3846, 0.05, 0.0, 0.20),
    (42.0, 40.0, 0.5, 0.10, 0.0, 0.20),
    (930.0, 900.0, 2 / 12, 0.08, 0.03, 0.20),
    (100.0, 95.0, 0.4, 0.03, 0.02, 0.30),
    (590.0, 600.0, 2 / 365, 0.045, 0.013, 0.15),     # 2-day option
    (100.0, 130.0, 1.5, 0.05, 0.03, 0.50),
    (5900.0, 5850.0, 30 / 525600, 0.045, 0.0, 0.12),  # 30 minutes left (0DTE)
]
NAMES = ("delta", "gamma", "vega", "theta", "vanna", "charm")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("call", [True, False])
def test_matches_independent_closed_form(case: tuple, call: bool) -> None:
    g = greeks(*case, call)
    ref = reference_greeks(*case, call)
    for name in NAMES:
        assert float(getattr(g, name)) == pytest.approx(ref[name], rel=1e-6, abs=1e-6), name


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("call", [True, False])
def test_single_greek_functions_agree_with_greeks(case: tuple, call: bool) -> None:
    S, K, T, r, q, s = case
    g = greeks(S, K, T, r, q, s, call)
    assert G.delta(S, K, T, r, q, s, call) == pytest.approx(g.delta, rel=1e-12)
    assert G.gamma(S, K, T, r, q, s) == pytest.approx(g.gamma, rel=1e-12)
    assert G.vega(S, K, T, r, q, s) == pytest.approx(g.vega, rel=1e-12)
    assert G.theta(S, K, T, r, q, s, call) == pytest.approx(g.theta, rel=1e-12)
    assert G.vanna(S, K, T, r, q, s) == pytest.approx(g.vanna, rel=1e-12, abs=1e-15)
    assert G.charm(S, K, T, r, q, s, call) == pytest.approx(g.charm, rel=1e-12, abs=1e-15)


# ------------------------------------------------------------- finite differences
def _richardson(estimate, h: float) -> float:
    """Eliminate the O(h^2) term of a central-difference estimate."""
    return (4.0 * estimate(h / 2.0) - estimate(h)) / 3.0


def finite_difference_greeks(S: float, K: float, T: float, r: float, q: float, s: float, call: bool) -> dict:
    def P(dS: float = 0.0, dT: float = 0.0, ds: float = 0.0) -> float:
        return float(bs_price(S + dS, K, T + dT, r, q, s + ds, call))

    hs = 1e-2 * S * s * math.sqrt(T)  # ~1% of a standard deviation move
    ht = 1e-2 * T
    hv = 1e-2 * s
    return {
        "delta": _richardson(lambda h: (P(dS=h) - P(dS=-h)) / (2 * h), hs),
        "gamma": _richardson(lambda h: (P(dS=h) - 2 * P() + P(dS=-h)) / (h * h), hs),
        "vega": _richardson(lambda h: (P(ds=h) - P(ds=-h)) / (2 * h), hv),
        "theta": _richardson(lambda h: -(P(dT=h) - P(dT=-h)) / (2 * h), ht),
        "vanna": _richardson(
            lambda f: (P(f * hs, 0, f * hv) - P(f * hs, 0, -f * hv) - P(-f * hs, 0, f * hv)
                       + P(-f * hs, 0, -f * hv)) / (4 * f * f * hs * hv), 1.0),
        "charm": _richardson(
            lambda f: -(P(f * hs, f * ht) - P(f * hs, -f * ht) - P(-f * hs, f * ht)
                        + P(-f * hs, -f * ht)) / (4 * f * f * hs * ht), 1.0),
    }


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("call", [True, False])
def test_matches_finite_differences_of_bs_price(case: tuple, call: bool) -> None:
    g = greeks(*case, call)
    fd = finite_difference_greeks(*case, call)
    for name in NAMES:
        assert float(getattr(g, name)) == pytest.approx(fd[name], rel=1e-5), name


def test_vectorized_shapes_and_broadcasting() -> None:
    K = np.array([90.0, 100.0, 110.0])
    is_call = np.array([True, False, True])
    g = greeks(100.0, K, 0.25, 0.03, 0.01, 0.2, is_call)
    assert isinstance(g, Greeks)
    for name in NAMES:
        arr = getattr(g, name)
        assert arr.shape == (3,)
        for i in range(3):
            ref = reference_greeks(100.0, K[i], 0.25, 0.03, 0.01, 0.2, bool(is_call[i]))[name]
            assert arr[i] == pytest.approx(ref, rel=1e-9, abs=1e-12)
    grid = greeks(np.array([[90.0], [110.0]]), K[None, :], 0.25, 0.03, 0.0, 0.2, True)
    assert grid.gamma.shape == (2, 3)


def test_unit_helpers() -> None:
    assert vega_per_point(12.1) == pytest.approx(0.121)
    assert theta_per_day(-3.65) == pytest.approx(-0.01)


# ---------------------------------------------------------------- properties
_spot = st.floats(1.0, 5000.0)
_moneyness = st.floats(0.5, 2.0)
_T = st.floats(5.0 / 525600.0, 3.0)
_r = st.floats(-0.01, 0.10)
_q = st.floats(0.0, 0.06)
_sigma = st.floats(0.02, 2.0)


@settings(max_examples=300, deadline=None)
@given(S=_spot, m=_moneyness, T=_T, r=_r, q=_q, s=_sigma, call=st.booleans())
def test_gamma_and_vega_non_negative(S: float, m: float, T: float, r: float, q: float, s: float, call: bool) -> None:
    g = greeks(S, S * m, T, r, q, s, call)
    assert g.gamma >= 0.0
    assert g.vega >= 0.0


@settings(max_examples=300, deadline=None)
@given(S=_spot, m=_moneyness, T=_T, r=_r, q=_q, s=_sigma)
def test_call_minus_put_delta_is_discount_factor(S: float, m: float, T: float, r: float, q: float, s: float) -> None:
    g = greeks(S, S * m, T, r, q, s, np.array([True, False]))
    assert g.delta[0] - g.delta[1] == pytest.approx(math.exp(-q * T), abs=1e-12)
    assert g.gamma[0] == g.gamma[1]
    assert 0.0 <= g.delta[0] <= math.exp(-q * T) + 1e-15
    assert -math.exp(-q * T) - 1e-15 <= g.delta[1] <= 0.0


@settings(max_examples=300, deadline=None)
@given(S=_spot, m=_moneyness, T=_T, r=_r, q=_q, s=_sigma)
def test_put_call_parity(S: float, m: float, T: float, r: float, q: float, s: float) -> None:
    K = S * m
    c, p = bs_price(S, K, T, r, q, s, np.array([True, False]))
    forward_gap = S * math.exp(-q * T) - K * math.exp(-r * T)
    assert c - p == pytest.approx(forward_gap, abs=1e-9 * max(S, K))
    # the greeks obey the differentiated parity too
    g = greeks(S, K, T, r, q, s, np.array([True, False]))
    theta_gap = q * S * math.exp(-q * T) - r * K * math.exp(-r * T)
    assert g.theta[0] - g.theta[1] == pytest.approx(theta_gap, rel=1e-9, abs=1e-9 * max(S, K))
    assert g.charm[0] - g.charm[1] == pytest.approx(q * math.exp(-q * T), rel=1e-9, abs=1e-12)
