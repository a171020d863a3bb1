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
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ib_async import Contract, Trade
from ib_async import Fill as IbFill

from core.clock.clock import Clock
from core.control.halt import is_halted
from core.domain.contract import OptionContract
from core.domain.reasons import Reason
from core.domain.signal import Side
from core.execution.broker import Broker, BrokerEvent, BrokerEventKind, BrokerPosition, QuoteSnapshot
from core.execution.guard import OrderRejected, check_order
from core.execution.orders import OrderPurpose, OrderRequest, OrderState, OrderStatus, OrderType
from core.execution.policy import OrderPolicy, PolicyAction, PolicyConfig
from core.execution.pricing import ny
from core.ibkr.connection import IbConnection
from core.ibkr.contracts import ContractCache, from_ib_option
from core.ibkr.order_store import IbOrderRecord, OrderStore, Phase
from core.ibkr.orders import (
    ACK_STATES,
    CANCELLED_STATES,
    apply_fill,
    build_ib_order,
    clean_message,
    estimate_commission,
    make_fill,
)
from core.ibkr.reconcile import reconcile

if TYPE_CHECKING:
    from core.runtime.service import Context

__all__ = ["UNAVAILABLE", "IbkrBroker"]

log = logging.getLogger("quanticity.ibkr.broker")

UNAVAILABLE = Reason.BROKER_UNAVAILABLE
KEEP_EXPIRED_DAYS = 3  # terminal records of contracts expired longer ago are dropped at start
KEEP_PUBLISHED_DAYS = 10  # IB replays a few days of executions at most


