"""The demo's progress on stderr.

On a terminal: one line redrawn in place (``\\r``) every simulated minute - a bar and the percent
of the simulated session, the New York time, counts of signals, order events and deliveries.
Anywhere else (a log file, a pipe, CI): a plain line every ``every_min`` simulated minutes, each
ending in ``\\n``, and never a ``\\r``. Counts are read with XLEN (cheap).
"""

from __future__ import annotations

from datetime import datetime
from typing import TextIO

from core.bus.bus import Bus
from core.bus.events import NY

BAR = 24


class Progress:
    def __init__(self, bus: Bus, start: datetime, end: datetime, stream: TextIO, *, enabled: bool = True,
                 tty: bool | None = None, every_min: int = 30) -> None:
        self.bus = bus
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty() if tty is None else tty
        self.every_min = every_min
        self.start_s, self.end_s = start.timestamp(), end.timestamp()
        self._last = -1  # the last minute (terminal) or bucket of every_min minutes (plain) written
        self._at: datetime | None = None  # the instant of the last line

    def percent(self, now: datetime) -> float:
        span = self.end_s - self.start_s
        return 100.0 if span <= 0 else max(0.0, min(100.0, (now.timestamp() - self.start_s) / span * 100))

    async def counts(self) -> tuple[int, int, int]:
        r, k = self.bus.redis, self.bus.keys
        return (await r.xlen(k.stream("signals")), await r.xlen(k.stream("orders")),
                await r.xlen(k.stream("deliveries")))

    def line(self, now: datetime, signals: int, orders: int, deliveries: int) -> str:
        pct = self.percent(now)
        ny = now.astimezone(NY)
        counts = f"signals {signals:3d} | order events {orders:4d} | deliveries {deliveries:4d}"
        if not self.tty:
            return f"demo: {pct:5.1f}% simulated {ny:%H:%M} New York | {counts}\n"
        filled = round(pct / 100 * BAR)
        return f"\r  [{'#' * filled}{'.' * (BAR - filled)}] {pct:5.1f}% {ny:%H:%M} ET | {counts} "

    async def step(self, now: datetime) -> None:
        if not self.enabled:
            return
        ny = now.astimezone(NY)
        minute = ny.hour * 60 + ny.minute
        mark = minute if self.tty else minute // max(1, self.every_min)
        if mark == self._last:
            return
        self._last = mark
        self._at = now
        self.stream.write(self.line(now, *await self.counts()))
        self.stream.flush()

    async def finish(self, end: datetime) -> None:
        """The 100% line unless the last one was it (a terminal: redrawn, then ended with a newline)."""
        if not self.enabled:
            return
        last = "" if self._at == end else self.line(end, *await self.counts())
        self.stream.write(last + ("\n" if self.tty else ""))
        self.stream.flush()
