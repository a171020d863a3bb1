"""Crash tests of the bus commit on the real Redis: the connection is cut in the middle of a
handler's MULTI/EXEC (``cut_redis``), then the consumer retries or a new one takes over.

Each test fails when its safety line breaks: a non-atomic commit (``transaction=False``)
leaves part of the outputs visible; a missing handled-marker handles a redelivered event
again in a later poll.
"""

from __future__ import annotations

import pytest
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.bus.bus import Bus, Tx
from core.bus.consumer import Consumer
from core.bus.events import AuditEvent, ControlEvent, Event, decode
from core.bus.ids import IdFactory
from tests.bus.cut_redis import Cut, CutConnection, cut_client

# MULTI, XADD audit, XADD audit, HSET state, HINCRBY counter, SET marker, XACK, EXEC (an entry read
# fresh carries no HDEL of its tries count: it has none)
N_COMMANDS = 8


@pytest.fixture
async def cut(redis_url):
    c = Cut()
    client = cut_client(redis_url, c, retry=Retry(NoBackoff(), 0))  # a crash: nobody retries the send
    yield c, client
    await client.aclose()


def _handler(calls: list[str], keys):
    async def handler(ev: Event, tx: Tx) -> None:
        calls.append(ev.id)
        tx.emit(AuditEvent, correlation_id=ev.correlation_id, actor="t", action="first")
        tx.emit(AuditEvent, correlation_id=ev.correlation_id, actor="t", action="second")
        tx.pipe.hset(keys.hash("state"), ev.id, "1")
        tx.pipe.hincrby(keys.hash("counter"), "n", 1)  # not idempotent: a second apply shows
    return handler


async def _outputs(redis, keys) -> tuple[list[str], str | None, str | None]:
    audit = [decode(f).action for _, f in await redis.xrange(keys.stream("audit"))]
    return audit, await redis.hget(keys.hash("counter"), "n"), await redis.hget(keys.hash("state"), "x")


@pytest.mark.parametrize("keep", range(2, N_COMMANDS))  # cut after MULTI + 1 .. before the EXEC
@pytest.mark.parametrize("recovery", ["retry", "restart"])
async def test_crash_between_outputs_and_ack_leaves_nothing_and_redelivers_once(
        cut, redis_client, keys, sim_clock, keep, recovery):
    c, client = cut
    bus = Bus(client, keys, sim_clock, IdFactory(seed=4))
    calls: list[str] = []
    handler = _handler(calls, keys)
    cons = Consumer(bus, "g1", ["control"], name="svc", claim_idle_ms=60_000)
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)

    c.arm(keep=keep)
    await cons.poll(handler)
    assert c.cuts == 1 and cons.failed == 1
    # no partial output is visible: not one audit entry, no state, no counter, no marker, not acked
    assert await redis_client.xrange(keys.stream("audit")) == []
    assert await redis_client.hgetall(keys.hash("state")) == {}
    assert await redis_client.hgetall(keys.hash("counter")) == {}
    assert not await redis_client.exists(keys.done("g1", ev.id))
    assert (await redis_client.xpending(keys.stream("control"), "g1"))["pending"] == 1

    if recovery == "retry":  # the running consumer tries again after its backoff
        sim_clock.advance(1)
        assert cons.needs_poll
        await cons.poll(handler)
    else:  # the process died: a new one (same consumer name) re-reads its own pending entries
        fresh = Consumer(Bus(redis_client, keys, sim_clock, IdFactory(seed=5)), "g1", ["control"], name="svc",
                         claim_idle_ms=60_000)
        await fresh.poll(handler)
    assert calls == [ev.id, ev.id]
    audit, counter, _ = await _outputs(redis_client, keys)
    assert audit == ["first", "second"] and counter == "1"  # each output exactly once
    assert await redis_client.hget(keys.hash("state"), ev.id) == "1"
    assert (await redis_client.xpending(keys.stream("control"), "g1"))["pending"] == 0
    assert await redis_client.hlen(keys.tries("g1")) == 0  # the retry count is cleared with the commit


async def test_handled_event_redelivered_in_a_later_poll_is_not_handled_again(bus, redis_client, keys):
    """The handled-marker path (not the same-batch set): the same event arrives again after its
    first delivery was committed and acked, read by a later poll and by a new consumer."""
    calls: list[str] = []
    handler = _handler(calls, keys)
    cons = Consumer(bus, "g1", ["control"])
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)
    await cons.poll(handler)
    assert calls == [ev.id]

    await bus.publish(ev)  # a publisher's retry or a replay: same event id, new stream entry
    assert await cons.poll(handler) == 1
    await bus.publish(ev)
    restarted = Consumer(bus, "g1", ["control"], name="c2")
    assert await restarted.poll(handler) == 1
    assert calls == [ev.id]
    audit, counter, _ = await _outputs(redis_client, keys)
    assert audit == ["first", "second"] and counter == "1"
    assert (await redis_client.xpending(keys.stream("control"), "g1"))["pending"] == 0


