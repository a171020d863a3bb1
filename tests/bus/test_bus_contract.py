"""The Bus / Tx contract on the real Redis: what a publish writes, caps and announces, and what a
transaction runs after its commit. Each test pins one property the runners and services rely on
(written against the survivors of scripts/mutation.sh bus)."""

from __future__ import annotations

from core.bus.bus import Bus
from core.bus.events import AlertEvent, decode
from core.bus.ids import IdFactory


def alert(bus: Bus, **kw) -> AlertEvent:
    return bus.make(AlertEvent, code="X", severity="INFO", state="raised", message="m", **kw)


async def test_make_stamps_the_buses_source_unless_one_is_given(redis_client, keys, sim_clock):
    bus = Bus(redis_client, keys, sim_clock, IdFactory(seed=1), source="execution")
    assert alert(bus).source == "execution"
    assert alert(bus, source="cli").source == "cli"
    assert Bus(redis_client, keys, sim_clock).make(AlertEvent, code="X", severity="INFO", state="raised",
                                                   message="m").source == ""


async def test_a_bus_without_an_id_factory_still_makes_unique_ids(redis_client, keys, sim_clock):
    bus = Bus(redis_client, keys, sim_clock)
    ids = {bus.new_id() for _ in range(50)}
    assert len(ids) == 50 and all(ids)


async def test_streams_are_capped_by_length_on_publish_and_in_a_transaction(redis_client, keys, sim_clock):
    """The cap keeps Redis memory bounded. It is approximate (XADD MAXLEN ~: whole radix-tree nodes
    are dropped, far cheaper than exact trimming), so a stream may exceed it by under one node
    (100 entries by default) but never grows without bound."""
    bus = Bus(redis_client, keys, sim_clock, IdFactory(seed=1), maxlen=50)
    for _ in range(400):
        await bus.publish(alert(bus))
    key = bus.stream_key(AlertEvent)
    n = await redis_client.xlen(key)
    assert 50 <= n < 400 - 100, n
    for _ in range(4):
        tx = bus.tx()
        for _ in range(100):
            tx.emit(AlertEvent, code="X", severity="INFO", state="raised", message="m")
        await tx.commit()
    n = await redis_client.xlen(key)
    assert 50 <= n < 400 - 100, n


async def test_listeners_hear_which_streams_got_entries(bus):
    heard: list[set[str]] = []
    bus.on_publish(heard.append)
    await bus.publish(alert(bus))
    tx = bus.tx()
    ev = tx.emit(AlertEvent, code="Y", severity="INFO", state="raised", message="m")
    assert tx.events == [ev]
    await tx.commit()
    empty = bus.tx()
    empty.pipe.set(bus.keys.key("t", "x"), "1")
    await empty.commit()  # a state write only: nothing to announce
    assert heard == [{bus.stream_key(AlertEvent)}, {bus.stream_key(AlertEvent)}]
    rows = await bus.redis.xrange(bus.stream_key(AlertEvent))
    assert [decode(f).id for _i, f in rows][-1] == ev.id


async def test_after_commit_runs_plain_and_async_callbacks_once(bus):
    ran: list[str] = []

    async def later() -> None:
        ran.append("async")

    tx = bus.tx()
    tx.emit(AlertEvent, code="Z", severity="INFO", state="raised", message="m")
    tx.after_commit.append(lambda: ran.append("sync"))
    tx.after_commit.append(later)
    tx.scratch["undo"] = 1  # the handler's own notes ride along
    await tx.commit()
    assert ran == ["sync", "async"] and tx.after_commit == [] and tx.scratch == {"undo": 1}
    await tx.run_after_commit()
    assert ran == ["sync", "async"]
