"""Typed reads of the shared records the position manager depends on.

Decision: every record another service (or an earlier run) wrote is validated with a typed
model when it is read. One bad record is a counted (``REJECTED{service="positions", reason}``),
logged rejection that affects only itself: a bad trade context opens the position with the
default exit plan (as an adopted one would be), a bad position record is left out of the
managed set (and logged as an error: it needs a person), a bad reference snapshot means "no
earnings date known", a bad account figure falls back to its default. Nothing raises out of a
handler for it, so no genuine event for the same contract is retried or dead-lettered.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from core.domain.signal import Signal
from core.domain.values import Count, Size
from core.positions.position import Position
from core.runtime import metrics

log = logging.getLogger("quanticity.positions")
SERVICE = "positions"


class TradeContext(BaseModel):
    """``trade_ctx`` hash (written by execution at approval, or at adoption)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    signal: Signal | None = None
    explanation: str = ""
    verdict: str = ""
    risk_pct: Size | None = None
    decided_by: str = ""
    qty: Count = 0
    adopted: bool = False


def _reject(reason: str, what: str, problem: str, *, error: bool = False) -> None:
    metrics.REJECTED.labels(SERVICE, reason).inc()
    (log.error if error else log.warning)("positions: %s %s rejected: %s", reason, what, problem[:200])


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}"
    return f"{type(exc).__name__}: {exc}"


def trade_context(correlation_id: str, raw: str | None) -> dict[str, Any]:
    """The trade's context as the JSON dict it was stored as, or {} when absent or invalid."""
    if not raw:
        return {}
    try:
        body = json.loads(raw)
        TradeContext.model_validate(body)
    except ValueError as exc:  # JSON and pydantic errors
        _reject("bad_trade_ctx", correlation_id, _why(exc))
        return {}
    return body


def position_records(raw: dict[str, str]) -> dict[str, Position]:
    """The ``positions`` hash as models, without the records that do not validate."""
    out: dict[str, Position] = {}
    for key in sorted(raw):
        try:
            out[key] = Position.model_validate(json.loads(raw[key])["position"])
        except (ValueError, KeyError, TypeError) as exc:
            _reject("bad_position_record", key, _why(exc), error=True)
    return out


def account_figure(h: dict[str, str], field: str, default: float) -> float:
    """A finite number from the ``account`` hash, else ``default`` (counted)."""
    raw = h.get(field)
    if not raw:
        return default
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if not math.isfinite(v):
        _reject("bad_account_field", field, f"{raw!r}")
        return default
    return v
