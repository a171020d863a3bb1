"""dry-run end to end against the fake TWS: IBKR quotes and chains flow onto the bus, a signal is
reviewed and approved, the paper broker fills it against the fake's option quotes (no order ever
reaches IB), the position opens and distribution posts to the local outbox."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, time
from pathlib import Path

from core.bus.bus import Bus
from core.bus.events import SignalEvent
from core.bus.ids import IdFactory
from core.clock.calendar import NyseCalendar
from core.clock.offset_clock import OffsetClock
from core.domain.signal import Signal
from core.runtime.live_runner import LiveRunner
from main import build_services
from tests.helpers import make_context
from tests.ibkr.conftest import (
    SPY_SPOT,
    TODAY,
    build_tws,
    make_ib_settings,
    option_values,
    until,
    until_async,
)

SERVICES = ["market", "analytics", "overseer", "approvals", "execution", "positions", "distributor"]


async def _events(bus: Bus, stream: str) -> list:
    from core.bus.events import decode

    return [decode(f) for _id, f in await bus.redis.xrange(bus.keys.stream(stream))]


async def test_dry_run_trades_on_ibkr_quotes_with_paper_fills_and_posts_to_the_outbox(
        redis_client, keys, tmp_path: Path):
    tws = build_tws()
    tws.start()
    clock = OffsetClock(NyseCalendar().session(TODAY).at(time(10, 30)))
    bus = Bus(redis_client, keys, clock, IdFactory(seed=3))
    settings = make_ib_settings(
        tws.port, market={"symbols": ["SPY"], "tick_seconds": 1, "chain_seconds": 2},
        approval={"policy": "auto"}, distribution={"sink": "outbox"})
    assert (settings.mode.value, settings.execution.broker) == ("dry-run", "paper")
    ctx = make_context(bus, settings=settings, out_dir=str(tmp_path))
    services = build_services(ctx, SERVICES)
    runner = LiveRunner(services, poll_block_ms=50)
    task = asyncio.create_task(runner.run())
    try:
        # quotes and chains flow from IBKR onto the bus
        chains = await until_async(lambda: _events(bus, "chains"), lambda evs: evs, 20, "a chain from IBKR")
        assert chains[0].feed == "ibkr" and chains[0].symbol == "SPY" and chains[0].contracts > 0
        quotes = [q for q in await _events(bus, "quotes") if q.symbol == "SPY"]
        assert quotes and quotes[-1].feed == "ibkr" and abs(quotes[-1].last - SPY_SPOT) < 1
        await until_async(lambda: _events(bus, "analytics"), lambda evs: evs, 10, "an analytics snapshot")

        # a signal on today's 590 call, priced off the fake's quote
        v = option_values(SPY_SPOT, TODAY, 590.0, "C")
        now: datetime = clock.now()
        mid = round((v["bid"] + v["ask"]) / 2, 2)
        sig = Signal(id=bus.new_id(), ts=now, strategy="gamma_0dte", symbol="SPY",
                     instrument={"type": "OPT", "expiry": TODAY, "strike": 590.0, "right": "C"}, qty=1,
                     limit=mid, quote={"bid": v["bid"], "ask": v["ask"], "ts": now}, stop=round(mid * 0.5, 2),
                     targets=[round(mid * 1.5, 2)], horizon="0dte", triggers=["dry-run test"], confidence=72,
                     spot=SPY_SPOT)
        await bus.publish(bus.make(SignalEvent, correlation_id=sig.id, signal=sig))
        approvals = await until_async(
            lambda: _events(bus, "approvals"), lambda evs: [a for a in evs if a.decision != "pending"], 10,
            "the approval decision")
        assert approvals[-1].decision == "approved", approvals[-1]

        # the paper entry rests at mid; the fake's ask comes down to it: filled against IBKR's quote
        working = await until_async(lambda: _events(bus, "orders"),
                                    lambda evs: [o for o in evs if o.type == "order.update"
                                                 and o.status == "working"], 10, "a working paper order")
        limit = working[0].limit
        tws.set_option_quote("SPY", TODAY, 590.0, "C", **{**v, "bid": round(limit - 0.04, 2), "ask": limit})
        fills = await until_async(lambda: _events(bus, "orders"),
                                  lambda evs: [o for o in evs if o.type == "order.fill"], 10, "the paper fill")
        assert [(f.qty, f.price, f.purpose) for f in fills] == [(1, limit, "entry")]
        assert tws.order_log == []  # dry-run: nothing ever reached IB

        # the position opens and the premium tier gets it in the outbox
        outbox = tmp_path / "outbox.jsonl"

        def posts() -> list[dict]:
            if not outbox.exists():
                return []
            return [json.loads(line) for line in outbox.read_text().splitlines()]

        await until(lambda: [p for p in posts() if p.get("tier") == "premium"], 10, "a premium post")
        premium = [p for p in posts() if p.get("tier") == "premium"]
        assert premium[0]["correlation_id"] == sig.id and "SPY" in premium[0]["text"]
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 15)
        tws.stop()

