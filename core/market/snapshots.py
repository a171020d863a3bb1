"""Typed reads of the market snapshots other services keep in Redis (``quote``, ``reference``).

Decision: a snapshot is validated when it is read; one that does not validate is treated as
absent by the reader (no book sizes, no reference data), counted
(``REJECTED{service=<reader>, reason="bad_<kind>_snapshot"}``) and logged, so a bad record
degrades one feature of one symbol and never fails the handling that read it.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from core.domain.values import Finite, Price, Size
from core.runtime import metrics

log = logging.getLogger("quanticity.market")


class QuoteSnapshot(BaseModel):
    """The ``quote`` snapshot the market service writes (only the fields readers use)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    symbol: str
    bid: Price
    ask: Price
    last: Price
    quote_ts: int
    bid_sizes: list[Size] | None = None
    ask_sizes: list[Size] | None = None


class ReferenceSnapshot(BaseModel):
    """The ``reference`` snapshot: 52-week IV range, next earnings, insider net shares."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    symbol: str = ""
    iv_52w_low: Price | None = None
    iv_52w_high: Price | None = None
    next_earnings: date | None = None
    insider_net_shares_30d: Finite | None = None


def read_snapshot(raw: str | bytes | None, model: type[BaseModel], reader: str, what: str) -> dict[str, Any] | None:
    """The snapshot as the JSON dict it was stored as when it validates against ``model``;
    None when absent or invalid (invalid is counted and logged)."""
    if raw is None:
        return None
    try:
        body = json.loads(raw)
        model.model_validate(body)
    except ValueError as exc:  # JSON and pydantic errors
        kind = model.__name__.removesuffix("Snapshot").lower()
        metrics.REJECTED.labels(reader, f"bad_{kind}_snapshot").inc()
        why = exc.errors()[0].get("msg") if isinstance(exc, ValidationError) else str(exc)
        log.warning("%s: %s snapshot of %s unusable, ignored: %s", reader, kind, what, str(why)[:200])
        return None
    return body
