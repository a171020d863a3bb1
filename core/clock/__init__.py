"""Time: the Clock every service reads ``now`` from, and the NYSE calendar."""

from core.clock.calendar import NY, NyseCalendar, Session
from core.clock.clock import Clock, LiveClock, SimClock

__all__ = ["NY", "Clock", "LiveClock", "NyseCalendar", "Session", "SimClock"]
