"""implied_vol against vollib (Jaeckel's "Let's be rational") on random and edge contracts."""

from __future__ import annotations

import numpy as np
import pytest

from core.analytics.black_scholes import bs_price
from core.analytics.greeks import vega
from core.analytics.iv_solver import IV_STATUS, implied_vol

ref = pytest.importorskip("vollib.black_scholes_merton.implied_volatility").implied_volatility
R, Q = 0.045, 0.013
MINUTE = 1.0 / 525_600.0


def _ref(p, s, k, t, call) -> float:
    return float(ref(p, s, k, t, R, Q, "c" if call else "p"))


def _random(n: int, seed: int):
    rng = np.random.default_rng(seed)
    S = rng.uniform(20.0, 6000.0, n)
    K = S * np.exp(rng.normal(0.0, 0.15, n))
    T = np.exp(rng.uniform(np.log(5 * MINUTE), np.log(2.0), n))
    sig = rng.uniform(0.05, 1.5, n)
    call = rng.random(n) < 0.5
    return S, K, T, sig, call


def test_random_contracts_match_vollib_and_reprice() -> None:
    S, K, T, sig, call = _random(3000, 11)
    p = bs_price(S, K, T, R, Q, sig, call)
    res = implied_vol(p, S, K, T, R, Q, call)
    ok = res.status == 0
    # where the price carries information about sigma (vega not lost in rounding) and is a price
    # (above a millionth of a cent), every row is solved
    informative = (vega(S, K, T, R, Q, sig) * sig > 1e-6 * p) & (p > 1e-6)
    assert ok[informative].all()
    assert np.max(np.abs(bs_price(S[ok], K[ok], T[ok], R, Q, res.iv[ok], call[ok]) - p[ok]) / p[ok]) < 1e-10
    idx = np.flatnonzero(ok & informative)[:400]
    err = max(abs(res.iv[i] - _ref(p[i], S[i], K[i], T[i], call[i])) for i in idx)
    assert err < 1e-7, err


@pytest.mark.parametrize(
    ("S", "K", "T", "sig", "call"),
    [
        (4500.0, 3000.0, 0.25, 0.45, True),         # deep ITM call
        (4500.0, 6500.0, 0.25, 0.30, False),        # deep ITM put
        (4500.0, 4600.0, 13 / 365, 0.2186, False),  # the 2022-02-18 4600 put (IV 0 in the export)
        (5975.0, 5980.0, 5 * MINUTE, 0.15, True),   # five minutes to the close, at the money
        (5975.0, 5990.0, 20 * MINUTE, 0.25, False),  # minutes to expiry, in the money
        (5975.0, 6050.0, 30 * MINUTE, 0.60, True),  # minutes to expiry, out of the money
        (100.0, 100.0, 3.0, 0.05, True),            # long-dated low vol
        (100.0, 140.0, 1.0, 3.0, True),             # very high vol
    ],
)
def test_edge_contracts_match_vollib(S: float, K: float, T: float, sig: float, call: bool) -> None:
    p = float(bs_price(S, K, T, R, Q, sig, call))
    res = implied_vol(p, S, K, T, R, Q, call)
    assert IV_STATUS[int(res.status)] == "solved"
    assert float(res.iv) == pytest.approx(sig, abs=1e-7)
    assert float(res.iv) == pytest.approx(_ref(p, S, K, T, call), abs=1e-7)


def test_prices_at_or_below_intrinsic_and_above_bound_get_no_iv_and_say_so() -> None:
    S, K, T = 4500.0, 4000.0, 0.1
    fwd_intrinsic = S * np.exp(-Q * T) - K * np.exp(-R * T)
    prices = np.array([fwd_intrinsic, fwd_intrinsic - 1.0, S - K - 5.0, S * np.exp(-Q * T), S + 1.0, 0.0, np.nan])
    res = implied_vol(prices, S, K, T, R, Q, True)
    assert [IV_STATUS[s] for s in res.status] == [
        "at_or_below_intrinsic", "at_or_below_intrinsic", "at_or_below_intrinsic",
        "above_upper_bound", "above_upper_bound", "no_price", "no_price"]
    assert np.isnan(res.iv).all()
    put = implied_vol(np.array([50.0]), S, K, T, R, Q, False)  # OTM put: lower bound 0
    assert IV_STATUS[int(put.status[0])] == "solved"


def test_bad_inputs_and_shapes() -> None:
    res = implied_vol(np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([100.0, -1.0]), 100.0,
                      np.array([[0.1], [0.0]]), R, Q, True)
    assert res.iv.shape == (2, 2)
    assert [IV_STATUS[s] for s in res.status.ravel()] == ["solved", "bad_input", "bad_input", "bad_input"]
    assert res.counts() == {"solved": 1, "bad_input": 3}
    empty = implied_vol(np.zeros(0), 100.0, 100.0, 0.1, R, Q, True)
    assert empty.iv.shape == (0,) and empty.counts() == {}
