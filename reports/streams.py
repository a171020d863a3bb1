"""Reading the bus streams for a report: events in a time window, newest analytics per symbol.

Streams are read newest-first with XREVRANGE and filtered on the events' own ``ts`` (stream entry
ids are the Redis server's time, which is not the simulated time of a demo), stopping once a
whole page is older than the window. Both readers (:func:`scan`, :func:`latest_analytics`) walk the
stream with the one page loop ``walk_back`` of :mod:`core.bus.stream_scan`. The two high-volume streams (quotes, flow: one entry
per symbol per tick) go through :class:`StreamTail` readers that a long-lived service keeps
(:class:`Tails`): after the first read they only fetch entries newer than the last one seen, so
a day's three reports read each quote once. Nothing here writes to Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis

from core.bus.events import AnalyticsEvent, BadEvent, Event, FlowEvent, QuoteEvent, decode
from core.bus.keys import Keys
from core.bus.stream_scan import PAGE, SLACK_MS, entry_id, scan, walk_back
from core.runtime.metrics import REJECTED
from reports.values import finite

ANALYTICS_SCAN_MAX = 20_000      # entries scanned back for the latest snapshot per symbol


class StreamTail:
    """Incremental reader of one high-volume stream (quotes, flow), keeping one small reduced
    record per entry. The first read scans newest-first down to the window (like :func:`scan`);
    later reads only fetch entries published after the last one seen (XRANGE from its id), so a
    day's three reports read each quote once. Records older than the window are dropped. The
    result equals a fresh scan of the same stream."""

    def __init__(self, cls: type[Event], reduce: Callable[[Any], Any]) -> None:
        self.cls = cls
        self.reduce = reduce
        self.last_id: str | None = None
        self.floor_ms: int | None = None  # records are complete from here on
        self.records: list[tuple[int, Any]] = []  # (ts, reduced), stream order

    def _reduced(self, fields: dict[Any, Any]) -> tuple[int, Any] | None:
        try:
            ev = decode(fields)
        except BadEvent:
            REJECTED.labels("reports", "bad_event").inc()
            return None
        if not isinstance(ev, self.cls):
            return None
        rec = self.reduce(ev)
        return None if rec is None else (ev.ts, rec)

    async def _backfill(self, redis: aioredis.Redis, key: str, since_ms: int) -> None:
        """Newest-first down to the window: the records, and the id the forward reads go on from."""
        self.records, self.last_id = [], None
        newest = await redis.xrevrange(key, max="+", min="-", count=1)
        if not newest:
            return
        self.last_id = entry_id(newest[0][0])
        events = await scan(redis, key, since_ms, 2**62, (self.cls,), upper=self.last_id)
        self.records = [(ev.ts, rec) for ev in events if (rec := self.reduce(ev)) is not None]

    async def read(self, redis: aioredis.Redis, keys: Keys, since_ms: int, until_ms: int) -> list[tuple[int, Any]]:
        """Reduced records with ``since_ms <= ts <= until_ms``, in stream order."""
        key = keys.stream(self.cls.STREAM)
        if self.last_id is None or self.floor_ms is None or since_ms < self.floor_ms:
            await self._backfill(redis, key, since_ms)
        self.floor_ms = since_ms
        while self.last_id is not None:
            rows = await redis.xrange(key, min="(" + self.last_id, max="+", count=PAGE)
            if not rows:
                break
            for _eid, fields in rows:
                rec = self._reduced(fields) if fields is not None else None
                if rec is not None:
                    self.records.append(rec)
            self.last_id = entry_id(rows[-1][0])
            if len(rows) < PAGE:
                break
        keep_from = since_ms - SLACK_MS
        if self.records and self.records[0][0] < keep_from:
            self.records = [r for r in self.records if r[0] >= keep_from]
        return [r for r in self.records if since_ms <= r[0] <= until_ms]


def reduce_quote(q: QuoteEvent) -> tuple[str, float] | None:
    p = _quote_price(q)
    return None if p is None else (q.symbol, p)


def _quote_price(q: QuoteEvent) -> float | None:
    last = finite(q.last)
    if last is not None and last > 0:
        return last
    bid, ask = finite(q.bid), finite(q.ask)
    if bid is not None and ask is not None and 0 < bid <= ask:
        return (bid + ask) / 2.0
    return None


FLOW_FIELDS = ("buy_volume", "sell_volume", "sweeps", "blocks", "dark_buy_volume", "dark_sell_volume",
               "net_call_premium", "net_put_premium")


def reduce_flow(f: FlowEvent) -> tuple[Any, ...]:
    bull = sum(1 for a in f.alerts if isinstance(a, dict) and a.get("bullish") is True)
    bear = sum(1 for a in f.alerts if isinstance(a, dict) and a.get("bullish") is False)
    return (f.symbol, *(getattr(f, n) for n in FLOW_FIELDS), len(f.alerts), bull, bear)


class Tails:
    """The incremental readers a long-lived report service keeps between builds."""

    def __init__(self) -> None:
        self.quotes = StreamTail(QuoteEvent, reduce_quote)
        self.flow = StreamTail(FlowEvent, reduce_flow)


async def latest_analytics(redis: aioredis.Redis, keys: Keys, until_ms: int, symbols: Iterable[str],
                           oldest_ms: int = 0) -> dict[str, AnalyticsEvent]:
    """The newest analytics snapshot per symbol with ``oldest_ms <= ts <= until_ms``; reading stops
    once every wanted symbol is found, a page is older than ``oldest_ms``, or after
    ``ANALYTICS_SCAN_MAX`` entries."""
    wanted = set(symbols)
    found: dict[str, AnalyticsEvent] = {}

    def visit(events: list[Event], page_newest: int) -> bool:
        for ev in events:
            if isinstance(ev, AnalyticsEvent) and oldest_ms <= ev.ts <= until_ms and ev.symbol not in found:
                found[ev.symbol] = ev
        return bool(wanted and wanted <= set(found)) or 0 <= page_newest < oldest_ms

    await walk_back(redis, keys.stream(AnalyticsEvent.STREAM), visit, max_entries=ANALYTICS_SCAN_MAX)
    return found
