"""Determinism: the same events give byte-identical report pages, whether rebuilt on the same
Redis data or built from a fresh replay of the same seeded day under another key prefix."""

from __future__ import annotations

import uuid
from pathlib import Path

from core.bus.bus import Bus
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.clock import SimClock
from reports.commentary import Commentator
from reports.gather import gather
from reports.render import TIERS, render_all
from reports.service import ReportService
from tests.helpers import make_context
from tests.reports._day import START, TradingDay, build_scheduled_day


async def test_rebuilding_the_same_data_is_byte_identical(day, bus, make_service):
    svc = make_service()
    await day.run_until(svc.schedule(day.clock.now().date())["close"])
    now = bus.clock.now()
    for kind in ("premarket", "intraday", "close"):
        d1 = await gather(bus.redis, bus.keys, svc.settings, svc.cal, kind, now)
        d2 = await gather(bus.redis, bus.keys, svc.settings, svc.cal, kind, now)
        assert d1 == d2
        c = Commentator(None, "template")
        p1, p2 = render_all(d1, await c.for_report(d1)), render_all(d2, await c.for_report(d2))
        assert all(p1[t].encode() == p2[t].encode() for t in TIERS)


async def test_replayed_day_gives_identical_files(bus, day, redis_client, tmp_path: Path):
    """Two runs of the same seeded day (own key prefix, own clock, same id seed) -> same bytes."""
    ctx_a = make_context(bus, out_dir=str(tmp_path / "a"), reports={"commentary": "auto"})
    first = await build_scheduled_day(day, ReportService(ctx_a))

    keys_b = Keys(f"t{uuid.uuid4().hex[:10]}")
    bus_b = Bus(redis_client, keys_b, SimClock(START), IdFactory(seed=1))
    try:
        ctx_b = make_context(bus_b, out_dir=str(tmp_path / "b"), reports={"commentary": "auto"})
        second = await build_scheduled_day(TradingDay(bus_b), ReportService(ctx_b))
    finally:
        async for key in redis_client.scan_iter(match=keys_b.pattern(), count=1000):
            await redis_client.delete(key)
    assert list(first) == list(second)
    for kind in first:
        a, b = first[kind], second[kind]
        assert (a.report_id, a.summary) == (b.report_id, b.summary)
        for tier in TIERS:
            pa, pb = Path(a.paths[tier]), Path(b.paths[tier])
            assert pa.name == pb.name
            assert pa.read_bytes() == pb.read_bytes(), (kind, tier)
