"""Tolerant readers of raw values, shared by the signal check and the risk rules.

Each reader takes anything (a model attribute, a JSON value, garbage) and returns a plain
typed value or ``None`` / a problem text; none of them raises. ``MISSING`` marks a field that
is absent, as opposed to present and ``None``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from pydantic import ValidationError

MISSING: Any = object()


def get_field(obj: Any, key: str) -> Any:
    """``obj[key]`` for mappings, ``obj.key`` otherwise; ``MISSING`` when absent."""
    if obj is None or obj is MISSING:
        return MISSING
    if isinstance(obj, Mapping):
        return obj.get(key, MISSING)
    try:
        return getattr(obj, key, MISSING)
    except Exception:  # noqa: BLE001 - a broken property is just "missing"
        return MISSING


def absent(x: Any) -> bool:
    return x is MISSING or x is None


def as_number(x: Any) -> float | None:
    """A real number as float (NaN/inf kept); None when ``x`` is not a number."""
    if absent(x) or isinstance(x, bool):
        return None
    if isinstance(x, Enum):
        x = x.value
    if isinstance(x, str):
        try:
            return float(x.strip())
        except ValueError:
            return None
    if isinstance(x, numbers.Real):
        try:
            return float(x)
        except OverflowError:
            return math.inf if x > 0 else -math.inf  # type: ignore[operator]
        except (TypeError, ValueError):
            return None
    return None


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def as_code(x: Any) -> str | None:
    """Enum/str -> stripped upper-case string; None otherwise."""
    if isinstance(x, Enum):
        x = x.value
    if isinstance(x, str):
        return x.strip().upper()
    return None


def as_aware(x: Any) -> tuple[datetime | None, str | None]:
    """(aware datetime, None) or (None, problem)."""
    if absent(x):
        return None, "missing"
    dt: Any = x
    if isinstance(x, str):
        try:
            dt = datetime.fromisoformat(x.strip())
        except ValueError:
            return None, f"unparseable timestamp {x!r}"
    elif isinstance(x, numbers.Real) and not isinstance(x, bool):
        v = float(x)
        if not math.isfinite(v):
            return None, f"non-finite timestamp {x!r}"
        if abs(v) > 2e10:  # milliseconds, like pydantic
            v /= 1000.0
        try:
            dt = datetime.fromtimestamp(v, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None, f"timestamp out of range {x!r}"
    if not isinstance(dt, datetime):
        return None, f"not a timestamp: {x!r}"
    try:
        if dt.tzinfo is None or dt.utcoffset() is None:
            return None, "timestamp has no timezone"
    except Exception:  # noqa: BLE001 - exotic tzinfo
        return None, "timestamp has an unusable timezone"
    return dt, None


def as_date(x: Any) -> tuple[date | None, str | None]:
    if absent(x):
        return None, "missing"
    if isinstance(x, datetime):
        return x.date(), None
    if isinstance(x, date):
        return x, None
    if isinstance(x, str):
        try:
            return date.fromisoformat(x.strip()), None
        except ValueError:
            return None, f"unparseable date {x!r}"
    return None, f"not a date: {x!r}"


def positive(x: float | None) -> bool:
    return finite(x) and x > 0  # type: ignore[operator]


def summarise_validation(e: ValidationError, limit: int = 6) -> str:
    parts = []
    for err in e.errors()[:limit]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = e.error_count() - limit
    if more > 0:
        parts.append(f"... {more} more")
    return "; ".join(parts)
