"""Edges of the bus consumer on the real Redis, one behaviour per test: event_types filtering, entries
trimmed while pending, per-entry backoff, the tries hash and the retry schedule after a retried success,
re-reads after a failed poll or an ambiguous commit, XAUTOCLAIM and own-pending paging, batch bounds,
the handled-marker TTL, needs_poll / next_retry_ms / block_ms, the counters and the metrics they feed,
the failure logs (the operator's only record of which event failed and why), NOGROUP recovery.

Where a test needs what the consumer asked Redis (the ``count`` and ``block`` of its reads, the pages
XAUTOCLAIM returned), it wraps that client method with a recorder that passes every call through to
the real server; nothing of the consumer or of Redis is replaced.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY as PROMETHEUS
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from core.bus.bus import Bus, Tx
from core.bus.consumer import Consumer
from core.bus.events import AuditEvent, ControlEvent, Event, FlowEvent, ImbalanceEvent, encode
from core.bus.ids import IdFactory
from core.bus.retry import Unavailable
from tests.bus.cut_redis import Cut, cut_client

LOG = "quanticity.bus"


@pytest.fixture
def group() -> str:
    """A group name of its own: the Prometheus metrics are process-wide, labelled by group."""
    return f"g{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def cut(redis_url):
    c = Cut()
    client = cut_client(redis_url, c, retry=Retry(NoBackoff(), 0))  # a crash: nobody retries the send
    yield c, client
    await client.aclose()


def _metric(name: str, **labels: str) -> float:
    return PROMETHEUS.get_sample_value(name, labels) or 0.0


def _record(monkeypatch, client: Any, method: str, *, limit: int = 1000) -> list[tuple[tuple, dict, Any]]:
    """Calls of ``client.method`` (args, kwargs, reply), passed through to the real server. More than
    ``limit`` calls raise: a paging loop that never ends fails the test instead of hanging it."""
    calls: list[tuple[tuple, dict, Any]] = []
    real = getattr(client, method)

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        if len(calls) >= limit:
            raise AssertionError(f"{method} called more than {limit} times")
        reply = await real(*args, **kwargs)
        calls.append((args, kwargs, reply))
        return reply

    monkeypatch.setattr(client, method, recorded)
    return calls


def _recorder(seen: list[str]):
    async def handler(ev: Event, tx: Tx) -> None:
        seen.append(ev.id)
    return handler


def _failing(calls: list[str], exc: Exception):
    async def handler(ev: Event, tx: Tx) -> None:
        calls.append(ev.id)
        raise exc
    return handler


def _halt(bus: Bus, **fields: Any) -> ControlEvent:
    return bus.make(ControlEvent, action="halt", by="t", **fields)


async def _pending(redis, key: str, group: str) -> int:
    return (await redis.xpending(key, group))["pending"]


def _messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG and r.levelno == level]


# ---------------------------------------------------------------- event_types, empty entries
async def test_types_a_group_does_not_take_are_acked_unread_and_unknown_types_dead_lettered(
        bus, redis_client, keys, group, caplog):
    """The flow stream carries market.flow and market.imbalance; a group taking only market.flow acks
    the imbalances without reading them (no handling, no rejection) and goes on with the rest of the
    same batch; a type nobody knows is malformed: counted, logged, dead-lettered."""
    seen: list[str] = []
    cons = Consumer(bus, group, ["flow"], event_types=frozenset({"market.flow"}))
    await cons.ensure_groups()
    key = keys.stream("flow")
    imb1, imb2 = (bus.make(ImbalanceEvent, symbol="SPY", side="buy", shares=1e5) for _ in range(2))
    flow1, flow2 = (bus.make(FlowEvent, symbol="SPY", buy_volume=5) for _ in range(2))
    await bus.publish(imb1)
    await bus.publish(flow1)
    unknown = await redis_client.xadd(key, {"t": "market.nope", "d": "{}"})
    await bus.publish(imb2)
    await bus.publish(flow2)
    with caplog.at_level(logging.WARNING, logger=LOG):
        assert await cons.poll(_recorder(seen)) == 5
    assert seen == [flow1.id, flow2.id]  # in order, in the same poll as the skipped entries around them
    assert (cons.handled, cons.rejected, cons.failed) == (2, 1, 0)
    assert await _pending(redis_client, key, group) == 0
    dlq = [f for _, f in await redis_client.xrange(keys.dlq(group))]
    assert [(f["entry"], f["error"], f["f_t"]) for f in dlq] == [
        (unknown, "malformed: unknown event type 'market.nope'", "market.nope")]
    assert _metric("quanticity_rejections_total", service=group, reason="bad_event") == 1
    assert _messages(caplog, logging.WARNING) == [
        f"group={group} stream={key} entry={unknown} rejected malformed event: unknown event type 'market.nope'"]


async def test_an_entry_trimmed_while_pending_is_acked_not_dead_lettered(bus, redis_client, keys, group):
    """A pending entry deleted from the stream (MAXLEN trimming) reads back with no fields: there is
    nothing to handle or to keep, so it is acked, not counted as malformed."""
    key = keys.stream("control")
    await Consumer(bus, group, ["control"], name="svc").ensure_groups()
    gone, kept = _halt(bus), _halt(bus)
    gone_id = await bus.publish(gone)
    await bus.publish(kept)
    await redis_client.xreadgroup(group, "svc", {key: ">"})  # read, then the process died
    await redis_client.xdel(key, gone_id)
    seen: list[str] = []
    restarted = Consumer(bus, group, ["control"], name="svc")
    assert await restarted.poll(_recorder(seen)) == 2
    assert seen == [kept.id]
    assert await _pending(redis_client, key, group) == 0
    assert restarted.rejected == 0 and await redis_client.xrange(keys.dlq(group)) == []


async def test_a_failed_entry_trimmed_before_its_retry_is_acked_and_its_retry_state_cleared(
        bus, redis_client, keys, group, sim_clock):
    key = keys.stream("control")
    calls: list[str] = []
    cons = Consumer(bus, group, ["control"], max_deliveries=3, retry_base_ms=1000)
    await cons.ensure_groups()
    entry = await bus.publish(_halt(bus))
    await cons.poll(_failing(calls, RuntimeError("boom")))
    assert await redis_client.hget(keys.tries(group), keys.tries_field(key, entry)) == "1"
    assert cons.next_retry_ms() == sim_clock.ms() + 1000
    await redis_client.xdel(key, entry)
    sim_clock.advance(1)
    assert cons.needs_poll
    assert await cons.poll(_failing(calls, RuntimeError("boom"))) == 1
    assert len(calls) == 1  # nothing left to handle
    assert await _pending(redis_client, key, group) == 0
    assert await redis_client.xrange(keys.dlq(group)) == []
    assert await redis_client.hlen(keys.tries(group)) == 0
    assert cons.next_retry_ms() is None and not cons.needs_poll


# ---------------------------------------------------------------- retries
@pytest.mark.parametrize("writes", [False, True], ids=["wrote-nothing", "committed"])
async def test_a_retried_success_clears_its_tries_count_and_its_schedule(
        bus, redis_client, keys, group, sim_clock, writes):
    calls: list[str] = []
    fail = [True]

    async def handler(ev: Event, tx: Tx) -> None:
        calls.append(ev.id)
        if fail and fail.pop():
            raise RuntimeError("once")
        if writes:
            tx.pipe.hset(keys.hash("state"), ev.id, "1")

    key = keys.stream("control")
    cons = Consumer(bus, group, ["control"], max_deliveries=3, retry_base_ms=500)
    await cons.ensure_groups()
    ev = _halt(bus)
    entry = await bus.publish(ev)
    await cons.poll(handler)
    assert await redis_client.hget(keys.tries(group), keys.tries_field(key, entry)) == "1"
    assert cons.failed == 1 and cons.next_retry_ms() == sim_clock.ms() + 500
    sim_clock.advance(0.5)
    assert cons.needs_poll
    assert await cons.poll(handler) == 1
    assert calls == [ev.id, ev.id]
    assert (cons.handled, cons.failed) == (1, 1)
    assert await redis_client.hlen(keys.tries(group)) == 0
    assert cons.next_retry_ms() is None and not cons.needs_poll
    assert await _pending(redis_client, key, group) == 0
    # a handling that wrote something is marked handled; one that wrote nothing needs no marker
    assert await redis_client.exists(keys.done(group, ev.id)) == int(writes)


async def test_backoff_is_per_entry_one_not_yet_due_waits_while_its_neighbour_is_retried(
        bus, redis_client, keys, group, sim_clock):
    calls: list[str] = []
    handler = _failing(calls, RuntimeError("down"))
    cons = Consumer(bus, group, ["control"], max_deliveries=5, retry_base_ms=1000)
    await cons.ensure_groups()
    t0 = sim_clock.ms()
    a = _halt(bus)
    await bus.publish(a)
    await cons.poll(handler)  # a fails at t0: due at t0 + 1000
    sim_clock.advance(0.6)
    b = _halt(bus)
    await bus.publish(b)
    await cons.poll(handler)  # b fails at t0 + 600: due at t0 + 1600
    assert calls == [a.id, b.id] and cons.next_retry_ms() == t0 + 1000
    sim_clock.set_ms(t0 + 1000)
    await cons.poll(handler)  # the stream is re-read for a; b, read with it, is not due yet
    assert calls == [a.id, b.id, a.id]
    assert cons.next_retry_ms() == t0 + 1600  # b's; a's second failure waits 2000 ms
    sim_clock.set_ms(t0 + 1600)
    await cons.poll(handler)
    assert calls == [a.id, b.id, a.id, b.id]


async def test_backoff_is_per_stream_the_same_entry_id_on_another_stream_is_not_held_back(
        bus, redis_client, keys, group):
    """Entry ids are per stream (two streams written in one MULTI/EXEC often get the same id): a
    failure of control's 5-1 must not make audit's 5-1 wait."""
    seen: list[str] = []

    async def handler(ev: Event, tx: Tx) -> None:
        seen.append(ev.id)
        if ev.type == "control":
            raise RuntimeError("control handling down")

    cons = Consumer(bus, group, ["control", "audit"], retry_base_ms=20_000)
    await cons.ensure_groups()
    c_ev, a_ev = _halt(bus), bus.make(AuditEvent, actor="t", action="x")
    await redis_client.xadd(keys.stream("control"), encode(c_ev), id="5-1")
    await redis_client.xadd(keys.stream("audit"), encode(a_ev), id="5-1")
    assert await cons.poll(handler) == 2  # both streams' entries counted
    assert seen == [c_ev.id, a_ev.id]
    assert await _pending(redis_client, keys.stream("audit"), group) == 0
    assert await _pending(redis_client, keys.stream("control"), group) == 1


async def test_an_unavailable_store_backs_off_doubling_to_the_cap_and_is_never_dead_lettered(
        bus, redis_client, keys, group, sim_clock, caplog):
    down = [True]

    async def handler(ev: Event, tx: Tx) -> None:
        if down[0]:
            raise Unavailable("ledger database down")
        tx.pipe.hset(keys.hash("state"), ev.id, "1")

    key = keys.stream("control")
    cons = Consumer(bus, group, ["control"], max_deliveries=2, retry_base_ms=100, retry_max_ms=300)
    await cons.ensure_groups()
    ev = _halt(bus)
    await bus.publish(ev)
    delays: list[int] = []
    with caplog.at_level(logging.WARNING, logger=LOG):
        for _ in range(4):
            t = sim_clock.ms()
            await cons.poll(handler)
            delays.append(cons.next_retry_ms() - t)
            sim_clock.set_ms(cons.next_retry_ms())
    assert delays == [100, 200, 300, 300]
    assert _messages(caplog, logging.WARNING) == [
        f"group={group} event={ev.id} type=control handler: downstream unavailable (attempt {n}, next in {d} ms): "
        "ledger database down" for n, d in zip(range(1, 5), delays, strict=True)]
    assert cons.failed == 4 and _metric("quanticity_handler_errors_total", service=group) == 4
    # past max_deliveries, yet not given up on: not counted in the tries hash, not dead-lettered
    assert await redis_client.hlen(keys.tries(group)) == 0
    assert await redis_client.xrange(keys.dlq(group)) == [] and await redis_client.xrange(keys.stream("alerts")) == []
    assert await _pending(redis_client, key, group) == 1
    down[0] = False
    assert await cons.poll(handler) == 1
    assert await redis_client.hget(keys.hash("state"), ev.id) == "1"
    assert await _pending(redis_client, key, group) == 0 and cons.next_retry_ms() is None


async def test_the_default_backoff_starts_at_250_ms_and_is_capped_at_30_s(bus, keys, group, sim_clock):
    """The services' consumers (``consumer_for``) use these defaults."""
    cons = Consumer(bus, group, ["control"], max_deliveries=20)
    await cons.ensure_groups()
    await bus.publish(_halt(bus))
    handler = _failing([], RuntimeError("down"))
    delays: list[int] = []
    for _ in range(9):
        t = sim_clock.ms()
        await cons.poll(handler)
        delays.append(cons.next_retry_ms() - t)
        sim_clock.set_ms(cons.next_retry_ms())
    assert delays == [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]


