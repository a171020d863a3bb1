"""What the bus and the ledger database hold, for the tests that run LedgerService on the real Redis."""

from __future__ import annotations

from sqlalchemy import select

from core.bus.bus import Bus
from core.bus.events import AlertEvent, Event, decode
from core.ledger import schema
from core.ledger.rows import LEDGERED_STREAMS
from core.ledger.store import make_engine
from tests.ledger.sample_events import TABLE_OF

GROUP = "ledger"  # LedgerService.name: its consumer group


async def pending(bus: Bus) -> int:
    """Entries of the ledger's streams read by its group and not acknowledged yet."""
    total = 0
    for stream in LEDGERED_STREAMS:
        key = bus.keys.stream(stream)
        if await bus.redis.exists(key):
            total += int((await bus.redis.xpending(key, GROUP))["pending"])
    return total


async def dead_letters(bus: Bus) -> tuple[int, list[str]]:
    """The group's dead-letter stream length and the DEAD_LETTER alerts published on the bus."""
    dlq = await bus.redis.xlen(bus.keys.dlq(GROUP))
    alerts = [decode(f) for _i, f in await bus.redis.xrange(bus.stream_key(AlertEvent))]
    return dlq, [a.message for a in alerts if isinstance(a, AlertEvent) and a.code == "DEAD_LETTER"]


def ledger_rows(url: str) -> dict[str, list[str]]:
    """table -> event ids in it, sorted (repeats would show twice)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {t.name: sorted(conn.execute(select(t.c.event_id)).scalars())
                    for t in (schema.events, *schema.TYPED)}
    finally:
        engine.dispose()


def expected_rows(events: list[Event]) -> dict[str, list[str]]:
    """What ``ledger_rows`` must give after ``events`` were each ledgered once."""
    out: dict[str, list[str]] = {t.name: [] for t in (schema.events, *schema.TYPED)}
    for ev in events:
        out["events"].append(ev.id)
        out[TABLE_OF[ev.type].name].append(ev.id)
    return {k: sorted(v) for k, v in out.items()}
