"""One unreadable delivery or thread record must not hold up the deliveries behind it."""

from __future__ import annotations

from tests.distribution._util import CHANNELS, position


async def test_unreadable_delivery_record_is_dropped_and_the_rest_is_posted(bus, make_service, live_secrets,
                                                                             dfake, xfake, rfake):
    h = await make_service(live_secrets, channels=["discord"])
    await h.publish(position(bus, "entry", corr="t1", position_id="p1"))
    await h.publish(position(bus, "entry", corr="t2", position_id="p2"))
    queued = [idem for idem, _s in await bus.redis.zrange(h.svc.k_queue, 0, -1, withscores=True)]
    assert len(queued) == 6  # two trades x three tiers
    poisoned = queued[0]
    await bus.redis.hset(h.svc.delivery_key(poisoned), "spec", "{not json")
    await h.advance(400)
    assert sum(len(dfake.messages(c)) for c in CHANNELS.values()) == 5  # all but the poisoned one
    assert await bus.redis.zrange(h.svc.k_queue, 0, -1) == []


async def test_unreadable_thread_record_posts_without_a_thread(bus, make_service, live_secrets, dfake, xfake, rfake):
    h = await make_service(live_secrets, channels=["discord"])
    await h.publish(position(bus, "entry"))
    await h.advance(400)
    keys = [k async for k in bus.redis.scan_iter(match=f"{bus.keys.prefix}*thread*")]
    assert keys, "the entry opened threads"
    for k in keys:
        if await bus.redis.type(k) == "hash":
            for field in await bus.redis.hkeys(k):
                await bus.redis.hset(k, field, "{not json")
        else:
            await bus.redis.set(k, "{not json")
    before = sum(len(dfake.messages(c)) for c in CHANNELS.values())
    await h.publish(position(bus, "closed"))
    await h.advance(400)
    assert sum(len(dfake.messages(c)) for c in CHANNELS.values()) == before + 3