class IbkrBroker(Broker):
    name = "ibkr"

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

    @classmethod
    def from_context(cls, ctx: Context, policy_config: PolicyConfig) -> IbkrBroker:
        s = ctx.settings.ibkr
        conn = IbConnection(s, "execution", redis=ctx.redis, keys=ctx.keys, bus=ctx.bus, clock=ctx.clock)
        return cls(conn, policy_config, redis=ctx.redis, keys=ctx.keys, clock=ctx.clock,
                   commission_wait_s=s.commission_wait_s, qualify_batch=s.qualify_batch)

    @property
    def ib(self) -> Any:
        return self.conn.ib

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

    # ------------------------------------------------------------------ placing
    async def place(self, order: OrderRequest) -> OrderState:
        """See the module docstring (idempotent, halt for entries, guard, quote, store, placeOrder)."""
        async with self._lock:
            return await self._place(order)

    async def _place(self, order: OrderRequest) -> OrderState:
        oid = order.order_id
        known = self.records.get(oid)
        if known is not None and known.phase != Phase.NEVER_PLACED:
            if _economics(known.state.request) != _economics(order):
                raise OrderRejected(Reason.BAD_INPUT, "order_id reused with a different request", oid)
            return known.state.model_copy(deep=True)
        if not self.conn.connected:
            raise OrderRejected(UNAVAILABLE, "IBKR is not connected", oid)
        if order.purpose == OrderPurpose.ENTRY and await is_halted(self.redis, self.keys):
            raise OrderRejected(Reason.HALTED, "trading is halted: no new entries", oid)
        key = order.contract_key
        check_order(order, held_qty=self.held_qty(key), committed_sell_qty=self.committed_sell_qty(key, oid))
        q = self._quotes.get(key)
        if not (order.order_type == OrderType.MKT and order.purpose == OrderPurpose.EXIT):
            problem = self.policy.quote_age_problem(order, q.ts if q is not None else None)
            if problem is not None:
                raise OrderRejected(Reason.STALE_DATA, problem, oid)
            assert q is not None
            refusal = self.policy.refuse_entry(order, q)
            if refusal is not None:
                raise OrderRejected(refusal[0], refusal[1], oid)
        limit = self.policy.initial_limit(order, q) if q is not None else None
        if order.order_type == OrderType.LMT and limit is None:
            raise OrderRejected(Reason.STALE_DATA, f"no quote to price {key}", oid)
        contract = await self._qualify(order)
        try:
            ib_id = self.ib.client.getReqId()
        except ConnectionError:
            raise OrderRejected(UNAVAILABLE, "IBKR is not connected", oid) from None
        ts = order.created_ts
        state = OrderState(order_id=oid, correlation_id=order.correlation_id, request=order,
                           status=OrderStatus.WORKING, limit=limit,
                           mid_at_placement=round(q.mid, 6) if q is not None else None,
                           placed_ts=ts, last_priced_ts=ts, updated_ts=ts)
        rec = IbOrderRecord(state=state, phase=Phase.PLACING, ib_order_id=ib_id, client_id=self.conn.client_id,
                            con_id=int(contract.conId))
        self.records[oid] = rec
        try:
            await self.store.save(rec)  # before IB can know it: a crash from here on is recoverable
        except Exception:
            if known is None:
                self.records.pop(oid, None)
            else:
                self.records[oid] = known
            raise
        ib_order = build_ib_order(order, limit, account=self.conn.account, order_id=ib_id)
        try:
            trade = self.ib.placeOrder(contract, ib_order)
        except ConnectionError:
            rec.phase = Phase.NEVER_PLACED
            self.store.save_soon(rec)
            raise OrderRejected(UNAVAILABLE, "IBKR connection lost while placing", oid) from None
        self.trades[oid] = trade
        rec.phase = Phase.SENT
        rec.ib_status = trade.orderStatus.status or "PendingSubmit"
        placed = rec.state.model_copy(deep=True)  # what IB answers from here on comes as events, after it
        await self.store.save(rec)
        log.info("ibkr: placed %s %s %d %s @ %s (IB order %d)", oid, order.side.value, order.qty, key, limit, ib_id)
        return placed

    async def _qualify(self, order: OrderRequest) -> Contract:
        c: OptionContract = order.option
        try:
            known = await self.contracts.qualify([c], ny(order.created_ts).date())
        except (TimeoutError, ConnectionError) as exc:
            raise OrderRejected(UNAVAILABLE, f"contract lookup failed: {type(exc).__name__}",
                                order.order_id) from None
        got = known.get(c.key)
        if got is None:
            raise OrderRejected(Reason.BAD_INPUT, f"IB does not list {c.label()}", order.order_id)
        return got

    # ------------------------------------------------------------------ cancelling
    async def cancel(self, order_id: str, now: datetime | None = None) -> OrderState:
        """Ask IB to cancel (the CANCELLED event comes when IB confirms). ``KeyError`` if unknown."""
        rec = self.records[order_id]
        if rec.phase == Phase.NEVER_PLACED and rec.state.is_open:
            self._end(rec, BrokerEventKind.CANCELLED, "client", now or self.clock.now(), emit=False)
        elif rec.state.is_open:
            self._request_cancel(rec, "client")
        return rec.state.model_copy(deep=True)

    def _request_cancel(self, rec: IbOrderRecord, reason: str) -> None:
        """``cancelOrder`` once; without a connection it is sent after the next reconciliation."""
        if rec.cancel_requested:
            return
        rec.cancel_requested, rec.cancel_reason = True, reason
        self.send_cancel(rec)
        self.store.save_soon(rec)

    def send_cancel(self, rec: IbOrderRecord) -> None:
        trade = self.trades.get(rec.order_id)
        if rec.cancel_sent or trade is None or not self.conn.connected or trade.isDone():
            return
        try:
            self.ib.cancelOrder(trade.order)
        except ConnectionError:
            return
        rec.cancel_sent = True
        self.store.save_soon(rec)

    # ------------------------------------------------------------------ the order policy
    async def on_quote(self, contract_key: str, bid: float, ask: float, bid_size: int, ask_size: int,
                       now: datetime) -> list[BrokerEvent]:
        """Remember the quote; apply the policy to the working orders on that contract. A reprice
        is returned at once (REPRICED); a cancel's event comes when IB confirms it."""
        if not _valid_quote(bid, ask, bid_size, ask_size) or now.tzinfo is None:
            return []
        q = QuoteSnapshot(contract_key=contract_key, bid=float(bid), ask=float(ask), bid_size=int(bid_size),
                          ask_size=int(ask_size), ts=now)
        self._quotes[contract_key] = q
        events: list[BrokerEvent] = []
        for rec in self._working(contract_key):
            events.extend(self._apply(rec, self.policy.on_quote(rec.state, q, now), now))
        return events

    async def on_timer(self, now: datetime) -> list[BrokerEvent]:
        """Time-only rules (timeout, day end) for every working order, quote or not."""
        if self.reconcile_due and self.conn.connected and not self._lock.locked():
            await self.reconcile_now()
        for rec in self._working():
            why = self.policy.time_cancel(rec.state, now)
            if why is not None:
                self._request_cancel(rec, why)
        return []

    def _working(self, contract_key: str | None = None) -> list[IbOrderRecord]:
        recs = [r for r in self.records.values() if r.live and r.phase != Phase.PLACING
                and not r.cancel_requested and (contract_key is None or r.contract_key == contract_key)]
        return sorted(recs, key=lambda r: (r.state.placed_ts, r.order_id))

    def _apply(self, rec: IbOrderRecord, action: PolicyAction, now: datetime) -> list[BrokerEvent]:
        if action.kind == "cancel":
            self._request_cancel(rec, action.reason)
            return []
        if action.kind != "reprice" or action.new_limit is None:
            return []
        trade = self.trades.get(rec.order_id)
        if (rec.phase != Phase.ACKED or rec.modify_from is not None or trade is None or trade.isDone()
                or not self.conn.connected):
            return []  # not acknowledged yet, a modification in flight, or no session to modify it in
        st = rec.state
        old = st.limit
        trade.order.lmtPrice = float(action.new_limit)
        try:
            self.ib.placeOrder(trade.contract, trade.order)  # same IB order id: a modification
        except ConnectionError:
            trade.order.lmtPrice = old
            return []
        rec.modify_from = old
        st.limit = action.new_limit
        st.repricings += 1
        st.last_priced_ts = now
        st.updated_ts = now
        self.store.save_soon(rec)
        return [self._event(BrokerEventKind.REPRICED, rec, now, old_limit=old, new_limit=action.new_limit)]

    # ------------------------------------------------------------------ ib_async callbacks
    def _record_for(self, order_ref: str, perm_id: int = 0) -> IbOrderRecord | None:
        """Our record of an IB order or execution, by ``orderRef`` (= our order id)."""
        rec = self.records.get(order_ref or "")
        if rec is None:
            return None
        if rec.perm_id and perm_id and rec.perm_id != perm_id:
            return None  # same orderRef on another order (placed by hand): not ours
        return rec

    def _on_status(self, trade: Trade) -> None:
        try:
            self._status(trade)
        except Exception:
            log.exception("ibkr: order status handling failed")

    def _status(self, trade: Trade) -> None:
        o = trade.order
        rec = self._record_for(o.orderRef, o.permId or trade.orderStatus.permId)
        if rec is None or not rec.state.is_open or rec.phase == Phase.NEVER_PLACED:
            return
        self.trades[rec.order_id] = trade
        self.link(rec, trade)
        status = trade.orderStatus.status
        entry = trade.log[-1] if trade.log else None
        code = entry.errorCode if entry is not None else 0
        message = clean_message(entry.message if entry is not None else "", self.conn.account)
        now = self.clock.now()
        if status in CANCELLED_STATES or status == "Inactive":
            if rec.modify_from is not None and code not in (0, 202) and status != "Inactive":
                self._modify_refused(rec, trade, message, now)
                return
            if status == "Inactive" or (code not in (0, 202) and rec.phase != Phase.ACKED):
                self._end(rec, BrokerEventKind.REJECTED, message or "rejected by IB", now)
            else:
                reason = rec.cancel_reason or (f"ib: {message}" if code and message else "ib_cancelled")
                self._end(rec, BrokerEventKind.CANCELLED, reason, now)
            return
        if status == "Filled":
            rec.ib_status = status
            self.store.save_soon(rec)
            return  # the FILL events carry it
        if status in ACK_STATES:
            rec.phase = Phase.ACKED
            rec.modify_from = None  # IB answered after the modification: it holds the new price
        if status != rec.ib_status:
            rec.ib_status = status
            self._queue(self._event(BrokerEventKind.STATUS, rec, now, detail=self._ids(rec)))
        self.store.save_soon(rec)

    def link(self, rec: IbOrderRecord, trade: Trade) -> None:
        """Remember IB's ids for ``rec`` (from a live status or from reconciliation)."""
        o = trade.order
        if o.orderId:
            rec.ib_order_id = int(o.orderId)
        if o.clientId:
            rec.client_id = int(o.clientId)
        perm = o.permId or trade.orderStatus.permId
        if perm:
            rec.perm_id = int(perm)
        if trade.contract is not None and trade.contract.conId:
            rec.con_id = int(trade.contract.conId)

    def _modify_refused(self, rec: IbOrderRecord, trade: Trade, message: str, now: datetime) -> None:
        """IB refused a modification: the order keeps working at its previous limit. (ib_async marks
        the trade cancelled on any order error; put its status back so it can be modified again.)"""
        old = rec.modify_from
        trade.orderStatus.status = rec.ib_status if rec.ib_status in ACK_STATES else "Submitted"
        trade.order.lmtPrice = old
        rec.modify_from = None
        rec.state.limit = old
        rec.state.updated_ts = now
        self.store.save_soon(rec)
        self._queue(self._event(BrokerEventKind.STATUS, rec, now, reason=f"modify refused: {message}"[:200],
                                detail=self._ids(rec)))

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        """Order errors are handled through the status ib_async gives the trade; log them here."""
        if req_id <= 0:
            return
        rec = next((r for r in self.records.values() if r.ib_order_id == req_id and r.client_id
                    == self.conn.client_id), None)
        if rec is not None:
            log.warning("ibkr: order %s (IB %d): %d %s", rec.order_id, req_id, code,
                        clean_message(message, self.conn.account))

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


def _economics(req: OrderRequest) -> dict[str, Any]:
    """What must match for a retry to be "the same order" (the creation time may differ)."""
    return req.model_dump(mode="json", exclude={"created_ts"})


def _valid_quote(bid: float, ask: float, bid_size: int, ask_size: int) -> bool:
    try:
        fb, fa, bs, az = float(bid), float(ask), int(bid_size), int(ask_size)
    except (TypeError, ValueError):
        return False
    return math.isfinite(fb) and math.isfinite(fa) and 0 <= fb <= fa and fa > 0 and bs >= 0 and az >= 0
