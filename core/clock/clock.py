"""Clocks. Nothing in the system reads the wall clock directly: services take
``now`` from a Clock. ``LiveClock`` is the wall clock; ``SimClock`` is moved by
the lock-step runner, which is how a whole day runs in seconds and how tier
delays of 60 s and 300 s are honoured exactly in simulated time."""

from __future__ import annotations

import asyncio
import time as _time
from datetime import UTC, datetime


class Clock:
    def now(self) -> datetime:  # aware, UTC
        raise NotImplementedError

    def ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def wall_seconds(self, seconds: float) -> float:
        """How long to wait on the wall clock for ``seconds`` of this clock's time to pass.
        The wall clock and an offset clock: the same; a clock running N x wall time: ``seconds / N``.
        A runner that computes a wait from ``now()`` differences passes it through here."""
        return seconds

    @property
    def simulated(self) -> bool:
        return False


class LiveClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)

    def ms(self) -> int:
        return _time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimClock(Clock):
    """Simulated time, advanced only by :meth:`set` / :meth:`advance` (never backwards)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock needs an aware datetime")
        self._ms = int(start.timestamp() * 1000)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._ms / 1000, tz=UTC)

    def ms(self) -> int:
        return self._ms

    def set_ms(self, ms: int) -> None:
        if ms < self._ms:
            raise ValueError("simulated time cannot go backwards")
        self._ms = ms

    def set(self, when: datetime) -> None:
        self.set_ms(int(when.timestamp() * 1000))

    def advance(self, seconds: float) -> None:
        self.set_ms(self._ms + round(seconds * 1000))

    async def sleep(self, seconds: float) -> None:
        # In lock-step the runner owns time; a service that sleeps just yields.
        await asyncio.sleep(0)

    @property
    def simulated(self) -> bool:
        return True
