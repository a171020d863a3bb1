"""Trades closed on today's New York day, read from the ``positions`` stream.

``/status`` (and ``main.py status``) show the day's realized P&L by the one rule of
``core.pnl`` (the ledger's): the realized P&L of the trades that closed today. This reads the
day's position events newest first, in pages, and stops once a whole page is older than the
day, so the cost is the day's events, not the history. Malformed entries are counted and
skipped.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from core.bus.events import BadEvent, PositionEvent, decode
from core.bus.keys import Keys
from core.pnl import NY, ClosedTrade, closed_trades, day_start_ms
from core.runtime import metrics

PAGE = 500
SLACK_MS = 5 * 60 * 1000  # read this far before the day's start (events published a little out of order)


async def day_position_events(redis: aioredis.Redis, keys: Keys, now: datetime) -> list[PositionEvent]:
    """Position events of ``now``'s New York day up to ``now``, oldest first."""
    day = now.astimezone(NY).date()
    lo, hi = day_start_ms(day), int(now.timestamp() * 1000)
    key, upper, out = keys.stream(PositionEvent.STREAM), "+", []
    while True:
        rows = await redis.xrevrange(key, max=upper, min="-", count=PAGE)
        oldest = None
        for _eid, fields in rows:
            try:
                ev = decode(fields)
            except BadEvent:
                metrics.REJECTED.labels("state", "bad_event").inc()
                continue
            oldest = ev.ts if oldest is None else min(oldest, ev.ts)
            if isinstance(ev, PositionEvent) and lo <= ev.ts <= hi:
                out.append(ev)
        if len(rows) < PAGE or (oldest is not None and oldest < lo - SLACK_MS):
            break
        last = rows[-1][0]
        upper = "(" + (last.decode() if isinstance(last, bytes) else str(last))
    out.reverse()  # publish order; a stable sort by time keeps it for events of the same instant
    out.sort(key=lambda e: e.ts)
    return out


async def closed_today(redis: aioredis.Redis, keys: Keys, now: datetime) -> list[ClosedTrade]:
    """The trades that closed on ``now``'s New York day (``core.pnl.closed_trades``)."""
    return closed_trades(await day_position_events(redis, keys, now))