async def test_a_failing_handler_is_logged_with_its_facts_counted_and_given_up_at_max_deliveries(
        bus, redis_client, keys, group, sim_clock, caplog):
    calls: list[str] = []
    handler = _failing(calls, ValueError("limit is NaN"))
    cons = Consumer(bus, group, ["control"], max_deliveries=2, retry_base_ms=10)
    await cons.ensure_groups()
    ev = _halt(bus, correlation_id="sig-7")
    await bus.publish(ev)
    with caplog.at_level(logging.ERROR, logger=LOG):
        await cons.poll(handler)
        sim_clock.advance(0.01)
        await cons.poll(handler)
    records = [r for r in caplog.records if r.name == LOG and r.levelno == logging.ERROR]
    assert [r.getMessage() for r in records] == [
        f"group={group} event={ev.id} type=control corr=sig-7 handler failed (attempt {n}/2): ValueError: limit is NaN"
        for n in (1, 2)]
    assert all(r.exc_info and isinstance(r.exc_info[1], ValueError) for r in records)  # with the traceback
    assert len(calls) == 2 and cons.failed == 2 and cons.handled == 0
    assert _metric("quanticity_handler_errors_total", service=group) == 2
    assert len(await redis_client.xrange(keys.dlq(group))) == 1
    assert await _pending(redis_client, keys.stream("control"), group) == 0
    assert cons.next_retry_ms() is None and not cons.needs_poll  # given up: no retry left to spin on


