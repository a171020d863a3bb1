"""The lock-step runner reuses a service's future ``next_due`` answer until the service acts.

A ticker makes an instant every second; a scheduler has one far-future job and adds a job 3 s after
every control event it handles (its due time moves EARLIER through its own handling); a remover
takes the scheduler's far job away from outside (its due time moves LATER behind its back, as a
Telegram claim does to an approval card). The jobs must run at exactly the same instants as when
every service is asked at every round, with far fewer questions.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from core.bus.bus import Bus, Tx
from core.bus.events import ControlEvent, Event
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.calendar import NY
from core.clock.clock import SimClock
from core.runtime.service import Service
from core.runtime.sim_runner import SimRunner
from tests.helpers import make_context

START = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def _ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


class Ticker(Service):
    name = "ticker"
    interval_s = 1.0

    def __init__(self, ctx, every: int) -> None:
        super().__init__(ctx)
        self.every, self.n = every, 0

    async def on_timer(self, now: datetime) -> None:
        self.n += 1
        if self.n % self.every == 0:
            tx = self.bus.tx()
            tx.emit(ControlEvent, action="halt", by="ticker")
            await tx.commit()


class Scheduler(Service):
    name = "scheduler"
    streams = ("control",)

    def __init__(self, ctx, jobs: list[int]) -> None:
        super().__init__(ctx)
        self.jobs = jobs
        self.ran: list[tuple[int, int]] = []
        self.asked = 0

    async def handle(self, event: Event, tx: Tx) -> None:
        self.jobs.append(event.ts + 3_000)

    async def next_due(self, now: datetime) -> datetime | None:
        self.asked += 1
        return datetime.fromtimestamp(min(self.jobs) / 1000, tz=UTC) if self.jobs else None

    async def on_timer(self, now: datetime) -> None:
        for job in sorted(j for j in self.jobs if j <= _ms(now)):
            self.jobs.remove(job)
            self.ran.append((_ms(now), job))


class Remover(Service):
    """Takes the scheduler's far job away at a given instant (only ever moves its due time later)."""
    name = "remover"
    interval_s = 5.0

    def __init__(self, ctx, jobs: list[int], at_ms: int, job: int) -> None:
        super().__init__(ctx)
        self.jobs, self.at_ms, self.job = jobs, at_ms, job

    async def on_timer(self, now: datetime) -> None:
        if _ms(now) >= self.at_ms and self.job in self.jobs:
            self.jobs.remove(self.job)


async def _run(redis, keys: Keys, reuse: bool) -> tuple[list[tuple[int, int]], int, SimRunner]:
    bus = Bus(redis, keys, SimClock(START), IdFactory(seed=3))
    far, farther = _ms(START + timedelta(seconds=50)), _ms(START + timedelta(seconds=90))
    jobs = [far, farther]
    ctx = make_context(bus)
    sched = Scheduler(ctx, jobs)
    services = [Ticker(ctx, every=7), sched, Remover(ctx, jobs, _ms(START + timedelta(seconds=20)), far)]
    runner = SimRunner(services, bus.clock, reuse_next_due=reuse)
    await runner.run(START, START + timedelta(seconds=120))
    return sched.ran, sched.asked, runner


async def test_jobs_run_at_the_same_instants_with_far_fewer_questions(redis_client, keys):
    reference, asked_every_round, _ = await _run(redis_client, Keys(f"{keys.prefix}:ref"), reuse=False)
    reused, asked_reused, runner = await _run(redis_client, keys, reuse=True)

    assert reused == reference
    # the ticker's 7th, 14th ... tick (6 s, 13 s ... 118 s) publishes; each handling schedules a job
    # 3 s later (9 s ... 118 s: 16 of them before the end), run on that very instant; the far job at
    # 50 s was taken away at 20 s, the one at 90 s runs
    expected = sorted([_ms(START) + s * 1000 for s in range(9, 120, 7)] + [_ms(START) + 90_000])
    assert reused == [(j, j) for j in expected]
    assert asked_reused * 3 < asked_every_round
    assert runner.next_due_calls == asked_reused


class Outside(Service):
    """Work another service schedules for it (its due time moves earlier behind its back)."""
    name = "outside"
    next_due_reusable = False

    def __init__(self, ctx, jobs: list[int]) -> None:
        super().__init__(ctx)
        self.jobs = jobs
        self.ran: list[int] = []

    async def next_due(self, now: datetime) -> datetime | None:
        return datetime.fromtimestamp(min(self.jobs) / 1000, tz=UTC) if self.jobs else None

    async def on_timer(self, now: datetime) -> None:
        self.ran.extend(j for j in sorted(self.jobs) if j <= _ms(now))
        self.jobs[:] = [j for j in self.jobs if j > _ms(now)]


class Pusher(Service):
    name = "pusher"
    interval_s = 10.0

    def __init__(self, ctx, jobs: list[int]) -> None:
        super().__init__(ctx)
        self.jobs = jobs

    async def on_timer(self, now: datetime) -> None:
        self.jobs.append(_ms(now) + 2_500)


class NextDay(Service):
    """Nothing scheduled until New York midnight, then a job 30 s into the new day."""
    name = "nextday"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.ran: list[int] = []

    async def next_due(self, now: datetime) -> datetime | None:
        local = now.astimezone(NY)
        if local.date() == DAY1 or self.ran:
            return None
        return datetime.combine(local.date(), time(0, 0, 30), tzinfo=NY)

    async def on_timer(self, now: datetime) -> None:
        self.ran.append(_ms(now))


DAY1 = date(2026, 12, 3)


async def test_a_service_others_schedule_for_is_asked_every_round(redis_client, keys):
    bus = Bus(redis_client, keys, SimClock(START), IdFactory(seed=4))
    ctx = make_context(bus)
    jobs = [_ms(START) + 100_000]
    outside = Outside(ctx, jobs)
    await SimRunner([Pusher(ctx, jobs), outside], bus.clock).run(START, START + timedelta(seconds=60))
    assert outside.ran == [_ms(START) + s * 1000 + 2_500 for s in range(0, 60, 10)]


async def test_a_nothing_scheduled_answer_is_asked_again_on_a_new_day(redis_client, keys):
    before_midnight = datetime.combine(DAY1, time(23, 59, 0), tzinfo=NY)
    bus = Bus(redis_client, keys, SimClock(before_midnight), IdFactory(seed=5))
    ctx = make_context(bus)
    ticker, nextday = Ticker(ctx, every=1000), NextDay(ctx)
    await SimRunner([ticker, nextday], bus.clock).run(before_midnight, before_midnight + timedelta(minutes=2))
    assert nextday.ran == [_ms(datetime.combine(DAY1 + timedelta(days=1), time(0, 0, 30), tzinfo=NY))]
