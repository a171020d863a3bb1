"""A wall-speed clock shifted to another instant: ``run --mode demo`` uses it to play
the simulated market in real time, starting shortly before a session's open."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core.clock.clock import LiveClock


class OffsetClock(LiveClock):
    def __init__(self, starts_at: datetime) -> None:
        self._offset = starts_at - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    @property
    def offset(self) -> timedelta:
        return self._offset
