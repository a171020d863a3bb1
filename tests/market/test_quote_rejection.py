"""The market service rejects bad quotes (NaN / Inf / non-positive prices, crossed books),
counts each by reason (metric and the ``rejections`` hash), logs at most once per contract per
minute, and publishes the rest of the tick as usual. Real simulator, real Redis; the source
is the simulator with one symbol and one watched contract poisoned."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import replace
from datetime import time

import numpy as np
import pytest
from prometheus_client import REGISTRY

from core.bus.bus import Bus
from core.bus.events import ChainEvent, OptionQuoteEvent, QuoteEvent
from core.bus.ids import IdFactory
from core.clock.clock import SimClock
from core.domain.contract import OptionContract, Right
from core.market.chain_codec import decode_chain
from core.market.service import MarketDataService
from core.market.sources.simulator import SimulatorSource
from core.runtime.sim_runner import SimRunner
from tests.helpers import make_context
from tests.pipeline.conftest import at, stream

NAN, INF = float("nan"), float("inf")
# (reason the service must give, how the quote is spoiled)
UNDERLYING_POISON = [
    ("non_finite", {"bid": NAN}), ("crossed", {"bid": 1e6}), ("non_positive", {"ask": 0.0}),
    ("non_finite", {"last": INF}), ("non_positive", {"bid": -1.0}), ("bad_size", {"bid_size": -5}),
]
OPTION_POISON = [
    ("non_finite", {"ask": NAN}), ("crossed", {"bid": 1e4}), ("non_positive", {"ask": 0.0}),
    ("negative", {"bid": -0.05}), ("non_finite", {"bid": INF}), ("bad_size", {"ask_size": NAN}),
]


@pytest.fixture
async def sim_bus(redis_client, keys) -> Bus:
    return Bus(redis_client, keys, SimClock(at(time(9, 25))), IdFactory(seed=5))


@pytest.fixture
def ctx_for(sim_bus):
    def build(**overrides):
        ctx = make_context(sim_bus, **overrides)
        ctx.extras["seed"] = 7
        return ctx
    return build


class PoisonSource(SimulatorSource):
    """The simulator, with ``poison_symbol``'s quote and ``poison_key``'s option quote spoiled
    on every tick while ``on`` (cycling through the lists above); ``zero_bid_key`` is bid at 0."""

    def __init__(self, ctx, poison_symbol: str) -> None:
        super().__init__(ctx)
        self.poison_symbol = poison_symbol
        self.poison_key: str | None = None
        self.zero_bid_key: str | None = None
        self.on = False
        self.injected: Counter[str] = Counter()
        self._n = self._m = 0

    def quote(self, symbol):
        q = super().quote(symbol)
        if self.on and q is not None and symbol == self.poison_symbol:
            reason, change = UNDERLYING_POISON[self._n % len(UNDERLYING_POISON)]
            self._n += 1
            self.injected[reason] += 1
            return replace(q, **change)
        return q

    def option_quotes(self, symbol, contract_keys):
        out = []
        for oq in super().option_quotes(symbol, contract_keys):
            if self.on and oq.contract_key == self.poison_key:
                reason, change = OPTION_POISON[self._m % len(OPTION_POISON)]
                self._m += 1
                self.injected[reason] += 1
                oq = replace(oq, **change)
            elif self.on and oq.contract_key == self.zero_bid_key:
                oq = replace(oq, bid=0.0)
            out.append(oq)
        return out


def _atm_keys(raw_chain: str, n: int) -> list[str]:
    chain = decode_chain(raw_chain)
    front = chain.expiry == chain.expiry.min()
    idx = np.nonzero(front & chain.is_call)[0]
    idx = idx[np.argsort(np.abs(chain.strike[idx] - chain.spot), kind="stable")[:n]]
    return [OptionContract(symbol=chain.symbol, expiry=chain.expiry[i].astype(object), strike=float(chain.strike[i]),
                           right=Right.CALL).key for i in idx]


def _rejected_metric(reason: str) -> float:
    return REGISTRY.get_sample_value("quanticity_rejections_total", {"service": "market", "reason": reason}) or 0.0


async def test_bad_quotes_are_rejected_counted_and_the_rest_is_published(sim_bus, ctx_for, caplog):
    ctx = ctx_for(market={"symbols": ["SPY", "AAPL"], "tick_seconds": 10, "chain_seconds": 30},
                  demo={"feed_gap_symbol": None})
    src = PoisonSource(ctx, poison_symbol="AAPL")
    svc = MarketDataService(ctx, source=src)
    await SimRunner([svc], sim_bus.clock).run(at(time(9, 30)), at(time(9, 31)))  # clean: chains to pick from
    key_bad, key_zero, key_good = _atm_keys(await sim_bus.redis.get(sim_bus.keys.snapshot("chain", "SPY")), 3)
    src.poison_key, src.zero_bid_key = key_bad, key_zero
    await sim_bus.redis.hset(sim_bus.keys.hash("watch"), mapping={key_bad: "1", key_zero: "1", key_good: "1"})
    before = {r: _rejected_metric(r) for r in ("non_finite", "crossed", "non_positive", "negative", "bad_size")}
    n_quotes = len(await stream(sim_bus, "quotes"))
    n_chains = len([e for e in await stream(sim_bus, "chains") if isinstance(e, ChainEvent)])

    src.on = True
    caplog.set_level(logging.WARNING, logger="quanticity.market")
    await SimRunner([svc], sim_bus.clock).run(at(time(9, 31, 10)), at(time(9, 32)))  # 6 ticks
    ticks = 6

    # the poisoned underlying is not published; the other symbol is, every tick
    quotes = [q for q in await stream(sim_bus, "quotes") if isinstance(q, QuoteEvent)][n_quotes:]
    assert [q.symbol for q in quotes] == ["SPY"] * ticks
    # the chain is still published for both symbols on its cadence
    chains = [e for e in await stream(sim_bus, "chains") if isinstance(e, ChainEvent)][n_chains:]
    assert sorted({c.symbol for c in chains}) == ["AAPL", "SPY"]
    # the poisoned contract is not published; the zero-bid and the genuine one are, every tick
    oq = [e for e in await stream(sim_bus, "option_quotes") if isinstance(e, OptionQuoteEvent)]
    by_key = Counter(e.contract_key for e in oq)
    assert by_key[key_bad] == 0 and by_key[key_zero] == by_key[key_good] == ticks
    assert all(e.bid == 0.0 for e in oq if e.contract_key == key_zero)
    # the AAPL snapshot was not overwritten by a bad quote
    snap = json.loads(await sim_bus.redis.get(sim_bus.keys.snapshot("quote", "AAPL")))
    assert snap["quote_ts"] == int(at(time(9, 31)).timestamp() * 1000)

    # counted by reason: exactly what was injected, in the hash and in the metric
    assert sum(src.injected.values()) == 2 * ticks
    stored = await sim_bus.redis.hgetall(sim_bus.keys.hash("rejections"))
    assert {k: int(v) for k, v in stored.items()} == {f"market:{r}": n for r, n in src.injected.items()}
    assert {r: _rejected_metric(r) - before[r] for r in before} == {r: float(src.injected[r]) for r in before}
    # logged once per contract in the minute, not once per rejection
    lines = [r.getMessage() for r in caplog.records if "rejected quote" in r.getMessage()]
    assert len(lines) == 2 and any("AAPL" in m for m in lines) and any(key_bad in m for m in lines)


async def test_a_crossed_or_bad_depth_book_is_dropped_but_the_quote_is_published(sim_bus, ctx_for):
    ctx = ctx_for(market={"symbols": ["SPY"], "tick_seconds": 10, "chain_seconds": 30},
                  demo={"feed_gap_symbol": None})
    src = SimulatorSource(ctx)
    real_depth = src.depth

    def crossed_depth(symbol, levels):
        book = real_depth(symbol, levels)
        return replace(book, bid_price=book.ask_price + 0.05)

    src.depth = crossed_depth  # type: ignore[method-assign]
    await SimRunner([MarketDataService(ctx, source=src)], sim_bus.clock).run(at(time(9, 30)), at(time(9, 31)))
    quotes = await stream(sim_bus, "quotes")
    assert len(quotes) == 7 and all(q.depth_bid == [] and q.depth_ask == [] for q in quotes)
    stored = await sim_bus.redis.hgetall(sim_bus.keys.hash("rejections"))
    assert int(stored["market:crossed_book"]) == 3  # the ticks that carry a chain refresh (every 30 s)
