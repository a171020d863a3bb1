"""The signal service's Redis reads per snapshot: switches, watch set and chain in one round trip,
and no chain read at all when this process's analytics service already decoded that chain."""

from __future__ import annotations

from core.analytics.chain_cache import CHAINS, ChainCache
from core.market.chain_codec import decode_chain, encode_chain
from core.signals.service import SignalService
from tests.helpers import make_context
from tests.redis_count import count_redis

from ._build import ny, sim_chain

GAMMA_FIELDS = {"max_gamma_strike": 586.0, "obi_l5": 0.30, "liquidity_grade": "A", "zero_gamma": 575.0}
GAMMA_FEATURES = {"flow_buy_ratio_5m": 0.66, "price_change_5m_pct": 0.02}


def _event(bus, chain, snapshot_id: str, fields=None, features=None, asof_ms: int | None = None):
    from core.bus.events import AnalyticsEvent

    return bus.make(AnalyticsEvent, correlation_id=f"an:{chain.symbol}", snapshot_id=snapshot_id,
                    symbol=chain.symbol, spot=chain.spot, asof=asof_ms or int(chain.asof.timestamp() * 1000),
                    features=dict(features or {}), **dict(fields or {}))


async def test_one_round_trip_per_snapshot_without_the_cache(bus, redis_client, keys, sim_clock) -> None:
    chain = sim_chain("SPY", 10, 30)
    await redis_client.set(keys.snapshot("chain", "SPY"), encode_chain(chain), ex=300)
    svc = SignalService(make_context(bus))
    n = 5
    base = int(chain.asof.timestamp() * 1000)
    with count_redis() as seen:
        for i in range(n):  # no strategy fires on an empty snapshot: only the reads are left
            sim_clock.set(ny(10, 30, 2 + i))
            await svc.process(_event(bus, chain, f"s{i}", asof_ms=base + i * 1000))
    # before: HGETALL strategies, GET chain, HKEYS watch = 3 round trips per snapshot
    assert seen.commands == {"hgetall": n, "hkeys": n, "get": n}
    assert seen.round_trips == n
    assert svc.counts["chain_missing"] == 0 and svc.counts["silent:gamma_0dte"] == n


async def test_cached_chain_is_not_read_again_and_gives_the_same_signal(bus, redis_client, keys,
                                                                         sim_clock) -> None:
    chain = sim_chain("SPY", 10, 30)
    key = keys.snapshot("chain", "SPY")
    await redis_client.set(key, encode_chain(chain), ex=300)
    sim_clock.set(ny(10, 30, 2))
    ev = _event(bus, chain, "snap-A", GAMMA_FIELDS, GAMMA_FEATURES)

    from_redis = await SignalService(make_context(bus)).process(ev)           # chain read from Redis
    CHAINS.put(key, decode_chain(await redis_client.get(key)))               # as the analytics service does
    svc = SignalService(make_context(bus))
    with count_redis() as seen:
        from_cache = await svc.process(ev)
    assert seen.commands["get"] == 0 and seen.commands["hgetall"] == 1 and seen.commands["hkeys"] == 1
    assert seen.round_trips == 2  # the reads, then the dedupe script (a duplicate now: same snapshot)
    assert [c for c, _r in from_cache] == [c for c, _r in from_redis] and len(from_cache) == 1


async def test_a_newer_asof_is_a_miss_and_is_read(bus, redis_client, keys, sim_clock) -> None:
    chain = sim_chain("SPY", 10, 30)
    key = keys.snapshot("chain", "SPY")
    CHAINS.put(key, decode_chain(encode_chain(chain)))
    sim_clock.set(ny(10, 31, 2))
    svc = SignalService(make_context(bus))
    with count_redis() as seen:  # the snapshot of a later chain: the cached one is not it
        await svc.process(_event(bus, chain, "later", asof_ms=int(chain.asof.timestamp() * 1000) + 60_000))
    assert seen.commands["get"] == 1
    assert svc.counts["chain_missing"] == 1  # nothing stored under the key: read, found absent


def test_cache_is_keyed_by_key_and_asof_bounded_and_read_only() -> None:
    cache = ChainCache(max_entries=2)
    a, b = sim_chain("SPY", 10, 30), sim_chain("SPY", 15, 10)
    t_a, t_b = int(a.asof.timestamp() * 1000), int(b.asof.timestamp() * 1000)
    cache.put("p:chain:SPY", a)
    assert cache.get("p:chain:SPY", t_a) is a and cache.get("p:chain:SPY", t_b) is None
    assert cache.get("q:chain:SPY", t_a) is None  # another prefix (another bus) never shares
    try:
        a.bid[0] = 1.0
    except ValueError:
        pass
    else:
        raise AssertionError("a cached chain must be read-only")
    cache.put("p:chain:SPY", b)
    cache.put("p:chain:QQQ", sim_chain("SPY", 15, 35))
    assert cache.get("p:chain:SPY", t_a) is None and cache.get("p:chain:SPY", t_b) is b


async def test_a_held_contract_is_still_skipped(bus, redis_client, keys, sim_clock) -> None:
    chain = sim_chain("SPY", 10, 30)
    key = keys.snapshot("chain", "SPY")
    await redis_client.set(key, encode_chain(chain), ex=300)
    sim_clock.set(ny(10, 30, 2))
    first = await SignalService(make_context(bus)).process(_event(bus, chain, "snap-A", GAMMA_FIELDS,
                                                                  GAMMA_FEATURES))
    (cand, _res), = first
    await redis_client.hset(keys.hash("watch"), cand.contract.key, "1")  # a position opened on it
    svc = SignalService(make_context(bus))
    again = await svc.process(_event(bus, chain, "snap-B", GAMMA_FIELDS, GAMMA_FEATURES))
    assert [r for _c, r in again] == [None] and svc.counts["already_held"] == 1
