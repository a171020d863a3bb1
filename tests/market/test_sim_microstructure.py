"""Underlying quotes, depth, prints, closing imbalance, feed gaps, intraday vol shape,
daily ranges and the option-flow feeds."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from sim_helpers import HALF_DAY, at, make_sim

from core.domain.contract import OptionContract, Right
from core.market.sim import NY, FeedGapError, SimConfig


# -- quotes ------------------------------------------------------------------------------
def test_quotes_are_sane_over_the_day() -> None:
    sim = make_sim(4)
    prev_vol: dict[str, int] = {}
    t = at(8, 30)
    while t <= at(16, 15):
        sim.advance(t)
        for s in sim.symbols:
            q = sim.quote(s)
            assert q.ts == t and q.ts.tzinfo is not None
            assert q.ts.utcoffset() == t.astimezone(NY).utcoffset()
            assert 0 < q.bid < q.ask, (s, q)
            assert q.bid_size > 0 and q.ask_size > 0
            assert abs(q.last / q.mid - 1) < 0.01
            assert np.isclose(round(q.bid / 0.01) * 0.01, q.bid)
            assert np.isclose(round(q.ask / 0.01) * 0.01, q.ask)
            assert q.volume_today >= prev_vol.get(s, 0)
            prev_vol[s] = q.volume_today
            assert not q.stale
        t += timedelta(minutes=7, seconds=11)
    assert prev_vol["SPX"] == 0 and prev_vol["SPY"] > 20e6 and prev_vol["NVDA"] > 80e6


def test_starting_spots_are_realistic() -> None:
    expect = {"SPY": 590, "QQQ": 510, "IWM": 225, "SPX": 5900, "AAPL": 230, "MSFT": 420, "GOOGL": 175,
              "AMZN": 205, "NVDA": 140, "META": 580, "TSLA": 340}
    sim = make_sim(8)
    for s, px in expect.items():
        assert abs(sim.quote(s).mid / px - 1) < 0.05, s
    assert abs(sim.spot("SPX") / sim.spot("SPY") - 10.0) < 0.15


def test_index_moves_are_correlated() -> None:
    sim = make_sim(6, ["SPY", "QQQ", "IWM", "SPX", "TSLA"])
    g = sim._grid
    i0 = int(g.rth_open - g.start)
    r = {s: np.diff(np.log(sim._sym[s].path.mid[i0:i0 + 390 * 60 + 1:60])) for s in sim.symbols}
    c = np.corrcoef([r[s] for s in sim.symbols])
    assert c[0, 3] > 0.97                  # SPY ~ SPX
    assert c[0, 1] > 0.8 and c[0, 2] > 0.7
    assert c[0, 4] < c[0, 1]


def _rth_minute_mids(sim, symbol: str) -> np.ndarray:
    """Spot sampled every minute through the public API."""
    out = []
    t = sim.rth_open
    while t <= sim.rth_close:
        sim.advance(t)
        out.append(sim.spot(symbol))
        t += timedelta(minutes=1)
    return np.array(out)


def test_u_shaped_intraday_vol() -> None:
    first, mid, last = [], [], []
    for seed in range(8):
        for s in ("SPY", "AAPL"):
            sim = make_sim(seed, [s])
            r = np.diff(np.log(_rth_minute_mids(sim, s)))
            first.append(np.sqrt(np.mean(r[:30] ** 2)))
            mid.append(np.sqrt(np.mean(r[150:240] ** 2)))
            last.append(np.sqrt(np.mean(r[-30:] ** 2)))
    assert np.mean(first) > 1.3 * np.mean(mid)
    assert np.mean(last) > 1.1 * np.mean(mid)


def test_daily_ranges_are_realistic() -> None:
    rng: dict[str, list[float]] = {"SPY": [], "SPX": [], "QQQ": [], "TSLA": [], "NVDA": []}
    for seed in range(12):
        sim = make_sim(seed, list(rng))
        g = sim._grid
        i0, i1 = int(g.rth_open - g.start), int(g.rth_close - g.start)
        for s, ranges in rng.items():
            m = sim._sym[s].path.mid[i0:i1 + 1]
            ranges.append((m.max() - m.min()) / m[0])
    for s in ("SPY", "SPX", "QQQ"):
        assert 0.005 <= np.median(rng[s]) <= 0.015, (s, np.median(rng[s]))
    for s in ("TSLA", "NVDA"):
        assert np.median(rng[s]) > np.median(rng["SPY"]) * 2


# -- depth -------------------------------------------------------------------------------
def test_depth_has_ten_levels_with_positive_sizes() -> None:
    sim = make_sim(2)
    for t in (at(8, 31), at(9, 30, 5), at(12, 44, 2), at(15, 59)):
        sim.advance(t)
        for s in sim.symbols:
            d = sim.depth(s)
            q = sim.quote(s)
            assert d.levels == 10
            for arr in (d.bid_price, d.bid_size, d.ask_price, d.ask_size):
                assert arr.shape == (10,)
            assert (d.bid_size > 0).all() and (d.ask_size > 0).all()
            assert (np.diff(d.bid_price) < 0).all() and (np.diff(d.ask_price) > 0).all()
            assert d.bid_price[-1] > 0 and d.bid_price[0] < d.ask_price[0]
            assert d.bid_price[0] == q.bid and d.ask_price[0] == q.ask
            assert d.bid_size[0] == q.bid_size and d.ask_size[0] == q.ask_size
            assert -1 <= d.imbalance <= 1
    assert sim.depth("SPY", levels=5).levels == 5


def test_book_imbalance_is_informative() -> None:
    """Imbalance varies and leans toward the next 30 s move, as in real books."""
    sim = make_sim(12, ["QQQ"])
    imb, fwd = [], []
    t = at(9, 35)
    while t < at(15, 50):
        sim.advance(t)
        imb.append(sim.depth("QQQ").imbalance)
        now = sim.spot("QQQ")
        fwd.append(np.log(sim._sym["QQQ"].path.mid[sim._idx(t.timestamp()) + 30] / now))
        t += timedelta(seconds=97)
    imb_a = np.array(imb)
    assert imb_a.std() > 0.08
    assert np.corrcoef(imb_a, fwd)[0, 1] > 0.15


# -- prints ------------------------------------------------------------------------------
def test_prints_kinds_and_consistency() -> None:
    sim = make_sim(5, ["AAPL", "SPX"])
    allp = []
    last_ts = None
    t = at(8, 30)
    while t <= at(16, 15):
        sim.advance(t)
        batch = sim.prints("AAPL")
        for p in batch:
            assert p.ts <= t and (last_ts is None or p.ts >= last_ts)
            last_ts = p.ts
        allp += batch
        assert sim.prints("SPX") == []          # an index has no tape
        t += timedelta(minutes=5)
    kinds = Counter(p.kind for p in allp)
    assert {"odd_lot", "round_lot", "block", "sweep"} <= set(kinds)
    assert all(p.size < 100 for p in allp if p.kind == "odd_lot")
    assert all(p.size >= 10_000 and p.exchange == "TRF" for p in allp if p.kind == "block")
    assert {p.side for p in allp} == {"buy", "sell", "mid"}
    sweeps: dict[int, list] = {}
    for p in allp:
        if p.kind == "sweep":
            sweeps.setdefault(p.sweep_id, []).append(p)
        else:
            assert p.sweep_id is None
    assert len(sweeps) > 10
    for legs in sweeps.values():
        assert len(legs) >= 3
        assert len({p.exchange for p in legs}) == len(legs)
        assert len({p.side for p in legs}) == 1
        prices = [p.price for p in legs]
        assert prices == sorted(prices, reverse=legs[0].side == "sell")
    # lit prints hit the quote of their second
    sim2 = make_sim(5, ["AAPL"])
    for p in [p for p in allp if p.kind in ("round_lot", "odd_lot") and p.exchange != "TRF"][:200:7]:
        sim2.advance(max(p.ts, sim2.now))
        q = sim2.quote("AAPL")
        assert p.price == (q.ask if p.side == "buy" else q.bid)


# -- closing imbalance -------------------------------------------------------------------
def test_closing_imbalance_only_from_1550() -> None:
    sim = make_sim(3)
    for t in (at(9, 30), at(15, 0), at(15, 49, 59)):
        sim.advance(t)
        assert all(sim.closing_imbalance(s) is None for s in sim.symbols)
    seen = []
    t = at(15, 50)
    while t < at(16):
        sim.advance(t)
        assert sim.closing_imbalance("SPX") is None
        imb = sim.closing_imbalance("SPY")
        assert imb is not None and imb.ts == t and imb.auction_time == at(16)
        assert imb.side in ("buy", "sell") and imb.imbalance_shares > 0 and imb.paired_shares > 0
        assert 0 <= imb.confidence <= 1
        assert abs(imb.indicative_price / imb.reference_price - 1) < 0.005
        seen.append(imb)
        t += timedelta(seconds=20)
    assert len({i.side for i in seen}) == 1
    assert seen[-1].confidence > seen[0].confidence
    assert seen[-1].paired_shares > seen[0].paired_shares
    for s in sim.symbols:
        if s != "SPX":
            assert sim.closing_imbalance(s) is not None
    sim.advance(at(16))
    assert all(sim.closing_imbalance(s) is None for s in sim.symbols)


def test_closing_imbalance_half_day() -> None:
    sim = make_sim(3, ["IWM"], day=HALF_DAY)
    sim.advance(at(12, 49, 59, day=HALF_DAY))
    assert sim.closing_imbalance("IWM") is None
    sim.advance(at(12, 50, day=HALF_DAY))
    assert sim.closing_imbalance("IWM") is not None


def test_closing_imbalance_moves_price_its_way() -> None:
    agree = 0
    n = 0
    for seed in range(15):
        sim = make_sim(seed, ["MSFT", "AMZN", "TSLA"])
        for s in sim.symbols:
            sim.advance(max(sim.now, at(15, 50)))
            imb = sim.closing_imbalance(s)
            p0 = sim._sym[s].path.mid[sim._idx(at(15, 50).timestamp())]
            p1 = sim._sym[s].path.mid[sim._idx(at(16).timestamp())]
            agree += (p1 > p0) == (imb.side == "buy")
            n += 1
    assert agree / n > 0.6


# -- feed gaps ---------------------------------------------------------------------------
def test_feed_gap_stale_then_cleared() -> None:
    sim = make_sim(1, ["SPY", "QQQ"])
    start, end = at(10, 0), at(10, 2)
    sim.inject_gap("SPY", start, end)
    sim.advance(at(9, 59, 59))
    assert not sim.quote("SPY").stale
    sim.advance(start)
    frozen = sim.quote("SPY")
    assert frozen.stale and frozen.ts == start
    for t in (at(10, 0, 30), at(10, 1, 59)):
        sim.advance(t)
        q = sim.quote("SPY")
        assert q.stale and q.ts == start
        assert (q.bid, q.ask, q.last, q.volume_today) == (
            frozen.bid, frozen.ask, frozen.last, frozen.volume_today)
        assert sim.depth("SPY").stale and sim.depth("SPY").ts == start
        assert sim.in_gap("SPY") and not sim.in_gap("QQQ")
        qq = sim.quote("QQQ")
        assert not qq.stale and qq.ts == t
    sim.advance(end)
    q = sim.quote("SPY")
    assert not q.stale and q.ts == end and not sim.in_gap("SPY")


def test_feed_gap_raise_mode() -> None:
    sim = make_sim(1, ["SPY"], config=SimConfig(gap_mode="raise"))
    sim.inject_gap("SPY", at(11), at(11, 0, 30))
    sim.advance(at(11, 0, 10))
    with pytest.raises(FeedGapError) as ei:
        sim.quote("SPY")
    assert ei.value.symbol == "SPY" and ei.value.start == at(11)
    with pytest.raises(FeedGapError):
        sim.depth("SPY")
    sim.advance(at(11, 0, 30))
    assert not sim.quote("SPY").stale
    with pytest.raises(ValueError):
        sim.inject_gap("SPY", at(12), at(12))


def test_gap_does_not_change_later_outputs() -> None:
    a = make_sim(21, ["TSLA"])
    b = make_sim(21, ["TSLA"])
    a.inject_gap("TSLA", at(10), at(10, 5))
    for sim in (a, b):
        sim.advance(at(10, 2))
        sim.quote("TSLA")
        sim.advance(at(10, 6))
    assert a.quote("TSLA") == b.quote("TSLA")


# -- option flow -------------------------------------------------------------------------
def test_flow_alerts_fields() -> None:
    sim = make_sim(13, ["SPY", "META"])
    sim.advance(at(9, 29))
    assert sim.option_flow("SPY") == [] and sim.net_premium("SPY") == []
    sim.advance(at(16, 15))
    for s in sim.symbols:
        alerts = sim.option_flow(s)
        assert len(alerts) > 50
        assert sim.option_flow(s) == []          # consumed
        exps = set(sim.layout(s).expiry_dates)
        for a in alerts:
            occ = OptionContract(symbol=s, expiry=a.expiry, strike=a.strike, right=Right(a.right)).occ
            assert a.contract == occ and a.option_contract().occ == occ
            assert a.expiry in exps and at(9, 30) <= a.ts < at(16)
            assert a.premium == pytest.approx(a.price * a.size * 100)
            assert 0 <= a.bid < a.ask
            if a.side == "ask":
                assert a.price == a.ask
            elif a.side == "bid":
                assert a.price == max(a.bid, 0.01)
            assert a.exchanges >= (2 if a.is_sweep else 1)
            assert a.alert_rule in ("Sweep", "Block", "LargePremium", "VolOverOI")
            assert a.volume >= a.size and a.open_interest >= 0 and a.iv > 0
        assert any(a.is_sweep for a in alerts)
        assert {a.right for a in alerts} == {"C", "P"}


def test_flow_leans_with_the_trend() -> None:
    """Bullish stretches show more calls bought / puts sold, and net premium follows."""
    bull_up, bull_down, corr = [], [], []
    for seed in range(6):
        sim = make_sim(seed, ["SPY", "NVDA"])
        sim.advance(at(16, 1))
        for s in sim.symbols:
            st = sim._sym[s]
            alerts = sim.option_flow(s)
            sent = np.array([st.path.sentiment[sim._idx(a.ts.timestamp())] for a in alerts])
            bull = np.array([a.bullish for a in alerts])
            bull_up.append(bull[sent > 0.3].mean())
            bull_down.append(bull[sent < -0.3].mean())
            ticks = sim.net_premium(s)
            idx = np.array([sim._idx(tk.ts.timestamp()) for tk in ticks])
            ret = np.log(st.path.mid[idx] / st.path.mid[np.maximum(idx - 600, 0)])
            corr.append(np.corrcoef(ret, [tk.net_premium for tk in ticks])[0, 1])
    assert np.mean(bull_up) > np.mean(bull_down) + 0.1
    assert np.mean(corr) > 0.2


def test_net_premium_ticks_and_chain_volume_agree() -> None:
    sim = make_sim(17, ["IWM"])
    sim.advance(at(12, 0, 30))
    ticks = sim.net_premium("IWM")
    assert len(ticks) == 150 and ticks[0].ts == at(9, 31) and ticks[-1].ts == at(12)
    assert ticks[-1].cum_net_call_premium == pytest.approx(sum(t.net_call_premium for t in ticks), rel=1e-6)
    assert ticks[-1].cum_net_put_premium == pytest.approx(sum(t.net_put_premium for t in ticks), rel=1e-6)
    assert all(t.call_volume >= 0 and t.put_volume >= 0 and t.call_premium >= 0 for t in ticks)
    sim.advance(at(12, 0, 59))
    assert sim.net_premium("IWM") == []
    sim.advance(at(12, 1))
    assert [t.ts for t in sim.net_premium("IWM")] == [at(12, 1)]
    c = sim.chain("IWM")
    vol_sum = sum(t.call_volume + t.put_volume for t in ticks)
    assert 0.9 * vol_sum < c.volume.sum() < 1.1 * vol_sum + 5000
