"""What every part of the IB broker shares: its state, the event queue, the account views, how an
order ends.

:class:`IbkrBrokerBase` holds the order records (``records``, Redis-backed through
:class:`~core.ibkr.order_store.OrderStore`), the ib_async ``Trade`` of each order, the execIds seen,
the queue of :class:`~core.execution.broker.BrokerEvent` s the execution service drains, and the
account views (positions IB reports, open orders). The parts that act on them are mixins of it:
:mod:`core.ibkr.broker_orders` (place, reprice, cancel), :mod:`core.ibkr.broker_status` (IB's
order statuses and errors), :mod:`core.ibkr.broker_fills` (executions and commissions);
:class:`core.ibkr.broker.IbkrBroker` puts them together with the lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from ib_async import Fill as IbFill
from ib_async import Trade

from core.clock.clock import Clock
from core.domain.reasons import Reason
from core.domain.signal import Side
from core.execution.broker import Broker, BrokerEvent, BrokerEventKind, BrokerPosition, QuoteSnapshot
from core.execution.orders import OrderState, OrderStatus
from core.execution.policy import OrderPolicy, PolicyConfig
from core.ibkr.connection import IbConnection
from core.ibkr.contracts import ContractCache, from_ib_option
from core.ibkr.order_store import IbOrderRecord, OrderStore, Phase

__all__ = ["UNAVAILABLE", "IbkrBrokerBase"]

log = logging.getLogger("quanticity.ibkr.broker")

UNAVAILABLE = Reason.BROKER_UNAVAILABLE


class IbkrBrokerBase(Broker):
    """The IB broker's shared state and plumbing (see the module docstring)."""

    def __init__(self, conn: IbConnection, policy_config: PolicyConfig, *, redis: Any, keys: Any, clock: Clock,
                 commission_wait_s: float = 5.0, qualify_batch: int = 20) -> None:
        self.conn = conn
        self.config = policy_config
        self.policy = OrderPolicy(policy_config)
        self.redis, self.keys, self.clock = redis, keys, clock
        self.commission_wait_s = float(commission_wait_s)
        self.store = OrderStore(redis, keys)
        self.contracts = ContractCache(conn, qualify_batch)
        self.records: dict[str, IbOrderRecord] = {}
        self.trades: dict[str, Trade] = {}  # order id -> ib_async Trade of the current connection
        self.seen_execs: set[str] = set()  # fills queued, handed out or awaiting commission (this process)
        self.adopted: dict[str, int] = {}  # contract key -> contracts adopted (Redis + this process)
        self.reconciliations = 0
        self.reconcile_due = False  # the last reconciliation failed: retry on the timer
        self._lost = False  # the connection dropped since the last reconciliation
        self._quotes: dict[str, QuoteSnapshot] = {}
        self._events: list[BrokerEvent] = []
        self._pending: dict[str, tuple[str, IbFill, asyncio.TimerHandle]] = {}  # execId -> awaiting commission
        self._lock = asyncio.Lock()  # placement and reconciliation never interleave
        self._loaded = False
        self._hooked = False

    @property
    def ib(self) -> Any:
        return self.conn.ib

    # ------------------------------------------------------------------ push channel
    def drain_events(self) -> list[BrokerEvent]:
        out, self._events = self._events, []
        return out

    def requeue(self, events: list[BrokerEvent]) -> None:
        """Give back drained events whose publication failed (they go first, the service is woken)."""
        self._events[:0] = events
        if events and self._wake is not None:
            self._wake()

    def _queue(self, *events: BrokerEvent) -> None:
        if not events:
            return
        self._events.extend(events)
        if self._wake is not None:
            self._wake()

    def queued(self) -> list[BrokerEvent]:
        """Events queued and not drained yet (reconciliation counts their fills)."""
        return list(self._events)

    def pending_fills(self) -> list[tuple[IbOrderRecord, IbFill]]:
        """Executions waiting for their commission report (not applied to any order yet)."""
        return [(self.records[oid], f) for oid, f, _ in self._pending.values() if oid in self.records]

    def record_published(self, pipe: Any, events: list[BrokerEvent]) -> None:
        """Mark the execIds of FILL events (and ADOPTED quantities) on the service's transaction."""
        fills = {e.fill.fill_id: e.order_id for e in events if e.kind == BrokerEventKind.FILL and e.fill}
        self.store.mark_published(pipe, fills, self.clock.ms())
        for e in events:
            if e.kind == BrokerEventKind.ADOPTED and e.position is not None:
                self.store.mark_adopted(pipe, e.contract_key, e.position.qty)

    def last_quote(self, contract_key: str) -> QuoteSnapshot | None:
        return self._quotes.get(contract_key)

    # ------------------------------------------------------------------ account views
    def held_qty(self, contract_key: str) -> int:
        """Contracts IB says the account holds (long) in ``contract_key``."""
        return sum(int(p.position) for p in self._ib_positions()
                   if p.position > 0 and _key(p.contract) == contract_key)

    def committed_sell_qty(self, contract_key: str, exclude: str | None = None) -> int:
        return sum(r.state.remaining for r in self.records.values()
                   if r.live and r.order_id != exclude and r.state.request.side == Side.SELL
                   and r.contract_key == contract_key)

    def _ib_positions(self) -> list[Any]:
        acct = self.conn.account
        return [p for p in self.ib.positions() if not acct or p.account == acct]

    async def positions(self) -> list[BrokerPosition]:
        out = []
        for p in self._ib_positions():
            c = p.contract
            if c.secType != "OPT" or p.position <= 0:
                continue
            contract = from_ib_option(c)
            out.append(BrokerPosition(contract=contract, qty=int(p.position),
                                      avg_cost=round(float(p.avgCost) / contract.multiplier, 6)))
        return sorted(out, key=lambda b: b.contract.key)

    async def open_orders(self) -> list[OrderState]:
        live = sorted((r for r in self.records.values() if r.live), key=lambda r: (r.state.placed_ts, r.order_id))
        return [r.state.model_copy(deep=True) for r in live]

    def order(self, order_id: str) -> OrderState:
        return self.records[order_id].state.model_copy(deep=True)

    # ------------------------------------------------------------------ ib_async callbacks
    def _record_for(self, order_ref: str, perm_id: int = 0) -> IbOrderRecord | None:
        """Our record of an IB order or execution, by ``orderRef`` (= our order id)."""
        rec = self.records.get(order_ref or "")
        if rec is None:
            return None
        if rec.perm_id and perm_id and rec.perm_id != perm_id:
            return None  # same orderRef on another order (placed by hand): not ours
        return rec

    # ------------------------------------------------------------------ ending orders
    def _end(self, rec: IbOrderRecord, kind: BrokerEventKind, reason: str, now: datetime, *,
             emit: bool = True) -> BrokerEvent | None:
        """Cancelled or rejected (after the fills still waiting for a commission)."""
        if not rec.state.is_open:
            return None
        if any(oid == rec.order_id for oid, _, _ in self._pending.values()):
            rec.pending_end = {"kind": kind.value, "reason": reason}
            self.store.save_soon(rec)
            return None
        st = rec.state
        st.status = OrderStatus.REJECTED if kind == BrokerEventKind.REJECTED else OrderStatus.CANCELLED
        st.reason = reason
        st.updated_ts = now
        rec.phase = Phase.DONE if rec.phase != Phase.NEVER_PLACED else rec.phase
        self.store.save_soon(rec)
        ev = self._event(kind, rec, now, reason=reason, detail=self._ids(rec))
        if emit:
            self._queue(ev)
        return ev

    def end(self, rec: IbOrderRecord, kind: BrokerEventKind, reason: str) -> BrokerEvent | None:
        """End ``rec`` without queueing the event (reconciliation returns it)."""
        return self._end(rec, kind, reason, self.clock.now(), emit=False)

    # ------------------------------------------------------------------ helpers
    def _ids(self, rec: IbOrderRecord) -> dict[str, Any]:
        return {"ib_order_id": rec.ib_order_id, "perm_id": rec.perm_id, "ib_status": rec.ib_status}

    @staticmethod
    def _event(kind: BrokerEventKind, rec: IbOrderRecord, now: datetime, **kw: Any) -> BrokerEvent:
        st = rec.state
        return BrokerEvent(kind=kind, ts=now, order_id=st.order_id, correlation_id=st.correlation_id,
                           contract_key=st.contract_key, order=st.model_copy(deep=True), **kw)


def _key(c: Any) -> str | None:
    if getattr(c, "secType", "") != "OPT":
        return None
    try:
        return from_ib_option(c).key
    except (ValueError, TypeError):
        return None
