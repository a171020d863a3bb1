"""Reading a bus stream backwards by the events' own time: one newest-first page loop.

Stream entry ids are the Redis server's time, not the simulated time of a demo, so readers filter
on each event's ``ts`` and stop once a whole page is older than what they want. The reports
(``reports.streams``) and ``/status``'s trades closed today (``core.state.closed_today``) read
through here. Malformed entries are counted (``REJECTED{reader,"bad_event"}``) and skipped.
"""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis

from core.bus.events import BadEvent, Event, decode
from core.runtime.metrics import REJECTED

PAGE = 1000                      # entries per XREVRANGE page
SLACK_MS = 5 * 60 * 1000         # keep reading this far past the window start (late / reordered events)


def entry_id(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def walk_back(redis: aioredis.Redis, key: str, visit: Callable[[list[Event], int], bool],
                    upper: str = "+", max_entries: int | None = None, reader: str = "reports") -> None:
    """Stream ``key`` newest-first, one XREVRANGE page at a time: ``visit(events, page_newest)``
    gets each page's decoded events (newest first) and the newest ``ts`` among them (-1: none) and
    returns True when it has read enough. Stops too at the stream's start or once ``max_entries``
    entries are read. Malformed entries are counted under ``reader`` and skipped. ``upper`` bounds
    the newest entry id read."""
    scanned = 0
    while max_entries is None or scanned < max_entries:
        rows = await redis.xrevrange(key, max=upper, min="-", count=PAGE)
        if not rows:
            break
        scanned += len(rows)
        events: list[Event] = []
        page_newest = -1
        for _eid, fields in rows:
            if fields is None:
                continue
            try:
                ev = decode(fields)
            except BadEvent:
                REJECTED.labels(reader, "bad_event").inc()
                continue
            page_newest = max(page_newest, ev.ts)
            events.append(ev)
        if visit(events, page_newest) or len(rows) < PAGE:
            break
        upper = "(" + entry_id(rows[-1][0])


async def scan(redis: aioredis.Redis, key: str, since_ms: int, until_ms: int,
               types: tuple[type[Event], ...] | None = None, upper: str = "+",
               reader: str = "reports") -> list[Event]:
    """Events of stream ``key`` with ``since_ms <= ts <= until_ms``, in stream (publish) order.

    Reads newest-first in pages and stops once a whole page is older than ``since_ms`` minus a
    slack. ``upper`` bounds the newest entry id read."""
    out: list[Event] = []
    floor = since_ms - SLACK_MS

    def visit(events: list[Event], page_newest: int) -> bool:
        for ev in events:
            if types is not None and not isinstance(ev, types):
                continue
            if since_ms <= ev.ts <= until_ms:
                out.append(ev)
        return 0 <= page_newest < floor

    await walk_back(redis, key, visit, upper, reader=reader)
    out.reverse()
    return out