async def test_commit_applied_but_reply_lost_is_not_applied_again(cut, redis_client, keys, sim_clock):
    """The EXEC ran on the server but the connection dropped before its reply: the consumer
    sees a failed commit and retries in a later poll; the marker makes that a plain ack."""
    c, client = cut
    bus = Bus(client, keys, sim_clock, IdFactory(seed=6))
    calls: list[str] = []
    handler = _handler(calls, keys)
    cons = Consumer(bus, "g1", ["control"], name="svc")
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)
    await bus.publish(ev)  # and a duplicate entry of it behind, to be met in the retry's poll
    c.arm(keep=0, after_exec=True)
    await cons.poll(handler)
    assert c.cuts == 1 and cons.failed == 1
    sim_clock.advance(60)
    await cons.poll(handler)
    assert calls == [ev.id]
    audit, counter, _ = await _outputs(redis_client, keys)
    assert audit == ["first", "second"] and counter == "1"
    assert (await redis_client.xpending(keys.stream("control"), "g1"))["pending"] == 0
    assert await redis_client.hlen(keys.tries("g1")) == 0  # the failed attempt's count goes with the ack
    assert not cons.needs_poll and cons.next_retry_ms() is None  # no retry left behind to spin on


@pytest.mark.parametrize("keep", [2, 3])
async def test_tx_commit_is_all_or_nothing(cut, redis_client, keys, sim_clock, keep):
    """The bus commit itself: a Tx cut after some of its writes shows none of them."""
    c, client = cut
    bus = Bus(client, keys, sim_clock, IdFactory(seed=7))
    tx = bus.tx()
    tx.emit(AuditEvent, correlation_id="c", actor="t", action="a")
    tx.pipe.set(keys.key("x", "1"), "1")
    tx.pipe.hincrby(keys.hash("counter"), "n", 1)
    failed: list[int] = []
    tx.on_failure.append(lambda: failed.append(1))
    c.arm(keep=keep)
    with pytest.raises(Exception, match="injected"):
        await tx.commit()
    assert failed == [1]
    assert await redis_client.xrange(keys.stream("audit")) == []
    assert not await redis_client.exists(keys.key("x", "1"))
    assert await redis_client.hgetall(keys.hash("counter")) == {}


async def test_handling_that_wrote_nothing_is_not_repeated_when_its_ack_fails(cut, keys, sim_clock):
    """A handling with no outputs may still move the handler's memory (a flow window): when the
    batch's XACK fails, the next poll only acks, it does not handle the entries again."""
    c, client = cut
    bus = Bus(client, keys, sim_clock, IdFactory(seed=8))
    seen: list[str] = []

    async def handler(ev: Event, tx: Tx) -> None:
        seen.append(ev.id)  # memory only: nothing on tx

    cons = Consumer(bus, "g1", ["control"], name="svc")
    await cons.ensure_groups()
    evs = [bus.make(ControlEvent, action="halt", by="t") for _ in range(2)]
    for ev in evs:
        await bus.publish(ev)
    c.fail_next("XACK")
    with pytest.raises(Exception, match="injected"):
        await cons.poll(handler)  # the live runner logs this and polls again
    assert cons.needs_poll
    await cons.poll(handler)
    assert seen == [e.id for e in evs]
    assert (await client.xpending(keys.stream("control"), "g1"))["pending"] == 0


async def test_the_desk_client_never_resends_an_applied_transaction(redis_url, keys, sim_clock):
    """A client that retried a MULTI/EXEC after a lost reply would apply it twice (duplicate events,
    a counter moved twice). The client the desk connects with (``core.bus.connection``) must
    surface the error instead and leave the retry to the consumer, which finds the marker."""
    from core.bus.connection import connect

    handle = await connect(redis_url, fallback=False)
    client = handle.client
    c = Cut()
    pool = client.connection_pool
    await pool.disconnect()
    pool.reset()  # drop the connection made by connect()'s ping: new ones are cut-able
    pool.connection_class = CutConnection
    pool.connection_kwargs["cut"] = c
    try:
        bus = Bus(client, keys, sim_clock, IdFactory(seed=9))
        tx = bus.tx()
        tx.emit(AuditEvent, correlation_id="c", actor="t", action="once")
        tx.pipe.hincrby(keys.hash("counter"), "n", 1)
        c.arm(keep=0, after_exec=True)
        with pytest.raises(Exception, match="injected"):
            await tx.commit()
        assert c.cuts == 1
        assert await client.xlen(keys.stream("audit")) == 1
        assert await client.hget(keys.hash("counter"), "n") == "1"
    finally:
        await client.aclose()
