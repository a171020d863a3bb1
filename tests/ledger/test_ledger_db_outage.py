"""The ledger's PostgreSQL down for a minute: LedgerService on the real Redis bus writes through a TCP
proxy that refuses new connections and cuts the open ones for 60 s of simulated time, while trades
keep being published. The consumer retries with backoff on the bus clock (advanced here, then
polled); no event is dead-lettered however many attempts fail, and once the proxy passes again
every event is written exactly once."""

from __future__ import annotations

import random

from sqlalchemy.engine import make_url

from core.bus.bus import Bus
from core.bus.consumer import Consumer
from core.bus.events import AlertEvent, decode
from core.ledger.rows import LEDGERED_STREAMS
from core.ledger.service import LedgerService
from core.ledger.store import LedgerStore
from core.runtime.consumers import consumer_for
from tests.fakes.tcp_proxy import TcpProxy
from tests.helpers import make_context
from tests.ledger.bus_ledger import GROUP, dead_letters, expected_rows, ledger_rows, pending
from tests.ledger.sample_events import trade_day

OUTAGE_MS = 60_000


async def _most_tries(consumer: Consumer, bus: Bus) -> int:
    """The most failed attempts this consumer has made on one entry still pending."""
    most = 0
    for stream in LEDGERED_STREAMS:
        key = bus.keys.stream(stream)
        for p in await bus.redis.xpending_range(key, GROUP, min="-", max="+", count=1000):
            most = max(most, consumer.retries.tries(key, p["message_id"]))
    return most


async def test_a_minute_without_the_database_loses_and_dead_letters_nothing(pg_url, bus, sim_clock):
    rng = random.Random(5)
    events = trade_day(6)
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    host, port = proxy.start()
    ctx = make_context(bus)
    store = LedgerStore(url.set(host=host, port=port).render_as_string(hide_password=False),
                        ctx.settings.mode.value, connect_timeout_s=1)
    svc = LedgerService(ctx, store=store)
    consumer = consumer_for(svc)
    assert consumer is not None and consumer.max_deliveries == 5
    try:
        await svc.start()
        for ev in events[:20]:  # the ledger is up: written at once
            await bus.publish(ev)
        await consumer.poll(svc.handle)
        assert store.written == 20 and proxy.forwarded >= 1

        assert proxy.down() >= 1  # the pooled connection is cut under the store
        down_at, published = sim_clock.ms(), 20
        while sim_clock.ms() - down_at < OUTAGE_MS:
            for ev in events[published:published + rng.randint(0, 3)]:
                await bus.publish(ev)
                published += 1
            await consumer.poll(svc.handle)
            assert await dead_letters(bus) == (0, [])
            sim_clock.advance(rng.uniform(0.5, 4.0))
        assert store.written == 20 and published > 40  # nothing got through; the bus kept them
        most = await _most_tries(consumer, bus)
        assert most > consumer.max_deliveries, most  # enough failures to have dead-lettered them otherwise
        assert proxy.refused > most  # each attempt really went to the (refusing) server

        proxy.pass_through()
        for ev in events[published:]:
            await bus.publish(ev)
        for _ in range(100):  # due retries (backoff capped at 30 s) and the rest, until drained
            await consumer.poll(svc.handle)
            nxt = consumer.next_retry_ms()
            if nxt is None and await pending(bus) == 0:
                break
            sim_clock.set_ms(max(sim_clock.ms() + 1, nxt or 0))
        else:
            raise AssertionError("the ledger did not catch up after the outage")
    finally:
        await svc.stop()
        proxy.stop()
    # the admin heard of it once (after 30 s) and of the recovery once; both alerts are ledgered too
    alerts = [decode(f) for _i, f in await bus.redis.xrange(bus.keys.stream("alerts"))]
    told = [a for a in alerts if isinstance(a, AlertEvent) and a.code == "LEDGER_UNAVAILABLE"]
    assert [(a.severity, a.state) for a in told] == [("WARNING", "raised"), ("WARNING", "cleared")]
    assert ledger_rows(pg_url) == expected_rows([*events, *told])
    assert store.written == len(events) + len(told)
    assert await dead_letters(bus) == (0, [])


async def test_the_admin_is_told_once_and_only_after_thirty_seconds(bus, sim_clock):
    """A blip is only logged; an outage past OUTAGE_ALERT_S raises one LEDGER_UNAVAILABLE, not one
    per failed attempt."""
    import socket

    from core.ledger.service import OUTAGE_ALERT_S

    with socket.socket() as s:  # a port nothing listens on: every connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = make_context(bus)
    store = LedgerStore(f"postgresql+psycopg://quanticity@127.0.0.1:{port}/none", ctx.settings.mode.value,
                        connect_timeout_s=1)
    svc = LedgerService(ctx, store=store)
    consumer = consumer_for(svc)
    assert consumer is not None

    async def told() -> list[str]:
        rows = await bus.redis.xrange(bus.keys.stream("alerts"))
        return [a.state for a in (decode(f) for _i, f in rows)
                if isinstance(a, AlertEvent) and a.code == "LEDGER_UNAVAILABLE"]

    await svc.start()
    for ev in trade_day(1)[:3]:
        await bus.publish(ev)
    start = sim_clock.ms()
    while sim_clock.ms() - start < (OUTAGE_ALERT_S - 1) * 1000:
        await consumer.poll(svc.handle)
        sim_clock.advance(1.0)
    assert await told() == [] and store.written == 0
    while sim_clock.ms() - start < (OUTAGE_ALERT_S + 60) * 1000:
        await consumer.poll(svc.handle)
        sim_clock.advance(1.0)
    assert await told() == ["raised"]
    await svc.stop()
