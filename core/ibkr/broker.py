"""IbkrBroker: the :class:`~core.execution.broker.Broker` that trades at Interactive Brokers.

It manages orders with the same :class:`~core.execution.policy.OrderPolicy` as the paper broker;
only what it does with the answers differs: a reprice modifies the *same* IB order id
(``placeOrder`` with the new ``lmtPrice``), a cancel is ``cancelOrder``, and fills, cancels and
rejects arrive later from IB on the push channel (queued :class:`BrokerEvent` s, the service is
woken and drains them).

Placement (:meth:`IbkrBroker.place`), in this order:

1. idempotent on ``order_id``: an order the store knows (sent, acknowledged, or still
   ``placing`` after a crash) returns its state and is never sent twice; only an order
   reconciliation found ``never_placed`` is placed again;
2. refused while disconnected (``BROKER_UNAVAILABLE``: nothing here can be trusted about the
   account);
3. the persistent halt is read before every **entry**. Exits are placed while halted, on
   purpose: a halt stops new risk, it must never block ``/flatten`` or a stop-loss;
4. :func:`~core.execution.guard.check_order` with the quantity IB says the account holds in
   that contract and the remaining quantity of working SELL orders on it: anything but a
   single-leg long option BUY, or a SELL beyond what is held, never reaches IB;
5. a fresh quote (``quote_age_problem`` / ``refuse_entry`` / ``initial_limit``, as the paper
   broker). A MKT exit (``flatten``) needs no quote: a stale feed must not keep us in a trade;
6. the contract is qualified (conId), the record is written to Redis (phase ``placing`` with
   the IB order id reserved), then ``placeOrder``, then phase ``sent``.

Push events: every IB status change of a working order is a STATUS event; a fill is one FILL
per execution (``fill_id`` = execId), published once, with IB's commission (joined by execId;
estimated from ``commission_per_contract`` after ``ibkr.commission_wait_s`` without a report,
``detail["commission"] = "estimated"``); a refused order (error 201, Inactive) is REJECTED
with IB's message; a cancel IB confirmed is CANCELLED with the reason the policy or the client
gave. A terminal event waits for the fills whose commission is still due, so it never comes
before them. :meth:`IbkrBroker.place` returns the state as of ``placeOrder`` (WORKING); whatever
IB answers after that (even at once: a reject, a marketable fill) comes as events.
Reconciliation (:mod:`core.ibkr.reconcile`) runs at start and after every reconnect (not when
only a market-data farm flapped).

The broker is split along those seams: :mod:`core.ibkr.broker_base` (shared state, event queue,
account views, ending an order), :mod:`core.ibkr.broker_orders` (place, reprice, cancel),
:mod:`core.ibkr.broker_status` (IB order statuses and errors), :mod:`core.ibkr.broker_fills`
(executions and commissions); this module joins them with the lifecycle and the timer.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.execution.broker import BrokerEvent
from core.execution.policy import PolicyConfig
from core.execution.pricing import ny
from core.ibkr.broker_base import UNAVAILABLE
from core.ibkr.broker_fills import FillEvents
from core.ibkr.broker_orders import OrderSending
from core.ibkr.broker_status import StatusEvents
from core.ibkr.connection import IbConnection
from core.ibkr.reconcile import reconcile

if TYPE_CHECKING:
    from core.runtime.service import Context

__all__ = ["UNAVAILABLE", "IbkrBroker"]

log = logging.getLogger("quanticity.ibkr.broker")

KEEP_EXPIRED_DAYS = 3  # terminal records of contracts expired longer ago are dropped at start
KEEP_PUBLISHED_DAYS = 10  # IB replays a few days of executions at most


class IbkrBroker(OrderSending, StatusEvents, FillEvents):
    name = "ibkr"

    @classmethod
    def from_context(cls, ctx: Context, policy_config: PolicyConfig) -> IbkrBroker:
        s = ctx.settings.ibkr
        conn = IbConnection(s, "execution", redis=ctx.redis, keys=ctx.keys, bus=ctx.bus, clock=ctx.clock)
        return cls(conn, policy_config, redis=ctx.redis, keys=ctx.keys, clock=ctx.clock,
                   commission_wait_s=s.commission_wait_s, qualify_batch=s.qualify_batch)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Load the order store, connect (``IbUnavailable`` if IB cannot be reached) and reconcile."""
        await self._load()
        if not self._hooked:
            self._hooked = True
            ib = self.conn.ib
            ib.orderStatusEvent += self._on_status
            ib.execDetailsEvent += self._on_exec
            ib.commissionReportEvent += self._on_commission
            ib.errorEvent += self._on_error
            self.conn.on_ready(self._on_ready)
            self.conn.on_lost(self._on_lost)
        await self.conn.start()

    async def stop(self) -> None:
        for exec_id, (_, _, handle) in self._pending.items():
            handle.cancel()
            self.seen_execs.discard(exec_id)  # not published: the next start replays it from IB
        self._pending.clear()
        await self.conn.stop()
        await self.store.close()

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "connected": "1" if self.conn.connected else "0",
                "account": self.conn.mask_account(self.conn.account)}

    async def _load(self) -> None:
        if self._loaded:
            return
        records = await self.store.load()
        cutoff = ny(self.clock.now()).date() - timedelta(days=KEEP_EXPIRED_DAYS)
        old = [oid for oid, r in records.items() if not r.live and r.state.request.is_option
               and r.state.request.option.expiry < cutoff]
        await self.store.delete(old)
        for oid in old:
            records.pop(oid)
        self.records = records
        self.adopted = await self.store.adopted()
        await self.store.prune_published(self.clock.ms() - KEEP_PUBLISHED_DAYS * 86_400_000)
        self._loaded = True

    def _on_lost(self) -> None:
        # ib_async's Trade objects kept in ``trades`` stay usable for modify / cancel by IB order id
        # (1100 -> 1102 keeps the socket and them); reconciliation re-links them after a reconnect
        self._lost = True

    async def _on_ready(self, first: bool) -> None:
        """After the first connect and every reconnect: reconcile with the account, queue what it
        found (a failed reconciliation is tried again on the next timer). ``on_ready`` also fires
        when a market-data farm comes back (2104 after 2103) with the socket up: nothing to
        reconcile then."""
        if first or self._lost:
            self._lost = False
            await self.reconcile_now()

    async def reconcile_now(self) -> None:
        """Reconcile now (also what a test or an admin command may call)."""
        async with self._lock:
            self.reconcile_due = False
            try:
                events = await reconcile(self)
            except Exception as exc:  # any failure: log, retry on the next timer
                self.reconcile_due = True
                log.error("ibkr: reconciliation failed (%s: %s); retrying on the next timer",
                          type(exc).__name__, exc, exc_info=not isinstance(exc, (TimeoutError, OSError)))
                return
            self.reconciliations += 1
        self._queue(*events)

    async def on_timer(self, now: datetime) -> list[BrokerEvent]:
        """Time-only rules (timeout, day end) for every working order, quote or not."""
        if self.reconcile_due and self.conn.connected and not self._lock.locked():
            await self.reconcile_now()
        for rec in self._working():
            why = self.policy.time_cancel(rec.state, now)
            if why is not None:
                self._request_cancel(rec, why)
        return []
