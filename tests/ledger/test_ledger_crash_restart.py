"""Kill and restart: LedgerService on the real Redis bus (its consumer group via ``consumer_for``)
dies at seeded random points while trades keep being published: before a database write, after the
write but before the bus acknowledged it, and at the XACK itself. A new service and consumer (the
same consumer name, as a restarted process has) take over each time until the bus is drained. The
ledger then holds every event exactly once: none missing, none twice, nothing dead-lettered."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from core.bus.events import Event
from core.ledger.service import LedgerService
from core.ledger.store import LedgerStore
from core.runtime.consumers import consumer_for
from tests.helpers import make_context
from tests.ledger.bus_ledger import dead_letters, expected_rows, ledger_rows, pending
from tests.ledger.sample_events import trade_day

MAX_LIVES = 300
P_BEFORE_WRITE, P_AFTER_WRITE, P_AT_XACK = 0.08, 0.08, 0.15


class Crash(BaseException):
    """The process dies here (a BaseException, as a kill is: no handler of the consumer catches it)."""


@pytest.mark.parametrize("seed", [1, 2])
async def test_crashes_anywhere_leave_every_event_ledgered_exactly_once(ledger_url, bus, redis_client, sim_clock,
                                                                        monkeypatch, seed):
    rng = random.Random(seed)
    events = trade_day(8)  # 112 events of every ledgered type
    ctx = make_context(bus)
    crashes: Counter[str] = Counter()
    failed = 0

    real_xack = redis_client.xack

    async def xack(*args, **kwargs):  # the consumer acks through the shared client: die there too
        if rng.random() < P_AT_XACK:
            crashes["at xack"] += 1
            raise Crash
        return await real_xack(*args, **kwargs)

    monkeypatch.setattr(redis_client, "xack", xack)
    published = 0

    async def publish_some(most: int) -> None:
        nonlocal published
        for ev in events[published:published + rng.randint(0, most)]:
            await bus.publish(ev)
            published += 1

    for _life in range(MAX_LIVES):
        store = LedgerStore(ledger_url, ctx.settings.mode.value)
        real_write = store.write

        def write(evs: Sequence[Event], real_write: Callable[[Sequence[Event]], int] = real_write) -> int:
            draw = rng.random()
            if draw < P_BEFORE_WRITE:
                crashes["before write"] += 1
                raise Crash
            n = real_write(evs)
            if draw < P_BEFORE_WRITE + P_AFTER_WRITE:
                crashes["after write"] += 1
                raise Crash
            return n

        store.write = write
        svc = LedgerService(ctx, store=store)
        consumer = consumer_for(svc)
        assert consumer is not None
        await svc.start()
        try:
            while True:
                await publish_some(6)
                handled = await consumer.poll(svc.handle)
                nxt = consumer.next_retry_ms()
                if nxt is not None:  # a failed handling (none expected) waits on the bus clock
                    sim_clock.set_ms(max(sim_clock.ms(), nxt))
                if handled == 0 and published == len(events) and nxt is None and await pending(bus) == 0:
                    break
        except Crash:
            continue  # this process is dead; the next life starts from what the bus and the database hold
        finally:
            failed += consumer.failed
            store.close()  # a dead process's connections go with it
        break
    else:
        pytest.fail(f"not drained after {MAX_LIVES} lives")

    assert min(crashes["before write"], crashes["after write"], crashes["at xack"]) >= 1, crashes
    assert ledger_rows(ledger_url) == expected_rows(events)  # every event once, in its table
    assert failed == 0  # no handling failed (a repeated write is a no-op, not an error)
    assert await dead_letters(bus) == (0, [])