async def test_a_failed_handling_does_not_count_as_handled_for_a_duplicate_in_the_same_batch(
        bus, redis_client, keys, group):
    """The same event twice in one batch; its first handling fails (a transient error) and, with one
    delivery allowed, is dead-lettered: the duplicate behind it is still handled, not acked as done."""
    calls: list[str] = []
    fail = [True]

    async def handler(ev: Event, tx: Tx) -> None:
        calls.append(ev.id)
        if fail and fail.pop():
            raise RuntimeError("transient")
        tx.pipe.hset(keys.hash("state"), ev.id, "1")

    cons = Consumer(bus, group, ["control"], max_deliveries=1)
    await cons.ensure_groups()
    ev = _halt(bus)
    await bus.publish(ev)
    await bus.publish(ev)
    assert await cons.poll(handler) == 2
    assert calls == [ev.id, ev.id]
    assert await redis_client.hget(keys.hash("state"), ev.id) == "1"
    assert len(await redis_client.xrange(keys.dlq(group))) == 1
    assert await _pending(redis_client, keys.stream("control"), group) == 0


# ---------------------------------------------------------------- commits cut in the middle
async def test_a_commit_that_keeps_failing_is_logged_as_such_and_dead_lettered_with_its_fields(
        cut, redis_client, keys, group, sim_clock, caplog):
    c, client = cut
    bus = Bus(client, keys, sim_clock, IdFactory(seed=11))

    async def handler(ev: Event, tx: Tx) -> None:
        tx.emit(AuditEvent, correlation_id=ev.correlation_id, actor="t", action="out")

    cons = Consumer(bus, group, ["control"], name="svc", max_deliveries=2, retry_base_ms=10)
    await cons.ensure_groups()
    ev = _halt(bus, correlation_id="sig-9")
    entry = await bus.publish(ev)
    c.arm(keep=2, times=2)  # both attempts' MULTI/EXEC cut; the dead-letter transaction goes through
    with caplog.at_level(logging.ERROR, logger=LOG):
        await cons.poll(handler)
        sim_clock.advance(0.01)
        await cons.poll(handler)
    error = "ConnectionError: injected: connection dropped in the middle of a pipeline"
    assert _messages(caplog, logging.ERROR) == [
        f"group={group} event={ev.id} type=control corr=sig-9 commit failed (attempt {n}/2): {error}" for n in (1, 2)]
    dlq = [f for _, f in await redis_client.xrange(keys.dlq(group))]
    assert len(dlq) == 1
    assert (dlq[0]["entry"], dlq[0]["error"], dlq[0]["tries"]) == (entry, error, "2")
    assert {k: v for k, v in dlq[0].items() if k.startswith("f_")} == {f"f_{k}": v for k, v in encode(ev).items()}
    assert await redis_client.xrange(keys.stream("audit")) == []
    assert await _pending(redis_client, keys.stream("control"), group) == 0


