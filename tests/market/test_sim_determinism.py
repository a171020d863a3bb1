"""Same seed -> identical outputs; different seed -> different; the advance() step
pattern and the simulated symbol set never change a symbol's outputs."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_helpers import DAY, at, make_sim

from core.market.sim import MarketSimulator

CHECKPOINTS = [at(8, 45), at(9, 30, 1), at(10, 17, 33), at(12, 0), at(15, 50, 5), at(15, 59, 59), at(16, 10)]


def _chain_tuple(c):
    return (c.spot, c.asof, c.expiry, c.strike, c.is_call, c.bid, c.ask, c.iv, c.open_interest, c.volume,
            c.delta, c.gamma)


def _assert_chain_equal(a, b) -> None:
    for x, y in zip(_chain_tuple(a), _chain_tuple(b), strict=True):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


def _snapshot(sim: MarketSimulator, symbols: list[str]) -> dict:
    out = {}
    for s in symbols:
        imb = sim.closing_imbalance(s)
        out[s] = {
            "quote": sim.quote(s).to_dict(),
            "depth": sim.depth(s).to_dict(),
            "prints": [p.to_dict() for p in sim.prints(s)],
            "flow": [f.to_dict() for f in sim.option_flow(s)],
            "net": [n.to_dict() for n in sim.net_premium(s)],
            "imb": imb.to_dict() if imb else None,
        }
    return out


def test_same_seed_identical_everything() -> None:
    a, b = make_sim(42), make_sim(42)
    for t in CHECKPOINTS:
        a.advance(t)
        b.advance(t)
        assert _snapshot(a, a.symbols) == _snapshot(b, b.symbols)
        for s in a.symbols:
            _assert_chain_equal(a.chain(s), b.chain(s))


def test_snapshot_is_json_serializable() -> None:
    sim = make_sim(3)
    sim.advance(at(15, 55))
    json.dumps(_snapshot(sim, sim.symbols))


def test_different_seed_differs() -> None:
    a, b = make_sim(1), make_sim(2)
    t = at(11)
    a.advance(t)
    b.advance(t)
    for s in a.symbols:
        assert a.quote(s).bid != b.quote(s).bid or a.quote(s).ask != b.quote(s).ask
        assert not np.array_equal(a.chain(s).bid, b.chain(s).bid)
    assert [p.to_dict() for p in a.prints("SPY")] != [p.to_dict() for p in b.prints("SPY")]


def test_step_pattern_does_not_matter() -> None:
    """Fine steps with queries at every step == one jump per checkpoint."""
    fine = make_sim(7, ["SPY", "TSLA"])
    coarse = make_sim(7, ["SPY", "TSLA"])
    acc = {s: {"prints": [], "flow": [], "net": []} for s in fine.symbols}
    t = at(8, 30)
    stop = at(16, 1)
    step = timedelta(seconds=13)
    while t < stop:
        fine.advance(t)
        for s in fine.symbols:
            fine.quote(s)
            acc[s]["prints"] += [p.to_dict() for p in fine.prints(s)]
            acc[s]["flow"] += [f.to_dict() for f in fine.option_flow(s)]
            acc[s]["net"] += [n.to_dict() for n in fine.net_premium(s)]
        t += step
    fine.advance(stop)
    coarse.advance(at(12))          # one intermediate jump
    coarse.advance(stop)
    for s in fine.symbols:
        acc[s]["prints"] += [p.to_dict() for p in fine.prints(s)]
        acc[s]["flow"] += [f.to_dict() for f in fine.option_flow(s)]
        acc[s]["net"] += [n.to_dict() for n in fine.net_premium(s)]
        assert fine.quote(s) == coarse.quote(s)
        assert fine.depth(s).to_dict() == coarse.depth(s).to_dict()
        _assert_chain_equal(fine.chain(s), coarse.chain(s))
        assert acc[s]["prints"] == [p.to_dict() for p in coarse.prints(s)]
        assert acc[s]["flow"] == [f.to_dict() for f in coarse.option_flow(s)]
        assert acc[s]["net"] == [n.to_dict() for n in coarse.net_premium(s)]
        assert len(acc[s]["net"]) == 390


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), offsets=st.lists(st.integers(1, 4 * 3600), min_size=1, max_size=8))
def test_quote_depends_only_on_time(seed: int, offsets: list[int]) -> None:
    times = [at(8, 30) + timedelta(seconds=o) for o in sorted(offsets)]
    a = make_sim(seed, ["QQQ"])
    b = make_sim(seed, ["QQQ"])
    for t in times:
        a.advance(t)
        a.quote("QQQ")
    b.advance(times[-1])
    assert a.quote("QQQ") == b.quote("QQQ")
    assert a.depth("QQQ").to_dict() == b.depth("QQQ").to_dict()


def test_symbol_subset_does_not_change_a_symbol() -> None:
    full = make_sim(5)
    alone = make_sim(5, ["NVDA"])
    for t in (at(9, 45), at(14, 2, 7)):
        full.advance(t)
        alone.advance(t)
        assert full.quote("NVDA") == alone.quote("NVDA")
        _assert_chain_equal(full.chain("NVDA"), alone.chain("NVDA"))
        assert full.prints("NVDA") == alone.prints("NVDA")


def test_advance_validation() -> None:
    sim = make_sim(1, ["SPY"])
    sim.advance(at(10))
    sim.advance(at(10))                         # same time is fine
    with pytest.raises(ValueError):
        sim.advance(at(9, 59))                  # not monotone
    with pytest.raises(ValueError):
        sim.advance(at(11).replace(tzinfo=None))  # naive
    with pytest.raises(ValueError):
        make_sim(1, ["SPY"], day=DAY.replace(day=6))   # a Saturday
    with pytest.raises(KeyError):
        sim.quote("XYZ")
