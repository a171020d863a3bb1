"""Approved signals whose entry order never filled, from the order events in the streams.

An approved signal becomes an entry order (``core.execution``) whose :class:`OrderEvent` updates
and :class:`FillEvent` fills carry the approval's ``correlation_id``. A signal approved in the
report's window with no entry fill (and no entry order update with a filled quantity) is listed
with what became of its order: cancelled or refused (with the order's reason and time), still
working at the report's time, or no order seen at all.

Models only import :mod:`reports.model` for type checking (``model`` imports this module).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from core.bus.events import ApprovalEvent, FillEvent, OrderEvent
from core.clock.calendar import NY

if TYPE_CHECKING:
    from reports.model import SignalRow

CLOSED_WORDS = {"cancelled": "cancelled", "rejected": "refused"}


class UnfilledRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal_id: str
    time: str                        # NY HH:MM of the approval
    strategy: str
    contract: str
    qty: int
    limit: float
    state: str                       # cancelled | refused | working | no order
    at: str = ""                     # NY HH:MM of the order's last update
    reason: str = ""
    text: str                        # "order cancelled at 09:50 (timeout)"


def _hm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=NY).strftime("%H:%M")


def _state(last: OrderEvent | None, report_time: str) -> tuple[str, str, str, str]:
    """(state, at, reason, text) of an entry order from its last update."""
    if last is None:
        return "no order", "", "", "no entry order seen"
    at = _hm(last.ts)
    word = CLOSED_WORDS.get(last.status)
    if word is not None:
        why = f" ({last.reason})" if last.reason else ""
        return word, at, last.reason, f"order {word} at {at}{why}"
    return "working", at, last.reason, f"order still working at {report_time} (last update {at})"


def build_unfilled(signals: list[SignalRow], approvals: list[ApprovalEvent], orders: list[OrderEvent],
                   fills: list[FillEvent], report_time: str) -> list[UnfilledRow]:
    """Approved signals (``signals`` rows with decision ``approved``) without an entry fill."""
    corr: dict[str, str] = {}
    for a in approvals:
        if a.decision == "approved":
            corr[a.signal.id] = a.correlation_id
    filled = {f.correlation_id for f in fills if f.purpose == "entry"}
    last: dict[str, OrderEvent] = {}
    for o in orders:
        if o.purpose != "entry":
            continue
        if o.filled_qty > 0:
            filled.add(o.correlation_id)
        last[o.correlation_id] = o  # stream order: the newest update wins
    out: list[UnfilledRow] = []
    for s in signals:
        c = corr.get(s.signal_id)
        if s.decision != "approved" or c is None or c in filled:
            continue
        state, at, reason, text = _state(last.get(c), report_time)
        out.append(UnfilledRow(signal_id=s.signal_id, time=s.time, strategy=s.strategy, contract=s.contract,
                               qty=s.qty, limit=s.limit, state=state, at=at, reason=reason, text=text))
    return out
