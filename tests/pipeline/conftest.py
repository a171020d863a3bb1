"""Fixtures to run core services in lock-step on the real Redis."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from core.bus.bus import Bus
from core.bus.events import decode
from core.bus.ids import IdFactory
from core.clock.calendar import NyseCalendar
from core.clock.clock import SimClock
from tests.helpers import make_context

DAY = date(2026, 11, 20)


def at(t: time, day: date = DAY) -> datetime:
    return NyseCalendar().session(day).at(t)


@pytest.fixture
async def sim_bus(redis_client, keys) -> Bus:
    return Bus(redis_client, keys, SimClock(at(time(9, 25))), IdFactory(seed=5))


@pytest.fixture
def ctx_for(sim_bus):
    def build(**overrides):
        ctx = make_context(sim_bus, **overrides)
        ctx.extras["seed"] = 7
        return ctx
    return build


async def stream(bus: Bus, name: str) -> list:
    return [decode(f) for _id, f in await bus.redis.xrange(bus.keys.stream(name))]
