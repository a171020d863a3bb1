"""``run --mode demo --speed N``: a simulated clock N x wall time that resumes after a restart.

Scaled time and sleeps (ScaledClock on an injected wall), where a start begins (plan + the
timeline in the real Redis: fresh, joined, resumed after a clean stop or a kill -9, the next
session after the end), and a real ``main.py run`` that stops by itself at the session's end."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time as _time
import uuid
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
import redis

import main
from core.bus.bus import Bus
from core.clock.calendar import NY, NyseCalendar
from core.clock.clock import LiveClock
from core.clock.offset_clock import OffsetClock
from core.clock.scaled_clock import ScaledClock, check_speed
from core.clock.timeline import RUN_START, ClockConflict, open_timeline, plan, seed_timeline
from core.config.loader import load_settings
from core.config.secrets import Secrets
from core.runtime.live_runner import LiveRunner
from core.runtime.service import Context, Service

ROOT = Path(main.__file__).resolve().parent
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DAY = date(2026, 12, 3)          # a Thursday session
NEXT_DAY = date(2026, 12, 4)
END = time(16, 15)
CAL = NyseCalendar()
WALL0 = 1_800_000_000.0          # an arbitrary wall instant (epoch seconds)


class FakeWall:
    def __init__(self, t: float = WALL0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ny(day: date, t: time) -> datetime:
    return datetime.combine(day, t, tzinfo=NY)


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


# ------------------------------------------------------------------ scaled time
def test_scaled_clock_runs_n_times_wall_time():
    wall = FakeWall()
    clock = ScaledClock(ny(DAY, time(9, 25)), 60.0, wall=wall)
    assert clock.now() == ny(DAY, time(9, 25))
    wall.t += 1.5
    assert clock.now() == ny(DAY, time(9, 26, 30))  # 1.5 wall s x 60 = 90 simulated s
    wall.t += 60
    assert clock.now().astimezone(NY) == ny(DAY, time(10, 26, 30))
    assert clock.ms() == ms(ny(DAY, time(10, 26, 30)))


def test_waits_are_divided_by_the_speed(monkeypatch):
    clock = ScaledClock(ny(DAY, time(9, 25)), 40.0, wall=FakeWall())
    assert clock.wall_seconds(60.0) == 1.5
    assert clock.wall_seconds(-3) == 0.0
    assert LiveClock().wall_seconds(60.0) == 60.0
    assert OffsetClock(ny(DAY, time(9, 25))).wall_seconds(60.0) == 60.0  # the wall-speed clock still works
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    asyncio.run(clock.sleep(120.0))
    assert slept == [3.0]


def test_clock_never_goes_back_when_the_timeline_is_reanchored_earlier():
    wall = FakeWall()
    clock = ScaledClock(ny(DAY, time(10, 0)), 10.0, wall=wall)
    wall.t += 10
    before = clock.ms()  # 10:01:40
    clock.reanchor(ms(ny(DAY, time(10, 1))), wall.t)  # another process's anchor, 100 s behind
    assert clock.ms() == before
    wall.t += 20  # 200 simulated s later the timeline is ahead again
    assert clock.ms() == ms(ny(DAY, time(10, 4, 20)))


@pytest.mark.parametrize("bad", ["0.5", "0", "-3", "nan", "inf", "fast", None])
def test_speed_must_be_a_finite_number_of_at_least_one(bad):
    with pytest.raises(ValueError):
        check_speed(bad)
    assert check_speed("1") == 1.0 and check_speed(250) == 250.0


# ------------------------------------------------------------------ where a start begins
def _stored(day: date, anchor: datetime, wall_anchor_s: float, speed: float, last: datetime) -> dict[str, str]:
    return {"epoch": "e1", "day": day.isoformat(), "sim_anchor_ms": str(ms(anchor)),
            "wall_anchor_ms": str(int(wall_anchor_s * 1000)), "speed": str(speed), "end_ms": str(ms(ny(day, END))),
            "last_sim_ms": str(ms(last)), "last_wall_ms": str(int(wall_anchor_s * 1000))}


def test_fresh_start_is_the_most_recent_session_at_0925():
    saturday = ms(ny(date(2026, 12, 5), time(12, 0)))
    st = plan({}, {}, wall_ms=saturday, speed=5, calendar=CAL, end=END)
    assert (st.how, st.day, st.sim_anchor_ms, st.wall_anchor_ms) == (
        "fresh", NEXT_DAY, ms(ny(NEXT_DAY, RUN_START)), saturday)  # Friday's session
    assert st.end_ms == ms(ny(NEXT_DAY, END))


def test_a_start_while_another_process_runs_joins_its_timeline():
    wall_ms = int(WALL0 * 1000) + 2_000
    stored = _stored(DAY, ny(DAY, time(11, 0)), WALL0, 30.0, ny(DAY, time(11, 0, 30)))
    st = plan(stored, {"m1": str(wall_ms - 1_000)}, wall_ms=wall_ms, speed=30, calendar=CAL, end=END)
    assert (st.how, st.epoch, st.sim_anchor_ms, st.wall_anchor_ms) == ("joined", "e1", ms(ny(DAY, time(11, 0))),
                                                                       int(WALL0 * 1000))
    joined = ScaledClock(datetime.fromtimestamp(st.sim_anchor_ms / 1000, UTC), st.speed,
                         wall_anchor=st.wall_anchor_ms / 1000, wall=FakeWall(wall_ms / 1000))
    assert joined.ms() == ms(ny(DAY, time(11, 1)))  # 2 wall s x 30: the instant the other process reads
    with pytest.raises(ClockConflict, match="already running at speed 30"):
        plan(stored, {"m1": str(wall_ms - 1_000)}, wall_ms=wall_ms, speed=60, calendar=CAL, end=END)


def test_a_start_after_everybody_stopped_resumes_at_the_last_instant():
    wall_ms = int(WALL0 * 1000) + 3_600_000  # an hour later
    stored = _stored(DAY, ny(DAY, time(9, 25)), WALL0, 30.0, ny(DAY, time(13, 7, 45)))
    old_member = {"m1": str(int(WALL0 * 1000))}  # killed: its last beat is an hour old
    st = plan(stored, old_member, wall_ms=wall_ms, speed=10, calendar=CAL, end=END)
    assert (st.how, st.day, st.sim_anchor_ms, st.wall_anchor_ms, st.speed) == (
        "resumed", DAY, ms(ny(DAY, time(13, 7, 45))), wall_ms, 10.0)
    assert st.epoch != "e1"


def test_past_the_session_end_the_next_start_plays_the_next_session():
    stored = _stored(DAY, ny(DAY, time(9, 25)), WALL0, 30.0, ny(DAY, END))
    st = plan(stored, {}, wall_ms=int(WALL0 * 1000) + 60_000, speed=30, calendar=CAL, end=END)
    assert (st.how, st.day, st.sim_anchor_ms) == ("next session", NEXT_DAY, ms(ny(NEXT_DAY, RUN_START)))
    # also when a live timeline has run past its end
    live = {"m1": str(int(WALL0 * 1000) + 59_000)}
    late = _stored(DAY, ny(DAY, time(16, 0)), WALL0, 30.0, ny(DAY, time(16, 14)))
    st = plan(late, live, wall_ms=int(WALL0 * 1000) + 60_000, speed=30, calendar=CAL, end=END)
    assert (st.how, st.day) == ("next session", NEXT_DAY)


# ------------------------------------------------------------------ the timeline in Redis
async def test_restart_resumes_from_redis_not_from_0925(redis_client, keys):
    first = await open_timeline(redis_client, keys, speed=60, calendar=CAL, end=END)
    assert first.start.how == "fresh"
    seeded = ny(DAY, time(12, 40))
    await seed_timeline(redis_client, keys, DAY, seeded, 60, END)  # a run that stopped at 12:40
    again = await open_timeline(redis_client, keys, speed=60, calendar=CAL, end=END)
    assert again.start.how == "resumed" and again.start.day == DAY
    assert again.clock.ms() >= ms(seeded) and again.clock.now().astimezone(NY).time() < time(12, 45)
    # a second process started now joins the same anchor
    other = await open_timeline(redis_client, keys, speed=60, calendar=CAL, end=END)
    assert other.start.how == "joined" and other.start.epoch == again.start.epoch
    assert other.clock.anchor == again.clock.anchor
    # clean stop of both: the next start continues from the last recorded instant
    await other.leave()
    await again.leave()
    last = int(await redis_client.hget(keys.hash("sim_clock"), "last_sim_ms"))
    assert last >= ms(seeded)
    resumed = await open_timeline(redis_client, keys, speed=60, calendar=CAL, end=END)
    assert resumed.start.how == "resumed" and resumed.start.sim_anchor_ms == last


async def test_after_a_kill_the_last_beat_is_where_it_resumes(redis_client, keys):
    await seed_timeline(redis_client, keys, DAY, ny(DAY, time(14, 0)), 100, END)
    wall_ms = int(WALL0 * 1000)
    tl = await open_timeline(redis_client, keys, speed=100, calendar=CAL, end=END, wall_ms=wall_ms)
    await tl.beat(wall_ms)  # then kill -9: no leave(), the member stays behind
    stored = await redis_client.hgetall(keys.hash("sim_clock"))
    beat_at = int(stored["last_sim_ms"])
    later = wall_ms + 16_000  # past STALE_S: nobody is running any more
    st = await open_timeline(redis_client, keys, speed=100, calendar=CAL, end=END, wall_ms=later)
    assert st.start.how == "resumed" and st.start.sim_anchor_ms == beat_at


async def test_a_process_follows_a_timeline_reanchored_by_another(redis_client, keys):
    await seed_timeline(redis_client, keys, DAY, ny(DAY, time(10, 0)), 20, END)
    a = await open_timeline(redis_client, keys, speed=20, calendar=CAL, end=END)
    await seed_timeline(redis_client, keys, DAY, ny(DAY, time(11, 0)), 20, END)  # re-anchored elsewhere
    b = await open_timeline(redis_client, keys, speed=20, calendar=CAL, end=END)
    assert await a.beat() is True
    assert a.start.epoch == b.start.epoch and a.clock.ms() >= ms(ny(DAY, time(11, 0)))


async def test_a_process_whose_timeline_rolled_to_the_next_session_ends(redis_client, keys):
    await seed_timeline(redis_client, keys, DAY, ny(DAY, time(16, 0)), 20, END)
    a = await open_timeline(redis_client, keys, speed=20, calendar=CAL, end=END)
    await seed_timeline(redis_client, keys, DAY, ny(DAY, END), 20, END)  # stopped at the end elsewhere
    b = await open_timeline(redis_client, keys, speed=20, calendar=CAL, end=END)
    assert b.start.day == NEXT_DAY
    assert not a.ended
    assert await a.beat() is True
    assert a.ended and a.start.day == DAY  # it stops; it does not play the next session's morning
    assert a.clock.now().astimezone(NY) < ny(DAY, END)


async def test_session_end_is_reached_and_the_next_start_rolls_over(redis_client, keys):
    await seed_timeline(redis_client, keys, DAY, ny(DAY, time(16, 14, 59)), 100, END)
    wall_ms = int(WALL0 * 1000)
    tl = await open_timeline(redis_client, keys, speed=100, calendar=CAL, end=END, wall_ms=wall_ms)
    assert tl.start.how == "resumed"
    tl.clock = ScaledClock(ny(DAY, time(16, 14, 59)), 100, wall_anchor=WALL0, wall=FakeWall(WALL0))
    assert not tl.ended
    tl.clock = ScaledClock(ny(DAY, time(16, 14, 59)), 100, wall_anchor=WALL0, wall=FakeWall(WALL0 + 0.02))
    assert tl.ended  # 2 simulated seconds = 20 wall ms at 100x
    await tl.leave()
    nxt = await open_timeline(redis_client, keys, speed=100, calendar=CAL, end=END)
    assert (nxt.start.how, nxt.start.day) == ("next session", NEXT_DAY)
    assert nxt.clock.now().astimezone(NY) >= ny(NEXT_DAY, RUN_START)


# ------------------------------------------------------------------ the runner's timer waits
async def test_timer_waits_are_paced_by_the_clock(redis_client, keys):
    """A timer service due every 15 simulated seconds, at 50x: the live runner waits 0.3 wall s
    between ticks (not 15), while its idle heartbeat cap stays one WALL second."""
    clock = ScaledClock(ny(DAY, time(10, 0)), 50.0)
    bus = Bus(redis_client, keys, clock)
    ctx = Context(settings=load_settings(), secrets=Secrets(), bus=bus, clock=clock, calendar=CAL)

    class Ticker(Service):
        name = "ticker"
        interval_s = 15.0

        def __init__(self, c) -> None:
            super().__init__(c)
            self.ticks: list[float] = []

        async def on_timer(self, now) -> None:
            self.ticks.append(_time.monotonic())

    svc = Ticker(ctx)
    runner = LiveRunner([svc])
    task = asyncio.create_task(runner.run())
    deadline = _time.monotonic() + 10
    while len(svc.ticks) < 5 and _time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    runner.request_stop()
    await task
    assert len(svc.ticks) >= 5, "15 simulated seconds at 50x must be 0.3 wall s, not 15 s"
    gaps = [b - a for a, b in zip(svc.ticks, svc.ticks[1:], strict=False)]
    assert all(g < 1.0 for g in gaps), gaps


# ------------------------------------------------------------------ the command
@pytest.mark.parametrize(("argv", "needle"), [
    (["run", "--mode", "live", "--speed", "10"], "--speed is for --mode demo only"),
    (["run", "--mode", "dry-run", "--speed", "2"], "--speed is for --mode demo only"),
    (["run", "--mode", "demo", "--speed", "0.5"], "expected a finite number >= 1"),
    (["run", "--mode", "demo", "--speed", "nan"], "expected a finite number >= 1"),
])
def test_speed_outside_its_range_or_mode_is_one_line_exit_2(argv, needle, capsys, monkeypatch):
    monkeypatch.setenv("QUANT_METRICS__ENABLED", "false")
    code = main.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_run_stops_by_itself_at_the_session_end(tmp_path):
    prefix = f"tspeed{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANT_") and k != "REDIS_URL"}
    env.update(REDIS_URL=TEST_REDIS_URL, QUANT_REDIS__KEY_PREFIX=prefix, QUANT_METRICS__ENABLED="false",
               QUANT_DEMO__OUT_DIR=str(tmp_path / "demo"))
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    ns = f"{prefix}.demo"
    try:
        from core.bus.keys import Keys

        async def seed() -> None:
            import redis.asyncio as aioredis

            r = aioredis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
            await seed_timeline(r, Keys(ns), DAY, ny(DAY, time(16, 14, 30)), 60, END)
            await r.aclose()

        asyncio.run(seed())
        proc = subprocess.run([sys.executable, "main.py", "run", "--mode", "demo", "--speed", "60",
                               "--services", "anomaly"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=100, check=False)
        stored = client.hgetall(Keys(ns).hash("sim_clock"))
        members = client.hgetall(Keys(ns).hash("sim_clock_members"))
    finally:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()
    assert proc.returncode == 0, proc.stderr
    assert "clock resumed at 16:14:3" in proc.stderr, proc.stderr
    assert f"simulated session {DAY} ended" in proc.stderr
    assert int(stored["last_sim_ms"]) >= ms(ny(DAY, END))  # the next start rolls to the next session
    assert members == {}  # a clean stop leaves no member behind
    assert datetime.fromtimestamp(int(stored["last_sim_ms"]) / 1000, UTC) < ny(DAY, time(16, 17))
