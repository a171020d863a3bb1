"""IB's executions and commission reports, turned into our FILL events.

One FILL per execution (``fill_id`` = execId), published once, with IB's commission (joined by
execId; estimated from ``commission_per_contract`` after ``ibkr.commission_wait_s`` without a
report, ``detail["commission"] = "estimated"``). An order's terminal event waits for its fills
whose commission is still due. :class:`FillEvents` is a mixin of
:class:`~core.ibkr.broker_base.IbkrBrokerBase`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime
from typing import Any

from ib_async import Fill as IbFill
from ib_async import Trade

from core.execution.broker import BrokerEvent, BrokerEventKind
from core.ibkr.broker_base import IbkrBrokerBase
from core.ibkr.order_store import IbOrderRecord, Phase
from core.ibkr.orders import apply_fill, estimate_commission, make_fill

__all__ = ["FillEvents"]

log = logging.getLogger("quanticity.ibkr.broker")


class FillEvents(IbkrBrokerBase):
    """Executions and commission reports from IB (a mixin of the IB broker)."""

    def _on_exec(self, trade: Trade, fill: IbFill) -> None:
        try:
            self._exec(trade, fill)
        except Exception:
            log.exception("ibkr: execution handling failed")

    def _exec(self, trade: Trade, fill: IbFill) -> None:
        ex = fill.execution
        rec = self._record_for(ex.orderRef or trade.order.orderRef, ex.permId)
        if rec is None or ex.execId in self.seen_execs or ex.execId in rec.exec_ids:
            return
        self.seen_execs.add(ex.execId)
        if fill.commissionReport.execId == ex.execId:
            self._release(rec, fill, fill.commissionReport.commission, estimated=False)
            return
        handle = asyncio.get_running_loop().call_later(self.commission_wait_s, self._commission_due, ex.execId)
        self._pending[ex.execId] = (rec.order_id, fill, handle)

    def _on_commission(self, trade: Trade, fill: IbFill, report: Any) -> None:
        pending = self._pending.pop(report.execId, None)
        if pending is None:
            return  # already published (estimated, or replayed by reconciliation), or not ours
        oid, ib_fill, handle = pending
        handle.cancel()
        self._release(self.records[oid], ib_fill, report.commission, estimated=False)

    def _commission_due(self, exec_id: str) -> None:
        pending = self._pending.pop(exec_id, None)
        if pending is None:
            return
        oid, ib_fill, _ = pending
        log.warning("ibkr: no commission report for %s after %.1fs: estimated", exec_id, self.commission_wait_s)
        self._release(self.records[oid], ib_fill, None, estimated=True)

    def resolve_pending(self) -> None:
        """Publish the fills whose commission report arrived in a replay (reconciliation)."""
        for exec_id, (oid, ib_fill, handle) in list(self._pending.items()):
            stored = self.ib.wrapper.fills.get(exec_id)
            report = stored.commissionReport if stored is not None else None
            if report is not None and report.execId == exec_id:
                self._pending.pop(exec_id)
                handle.cancel()
                self._release(self.records[oid], ib_fill, report.commission, estimated=False)

    def _release(self, rec: IbOrderRecord, ib_fill: IbFill, commission: float | None, *, estimated: bool) -> None:
        self._queue(self.fill_event(rec, ib_fill, commission, estimated=estimated, ts=self.clock.now()))
        end = rec.pending_end
        if end is not None and not any(oid == rec.order_id for oid, _, _ in self._pending.values()):
            rec.pending_end = None
            self._end(rec, BrokerEventKind(end["kind"]), end["reason"], self.clock.now())

    def fill_event(self, rec: IbOrderRecord, ib_fill: IbFill, commission: float | None, *, estimated: bool,
                   ts: datetime) -> BrokerEvent:
        """Apply one execution to ``rec`` (once) and return its FILL event."""
        ex = ib_fill.execution
        now = self.clock.now()
        st = rec.state
        fill = next((f for f in st.fills if f.fill_id == ex.execId), None)
        if fill is None:
            qty = round(float(ex.shares))
            if commission is None or not math.isfinite(commission) or commission < 0 or commission > 1e9:
                commission, estimated = estimate_commission(qty, self.config.commission_per_contract), True
            fill = make_fill(st, exec_id=ex.execId, qty=qty, price=float(ex.price), commission=commission,
                             ts=min(ts, now))
            apply_fill(st, fill, now)
            rec.exec_ids.append(ex.execId)
            if not st.is_open:
                rec.phase = Phase.DONE
            self.store.save_soon(rec)
        self.seen_execs.add(ex.execId)
        detail = {**self._ids(rec), "exec_id": ex.execId}
        if estimated:
            detail["commission"] = "estimated"
        return self._event(BrokerEventKind.FILL, rec, now, fill=fill, detail=detail)
