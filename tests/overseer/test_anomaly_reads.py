"""The anomaly timer's Redis bill per check: one HSET for all moved feeds, reads in few round trips,
and the same alerts as before."""

from __future__ import annotations

import json
from typing import Any

from ov_helpers import alerts, context, ny, seed_quote

from overseer.anomaly import AnomalyService
from tests.redis_count import count_redis

SYMS = ["SPY", "QQQ", "IWM", "AAPL"]


def _svc(bus, **overseer: Any) -> AnomalyService:
    return AnomalyService(context(bus, None, overseer=overseer, market={"symbols": SYMS}))


async def _seed(svc: AnomalyService, now) -> None:
    for s in SYMS:
        await seed_quote(svc.redis, svc.keys, now, s)
        await svc.redis.set(svc.keys.snapshot("chain_meta", s),
                            json.dumps({"symbol": s, "asof": now.isoformat(), "contracts": 10}))


async def test_moved_feeds_are_recorded_with_one_hset(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    svc = _svc(bus, stale_feed_s={"quotes": 30, "chains": 180})
    await _seed(svc, sim_clock.now())
    with count_redis() as seen:
        await svc.on_timer(sim_clock.now())
    feeds = svc.keys.hash("anomaly_feeds")
    assert seen.by_key[("hset", feeds)] == 1  # before: one per feed that moved (2 sources x 4 symbols = 8)
    stored = await svc.redis.hgetall(svc.keys.hash("anomaly_feeds"))
    t = str(int(sim_clock.now().timestamp() * 1000))
    assert stored == {f"{src}:{s}": t for src in ("quotes", "chains") for s in SYMS}
    sim_clock.advance(60)  # nothing moved: no write at all; quotes now 60 s old -> stale, once each
    with count_redis() as seen:
        await svc.on_timer(sim_clock.now())
    assert seen.by_key[("hset", feeds)] == 0
    raised = [(a.code, a.subject) for a in await alerts(svc.redis, svc.keys)]
    assert sorted(raised) == sorted(("FEED_STALE", f"quotes:{s}") for s in SYMS)


async def test_a_check_reads_in_one_round_trip(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    svc = _svc(bus, stale_feed_s={"quotes": 30, "chains": 180})
    await _seed(svc, sim_clock.now())
    await svc.on_timer(sim_clock.now())
    sim_clock.advance(30)
    with count_redis() as seen:
        await svc.on_timer(sim_clock.now())
    # before: a dozen (alerts, quotes twice, chain times, feed times, broker, vendor quotes, account,
    # dead-letter lengths and index, heartbeats, switches); now the reads, then the tx's commit
    assert seen.round_trips <= 2  # 1 read + the commit, if it has anything to write
    assert seen.commands["mget"] == 3  # quotes read once for both detectors, chain times, vendor quotes


async def test_dead_letter_lengths_are_a_second_round_trip_and_still_alert(bus, sim_clock) -> None:
    sim_clock.set(ny(10, 0))
    svc = _svc(bus)
    await svc.redis.sadd(svc.keys.dlq_index(), "signals")
    await svc.redis.xadd(svc.keys.dlq("signals"), {"e": "1"})
    with count_redis() as seen:
        await svc.on_timer(sim_clock.now())
    assert seen.round_trips <= 3 and seen.commands["xlen"] == 1  # + the lengths
    raised = [(a.code, a.subject) for a in await alerts(svc.redis, svc.keys)]
    assert ("DEAD_LETTER", "signals") in raised
