"""Option-chain sanity: shape, quotes, ticks, skew, strikes, expiries, OI, volume."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from sim_helpers import DAY, HALF_DAY, at, make_sim

from core.analytics.black_scholes import bs_price
from core.market.chain import OptionChain
from core.market.sim import DEFAULT_SYMBOLS, MarketSimulator
from core.market.sim.calendar import next_session

INDEX = ("SPY", "QQQ", "IWM", "SPX")


@pytest.fixture(scope="module")
def chains() -> dict[str, OptionChain]:
    sim = make_sim(11)
    sim.advance(at(11, 7, 30))
    return {s: sim.chain(s) for s in sim.symbols}


def _on_tick(px: np.ndarray) -> np.ndarray:
    tick = np.where(px < 3.0 - 1e-9, 0.01, 0.05)
    return np.isclose(np.round(px / tick) * tick, px, atol=1e-9)


def test_chain_type_and_columns(chains: dict[str, OptionChain]) -> None:
    assert set(chains) == set(DEFAULT_SYMBOLS)
    for s, c in chains.items():
        assert isinstance(c, OptionChain)
        assert c.symbol == s and c.asof.tzinfo is not None
        n = len(c)
        assert 100 <= n <= 800, (s, n)
        for col in (c.expiry, c.strike, c.is_call, c.bid, c.ask, c.iv, c.open_interest, c.volume,
                    c.delta, c.gamma):
            assert col.shape == (n,)
        assert c.expiry.dtype == np.dtype("datetime64[D]")
        assert c.is_call.dtype == bool and c.strike.dtype == np.float64
        assert np.isfinite(c.iv).all() and (c.iv > 0.03).all() and (c.iv < 3.0).all()
        assert c.rate is not None and c.dividend_yield is not None


def test_quotes_not_crossed_and_on_tick(chains: dict[str, OptionChain]) -> None:
    for s, c in chains.items():
        assert (c.bid >= 0).all(), s
        assert (c.ask > c.bid).all(), s
        assert _on_tick(c.bid).all() and _on_tick(c.ask).all(), s
        assert (c.ask - c.bid >= 0.01 - 1e-9).all()


def test_mid_matches_black_scholes_with_published_iv(chains: dict[str, OptionChain]) -> None:
    """bs_price(spot, K, T=(expiry close - asof)/365d, r, q, iv) lies inside [bid, ask]."""
    sim = make_sim(11)
    for s, c in chains.items():
        close = {}
        for d in c.expiries():
            close[d] = sim.session.rth_close.replace(year=d.year, month=d.month, day=d.day)
        t = np.array([(close[d.astype(object)] - c.asof).total_seconds() for d in c.expiry]) / (365 * 86400)
        px = bs_price(c.spot, c.strike, t, c.rate, c.dividend_yield, c.iv, c.is_call)
        assert (px >= c.bid - 1e-6).all() and (px <= c.ask + 1e-6).all(), s


def test_greeks_in_bounds(chains: dict[str, OptionChain]) -> None:
    for c in chains.values():
        assert ((c.delta[c.is_call] > -1e-12) & (c.delta[c.is_call] < 1 + 1e-12)).all()
        assert ((c.delta[~c.is_call] < 1e-12) & (c.delta[~c.is_call] > -1 - 1e-12)).all()
        assert (c.gamma >= 0).all()


def test_width_widens_for_cheap_and_far_contracts(chains: dict[str, OptionChain]) -> None:
    for s, c in chains.items():
        mid = c.mid
        rel = (c.ask - c.bid) / np.maximum(mid, 0.005)
        near = np.abs(np.log(c.strike / c.spot)) < 0.01
        cheap = (mid < 0.5) & ~near
        assert cheap.any() and near.any(), s
        assert np.median(rel[cheap]) > 2 * np.median(rel[near]), s


def test_put_skew(chains: dict[str, OptionChain]) -> None:
    """OTM put IV at K = S(1-d) exceeds OTM call IV at K = S(1+d), every expiry."""
    for s, c in chains.items():
        for e in c.expiries():
            m = c.expiry == np.datetime64(e)
            d = 0.03
            p = m & ~c.is_call
            cl = m & c.is_call
            kp = c.strike[p][np.argmin(np.abs(c.strike[p] - c.spot * (1 - d)))]
            kc = c.strike[cl][np.argmin(np.abs(c.strike[cl] - c.spot * (1 + d)))]
            iv_p = c.iv[p & (c.strike == kp)][0]
            iv_c = c.iv[cl & (c.strike == kc)][0]
            atm = c.iv[cl][np.argmin(np.abs(c.strike[cl] - c.spot))]
            assert iv_p > iv_c, (s, e, iv_p, iv_c)
            assert iv_p > atm, (s, e, iv_p, atm)
            if s in INDEX:
                assert atm > iv_c, (s, e, atm, iv_c)


def test_term_structure_and_spot_vol(chains: dict[str, OptionChain]) -> None:
    c = chains["SPY"]
    e = c.expiries()
    monthly = [d for d in e if (d - DAY).days >= 14]
    ivs = []
    for d in monthly:
        m = (c.expiry == np.datetime64(d)) & c.is_call
        ivs.append(c.iv[m][np.argmin(np.abs(c.strike[m] - c.spot))])
    assert 0.08 < min(ivs) and max(ivs) < 0.30


def test_strike_increments(chains: dict[str, OptionChain]) -> None:
    for s, c in chains.items():
        if s in ("SPY", "QQQ", "IWM"):
            step = 1.0
        elif s == "SPX":
            step = 5.0
        else:
            step = 2.5 if c.spot < 250 else 5.0
        assert np.allclose(np.round(c.strike / step) * step, c.strike), s
        for d in c.expiries():
            k = np.unique(c.strike[c.expiry == np.datetime64(d)])
            near = k[np.abs(k - c.spot) <= 6 * step]
            assert near.size >= 10 and np.allclose(np.diff(near), step), (s, d, near)
            assert k.min() <= c.spot * 0.95 and k.max() >= c.spot * 1.05, (s, d)


def test_expiries(chains: dict[str, OptionChain]) -> None:
    one_dte = next_session(DAY)
    for s, c in chains.items():
        exps = c.expiries()
        dte = [(d - DAY).days for d in exps]
        if s in INDEX:
            assert DAY in exps and one_dte in exps, s
        else:
            assert DAY not in exps
        assert sum(14 <= x <= 45 for x in dte) >= 2, (s, dte)
        weekly = [d for d in exps if 0 < (d - DAY).days <= 7 and d.weekday() == 4]
        assert weekly, (s, exps)
        assert c.meta["expiry_kinds"]


def test_zero_dte_dropped_after_close() -> None:
    sim = make_sim(3, ["SPY", "AAPL"])
    sim.advance(at(15, 59, 59))
    assert DAY in sim.chain("SPY").expiries()
    sim.advance(at(16, 0, 1))
    c = sim.chain("SPY")
    assert DAY not in c.expiries() and len(c) > 100


def test_open_interest_round_strikes_and_near_spot() -> None:
    ratios, near_far = [], []
    for seed in range(4):
        sim = make_sim(seed, ["SPY"])
        c = sim.chain("SPY")
        oi = c.open_interest
        assert (oi >= 0).all() and np.allclose(oi, np.round(oi))
        band = np.abs(c.strike - c.spot) <= 12
        rnd = band & np.isclose(np.fmod(c.strike, 5.0), 0.0)
        ratios.append(oi[rnd].mean() / oi[band & ~rnd].mean())
        r5 = np.isclose(np.fmod(c.strike, 5.0), 0.0)
        far = r5 & (np.abs(c.strike / c.spot - 1) > 0.05)
        near = r5 & (np.abs(c.strike / c.spot - 1) < 0.01)
        near_far.append(oi[near].mean() / oi[far].mean())
        np.testing.assert_array_equal(oi, make_sim(seed, ["SPY"]).chain("SPY").open_interest)
    assert min(ratios) > 1.3
    assert min(near_far) > 2.0


def test_volume_grows_over_the_day() -> None:
    sim = make_sim(9, ["QQQ", "MSFT"])
    prev = {s: None for s in sim.symbols}
    t = at(9, 0)
    totals = []
    while t <= at(15, 55):
        sim.advance(t)
        for s in sim.symbols:
            c = sim.chain(s)
            if t < at(9, 30):
                assert c.volume.sum() == 0
            p = prev[s]
            if p is not None:
                common = len(c) == len(p)
                assert common and (c.volume >= p).all(), s
            prev[s] = c.volume
            if s == "QQQ":
                totals.append(c.volume.sum())
        t += timedelta(minutes=17)
    assert totals[-1] > 0.8e6 * 0.5 and totals[-1] > totals[len(totals) // 2] > 0


def test_half_day_chain_and_session() -> None:
    sim = make_sim(2, ["SPX"], day=HALF_DAY)
    assert sim.rth_close.hour == 13
    sim.advance(at(12, 30, day=HALF_DAY))
    c = sim.chain("SPX")
    assert HALF_DAY in c.expiries() and next_session(HALF_DAY) in c.expiries()
    assert (c.ask > c.bid).all()


@pytest.mark.parametrize("day", [date(2025, 12, 5), date(2026, 4, 2), date(2025, 12, 24)])
def test_expiry_rules_on_special_days(day: date) -> None:
    sim = MarketSimulator(1, at(8, 30, day=day), at(16, 15, day=day), symbols=["IWM", "GOOGL"])
    for s in sim.symbols:
        exps = sim.layout(s).expiry_dates
        assert all(e >= day for e in exps)
        assert sum(14 <= (e - day).days <= 45 for e in exps) == 3
        if s == "IWM":
            assert exps[0] == day and exps[1] == next_session(day)
