"""ApprovalService.next_due keeps the head of the card expiry index in memory (core/runtime/due_head.py):
one ZRANGE for any number of instants, a new card is seen at once, a card removed by someone else
costs one harmless extra timer run, and an expired card is still expired on time."""

from __future__ import annotations

from datetime import timedelta

from core.approvals.decide import decide_signal
from core.approvals.service import ApprovalService
from core.bus.events import ApprovalEvent, decode
from tests.helpers import make_context
from tests.redis_count import count_redis
from tests.telegram._util import make_signal, verdict


async def _verdict(svc: ApprovalService, bus, sid: str) -> int:
    tx = bus.tx()
    await svc.handle(verdict(bus, make_signal(bus.clock.now(), sid=sid)), tx)
    await tx.commit()
    return bus.clock.ms()


async def _approvals(bus) -> list[ApprovalEvent]:
    return [decode(f) for _i, f in await bus.redis.xrange(bus.keys.stream("approvals"))]  # type: ignore[misc]


async def test_one_read_for_many_instants_and_new_cards_seen_without_reading(bus, sim_clock) -> None:
    svc = ApprovalService(make_context(bus))
    with count_redis() as seen:
        for i in range(100):  # the runner asks at every instant (here within the head's 60 s max age)
            assert await svc.next_due(sim_clock.now() + timedelta(milliseconds=500 * i)) is None
    assert seen.commands == {"zrange": 1}  # before: 100
    ttl = svc.settings.strategies["gamma_0dte"].card_ttl_s
    t0 = await _verdict(svc, bus, "SIG1")      # pending card (manual policy): expiry = now + ttl
    sim_clock.advance(10)
    await _verdict(svc, bus, "SIG2")
    with count_redis() as seen:
        due = await svc.next_due(sim_clock.now())
    assert seen.total == 0
    assert due is not None and int(due.timestamp() * 1000) == t0 + ttl * 1000  # the earlier card
    assert int(due.timestamp() * 1000) == int((await bus.redis.zrange(bus.keys.zset("cards"), 0, 0,
                                                                      withscores=True))[0][1])


async def test_removed_by_another_writer_is_one_extra_check_then_the_real_head(bus, sim_clock) -> None:
    svc = ApprovalService(make_context(bus))
    ttl_ms = svc.settings.strategies["gamma_0dte"].card_ttl_s * 1000
    t1 = await _verdict(svc, bus, "SIG1")
    sim_clock.set_ms(t1 + 30_000)
    t2 = await _verdict(svc, bus, "SIG2")
    assert int((await svc.next_due(sim_clock.now())).timestamp() * 1000) == t1 + ttl_ms
    assert (await decide_signal(bus, "SIG1", "approved", "admin")).ok   # Telegram: removes SIG1's card
    stale = await svc.next_due(sim_clock.now())
    assert int(stale.timestamp() * 1000) == t1 + ttl_ms   # too early: harmless
    sim_clock.set_ms(t1 + ttl_ms)
    await svc.on_timer(sim_clock.now())                  # the extra check: nothing expires
    assert [a.decision for a in await _approvals(bus)] == ["pending", "pending", "approved"]
    assert int((await svc.next_due(sim_clock.now())).timestamp() * 1000) == t2 + ttl_ms  # read again
    sim_clock.set_ms(t2 + ttl_ms)
    await svc.on_timer(sim_clock.now())
    assert [a.decision for a in await _approvals(bus)][-1] == "expired"
    assert await svc.next_due(sim_clock.now()) is None


async def test_an_uncommitted_card_costs_at_most_one_extra_check(bus, sim_clock) -> None:
    svc = ApprovalService(make_context(bus))
    assert await svc.next_due(sim_clock.now()) is None
    tx = bus.tx()
    await svc.handle(verdict(bus, make_signal(sim_clock.now(), sid="SIG9")), tx)  # never committed
    early = await svc.next_due(sim_clock.now())  # noted when written: at worst too early
    assert early is not None
    sim_clock.set(early)
    await svc.on_timer(sim_clock.now())  # nothing there to expire
    assert await _approvals(bus) == [] and await svc.next_due(sim_clock.now()) is None
