"""live end to end against the fake TWS: an approved signal becomes one IB order (our order id in
``orderRef``), IB's fill is published once with IB's commission, after the order's own events, and
the position manager opens the position; the same order policy reprices it at IB."""

from __future__ import annotations

import asyncio
from datetime import time
from pathlib import Path

from core.bus.bus import Bus
from core.bus.events import ApprovalEvent, decode
from core.bus.ids import IdFactory
from core.clock.calendar import NyseCalendar
from core.clock.offset_clock import OffsetClock
from core.domain.signal import Signal
from core.execution.pricing import to_tick
from core.runtime.live_runner import LiveRunner
from main import build_services
from tests.helpers import make_context
from tests.ibkr.conftest import SPY_SPOT, TODAY, build_tws, make_ib_settings, option_values, until_async


async def _orders(bus: Bus) -> list:
    return [decode(f) for _id, f in await bus.redis.xrange(bus.keys.stream("orders"))]


async def test_live_entry_is_one_ib_order_and_one_fill_with_ib_commission(redis_client, keys, tmp_path: Path):
    tws = build_tws()
    tws.start()
    clock = OffsetClock(NyseCalendar().session(TODAY).at(time(10, 30)))
    bus = Bus(redis_client, keys, clock, IdFactory(seed=4))
    settings = make_ib_settings(
        tws.port, mode="live", execution={"broker": "ibkr", "reprice_after_s": 1},
        market={"symbols": ["SPY"], "tick_seconds": 1, "chain_seconds": 2}, distribution={"sink": "outbox"})
    ctx = make_context(bus, settings=settings, out_dir=str(tmp_path))
    runner = LiveRunner(build_services(ctx, ["market", "execution", "positions"]), poll_block_ms=50)
    task = asyncio.create_task(runner.run())
    try:
        v = option_values(SPY_SPOT, TODAY, 590.0, "C")
        now = clock.now()
        mid = round((v["bid"] + v["ask"]) / 2, 2)
        sig = Signal(id=bus.new_id(), ts=now, strategy="gamma_0dte", symbol="SPY",
                     instrument={"type": "OPT", "expiry": TODAY, "strike": 590.0, "right": "C"}, qty=2,
                     limit=mid, quote={"bid": v["bid"], "ask": v["ask"], "ts": now}, stop=round(mid * 0.5, 2),
                     targets=[round(mid * 1.5, 2)], horizon="0dte", triggers=["live test"], confidence=72)
        await bus.publish(bus.make(ApprovalEvent, correlation_id=sig.id, signal=sig, decision="approved", qty=2,
                                   decided_by="test", policy="manual", explanation="Because.", risk_pct=0.7))
        ref = f"ent-{sig.id}"
        await until_async(lambda: asyncio.sleep(0, tws.orders), lambda o: [x for x in o if x["order_ref"] == ref],
                     15, "the order at IB")
        [placed] = [o for o in tws.orders if o["order_ref"] == ref]
        assert (placed["action"], placed["total_qty"], placed["sec_type"]) == ("BUY", 2, "OPT")

        # the shared policy reprices it at IB after reprice_after_s: the same IB order id, a new price
        await until_async(lambda: asyncio.sleep(0, tws.order_log), lambda log: len([x for x in log
                     if x["order_ref"] == ref]) >= 2, 15, "a reprice at IB")
        mods = [x for x in tws.order_log if x["order_ref"] == ref]
        assert mods[0]["lmt_price"] == to_tick((v["bid"] + v["ask"]) / 2, 0.01, "down")  # at mid, rounded down
        assert len({m["order_id"] for m in mods}) == 1 and mods[1]["lmt_price"] > mods[0]["lmt_price"]

        tws.fill_order(ref, qty=2)
        fills = await until_async(lambda: _orders(bus), lambda evs: [e for e in evs if e.type == "order.fill"], 10,
                             "the fill on the bus")
        await asyncio.sleep(0.5)  # anything duplicated would be on the bus by now
        fills = [e for e in await _orders(bus) if e.type == "order.fill"]
        assert len(fills) == 1 and fills[0].qty == 2 and fills[0].commission == 1.3
        updates = [e.status for e in await _orders(bus) if e.type == "order.update"]
        assert updates.index("working") < updates.index("filled")
        assert len([o for o in tws.orders if o["order_ref"] == ref]) == 1  # one IB order, ever
        positions = await bus.redis.hgetall(bus.keys.hash("positions"))
        assert sig.id in positions
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 15)
        tws.stop()
