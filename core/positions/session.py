"""What the exit plan needs to know about the current NY trading session.

The wrapper builds it from the NYSE calendar (holidays, 13:00 early closes);
:meth:`SessionInfo.regular` builds a normal 09:30-16:00 session for tests and the
simulator. ``flat_by`` is when short-dated positions must be flat (15:55 on a normal
day, 12:55 on an early close).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict

from core.execution.pricing import ny, ny_at

__all__ = ["SessionInfo"]


class SessionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_date: date
    open: AwareDatetime
    close: AwareDatetime
    flat_by: AwareDatetime
    next_session_date: date | None = None  # None: next weekday that is not in ``holidays``
    holidays: tuple[date, ...] = ()

    @classmethod
    def regular(
        cls,
        session_date: date,
        *,
        close: time = time(16, 0),
        flat_minutes_before_close: int = 5,
        next_session_date: date | None = None,
        holidays: tuple[date, ...] = (),
    ) -> SessionInfo:
        c = ny_at(session_date, close)
        return cls(
            session_date=session_date, open=ny_at(session_date, time(9, 30)), close=c,
            flat_by=c - timedelta(minutes=flat_minutes_before_close),
            next_session_date=next_session_date, holidays=tuple(holidays),
        )

    @classmethod
    def for_time(cls, now: datetime, **kw: object) -> SessionInfo:
        """A regular session on ``now``'s New York date."""
        return cls.regular(ny(now).date(), **kw)  # type: ignore[arg-type]

    def _hol(self) -> np.ndarray:
        return np.array(sorted(self.holidays), dtype="datetime64[D]")

    def next_session(self) -> date:
        if self.next_session_date is not None:
            return self.next_session_date
        hol = self._hol()
        d = np.busday_offset(np.datetime64(self.session_date, "D"), 0, roll="forward", holidays=hol)
        d = np.busday_offset(d, 1, holidays=hol)
        return d.astype(object)

    def sessions_between(self, start: date, end: date) -> int:
        """Trading sessions in ``[start, end)`` (weekdays minus ``holidays``)."""
        hol = self._hol()
        return int(np.busday_count(np.datetime64(start, "D"), np.datetime64(end, "D"), holidays=hol))