async def test_after_an_ambiguous_commit_the_rest_of_the_batch_is_taken_up_at_the_next_poll(
        cut, redis_client, keys, group, sim_clock):
    """A failed commit may have been applied, so the batch stops there; its other entries, read and
    pending, must not wait for the failed entry's backoff (20 s here) to be handled."""
    c, client = cut
    bus = Bus(client, keys, sim_clock, IdFactory(seed=12))
    calls: list[str] = []

    async def handler(ev: Event, tx: Tx) -> None:
        calls.append(ev.id)
        tx.emit(AuditEvent, correlation_id=ev.correlation_id, actor="t", action="out")

    cons = Consumer(bus, group, ["control"], name="svc", retry_base_ms=20_000)
    await cons.ensure_groups()
    e1, e2 = _halt(bus), _halt(bus)
    await bus.publish(e1)
    await bus.publish(e2)
    c.arm(keep=2)
    await cons.poll(handler)
    assert calls == [e1.id]
    assert cons.needs_poll  # though no retry is due for 20 s
    await cons.poll(handler)
    assert calls == [e1.id, e2.id]
    assert await _pending(redis_client, keys.stream("control"), group) == 1  # e1, waiting for its retry
    assert cons.next_retry_ms() == sim_clock.ms() + 20_000 and not cons.needs_poll


