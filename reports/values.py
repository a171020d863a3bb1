"""Small value helpers every report module shares: epoch milliseconds, New York time labels,
finite floats (anything else is ``None``)."""

from __future__ import annotations

import math
from datetime import datetime

from core.clock.calendar import NY


def epoch_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def ny_label(ms: int, fmt: str = "%H:%M") -> str:
    return datetime.fromtimestamp(ms / 1000, tz=NY).strftime(fmt)


def finite(x: object) -> float | None:
    try:
        f = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None

