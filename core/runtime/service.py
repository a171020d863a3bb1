"""The Service base class. Every stage is one: a stream processor with optional
timers, the same code in every run mode.

- ``streams``: event streams it consumes (consumer group = service name);
  ``event_types`` narrows it to the types it handles (the rest are acked unread).
- ``handle(event, tx)``: queue outputs on ``tx``; they commit atomically with the ack.
- ``interval_s`` + ``on_timer(now)``: periodic work on the service clock.
- ``next_due(now)``: earliest scheduled work (e.g. a sorted-set queue) so the
  lock-step runner can jump exactly to it; the live runner polls it.
- ``wake()`` + ``on_wake(now)``: a push from outside the bus (a broker's fill, a
  connection change) asks the live runner to call ``on_wake`` at once instead of
  waiting for the next timer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from core.bus.bus import Bus, Tx
from core.bus.events import Event
from core.bus.keys import Keys
from core.clock.calendar import NyseCalendar
from core.clock.clock import Clock
from core.config.model import Settings
from core.config.secrets import Secrets


@dataclass
class Context:
    settings: Settings
    secrets: Secrets
    bus: Bus
    clock: Clock
    calendar: NyseCalendar
    out_dir: str | None = None  # demo output folder (outbox, reports)
    extras: dict[str, Any] = field(default_factory=dict)  # runtime handles (e.g. the simulator)

    @property
    def redis(self) -> aioredis.Redis:
        return self.bus.redis

    @property
    def keys(self) -> Keys:
        return self.bus.keys


class Service:
    name: str = "service"
    streams: tuple[str, ...] = ()
    # event types it handles (others on its streams are acknowledged unread); None = all
    event_types: frozenset[str] | None = None
    interval_s: float | None = None
    # the lock-step runner may reuse this service's next_due answer until the service acts (handles an
    # event, runs a timer, is woken) or the day changes; False if another writer can move it earlier
    next_due_reusable: bool = True

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.bus = ctx.bus
        self.redis = ctx.redis
        self.keys = ctx.keys
        self.clock = ctx.clock
        self.settings = ctx.settings
        self.log = logging.getLogger(f"quanticity.{self.name}")
        self.woken = asyncio.Event()

    def wake(self) -> None:
        """Ask the runner to call :meth:`on_wake` soon (safe from any callback on the loop)."""
        self.woken.set()

    async def on_wake(self, now: datetime) -> None:
        """Work pushed from outside the bus (see :meth:`wake`)."""

    async def start(self) -> None:
        """Called once before any event or timer."""

    async def stop(self) -> None:
        """Called once at shutdown (after the event in hand is finished and acked)."""

    async def handle(self, event: Event, tx: Tx) -> None:
        """Handle one event from ``streams``."""

    async def on_timer(self, now: datetime) -> None:
        """Periodic work every ``interval_s`` and whenever ``next_due`` has come."""

    async def next_due(self, now: datetime) -> datetime | None:
        """Earliest time this service has scheduled work (None = nothing scheduled). It may move
        earlier only through this service's own handle/on_timer/on_wake (see ``next_due_reusable``)."""
        return None
