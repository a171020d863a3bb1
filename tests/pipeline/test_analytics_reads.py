"""The analytics service reads a chain with its quote and reference snapshots in one round trip."""

from __future__ import annotations

from datetime import time

from core.analytics.service import AnalyticsService
from core.bus.events import ChainEvent
from core.market.service import MarketDataService
from core.runtime.sim_runner import SimRunner
from tests.pipeline.conftest import at, stream
from tests.redis_count import count_redis


async def test_reads_per_chain_event(sim_bus, ctx_for):
    ctx = ctx_for(market={"symbols": ["SPY"]}, demo={"feed_gap_symbol": None})
    await SimRunner([MarketDataService(ctx)], sim_bus.clock).run(at(time(9, 30)), at(time(9, 32)))
    chains = [e for e in await stream(sim_bus, "chains") if isinstance(e, ChainEvent)]
    svc = AnalyticsService(ctx)
    txs = []
    with count_redis() as seen:
        for ev in chains:
            tx = sim_bus.tx()
            await svc.handle(ev, tx)
            txs.append(tx)
    # before: GET chain, GET quote, GET reference = 3 commands / 3 round trips per chain
    # (the SET and XADD of the analytics snapshot are queued on the handling's tx, sent with its commit)
    assert seen.commands == {"mget": len(chains), "set": len(chains), "xadd": len(chains)}
    assert seen.round_trips == len(chains)
    for tx in txs:
        await tx.commit()
    snaps = await stream(sim_bus, "analytics")
    assert len(snaps) == len(chains) and all(s.obi_l1 is not None for s in snaps)


async def test_signals_reuse_the_chain_analytics_decoded(sim_bus, ctx_for):
    from core.analytics.chain_cache import CHAINS
    from core.signals.service import SignalService

    ctx = ctx_for(market={"symbols": ["SPY"]}, demo={"feed_gap_symbol": None})
    signals = SignalService(ctx)
    hits, misses = CHAINS.hits, CHAINS.misses
    await SimRunner([MarketDataService(ctx), AnalyticsService(ctx), signals], sim_bus.clock).run(
        at(time(9, 45)), at(time(9, 50)))
    snaps = await stream(sim_bus, "analytics")
    assert len(snaps) == 6  # one per chain refresh; gamma_0dte runs on SPY from 09:45
    assert CHAINS.hits - hits == len(snaps) and CHAINS.misses == misses
    assert signals.counts["chain_missing"] == signals.counts["bad_chain"] == signals.counts["chain_stale"] == 0
