"""Safety line: a card is decided exactly once, whoever presses, however fast.

Two independent clients (two Redis connections, two Bus objects on the same keys, as two
bot processes or a press racing the expiry sweep would be) decide the SAME pending card at
the same moment, many rounds. Every round: exactly one claim wins, the card's stored state
and ``decided_by`` are the winner's, and exactly one outcome event reaches the approvals
stream. A claim done as read-then-write (HGET state, then HSET + XADD) lets both win.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from core.approvals.claims import close_card, open_card, pending_cards, read_card
from core.approvals.decide import decide_report, decide_signal
from core.bus.bus import Bus
from core.bus.events import ApprovalEvent, ReportEvent, decode
from core.bus.ids import IdFactory
from tests.telegram._util import make_signal

ROUNDS = 60


@pytest.fixture
async def two_buses(redis_url, keys, sim_clock):
    """Two clients with their own connection pools on the same key space."""
    a = aioredis.Redis.from_url(redis_url, decode_responses=True)
    b = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield (Bus(a, keys, sim_clock, IdFactory(seed=11), source="bot-a"),
           Bus(b, keys, sim_clock, IdFactory(seed=22), source="bot-b"))
    await a.aclose()
    await b.aclose()


async def _open_signal_card(bus: Bus, sid: str) -> None:
    sig = make_signal(bus.clock.now(), sid=sid)
    tx = bus.tx()
    open_card(tx, f"sig:{sid}", "signal", bus.clock.ms() + 300_000,
              {"signal": sig.model_dump(mode="json"), "correlation_id": f"corr-{sid}", "policy": "manual",
               "verdict": "caution"})
    await tx.commit()


async def _outcomes(bus: Bus, stream: str) -> list:
    return [decode(f) for _id, f in await bus.redis.xrange(bus.keys.stream(stream))]


async def test_two_clients_race_on_one_signal_card_one_winner_every_round(two_buses) -> None:
    a, b = two_buses
    decisions = [("approved", "rejected"), ("rejected", "approved"), ("approved", "approved"),
                 ("approved", "expired")]
    for i in range(ROUNDS):
        sid = f"SIGRACE{i:03d}"
        await _open_signal_card(a, sid)
        da, db = decisions[i % len(decisions)]
        # both clients press twice: a double tap on each side as well as the cross-client race
        results = await asyncio.gather(decide_signal(a, sid, da, "tg:1001"), decide_signal(b, sid, db, "tg:1002"),
                                       decide_signal(a, sid, da, "tg:1001"), decide_signal(b, sid, db, "tg:1002"))
        winners = [(r, who) for r, who in zip(results, ("tg:1001", "tg:1002", "tg:1001", "tg:1002"), strict=True)
                   if r.ok]
        assert len(winners) == 1, (i, results)
        (won, who) = winners[0]
        assert all(r.status in ("already", "late") for r in results if not r.ok), results
        card = await read_card(a.redis, a, f"sig:{sid}")
        assert card is not None and card["state"] == won.state and card["decided_by"] == who
        assert await a.redis.zscore(a.keys.zset("cards"), f"sig:{sid}") is None

    outcomes = [e for e in await _outcomes(a, "approvals") if isinstance(e, ApprovalEvent)]
    per_signal: dict[str, int] = {}
    for e in outcomes:
        per_signal[e.signal.id] = per_signal.get(e.signal.id, 0) + 1
    assert len(per_signal) == ROUNDS and set(per_signal.values()) == {1}, per_signal


async def test_two_clients_race_on_one_report_card_one_winner_every_round(two_buses) -> None:
    a, b = two_buses
    for i in range(ROUNDS // 2):
        rid = f"rep-race-{i}"
        tx = a.tx()
        open_card(tx, f"rep:{rid}", "report", a.clock.ms() + 3_600_000,
                  {"kind": "close", "path": "close.html", "summary": "s", "paths": {}, "correlation_id": rid})
        await tx.commit()
        results = await asyncio.gather(decide_report(a, rid, "approved", "tg:1001"),
                                       decide_report(b, rid, "rejected", "tg:1002"))
        assert sum(r.ok for r in results) == 1, (i, results)
    reports = [e for e in await _outcomes(a, "reports") if isinstance(e, ReportEvent)]
    assert sorted(e.report_id for e in reports) == sorted(f"rep-race-{i}" for i in range(ROUNDS // 2))


async def test_a_press_at_the_expiry_instant_is_late_and_the_sweep_wins(two_buses) -> None:
    """The card's life ends AT ``expires_ms``: a press at that exact millisecond is late (the rule is
    "expired at or after"), the expiry sweep at that instant decides it, and a later press finds it decided."""
    a, b = two_buses
    sid = "SIGEDGE001"
    sig = make_signal(a.clock.now(), sid=sid)
    tx = a.tx()
    open_card(tx, f"sig:{sid}", "signal", a.clock.ms(), {"signal": sig.model_dump(mode="json")})
    await tx.commit()
    late = await decide_signal(a, sid, "approved", "tg:1001")
    assert (late.status, late.state) == ("late", "pending")
    swept = await decide_signal(b, sid, "expired", "timeout")
    assert swept.ok and swept.state == "expired"
    again = await decide_signal(a, sid, "approved", "tg:1001")
    assert (again.status, again.state, again.decided_by) == ("already", "expired", "timeout")
    assert [e.decision for e in await _outcomes(a, "approvals") if isinstance(e, ApprovalEvent)] == ["expired"]

    sid2 = "SIGEDGE002"
    tx = a.tx()
    open_card(tx, f"sig:{sid2}", "signal", a.clock.ms() + 1, {"signal": make_signal(a.clock.now(), sid=sid2)
                                                               .model_dump(mode="json")})
    await tx.commit()
    assert (await decide_signal(a, sid2, "approved", "tg:1001")).ok  # one millisecond before: still in time


async def test_a_card_decided_at_creation_cannot_be_claimed(two_buses) -> None:
    """A card the auto policy decided (``close_card``) is stored decided, with who and when, kept for
    14 days, out of the expiry index; no press or sweep can decide it again."""
    a, b = two_buses
    sid = "SIGAUTO001"
    sig = make_signal(a.clock.now(), sid=sid)
    tx = a.tx()
    close_card(tx, f"sig:{sid}", "signal", "approved", "policy:auto", {"signal": sig.model_dump(mode="json")})
    await tx.commit()
    card = await read_card(a.redis, a, f"sig:{sid}")
    assert card is not None
    assert (card["state"], card["decided_by"], card["kind"], card["expires_ms"]) == (
        "approved", "policy:auto", "signal", 0)
    assert int(card["decided_ms"]) == a.clock.ms() and card["payload"]["signal"]["id"] == sid
    ttl = await a.redis.ttl(f"{a.keys.key('card', f'sig:{sid}')}")
    assert 14 * 86400 - 60 <= ttl <= 14 * 86400
    results = await asyncio.gather(decide_signal(a, sid, "rejected", "tg:1001"),
                                   decide_signal(b, sid, "expired", "timeout"))
    assert [(r.status, r.state, r.decided_by) for r in results] == [("already", "approved", "policy:auto")] * 2
    assert not [e for e in await _outcomes(a, "approvals") if isinstance(e, ApprovalEvent)]
    assert await pending_cards(a.redis, a) == []


async def test_every_pending_card_is_listed_for_the_expiry_sweep(two_buses) -> None:
    """The sweep decides what ``pending_cards`` lists: all of them, soonest expiry first, each with its
    stored kind and expiry; a decided card leaves the list."""
    a, _ = two_buses
    now = a.clock.ms()
    for i, ttl in enumerate((300_000, 60_000, 90_000, 5_000)):
        sid = f"SIGLIST{i}"
        tx = a.tx()
        open_card(tx, f"sig:{sid}", "signal", now + ttl, {"signal": make_signal(a.clock.now(), sid=sid)
                                                         .model_dump(mode="json")})
        await tx.commit()
    listed = await pending_cards(a.redis, a)
    assert listed == [("sig:SIGLIST3", now + 5_000), ("sig:SIGLIST1", now + 60_000), ("sig:SIGLIST2", now + 90_000),
                      ("sig:SIGLIST0", now + 300_000)]
    card = await read_card(a.redis, a, "sig:SIGLIST2")
    assert card is not None and (card["kind"], card["state"], card["expires_ms"]) == ("signal", "pending", now + 90_000)
    assert (await decide_signal(a, "SIGLIST1", "rejected", "tg:1001")).ok
    assert [item for item, _ in await pending_cards(a.redis, a)] == ["sig:SIGLIST3", "sig:SIGLIST2", "sig:SIGLIST0"]