async def test_a_poll_that_failed_part_way_rereads_its_own_pending_entries_at_the_next_poll(
        cut, keys, group, sim_clock):
    """Entries of two streams are read, then Redis fails before any is handled: the next poll (no new
    entry, no retry due) takes them up, without a restart."""
    c, client = cut
    bus = Bus(client, keys, sim_clock, IdFactory(seed=13))
    seen: list[str] = []
    cons = Consumer(bus, group, ["control", "audit"], name="svc")
    assert await cons.poll(_recorder(seen)) == 0  # started: nothing yet
    c_ev, a_ev = _halt(bus), bus.make(AuditEvent, actor="t", action="x")
    await bus.publish(c_ev)
    await bus.publish(a_ev)
    c.fail_next("MGET")
    with pytest.raises(RedisConnectionError, match="injected"):
        await cons.poll(_recorder(seen))
    assert seen == []
    assert cons.needs_poll
    assert await cons.poll(_recorder(seen)) == 2
    assert seen == [c_ev.id, a_ev.id]
    for stream in ("control", "audit"):
        assert await _pending(client, keys.stream(stream), group) == 0
    assert not cons.needs_poll


# ---------------------------------------------------------------- recovery, paging, batch
async def test_a_group_created_after_events_were_published_still_reads_them(bus, keys, group):
    """A service started after its publishers (or a new group) reads the stream from its start."""
    ev = _halt(bus)
    await bus.publish(ev)
    seen: list[str] = []
    cons = Consumer(bus, group, ["control"])
    assert await cons.poll(_recorder(seen)) == 1
    assert seen == [ev.id]


