"""DistributorService.next_due keeps the schedule's head in memory (core/runtime/due_head.py): one
ZRANGE per change instead of one per instant, never later than the real head, tiers still exact."""

from __future__ import annotations

from datetime import timedelta

from core.runtime.sim_runner import SimRunner
from tests.distribution._util import SUBREDDIT, deliveries, position
from tests.redis_count import count_redis


async def _real_head(bus, svc) -> int | None:
    rows = await bus.redis.zrange(svc.k_queue, 0, 0, withscores=True)
    return int(rows[0][1]) if rows else None


async def _cached(svc, bus) -> int | None:
    nd = await svc.next_due(bus.clock.now())
    return None if nd is None else int(nd.timestamp() * 1000)


async def test_one_read_for_many_instants_and_a_new_delivery_seen_without_reading(bus, make_service,
                                                                                  live_secrets):
    h = await make_service(live_secrets, subreddit=SUBREDDIT)
    with count_redis() as seen:
        for i in range(100):  # 100 instants within the head's 60 s max age
            assert await h.svc.next_due(bus.clock.now() + timedelta(milliseconds=500 * i)) is None
    assert seen.commands == {"zrange": 1}  # before: 100
    ev = position(bus, "entry")
    await h.publish(ev)  # premium now, basic +60 s, free +300 s
    with count_redis() as seen:
        assert await _cached(h.svc, bus) == ev.ts == await _real_head(bus, h.svc)
    assert seen.commands == {"zrange": 1}  # only the check's own read of the real head


async def test_cached_head_never_later_than_the_real_one_and_tiers_exact(bus, make_service, live_secrets):
    h = await make_service(live_secrets, subreddit=SUBREDDIT)
    ev = position(bus, "entry")
    await bus.publish(ev)
    checks = []

    def step(now) -> None:
        checks.append(now)

    runner = SimRunner([h.svc], bus.clock)
    with count_redis() as seen:
        await runner.run(bus.clock.now(), bus.clock.now() + timedelta(minutes=10), on_step=step)
    delivered = {(d.channel, d.tier): d.ts - ev.ts for d in await deliveries(bus, "delivered")}
    assert delivered == {("discord", "premium"): 0, ("discord", "basic"): 60_000, ("discord", "free"): 300_000,
                         ("x", "free"): 300_000, ("reddit", "free"): 300_000}
    # the runner stopped exactly at +0, +60 s and +300 s: no extra instant
    assert [int(c.timestamp() * 1000) - ev.ts for c in checks] == [0, 60_000, 300_000]
    # one schedule read after each timer run (3), none at the instants in between, and at most one more
    # per instant where the cached head had passed its 60 s max age (due_head.MAX_AGE_MS)
    assert seen.commands["zrange"] <= 2 * len(checks) + 1
    assert await _cached(h.svc, bus) is None and await _real_head(bus, h.svc) is None


async def test_invariant_through_a_day_of_events(bus, make_service, live_secrets):
    h = await make_service(live_secrets, subreddit=SUBREDDIT)
    for i, kind in enumerate(["entry", "stop_moved", "partial_exit", "closed"]):
        await h.publish(position(bus, kind, corr="trade-1", position_id="pos-1", **({"stop": 1.6 + i * 0.1}
                                                                                  if kind == "stop_moved" else {})))
        for _ in range(4):
            cached, real = await _cached(h.svc, bus), await _real_head(bus, h.svc)
            assert (cached is None and real is None) or (cached is not None and (real is None or cached <= real))
            await h.advance(45)
    await h.advance(600)
    assert await _cached(h.svc, bus) is None and await _real_head(bus, h.svc) is None
