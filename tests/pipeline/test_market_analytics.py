"""Market data and analytics services over the real Redis, in lock-step."""

from __future__ import annotations

import json
from datetime import time

from core.analytics.service import AnalyticsService
from core.bus.events import ChainEvent
from core.market.service import MarketDataService
from core.runtime.sim_runner import SimRunner
from tests.pipeline.conftest import at, stream


async def test_quotes_chains_flow_and_snapshots(sim_bus, ctx_for):
    ctx = ctx_for(market={"symbols": ["SPY", "AAPL"], "tick_seconds": 10, "chain_seconds": 60},
                  demo={"feed_gap_symbol": None})
    await SimRunner([MarketDataService(ctx)], sim_bus.clock).run(at(time(9, 30)), at(time(9, 40)))
    quotes = await stream(sim_bus, "quotes")
    assert len(quotes) == 2 * 61  # every 10 s for both symbols, both ends included
    assert all(q.bid <= q.ask for q in quotes)
    with_depth = [q for q in quotes if q.depth_bid]
    assert len(with_depth) == 2 * 11 and all(len(q.depth_bid) == len(q.depth_ask) == 10 for q in with_depth)
    chains = [e for e in await stream(sim_bus, "chains") if isinstance(e, ChainEvent)]
    assert len(chains) == 2 * 11 and all(c.contracts > 100 for c in chains)
    assert {e.symbol for e in await stream(sim_bus, "flow")} == {"SPY", "AAPL"}
    snap = json.loads(await sim_bus.redis.get(sim_bus.keys.snapshot("quote", "SPY")))
    assert snap["quote_ts"] == sim_bus.clock.ms()
    assert 0 < await sim_bus.redis.ttl(sim_bus.keys.snapshot("chain", "SPY")) <= 300


async def test_feed_gap_freezes_source_time(sim_bus, ctx_for):
    ctx = ctx_for(market={"symbols": ["QQQ"]},
                  demo={"feed_gap_symbol": "QQQ", "feed_gap_start": "09:32", "feed_gap_minutes": 3})
    await SimRunner([MarketDataService(ctx)], sim_bus.clock).run(at(time(9, 30)), at(time(9, 34)))
    snap = json.loads(await sim_bus.redis.get(sim_bus.keys.snapshot("quote", "QQQ")))
    assert sim_bus.clock.ms() - snap["quote_ts"] == 130_000  # last fresh quote at 09:31:50
    stale = [q for q in await stream(sim_bus, "quotes") if q.ts != q.quote_ts]
    assert stale and all(q.quote_ts == int(at(time(9, 32)).timestamp() * 1000) for q in stale)


async def test_watched_contract_gets_option_quotes(sim_bus, ctx_for):
    from core.market.chain_codec import decode_chain

    ctx = ctx_for(market={"symbols": ["SPY"]}, demo={"feed_gap_symbol": None})
    svc = MarketDataService(ctx)
    runner = SimRunner([svc], sim_bus.clock)
    await runner.run(at(time(9, 30)), at(time(9, 30)))
    chain = decode_chain(await sim_bus.redis.get(sim_bus.keys.snapshot("chain", "SPY")))
    key = f"SPY:{str(chain.expiry[0]).replace('-', '')}:{'C' if chain.is_call[0] else 'P'}:{chain.strike[0]:g}:100"
    await sim_bus.redis.hset(sim_bus.keys.hash("watch"), key, "1")
    await SimRunner([svc], sim_bus.clock).run(at(time(9, 31)), at(time(9, 32)))
    oq = [e for e in await stream(sim_bus, "option_quotes") if e.type == "market.option_quote"]
    assert len(oq) == 7 and all(e.contract_key == key and 0 <= e.bid <= e.ask for e in oq)


async def test_analytics_snapshot_per_chain(sim_bus, ctx_for):
    ctx = ctx_for(market={"symbols": ["SPY"]}, demo={"feed_gap_symbol": None})
    await SimRunner([MarketDataService(ctx), AnalyticsService(ctx)], sim_bus.clock).run(
        at(time(9, 30)), at(time(9, 45)))
    snaps = await stream(sim_bus, "analytics")
    assert len(snaps) == 16
    last = snaps[-1]
    assert last.symbol == "SPY" and last.contracts_used > 100 and last.contracts_rejected == 0
    assert last.call_wall and last.put_wall and last.max_gamma_strike and last.gex_by_strike
    assert -1 <= last.obi_l1 <= 1 and -1 <= last.obi_l5 <= 1
    assert last.liquidity_grade in "ABCD"
    for k in ("atm_iv_front", "rr25_1dte", "flow_buy_ratio_5m", "net_premium_5m", "greek_flow_30m"):
        assert k in last.features
    stored = json.loads(await sim_bus.redis.get(sim_bus.keys.snapshot("analytics", "SPY")))
    assert stored["snapshot_id"] == last.snapshot_id


async def test_malformed_chain_snapshot_is_counted_not_fatal(sim_bus, ctx_for):
    ctx = ctx_for(market={"symbols": ["SPY"]}, demo={"feed_gap_symbol": None})
    svc = AnalyticsService(ctx)
    key = sim_bus.keys.snapshot("chain", "SPY")
    await sim_bus.redis.set(key, '{"symbol": "SPY", "n": 3, "strike": "!!"}')
    ev = sim_bus.make(ChainEvent, symbol="SPY", spot=590.0, asof=sim_bus.clock.ms(), snapshot_key=key, contracts=3)
    tx = sim_bus.tx()
    await svc.handle(ev, tx)
    await tx.commit()
    assert await stream(sim_bus, "analytics") == []