async def test_every_read_is_bounded_by_batch_and_each_poll_reports_what_it_took(
        bus, redis_client, keys, group, monkeypatch):
    """The sim runner polls again while a poll returns ``batch`` entries: the count must be exact."""
    seen: list[str] = []
    cons = Consumer(bus, group, ["control"], batch=2)
    await cons.ensure_groups()
    evs = [_halt(bus) for _ in range(5)]
    for ev in evs:
        await bus.publish(ev)
    reads = _record(monkeypatch, redis_client, "xreadgroup")
    assert [await cons.poll(_recorder(seen)) for _ in range(4)] == [2, 2, 1, 0]
    assert seen == [e.id for e in evs]
    assert reads and all(kw.get("count") == 2 for _, kw, _ in reads)


async def test_the_default_batch_is_100(bus, keys, group):
    cons = Consumer(bus, group, ["control"])
    await cons.ensure_groups()
    for _ in range(101):
        await bus.publish(_halt(bus))
    handler = _recorder([])
    assert await cons.poll(handler) == 100
    assert await cons.poll(handler) == 1


async def test_a_restart_pages_through_its_own_pending_entries_on_every_stream_then_reads_new_ones(
        bus, redis_client, keys, group, monkeypatch):
    ckey, akey = keys.stream("control"), keys.stream("audit")
    await Consumer(bus, group, ["control", "audit"], name="svc").ensure_groups()
    evs = [_halt(bus) for _ in range(5)]
    for ev in evs:
        await bus.publish(ev)
    audit = bus.make(AuditEvent, actor="t", action="x")
    await bus.publish(audit)
    await redis_client.xreadgroup(group, "svc", {ckey: ">", akey: ">"})  # in hand when the process died
    new = _halt(bus)
    await bus.publish(new)
    seen: list[str] = []
    restarted = Consumer(bus, group, ["control", "audit"], name="svc", batch=2, claim_idle_ms=60_000)
    reads = _record(monkeypatch, redis_client, "xreadgroup")
    assert await restarted.poll(_recorder(seen)) == 7  # 5 + 1 recovered on two streams, 1 new
    assert seen == [e.id for e in [*evs, audit, new]]
    assert all(kw.get("count") == 2 for _, kw, _ in reads)
    assert max(len(entries) for _, _, reply in reads for _, entries in reply) == 2
    assert await _pending(redis_client, ckey, group) == 0 and await _pending(redis_client, akey, group) == 0


async def test_xautoclaim_pages_through_a_dead_consumers_entries_and_never_claims_one_twice(
        bus, redis_client, keys, group, monkeypatch):
    """Five entries in the hands of a dead consumer, claimed two at a time; the first fails again and
    stays pending (claimable at once with claim_idle_ms=0): the cursor goes on past it, once."""
    key = keys.stream("control")
    await Consumer(bus, group, ["control"], name="dead").ensure_groups()
    evs = [_halt(bus) for _ in range(5)]
    for ev in evs:
        await bus.publish(ev)
    await redis_client.xreadgroup(group, "dead", {key: ">"})
    calls: list[str] = []

    async def handler(ev: Event, tx: Tx) -> None:
        calls.append(ev.id)
        if ev.id == evs[0].id:
            raise RuntimeError("still failing")

    claims = _record(monkeypatch, redis_client, "xautoclaim", limit=10)
    heir = Consumer(bus, group, ["control"], name="heir", claim_idle_ms=0, batch=2)
    assert await heir.poll(handler) == 5
    assert calls == [e.id for e in evs]
    assert [len(reply[1]) for _, _, reply in claims] == [2, 2, 1]
    assert all(kw.get("count") == 2 for _, kw, _ in claims)
    pending = await redis_client.xpending_range(key, group, min="-", max="+", count=10)
    assert [(p["consumer"], p["times_delivered"]) for p in pending] == [("heir", 2)]


