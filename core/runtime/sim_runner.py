"""Lock-step runner: drives every service on a SimClock.

At each simulated instant ``t`` it runs the timers that are due (interval timers
and ``next_due`` work), then drains every consumer until the bus is quiet, and
repeats until nothing more is due at ``t``; then it jumps straight to the next
instant anything is due. Event handling happens "instantly" in simulated time,
so tier delays of 60 s / 300 s land exactly, and a day runs in seconds.

Decision: a service's ``next_due`` answer (a time still ahead, or ``None``: nothing scheduled) is
reused, not asked again, while the service has done nothing since (no event handled, no timer run,
no wake) and the New York day has not changed; an answer that has come due is asked again. This
holds because a due time moves earlier only through the service's own work (verified per service):
approvals' card expiries and the distributor's delivery queue are added to only by their own
``handle``/``on_timer`` (a Telegram/CLI claim only removes a card: the answer moves later); the
reports schedule moves only later as time passes while its next build is ahead, and a ``None``
from it (nothing in its 15-day window) can change only when the day does. A reused answer is
thus never later than the true one: at worst the runner stops at an instant where nothing is
due, asks again and moves on; no work runs early or late. A service whose ``next_due`` reads
state others write sets ``next_due_reusable = False`` and is asked every round; services that
keep the base ``next_due`` are never asked. ``on_step`` hooks must not schedule work for a
service behind its back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime

from core.bus.consumer import Consumer
from core.clock.calendar import NY
from core.clock.clock import SimClock
from core.runtime.consumers import consumer_for
from core.runtime.service import Service

log = logging.getLogger("quanticity.runner")
StepHook = Callable[[datetime], Awaitable[None] | None]


def _ms_or_none(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def _never_due(svc: Service) -> bool:
    """The service keeps the base ``next_due`` (nothing ever scheduled): no need to ask it."""
    return type(svc).next_due is Service.next_due and "next_due" not in vars(svc)


class SimRunner:
    def __init__(self, services: Sequence[Service], clock: SimClock, *, max_rounds_per_instant: int = 200,
                 reuse_next_due: bool = True) -> None:
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
        self._acted: set[int] = set()  # services (id) that handled entries since their next_due was read
        # service index -> its last next_due answer (ms or None) and the New York day it was read
        self._known: dict[int, tuple[int | None, date]] = {}
        self.reuse_next_due = reuse_next_due  # False: ask every service at every round (the reference)
        self.next_due_calls = 0
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
                if n:
                    self._acted.add(id(svc))
                total += n
                if n >= cons.batch or cons.needs_poll:
                    self._dirty.update(cons.stream_keys)
        self.events_handled += total
        return total

    async def _next_due(self, i: int, svc: Service, now: datetime, t: int) -> int | None:
        """``svc.next_due(now)`` in ms, or its last answer while that still holds (see the module
        docstring): not come due yet, read the same New York day, the service idle since."""
        if not self.reuse_next_due:
            self.next_due_calls += 1
            return _ms_or_none(await svc.next_due(now))
        if _never_due(svc):
            return None
        day = now.astimezone(NY).date()
        if id(svc) in self._acted or svc.woken.is_set() or not svc.next_due_reusable:
            self._acted.discard(id(svc))
            self._known.pop(i, None)
        known = self._known.get(i)
        if known is not None and known[1] == day and (known[0] is None or known[0] > t):
            return known[0]
        self.next_due_calls += 1
        ms = _ms_or_none(await svc.next_due(now))
        self._known[i] = (ms, day)
        return ms

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
                            due_ms[i] = await self._next_due(i, svc, now, t)
                            due = due_ms[i] is not None and due_ms[i] <= t  # type: ignore[operator]
                        if due:
                            self._known.pop(i, None)  # its own work may move its next_due
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
