"""Entries waiting for their contract's next live quote (hash ``pending_entries``) as the
execution service reads them back.

A stored entry is ``{"approval": ApprovalEvent JSON, "deadline_ms": int}``. Decision: an entry
that no longer reads back (broken JSON, an approval that no longer validates, e.g. after a
model became stricter) is *poison*: it is mapped to :data:`UNREADABLE` instead of raising, so
it never fails the handling of a genuine quote, and the service removes it and refuses it with
``BAD_INPUT``. :func:`salvage_fields` recovers what it can of the refused order's fields so the
refusal is still published as an ``OrderEvent`` for that correlation id.
"""

from __future__ import annotations

import json
import math
from typing import Any

from core.bus.events import ApprovalEvent

__all__ = ["UNREADABLE", "contract_key_of", "parse_pending", "salvage_fields"]

UNREADABLE = ""  # the contract key of a pending entry that does not read back


def parse_pending(raw: str) -> ApprovalEvent:
    """The approval of a stored pending entry. Raises on anything unreadable."""
    body = json.loads(raw)
    return ApprovalEvent.model_validate(body["approval"])


def contract_key_of(raw: str) -> str:
    """The contract a stored pending entry waits for, or :data:`UNREADABLE`."""
    try:
        return parse_pending(raw).signal.contract().key
    except Exception:  # noqa: BLE001 - any failure makes the entry poison, never the caller's error
        return UNREADABLE


def salvage_fields(raw: str | None, order_id: str) -> tuple[str, dict[str, Any] | None]:
    """(correlation id, OrderEvent contract fields or None) of an unreadable pending entry, as
    far as they can be read. The correlation id falls back to the signal id in ``ent-<id>``."""
    fallback = order_id.removeprefix("ent-")
    try:
        body = json.loads(raw or "")
        appr = body.get("approval") if isinstance(body, dict) else None
        appr = appr if isinstance(appr, dict) else {}
        sig = appr.get("signal") if isinstance(appr.get("signal"), dict) else {}
        ins = sig.get("instrument") if isinstance(sig.get("instrument"), dict) else {}
    except (ValueError, TypeError):
        return fallback, None
    corr = appr.get("correlation_id") or sig.get("id") or fallback
    try:
        strike = float(ins.get("strike") or 0.0)
    except (TypeError, ValueError):
        strike = 0.0
    try:
        qty = appr.get("qty") or sig.get("qty") or 1
        qty = int(qty) if isinstance(qty, int) or (isinstance(qty, float) and math.isfinite(qty)) else 1
        fields = {"symbol": str(sig["symbol"]), "expiry": str(ins.get("expiry") or ""),
                  "strike": strike if math.isfinite(strike) else 0.0, "right": str(ins.get("right") or ""),
                  "side": str(sig.get("side") or "BUY"), "qty": max(1, qty)}
    except (KeyError, TypeError, ValueError):
        return str(corr), None
    return str(corr), fields