# ---------------------------------------------------------------- marker, counters, metrics
async def test_the_handled_marker_expires_after_processed_ttl_s(bus, redis_client, keys, group):
    async def handler(ev: Event, tx: Tx) -> None:
        tx.pipe.hset(keys.hash("state"), ev.id, "1")

    cons = Consumer(bus, group, ["control"], processed_ttl_s=3600)
    await cons.ensure_groups()
    ev = _halt(bus)
    await bus.publish(ev)
    await cons.poll(handler)
    assert 3000 < await redis_client.ttl(keys.done(group, ev.id)) <= 3600


async def test_each_handling_is_counted_once_in_the_counter_and_the_metrics(bus, keys, group):
    """One handling that committed outputs, one that wrote nothing: both count as handled, both
    observe a latency, which lies within the poll that ran them."""
    evs = [_halt(bus), _halt(bus)]

    async def handler(ev: Event, tx: Tx) -> None:
        if ev.id == evs[0].id:
            tx.pipe.hset(keys.hash("state"), ev.id, "1")

    cons = Consumer(bus, group, ["control"])
    await cons.ensure_groups()
    for ev in evs:
        await bus.publish(ev)
    started = time.perf_counter()
    assert await cons.poll(handler) == 2
    took = time.perf_counter() - started
    assert (cons.handled, cons.rejected, cons.failed) == (2, 0, 0)
    assert _metric("quanticity_events_handled_total", service=group) == 2
    assert _metric("quanticity_handle_seconds_count", service=group) == 2
    assert 0 <= _metric("quanticity_handle_seconds_sum", service=group) <= took


# ---------------------------------------------------------------- block_ms
def _new_entry_blocks(reads: list[tuple[tuple, dict, Any]]) -> list[int | None]:
    """The ``block`` of each read of new entries (own-pending re-reads never block)."""
    return [kw.get("block") for args, kw, _ in reads if ">" in args[2].values()]


async def test_block_ms_is_shortened_to_the_next_retry(bus, redis_client, keys, group, sim_clock, monkeypatch):
    cons = Consumer(bus, group, ["control"], max_deliveries=10, retry_base_ms=40, retry_max_ms=40)
    await cons.ensure_groups()
    await bus.publish(_halt(bus))
    handler = _failing([], RuntimeError("down"))
    reads = _record(monkeypatch, redis_client, "xreadgroup")
    await cons.poll(handler, block_ms=5000)  # the entry is there: the read returns at once; it fails
    await cons.poll(handler, block_ms=5000)  # its retry is due in 40 ms: wait no longer than that
    sim_clock.advance(0.025)
    await cons.poll(handler, block_ms=5000)
    await cons.poll(handler, block_ms=10)  # a shorter block than the retry's is kept
    await cons.poll(handler)  # no block asked: none
    assert _new_entry_blocks(reads) == [5000, 40, 15, 10, None]


async def test_block_ms_is_at_least_1_ms_when_a_retry_is_due_now(bus, redis_client, keys, group, monkeypatch):
    """BLOCK 0 would wait forever: a retry due at once (base 0) blocks 1 ms."""
    cons = Consumer(bus, group, ["control"], max_deliveries=10, retry_base_ms=0)
    await cons.ensure_groups()
    await bus.publish(_halt(bus))
    calls: list[str] = []
    handler = _failing(calls, RuntimeError("down"))
    reads = _record(monkeypatch, redis_client, "xreadgroup")
    await cons.poll(handler, block_ms=5000)
    await cons.poll(handler, block_ms=5000)
    assert len(calls) == 2
    assert _new_entry_blocks(reads) == [5000, 1]


