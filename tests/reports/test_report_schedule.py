"""The report schedule: NYSE session days only, early closes, at most once per kind per day
(also across a restart), catch-up after a short outage, the lock-step runner landing exactly on
report times, and /report KIND from the control stream."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from pathlib import Path

from core.bus.events import ControlEvent
from core.clock.calendar import NY
from core.runtime.consumers import consumer_for
from core.runtime.sim_runner import SimRunner
from tests.reports._day import at, reports_stream


def ny(d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=NY)


NORMAL = date(2026, 11, 20)     # Friday
HOLIDAY = date(2026, 11, 26)    # Thanksgiving
EARLY = date(2026, 11, 27)      # early close 13:00


async def test_schedule_normal_day_early_close_and_holiday(make_service):
    svc = make_service()
    assert svc.schedule(NORMAL) == {"premarket": ny(NORMAL, time(8, 30)), "intraday": ny(NORMAL, time(13, 0)),
                                    "close": ny(NORMAL, time(16, 10))}
    # early close: no intraday (13:00 is not before the 13:00 close); close report 10 min after the close
    assert svc.schedule(EARLY) == {"premarket": ny(EARLY, time(8, 30)), "close": ny(EARLY, time(13, 10))}
    assert svc.schedule(HOLIDAY) == {} and svc.schedule(date(2026, 11, 21)) == {}  # holiday, Saturday

    nd = svc.next_due
    assert await nd(ny(NORMAL, time(6, 0))) == ny(NORMAL, time(8, 30))
    assert await nd(ny(NORMAL, time(8, 30))) == ny(NORMAL, time(8, 30))  # due now (not built yet)
    assert await nd(ny(NORMAL, time(9, 1))) == ny(NORMAL, time(13, 0))  # 08:30 missed beyond catch-up
    assert await nd(ny(NORMAL, time(16, 41))) == ny(date(2026, 11, 23), time(8, 30))  # weekend skipped
    # Wednesday night: Thursday is a holiday -> Friday's pre-market, then the early close report at 13:10
    assert await nd(ny(date(2026, 11, 25), time(20, 0))) == ny(EARLY, time(8, 30))
    assert await nd(ny(HOLIDAY, time(12, 0))) == ny(EARLY, time(8, 30))
    assert await nd(ny(EARLY, time(9, 0))) == ny(EARLY, time(8, 30))  # still within catch-up
    assert await nd(ny(EARLY, time(9, 1))) == ny(EARLY, time(13, 10))
    assert await nd(ny(EARLY, time(13, 41))) == ny(date(2026, 11, 30), time(8, 30))

    early = make_service(early_close_delay_min=25)
    assert (await early.next_due(ny(EARLY, time(12, 0)))) == ny(EARLY, time(13, 25))


async def test_next_due_walks_a_normal_day(bus, make_service):
    svc = make_service()
    seen = []
    for t in (time(8, 30), time(13, 0), time(16, 10)):
        bus.clock.set(at(t))
        seen.append((await svc.next_due(bus.clock.now())).astimezone(NY).time())
        await svc.on_timer(bus.clock.now())
    assert seen == [time(8, 30), time(13, 0), time(16, 10)]
    assert await svc.next_due(bus.clock.now()) == ny(date(2026, 11, 23), time(8, 30))


async def test_once_per_kind_per_day_even_after_restart(bus, make_service, redis_client, keys):
    first = make_service()
    bus.clock.set(at(time(8, 30)))
    await first.on_timer(bus.clock.now())
    await first.on_timer(bus.clock.now())  # same instant again: nothing new
    assert [e.kind for e in await reports_stream(bus)] == ["premarket"]
    record = json.loads(await redis_client.hget(keys.hash("reports_built"), "2026-11-20:premarket"))
    assert record["report_id"] == (await reports_stream(bus))[0].report_id

    restarted = make_service()  # a new process: state only from Redis
    assert await restarted.next_due(bus.clock.now()) == at(time(13, 0))
    bus.clock.advance(60)
    await restarted.on_timer(bus.clock.now())
    assert [e.kind for e in await reports_stream(bus)] == ["premarket"]


async def test_catch_up_after_a_short_outage_only(bus, make_service):
    svc = make_service()
    bus.clock.set(at(time(13, 20)))  # down at 13:00, back at 13:20 (catch_up_min 30)
    assert await svc.next_due(bus.clock.now()) == at(time(13, 0))
    await svc.on_timer(bus.clock.now())
    evs = await reports_stream(bus)
    assert [e.kind for e in evs] == ["intraday"] and evs[0].dt == at(time(13, 20))
    bus.clock.set(at(time(16, 45)))  # the 16:10 close was missed by 35 min: skipped
    assert await svc.next_due(bus.clock.now()) == ny(date(2026, 11, 23), time(8, 30))
    await svc.on_timer(bus.clock.now())
    assert [e.kind for e in await reports_stream(bus)] == ["intraday"]


async def test_lockstep_runner_lands_exactly_on_report_times(bus, make_service):
    svc = make_service()
    runner = SimRunner([svc], bus.clock)
    await runner.run(at(time(8, 0)), at(time(16, 30)))
    evs = await reports_stream(bus)
    assert [(e.kind, e.dt.astimezone(NY).time()) for e in evs] == [
        ("premarket", time(8, 30)), ("intraday", time(13, 0)), ("close", time(16, 10))]
    assert runner.steps <= 4  # 08:00, then a jump to each report time

    # a second runner over the rest of the day (a restart) builds nothing again
    again = SimRunner([make_service()], bus.clock)
    await again.run(at(time(16, 31)), at(time(17, 0)))
    assert len(await reports_stream(bus)) == 3


async def test_report_command_builds_now(bus, make_service, tmp_path: Path):
    svc = make_service()
    consumer = consumer_for(svc)
    bus.clock.set(at(time(11, 30)))
    ctl = bus.make(ControlEvent, action="report", by="tg:42", args={"kind": "intraday"})
    await bus.publish(ctl)
    await bus.publish(bus.make(ControlEvent, action="report", by="tg:42", args={"kind": "weekly"}))  # bad kind
    await bus.publish(bus.make(ControlEvent, action="halt", by="tg:42", reason="not ours"))
    assert await consumer.poll(svc.handle) == 3
    evs = await reports_stream(bus)
    assert len(evs) == 1
    ev = evs[0]
    assert (ev.kind, ev.status, ev.by, ev.correlation_id) == ("intraday", "built", "control:tg:42", ctl.id)
    assert ev.dt == at(time(11, 30))
    assert Path(ev.paths["basic"]).name == "2026-11-20-intraday-113000-basic.html"
    assert all(Path(p).exists() for p in ev.paths.values())
    # the scheduled intraday report still runs at 13:00
    assert await svc.next_due(bus.clock.now()) == at(time(13, 0))
    # a redelivered command is not built twice (handled-marker), a stale one is ignored
    assert await consumer.poll(svc.handle) == 0
    bus.clock.set(at(time(12, 5)))
    await bus.publish(ctl.model_copy(update={"id": bus.new_id()}))  # ts 11:30, handled at 12:05 (> 30 min)
    await consumer.poll(svc.handle)
    assert len(await reports_stream(bus)) == 1
