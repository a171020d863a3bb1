"""Lock-step runner: drives every service on a SimClock.

At each simulated instant ``t`` it runs the timers that are due (interval timers
and ``next_due`` work), then drains every consumer until the bus is quiet, and
repeats until nothing more is due at ``t``; then it jumps straight to the next
instant anything is due. Event handling happens "instantly" in simulated time,
so tier delays of 60 s / 300 s land exactly, and a day runs in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from core.bus.consumer import Consumer
from core.clock.clock import SimClock
from core.runtime.consumers import consumer_for
from core.runtime.service import Service

log = logging.getLogger("quanticity.runner")
StepHook = Callable[[datetime], Awaitable[None] | None]


class SimRunner:
    def __init__(self, services: Sequence[Service], clock: SimClock, *, max_rounds_per_instant: int = 200) -> None:
        if not services:
            raise ValueError("no services to run")
        self.services = list(services)
        self.clock = clock
        self.bus = self.services[0].bus
        self.consumers: list[tuple[Service, Consumer]] = []
        for svc in self.services:
            c = consumer_for(svc)
            if c is not None:
                self.consumers.append((svc, c))
        self._dirty: set[str] = set()
        self.bus.on_publish(self._dirty.update)
        self.max_rounds = max_rounds_per_instant
        self.steps = 0
        self.events_handled = 0

    async def drain(self) -> int:
        total = 0
        while self._dirty:
            current = set(self._dirty)
            self._dirty.clear()
            for svc, cons in self.consumers:
                if current.isdisjoint(cons.stream_keys) and not cons.needs_poll:
                    continue
                n = await cons.poll(svc.handle)
                total += n
                if n >= cons.batch or cons.needs_poll:
                    self._dirty.update(cons.stream_keys)
        self.events_handled += total
        return total

    async def run(self, start: datetime, end: datetime, on_step: StepHook | None = None) -> None:
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        self.clock.set_ms(start_ms)
        for svc in self.services:
            await svc.start()
        for _svc, cons in self.consumers:
            await cons.ensure_groups()
            self._dirty.update(cons.stream_keys)
        next_timer: dict[int, int] = {
            i: start_ms for i, s in enumerate(self.services) if s.interval_s}
        t = start_ms
        try:
            while t <= end_ms:
                self.clock.set_ms(t)
                now = self.clock.now()
                due_ms: dict[int, int | None] = {}
                for _ in range(self.max_rounds):
                    ran = False
                    for i, svc in enumerate(self.services):
                        due = i in next_timer and next_timer[i] <= t
                        if not due:
                            nd = await svc.next_due(now)
                            due_ms[i] = None if nd is None else int(nd.timestamp() * 1000)
                            due = due_ms[i] is not None and due_ms[i] <= t  # type: ignore[operator]
                        if due:
                            await svc.on_timer(now)
                            ran = True
                            if i in next_timer and next_timer[i] <= t:
                                step = int(svc.interval_s * 1000)  # type: ignore[operator]
                                next_timer[i] = t + step - ((t - start_ms) % step)
                    handled = await self.drain()
                    if not ran and not handled:
                        break
                else:
                    log.error("instant %s did not settle after %d rounds", now.isoformat(), self.max_rounds)
                self.steps += 1
                if on_step is not None:
                    res = on_step(now)
                    if res is not None:
                        await res
                # the last round ran nothing, so the next_due values it read are still current
                candidates = list(next_timer.values()) + [v for v in due_ms.values() if v is not None]
                future = [c for c in candidates if c > t]
                if not future:
                    break
                t = min(future)
        finally:
            await self.drain()
            for svc in self.services:
                await svc.stop()
