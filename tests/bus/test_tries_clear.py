"""The tries count of an entry is cleared with its successful commit only where one can exist.

A count is written only when a handling fails. An entry read fresh (``>``) and never failed in
this process has none, so its commit carries no HDEL; an entry re-read from the pending list (a
restart, a claim) may carry one from an earlier process, and its success must clear it.
"""

from __future__ import annotations

import pytest

from core.bus.bus import Bus, Tx
from core.bus.consumer import Consumer
from core.bus.events import ControlEvent, Event
from core.bus.ids import IdFactory
from tests.bus.counting_redis import Counted, counting_client


@pytest.fixture
async def counted(redis_url):
    c = Counted()
    client = counting_client(redis_url, c)
    yield c, client
    await client.aclose()


def _writer(keys, fail: set[str] | None = None):
    async def handler(ev: Event, tx: Tx) -> None:
        if fail and ev.id in fail:
            fail.discard(ev.id)
            raise RuntimeError("fails once")
        tx.pipe.hset(keys.hash("state"), ev.id, "1")
    return handler


async def test_fresh_entries_commit_without_an_hdel(counted, keys, sim_clock):
    c, client = counted
    bus = Bus(client, keys, sim_clock, IdFactory(seed=11))
    cons = Consumer(bus, "g1", ["control"])
    await cons.poll(_writer(keys))  # groups made, start-up recovery done
    for _ in range(5):
        await bus.publish(bus.make(ControlEvent, action="halt", by="t"))
    c.reset()
    assert await cons.poll(_writer(keys)) == 5
    assert c.count("HDEL") == 0
    assert c.count("EXEC") >= 1 and c.count("XACK") >= 1  # committed and acked all the same
    assert await client.hlen(keys.hash("state")) == 5
    assert (await client.xpending(keys.stream("control"), "g1"))["pending"] == 0


async def test_a_failure_then_a_restart_then_a_success_clears_the_tries_field(counted, keys, sim_clock):
    c, client = counted
    key = keys.stream("control")
    bus = Bus(client, keys, sim_clock, IdFactory(seed=12))
    first = Consumer(bus, "g1", ["control"], name="svc")
    await first.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    entry = await bus.publish(ev)
    await first.poll(_writer(keys, {ev.id}))
    assert await client.hget(keys.tries("g1"), keys.tries_field(key, entry)) == "1"

    # the process dies; a new one (same consumer name) re-reads its pending entry and succeeds
    restarted = Consumer(Bus(client, keys, sim_clock, IdFactory(seed=13)), "g1", ["control"], name="svc")
    c.reset()
    assert await restarted.poll(_writer(keys)) == 1
    assert c.count("HDEL") == 1
    assert await client.hlen(keys.tries("g1")) == 0
    assert await client.hget(keys.hash("state"), ev.id) == "1"
    assert (await client.xpending(key, "g1"))["pending"] == 0


async def test_a_failure_then_a_retry_in_the_same_process_clears_the_tries_field(counted, keys, sim_clock):
    _c, client = counted
    bus = Bus(client, keys, sim_clock, IdFactory(seed=14))
    cons = Consumer(bus, "g1", ["control"], retry_base_ms=100)
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)
    handler = _writer(keys, {ev.id})
    await cons.poll(handler)
    assert await client.hlen(keys.tries("g1")) == 1
    sim_clock.advance(0.1)
    assert await cons.poll(handler) == 1
    assert await client.hlen(keys.tries("g1")) == 0


async def test_a_group_made_again_over_an_old_tries_hash_keeps_clearing_fresh_entries(counted, keys, sim_clock):
    """The group was destroyed (its tries hash left behind) and created again from id 0: its old
    entries come back as fresh reads, and their old counts must still go with their success."""
    _c, client = counted
    key = keys.stream("control")
    bus = Bus(client, keys, sim_clock, IdFactory(seed=15))
    old = Consumer(bus, "g1", ["control"], name="svc")
    await old.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    entry = await bus.publish(ev)
    await old.poll(_writer(keys, {ev.id}))
    assert await client.hlen(keys.tries("g1")) == 1
    await client.xgroup_destroy(key, "g1")

    again = Consumer(Bus(client, keys, sim_clock, IdFactory(seed=16)), "g1", ["control"], name="svc")
    assert await again.poll(_writer(keys)) == 1
    assert await client.hget(keys.tries("g1"), keys.tries_field(key, entry)) is None
