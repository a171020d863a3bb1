"""The Redis bus against the real server: delivery, ack, redelivery after a
consumer dies, idempotent re-handling, malformed entries, poison events."""

from __future__ import annotations

import pytest

from core.bus.bus import Tx
from core.bus.consumer import Consumer
from core.bus.events import AuditEvent, BadEvent, ControlEvent, Event, decode, encode


async def test_publish_and_consume_acks(bus, redis_client, keys):
    seen: list[Event] = []

    async def handler(ev: Event, tx: Tx) -> None:
        seen.append(ev)

    cons = Consumer(bus, "g1", ["control"])
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="test", reason="r")
    await bus.publish(ev)
    assert await cons.poll(handler) == 1
    assert [e.id for e in seen] == [ev.id]
    assert isinstance(seen[0], ControlEvent) and seen[0].correlation_id == ev.id
    pending = await redis_client.xpending(keys.stream("control"), "g1")
    assert pending["pending"] == 0


async def test_outputs_commit_atomically_with_ack(bus, redis_client, keys):
    async def handler(ev: Event, tx: Tx) -> None:
        tx.emit(AuditEvent, correlation_id=ev.correlation_id, actor="t", action="seen")
        tx.pipe.hset(keys.hash("state"), ev.id, "1")

    cons = Consumer(bus, "g1", ["control"])
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, action="resume", by="t")
    await bus.publish(ev)
    await cons.poll(handler)
    audit = await redis_client.xrange(keys.stream("audit"))
    assert len(audit) == 1 and decode(audit[0][1]).correlation_id == ev.id
    assert await redis_client.hget(keys.hash("state"), ev.id) == "1"


async def test_dead_consumer_pending_is_reclaimed(bus, redis_client, keys):
    """Consumer A reads but dies before acking; B (restart) claims and handles it."""
    dead = Consumer(bus, "g1", ["control"], name="A", claim_idle_ms=0)
    await dead.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)
    # A reads the entry (delivered, un-acked) and "dies"
    resp = await redis_client.xreadgroup("g1", "A", {keys.stream("control"): ">"}, count=10)
    assert len(resp[0][1]) == 1
    got: list[str] = []

    async def handler(e: Event, tx: Tx) -> None:
        got.append(e.id)

    survivor = Consumer(bus, "g1", ["control"], name="B", claim_idle_ms=0)
    await survivor.poll(handler)
    assert got == [ev.id]
    assert (await redis_client.xpending(keys.stream("control"), "g1"))["pending"] == 0


async def test_same_consumer_restart_rereads_own_pending(bus, redis_client, keys):
    c1 = Consumer(bus, "g1", ["control"], name="svc", claim_idle_ms=60_000)
    await c1.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)
    await redis_client.xreadgroup("g1", "svc", {keys.stream("control"): ">"}, count=10)
    got: list[str] = []

    async def handler(e: Event, tx: Tx) -> None:
        got.append(e.id)

    restarted = Consumer(bus, "g1", ["control"], name="svc", claim_idle_ms=60_000)
    await restarted.poll(handler)
    assert got == [ev.id]


async def test_redelivery_of_handled_event_is_idempotent(bus, redis_client, keys):
    """Crash after commit but 'before ack' is simulated by re-adding the same event:
    the handled marker makes the second delivery a no-op."""
    calls: list[str] = []

    async def handler(e: Event, tx: Tx) -> None:
        calls.append(e.id)
        tx.emit(AuditEvent, correlation_id=e.correlation_id, actor="t", action="did")

    cons = Consumer(bus, "g1", ["control"])
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)
    await bus.publish(ev)  # the same event delivered twice
    await cons.poll(handler)
    assert calls == [ev.id]
    assert len(await redis_client.xrange(keys.stream("audit"))) == 1


async def test_failed_handler_rolls_back_and_retries_then_dead_letters(bus, redis_client, keys, sim_clock):
    attempts: list[int] = []

    async def handler(e: Event, tx: Tx) -> None:
        tx.emit(AuditEvent, correlation_id=e.correlation_id, actor="t", action="partial")
        attempts.append(1)
        raise RuntimeError("boom")

    cons = Consumer(bus, "g1", ["control"], max_deliveries=3, retry_base_ms=1000)
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)
    await cons.poll(handler)
    assert len(attempts) == 1 and cons.next_retry_ms() == sim_clock.ms() + 1000
    await cons.poll(handler)
    assert len(attempts) == 1 and not cons.needs_poll  # backing off: not before its time
    entry = (await redis_client.xrange(keys.stream("control")))[0][0]
    assert await redis_client.hget(keys.tries("g1"), keys.tries_field(keys.stream("control"), entry)) == "1"
    for _ in range(4):
        sim_clock.advance(10)
        assert cons.needs_poll or len(attempts) == 3
        await cons.poll(handler)  # retried by the running consumer: no restart
    assert len(attempts) == 3
    assert await redis_client.xrange(keys.stream("audit")) == []  # nothing half-written
    dlq = await redis_client.xrange(keys.dlq("g1"))
    assert len(dlq) == 1 and "boom" in dlq[0][1]["error"] and dlq[0][1]["tries"] == "3"
    assert await redis_client.sismember(keys.dlq_index(), "g1")  # watchers find it without SCAN
    assert (await redis_client.xpending(keys.stream("control"), "g1"))["pending"] == 0
    assert await redis_client.hlen(keys.tries("g1")) == 0
    alerts = [decode(f) for _, f in await redis_client.xrange(keys.stream("alerts"))]
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.code, a.severity, a.state, a.subject) == ("DEAD_LETTER", "WARNING", "raised", "g1")
    assert "control" in a.message and "RuntimeError: boom" in a.message and ev.correlation_id in a.explanation


@pytest.mark.parametrize("fields", [
    {"t": "control", "d": "{not json"},
    {"t": "no.such.type", "d": "{}"},
    {"x": "y"},
    {"t": "control", "d": '{"id": "1", "ts": -5, "correlation_id": "c", "action": "halt", "by": "x"}'},
])
async def test_malformed_entries_are_counted_dead_lettered_and_skipped(bus, redis_client, keys, fields):
    good: list[str] = []

    async def handler(e: Event, tx: Tx) -> None:
        good.append(e.id)

    cons = Consumer(bus, "g1", ["control"])
    await cons.ensure_groups()
    await redis_client.xadd(keys.stream("control"), fields)
    ev = bus.make(ControlEvent, action="halt", by="t")
    await bus.publish(ev)
    await cons.poll(handler)
    assert good == [ev.id]
    assert cons.rejected == 1
    assert len(await redis_client.xrange(keys.dlq("g1"))) == 1


def test_encode_decode_roundtrip():
    from core.bus.ids import IdFactory

    ids = IdFactory(seed=3)
    ev = ControlEvent(id=ids.new(1), ts=1, correlation_id="c", action="flatten", by="u", args={"a": 1})
    assert decode(encode(ev)) == ev
    with pytest.raises(BadEvent):
        decode({"t": "control", "d": "[]"})


def test_ids_are_sortable_and_deterministic():
    from core.bus.ids import IdFactory

    a, b = IdFactory(seed=9), IdFactory(seed=9)
    xs = [a.new(1000 + i // 3) for i in range(30)]
    assert xs == [b.new(1000 + i // 3) for i in range(30)]
    assert xs == sorted(xs) and len(set(xs)) == 30
