"""Publishing events and running atomic handler transactions.

A handler never writes to Redis piecemeal: it gets a :class:`Tx`, queues its
outputs (events and state writes) on it, and the consumer commits them in one
MULTI/EXEC together with the "handled" marker and the XACK. A crash before the
EXEC leaves nothing behind and the event is redelivered; after it, the marker
makes re-delivery a no-op. That is what makes handling idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis

from core.bus.events import Event, encode
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.clock import Clock

E = TypeVar("E", bound=Event)


class Bus:
    def __init__(self, redis: aioredis.Redis, keys: Keys, clock: Clock, ids: IdFactory | None = None,
                 maxlen: int = 200_000, source: str = "") -> None:
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self.ids = ids or IdFactory()
        self.maxlen = maxlen
        self.source = source
        self._listeners: list[Callable[[set[str]], None]] = []

    # ---------------------------------------------------------------- events
    def new_id(self) -> str:
        return self.ids.new(self.clock.ms())

    def make(self, cls: type[E], *, correlation_id: str | None = None, **fields: Any) -> E:
        """Build an event stamped with a fresh id and the clock's time."""
        eid = self.new_id()
        return cls(id=eid, ts=self.clock.ms(), correlation_id=correlation_id or eid,
                   source=fields.pop("source", self.source), **fields)

    def stream_key(self, cls_or_event: type[Event] | Event) -> str:
        return self.keys.stream(cls_or_event.STREAM)

    def on_publish(self, listener: Callable[[set[str]], None]) -> None:
        """In-process hint of which streams got new entries (the lock-step runner uses it)."""
        self._listeners.append(listener)

    def notify(self, streams: set[str]) -> None:
        if streams:
            for listener in self._listeners:
                listener(streams)

    async def publish(self, event: Event) -> str:
        key = self.stream_key(event)
        entry_id = await self.redis.xadd(key, encode(event), maxlen=self.maxlen, approximate=True)
        self.notify({key})
        return entry_id

    def tx(self) -> Tx:
        return Tx(self)


class Tx:
    """Outputs of one handling, committed atomically (MULTI/EXEC)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.pipe = bus.redis.pipeline(transaction=True)
        self.events: list[Event] = []
        self._streams: set[str] = set()
        self.after_commit: list[Callable[[], Any]] = []
        self.on_failure: list[Callable[[], Any]] = []  # run (sync) when the MULTI/EXEC itself fails
        self.scratch: dict[str, Any] = {}  # the handler's notes on this handling (e.g. what to undo on failure)

    def publish(self, event: Event) -> Event:
        key = self.bus.stream_key(event)
        self.pipe.xadd(key, encode(event), maxlen=self.bus.maxlen, approximate=True)
        self.events.append(event)
        self._streams.add(key)
        return event

    def emit(self, cls: type[E], *, correlation_id: str | None = None, **fields: Any) -> E:
        return self.publish(self.bus.make(cls, correlation_id=correlation_id, **fields))  # type: ignore[return-value]

    @property
    def empty(self) -> bool:
        """Nothing queued: no event, no state write."""
        return not self.events and not self.pipe.command_stack

    async def commit(self) -> list[Any]:
        try:
            result = await self.pipe.execute()
        except BaseException:
            for fn in self.on_failure:
                fn()
            self.on_failure.clear()
            raise
        self.bus.notify(self._streams)
        await self.run_after_commit()
        return result

    async def run_after_commit(self) -> None:
        for fn in self.after_commit:
            out = fn()
            if hasattr(out, "__await__"):
                await out
        self.after_commit.clear()
