"""A clock running ``speed`` times wall time from an anchor: ``run --mode demo --speed N``.

``now = sim_anchor + (wall_now - wall_anchor) * speed``. The anchor pair is what several
processes share (``core.clock.timeline`` keeps it in Redis), so every process of one demo
run reads the same simulated instant from the same wall clock. ``sleep(s)`` waits ``s / speed``
wall seconds and :meth:`wall_seconds` converts any simulated wait the same way.

Decision: ``now()`` never goes backwards. Re-anchoring (joining a timeline that another
process re-anchored) may move the timeline back by a fraction of a second; the clock then
holds its last reading until the timeline catches up.
"""

from __future__ import annotations

import asyncio
import math
import time as _time
from collections.abc import Callable
from datetime import UTC, datetime

from core.clock.clock import Clock


def check_speed(speed: float) -> float:
    """The speed as a float, or ValueError (a finite number >= 1)."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise ValueError(f"speed {speed!r}: expected a number >= 1") from None
    if not math.isfinite(value) or value < 1.0:
        raise ValueError(f"speed {speed!r}: expected a finite number >= 1")
    return value


class ScaledClock(Clock):
    def __init__(self, sim_anchor: datetime, speed: float = 1.0, *, wall_anchor: float | None = None,
                 wall: Callable[[], float] = _time.time) -> None:
        if sim_anchor.tzinfo is None:
            raise ValueError("ScaledClock needs an aware datetime")
        self._wall = wall
        self._speed = check_speed(speed)
        self._sim_anchor_ms = sim_anchor.timestamp() * 1000.0
        self._wall_anchor = float(wall() if wall_anchor is None else wall_anchor)
        self._last_ms = -math.inf

    # ------------------------------------------------------------------ reading
    def _raw_ms(self) -> float:
        return self._sim_anchor_ms + (self._wall() - self._wall_anchor) * 1000.0 * self._speed

    def ms(self) -> int:
        now = max(self._last_ms, self._raw_ms())
        self._last_ms = now
        return int(now)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ms() / 1000, tz=UTC)

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def anchor(self) -> tuple[int, float]:
        """(simulated instant in epoch ms, wall instant in epoch seconds) the timeline runs from."""
        return int(self._sim_anchor_ms), self._wall_anchor

    def reanchor(self, sim_anchor_ms: float, wall_anchor: float, speed: float | None = None) -> None:
        """Follow a timeline (re)anchored elsewhere; readings stay monotonic."""
        self._sim_anchor_ms = float(sim_anchor_ms)
        self._wall_anchor = float(wall_anchor)
        if speed is not None:
            self._speed = check_speed(speed)

    # ------------------------------------------------------------------ waiting
    def wall_seconds(self, seconds: float) -> float:
        return max(0.0, seconds) / self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.wall_seconds(seconds))

    @property
    def simulated(self) -> bool:
        # Not lock-step: services must not expect the runner to own time (SimClock does).
        return False
