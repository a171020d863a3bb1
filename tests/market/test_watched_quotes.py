"""Watched-contract quotes are priced alone (``MarketSimulator.row_quotes``), not by simulating
the whole chain each tick, and must be byte-identical to what the full-chain path gave: paper
fills, marks and exits are computed from them. The oracle below is that previous path verbatim
(price the chain, find the contract's row in it)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta

import numpy as np
import pytest
from sim_helpers import at, make_sim

from core.market.chain import displayed_size
from core.market.source import OptionQuote
from core.market.sources.simulator import SimulatorSource
from tests.helpers import make_context


def _chain_path(sim, symbol: str, keys: set[str], now_ms: int) -> list[OptionQuote]:
    """The option quotes as the full-chain implementation produced them."""
    chain = sim.chain(symbol)
    exp = chain.expiry.astype("datetime64[D]").astype(str)
    out = []
    for key in sorted(keys):
        try:
            _sym, ymd, right, strike, _mult = key.split(":")
            iso = f"{ymd[:4]}-{ymd[4:6]}-{ymd[6:]}"
            k = float(strike)
        except ValueError:
            continue
        idx = np.nonzero((exp == iso) & (chain.is_call == (right == "C")) & np.isclose(chain.strike, k))[0]
        if idx.size == 0:
            continue
        i = int(idx[0])
        size = float(displayed_size(chain.open_interest[i]))
        out.append(OptionQuote(contract_key=key, symbol=chain.symbol, expiry=iso, strike=k, right=right,
                               bid=float(chain.bid[i]), ask=float(chain.ask[i]), bid_size=size, ask_size=size,
                               underlying=chain.spot, ts_ms=now_ms))
    return out


def _keys(sim, symbol: str) -> list[str]:
    """A key for every row of the symbol's layout (expired expiries included), OptionContract.key style."""
    lay = sim.layout(symbol)
    out = []
    for r in range(len(lay)):
        d = lay.expiry_dates[int(lay.exp_idx[r])]
        out.append(f"{symbol}:{d:%Y%m%d}:{'C' if lay.is_call[r] else 'P'}:{float(lay.strike[r]):g}:100")
    return out


def _bytes(quotes: list[OptionQuote]) -> str:
    return json.dumps([asdict(q) for q in quotes])


def _times(day_start, step_min: int):
    t, end = day_start, at(16, 15)
    while t <= end:
        yield t
        t += timedelta(minutes=step_min, seconds=17)
    # the 0DTE expiry's close: just before, at and after it
    yield from (at(16, 14), at(16, 15))


@pytest.mark.parametrize("seed", [1, 7])
async def test_watched_quotes_are_byte_identical_to_the_full_chain(bus, seed):
    symbols = ["SPY", "SPX", "AAPL"]
    sim = make_sim(seed=seed, symbols=symbols)
    src = SimulatorSource(make_context(bus))
    src.sim = sim
    rng = np.random.default_rng(seed)
    extra = {"SPY:20251202:C:123.45:100", "SPY:bad", "SPY:2025120:X:abc:100", "SPY:20991231:C:600:100"}
    compared = 0
    times = sorted({*_times(at(8, 30), 11), at(15, 59, 59), at(16, 0), at(16, 0, 1)})
    for n, now in enumerate(times):
        assert await src.advance(now)
        now_ms = int(now.timestamp() * 1000)
        for sym in symbols:
            every = _keys(sim, sym)
            # every contract at a few ticks, a sample of them at the others
            keys = set(every) if n % 9 == 0 else set(rng.choice(every, size=60, replace=False).tolist())
            keys |= extra
            got = src.option_quotes(sym, keys)
            want = _chain_path(sim, sym, keys, now_ms)
            assert _bytes(got) == _bytes(want), (sym, now)
            compared += len(want)
    assert compared > 10_000  # the comparison really covered many quotes


async def test_a_closed_expiry_is_no_longer_quoted(bus):
    sim = make_sim(seed=3, symbols=["SPY"])
    src = SimulatorSource(make_context(bus))
    src.sim = sim
    lay = sim.layout("SPY")
    zero_dte = next(k for k in _keys(sim, "SPY") if k.split(":")[1] == f"{lay.expiry_dates[0]:%Y%m%d}")
    await src.advance(at(15, 59))
    assert [q.contract_key for q in src.option_quotes("SPY", {zero_dte})] == [zero_dte]
    await src.advance(at(16, 1))
    assert src.option_quotes("SPY", {zero_dte}) == []
