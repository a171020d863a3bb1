"""Trades closed on today's New York day, read from the ``positions`` stream.

``/status`` (and ``main.py status``) show the day's realized P&L by the one rule of
``core.pnl`` (the ledger's): the realized P&L of the trades that closed today. This reads the
day's position events newest first, in pages (``core.bus.stream_scan.scan``), and stops once a
whole page is older than the day, so the cost is the day's events, not the history. Malformed
entries are counted and skipped.
"""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from core.bus.events import PositionEvent
from core.bus.keys import Keys
from core.bus.stream_scan import scan
from core.pnl import NY, ClosedTrade, closed_trades, day_start_ms


async def day_position_events(redis: aioredis.Redis, keys: Keys, now: datetime) -> list[PositionEvent]:
    """Position events of ``now``'s New York day up to ``now``, oldest first."""
    day = now.astimezone(NY).date()
    events = await scan(redis, keys.stream(PositionEvent.STREAM), day_start_ms(day), int(now.timestamp() * 1000),
                        (PositionEvent,), reader="state")
    events.sort(key=lambda e: e.ts)  # publish order; a stable sort by time keeps it within an instant
    return events  # type: ignore[return-value]


async def closed_today(redis: aioredis.Redis, keys: Keys, now: datetime) -> list[ClosedTrade]:
    """The trades that closed on ``now``'s New York day (``core.pnl.closed_trades``)."""
    return closed_trades(await day_position_events(redis, keys, now))