# ---------------------------------------------------------------- NOGROUP
def _nogroup_logged(caplog, group: str, key: str) -> bool:
    """One ERROR naming the group and quoting Redis's NOGROUP error (its wording varies by version)."""
    [msg] = _messages(caplog, logging.ERROR)
    return (msg.startswith(f"group={group}: stream or consumer group missing, recreating (NOGROUP ")
            and f"'{key}'" in msg and msg.endswith(")"))


async def test_a_stream_deleted_under_a_running_consumer_is_recreated_logged_and_read_again(
        bus, redis_client, keys, group, caplog):
    key = keys.stream("control")
    seen: list[str] = []
    cons = Consumer(bus, group, ["control"])
    assert await cons.poll(_recorder(seen)) == 0
    await redis_client.delete(key)  # Redis restarted without persistence, or the key was deleted
    with caplog.at_level(logging.ERROR, logger=LOG):
        assert await cons.poll(_recorder(seen)) == 0
    assert _nogroup_logged(caplog, group, key)
    assert [g["name"] for g in await redis_client.xinfo_groups(key)] == [group]
    assert not cons.needs_poll  # nothing of it was in hand: no re-read owed
    ev = _halt(bus)
    await bus.publish(ev)
    assert await cons.poll(_recorder(seen)) == 1
    assert seen == [ev.id]


async def test_a_stream_vanishing_during_start_up_recovery_leaves_the_rest_for_the_next_poll(
        bus, redis_client, keys, group, caplog):
    """A restart recovers its own pending entries stream by stream; the first stream vanishes part-way
    (NOGROUP): the group is recreated and the next poll recovers the other stream's entries."""
    ckey, akey = keys.stream("control"), keys.stream("audit")
    await Consumer(bus, group, ["control", "audit"], name="svc").ensure_groups()
    c_ev, a_ev = _halt(bus), bus.make(AuditEvent, actor="t", action="x")
    await bus.publish(c_ev)
    await bus.publish(a_ev)
    await redis_client.xreadgroup(group, "svc", {ckey: ">", akey: ">"})  # in hand when the process died
    seen: list[str] = []

    async def handler(ev: Event, tx: Tx) -> None:
        seen.append(ev.id)
        if ev.id == c_ev.id:
            await redis_client.delete(ckey)  # the stream is lost while its recovery is under way

    restarted = Consumer(bus, group, ["control", "audit"], name="svc")
    with caplog.at_level(logging.ERROR, logger=LOG):
        await restarted.poll(handler)
    assert seen == [c_ev.id]
    assert _nogroup_logged(caplog, group, ckey)
    assert [g["name"] for g in await redis_client.xinfo_groups(ckey)] == [group]
    assert restarted.needs_poll
    assert await restarted.poll(handler) == 1
    assert seen == [c_ev.id, a_ev.id]
    assert await _pending(redis_client, akey, group) == 0
    assert not restarted.needs_poll


async def test_the_same_entry_id_on_two_streams_keeps_two_try_counts(bus, redis_client, keys, group, sim_clock):
    """Stream ids are unique only per stream: two streams written in one MULTI in the same millisecond
    both get ``<ms>-0``. Each entry is dead-lettered after ITS OWN max_deliveries failures."""
    a, b = keys.stream("control"), keys.stream("audit")
    ev_a, ev_b = _halt(bus), bus.make(AuditEvent, actor="t", action="x")
    pipe = redis_client.pipeline(transaction=True)
    pipe.xadd(a, encode(ev_a), id="1700000000000-0")
    pipe.xadd(b, encode(ev_b), id="1700000000000-0")
    await pipe.execute()
    attempts: dict[str, int] = {}

    async def failing(ev, tx):
        attempts[ev.id] = attempts.get(ev.id, 0) + 1
        raise RuntimeError("boom")

    cons = Consumer(bus, group, ["control", "audit"], max_deliveries=3, retry_base_ms=10, retry_max_ms=10)
    for _ in range(12):
        await cons.poll(failing)
        sim_clock.advance(0.02)
    assert attempts == {ev_a.id: 3, ev_b.id: 3}
    assert len(await redis_client.xrange(keys.dlq(group))) == 2
