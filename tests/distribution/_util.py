"""Helpers shared by the distribution tests (events, the SimClock harness, stream readers)."""

from __future__ import annotations

from typing import Any

from bot.distribution import DistributorService
from core.bus.bus import Bus
from core.bus.events import DeliveryEvent, Event, PositionEvent, ReportEvent, decode
from core.clock.clock import SimClock
from core.runtime.consumers import consumer_for

CHANNELS = {"premium": 1300000000000000101, "basic": 1300000000000000102, "free": 1300000000000000103}
GUILD = 1200000000000000001
SUBREDDIT = "quanticity_test"



class Harness:
    """Drives one DistributorService: events through its real consumer group, the SimClock
    moved exactly to each ``next_due`` (what the lock-step runner does)."""

    def __init__(self, svc: DistributorService, bus: Bus) -> None:
        self.svc = svc
        self.bus = bus
        self.clock: SimClock = bus.clock  # type: ignore[assignment]
        self.consumer = consumer_for(svc)

    async def publish(self, ev: Event) -> None:
        await self.bus.publish(ev)
        assert self.consumer is not None
        await self.consumer.poll(self.svc.handle)

    async def run_due(self) -> None:
        """Send everything due at the current instant."""
        for _ in range(100):
            nd = await self.svc.next_due(self.clock.now())
            if nd is None or nd > self.clock.now():
                return
            await self.svc.on_timer(self.clock.now())

    async def advance(self, seconds: float) -> None:
        """Move the clock forward ``seconds``, stopping exactly at every due time on the way."""
        end = self.clock.ms() + round(seconds * 1000)
        await self.run_due()
        while True:
            nd = await self.svc.next_due(self.clock.now())
            if nd is None:
                break
            t = int(nd.timestamp() * 1000)
            if t > end:
                break
            if t > self.clock.ms():
                self.clock.set_ms(t)
            await self.run_due()
        if end > self.clock.ms():
            self.clock.set_ms(end)


def position(bus: Bus, kind: str, *, corr: str = "trade-1", position_id: str = "pos-1", **fields: Any) -> PositionEvent:
    base: dict[str, Any] = {
        "kind": kind, "position_id": position_id, "strategy": "gamma_0dte", "symbol": "SPY", "expiry": "2026-11-20",
        "strike": 590.0, "right": "C", "direction": "bullish", "horizon": "0dte", "qty": 3, "qty_open": 3, "price": 2.15,
        "entry_price": 2.15, "stop": 1.55, "targets": [3.05, 4.1], "triggers": ["gamma flip reclaimed", "vpin 0.62"],
        "confidence": 71.0, "explanation": "Dealers are short gamma above the flip; momentum confirmed.",
        "account_risk_pct": 1.35, "analytics": {"gex_total": 1.3e9, "zero_gamma": 588.5, "vpin": 0.62},
    }
    if kind == "stop_moved":
        base.update(qty=0, price=None, stop=1.95, reason="trail to breakeven-ish")
    elif kind == "partial_exit":
        base.update(qty=2, qty_open=1, price=3.05, realized_pnl=176.7, reason="target 1")
    elif kind == "closed":
        base.update(qty=1, qty_open=0, price=3.6, realized_pnl=320.1, reason="trailing stop")
    base.update(fields)
    return bus.make(PositionEvent, correlation_id=corr, **base)


def report(bus: Bus, status: str = "approved", **fields: Any) -> ReportEvent:
    base: dict[str, Any] = {"kind": "close", "status": status, "report_id": "rep-close-1", "summary": "SPX pinned 5900",
                                "paths": {"premium": "var/reports/close-premium.html",
                                       "basic": "var/reports/close-basic.html",
                                       "free": "var/reports/close-free.html"}}
    base.update(fields)
    return bus.make(ReportEvent, correlation_id=base["report_id"], **base)


async def read_stream(bus: Bus, stream: str) -> list[Event]:
    entries = await bus.redis.xrange(bus.keys.stream(stream))
    return [decode(fields) for _id, fields in entries]


async def deliveries(bus: Bus, status: str | None = None) -> list[DeliveryEvent]:
    evs = [e for e in await read_stream(bus, "deliveries") if isinstance(e, DeliveryEvent)]
    return [e for e in evs if status is None or e.status == status]
