"""``ledger rebuild``: write what Redis still holds of the ledgered streams into the ledger.

The bus keeps a window of every stream (``ledger.retention_days``); the ledger keeps everything.
When the ledger missed events (its service was disabled or down past the bus's patience, or
the database was restored from an older backup), this re-reads every ledgered stream of the
mode's namespace from its first entry with paged ``XRANGE`` and writes each event through the
same idempotent ``LedgerStore.write`` (``ON CONFLICT DO NOTHING`` on the event id): rows
already there are untouched, so running it twice writes nothing the second time.

Decisions:
- Plain ``XRANGE``, no consumer group: rebuilding reads and acknowledges nothing, so it cannot
  disturb the ledger service or any other group running at the same time.
- One database transaction per page (``PAGE`` entries): a crash mid-way leaves whole pages, and
  the next run completes the rest.
- A malformed entry (not a valid event: ``decode`` refuses it) is counted and logged with its
  stream and entry id, then skipped; never fatal. So is an event the database refuses on its own
  (its page is retried event by event to find it). Events of types the ledger does not keep
  (order requests on shared streams, say) are counted as ``other``.
- A database that cannot be reached stops the run (``LedgerUnavailable``): nothing is skipped
  silently; re-running resumes for free.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.bus.events import BadEvent, Event, decode
from core.bus.keys import Keys
from core.ledger import schema
from core.ledger.rows import LEDGERED_STREAMS, LEDGERED_TYPES
from core.ledger.store import LedgerStore, LedgerUnavailable

log = logging.getLogger("quanticity.ledger.rebuild")
PAGE = 500


@dataclass
class RebuildReport:
    read: int = 0  # stream entries read
    ledgered: int = 0  # of them, events of a ledgered type
    written: int = 0  # new events written (each is one row in ``events`` plus its typed row)
    malformed: int = 0  # skipped: not a valid event, or refused by the database
    other: int = 0  # valid events of a type the ledger does not keep
    per_stream: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "ledgered": self.ledgered, "written": self.written,
                "malformed": self.malformed, "other": self.other, "streams": self.per_stream}


def _missing(store: LedgerStore, batch: list[tuple[str, Event]]) -> list[tuple[str, Event]]:
    """The events of ``batch`` the ledger does not hold yet (by event id)."""
    assert store.engine is not None
    ids = [ev.id for _, ev in batch]
    with store.engine.connect() as conn:
        have = set(conn.execute(select(schema.events.c.event_id).where(schema.events.c.event_id.in_(ids))).scalars())
    return [(entry_id, ev) for entry_id, ev in batch if ev.id not in have]


def _write(store: LedgerStore, batch: list[tuple[str, Event]], stream: str) -> tuple[int, int]:
    """Write the events of a page the ledger lacks; returns (new events, refused events). "New" is
    counted from the ids missing before the write (the driver's rowcount of an executemany is not
    reliable on PostgreSQL); the write itself stays ``ON CONFLICT DO NOTHING``, so an event the
    service writes meanwhile is neither doubled nor lost. A page the database refuses as a whole
    (a constraint, a value it cannot store) is written event by event to skip only the culprit."""
    missing = _missing(store, batch)
    if not missing:
        return 0, 0
    try:
        store.write([ev for _, ev in missing])
        return len(missing), 0
    except LedgerUnavailable:
        raise
    except SQLAlchemyError:
        pass
    new = refused = 0
    for entry_id, ev in missing:
        try:
            store.write([ev])
            new += 1
        except LedgerUnavailable:
            raise
        except SQLAlchemyError as exc:
            refused += 1
            log.warning("rebuild: %s %s (%s %s) refused by the ledger database: %s", stream, entry_id, ev.type,
                        ev.id, type(getattr(exc, "orig", None) or exc).__name__)
    return new, refused


async def rebuild(redis: aioredis.Redis, keys: Keys, store: LedgerStore, *, page: int | None = None,
                  streams: tuple[str, ...] = LEDGERED_STREAMS) -> RebuildReport:
    """Re-read ``streams`` (default: every ledgered one) under ``keys`` and ledger them; ``store``
    must be open (the caller checked its mode). Raises ``LedgerUnavailable`` if the database goes."""
    page = page or PAGE
    report = RebuildReport()
    for name in streams:
        key = keys.stream(name)
        counts = {"read": 0, "written": 0, "malformed": 0}
        lower = "-"
        while True:
            rows = await redis.xrange(key, min=lower, max="+", count=page)
            if not rows:
                break
            batch: list[tuple[str, Event]] = []
            for entry_id, fields in rows:
                counts["read"] += 1
                try:
                    ev = decode(fields)
                except BadEvent as exc:
                    counts["malformed"] += 1
                    log.warning("rebuild: %s %s skipped: %s", name, entry_id, exc)
                    continue
                if ev.type not in LEDGERED_TYPES:
                    report.other += 1
                    continue
                batch.append((entry_id, ev))
            report.ledgered += len(batch)
            new, refused = await asyncio.to_thread(_write, store, batch, name) if batch else (0, 0)
            counts["written"] += new
            counts["malformed"] += refused
            lower = "(" + rows[-1][0]
            if len(rows) < page:
                break
        report.read += counts["read"]
        report.written += counts["written"]
        report.malformed += counts["malformed"]
        report.per_stream[name] = counts
    if report.malformed:
        log.warning("rebuild: %d malformed entries skipped (see above)", report.malformed)
    return report
