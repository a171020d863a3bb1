"""ExecutionService: approved signals and exit requests become broker orders.

Consumes ``approvals`` (approved entries), ``order_requests`` (exits from the
position manager), ``option_quotes`` (option quotes of watched contracts: the paper
broker fills, reprices and cancels against them) and ``control``
(``cancel_entries`` on a halt, ``flatten``). Publishes :class:`OrderEvent` for
every order state change and :class:`FillEvent` for every execution.

Safety: an approval is checked before it is stored (halt; an order that the guard would
refuse or that cannot be built is refused at once, never stored). An approved entry waits for
the contract's next live quote (at most ``ENTRY_QUOTE_WAIT_S``) so it is never priced off a
stale chain; just before it is placed the hard rules that depend on time and state run again
(:mod:`core.execution.pretrade`: halt, daily loss, buying power, open positions, same
direction, per-trade cap on the highest price the policy may pay, expiry, session, cut-offs).
A refusal is a rejected ``OrderEvent`` with its ``Reason`` code plus an ``order_refused``
audit with the human detail. One bad pending entry is removed and refused alone
(:mod:`core.execution.pending`); it never fails the quote. Exits are always placed, also when
halted. The broker's guard refuses anything that is not a single-leg long option or a sale of
held contracts.

The service talks only to the :class:`core.execution.broker.Broker` interface; the
broker is chosen by ``execution.broker`` (``core.execution.brokers.make_broker``:
``paper``, or ``ibkr``). A live broker pushes fills, cancels and rejects as they happen:
it wakes the service (``on_wake``), which publishes them at once.

State moves only with its commit: one handling, timer tick or push flush at a time holds the
broker (``_book`` lock) from its start to its commit. If the handler or the commit fails, the
broker is rebuilt from what Redis holds (the paper book from its state key, keeping the quotes
seen) before its next use, the pending-entry copy is re-read, and a live broker gets back the
events it had handed out (``Broker.rollback``) to publish them again; the failed event itself
is retried by the consumer. So a failed MULTI/EXEC never leaves a fill in memory that nothing
published or persisted.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime

from core.bus.bus import Tx
from core.bus.events import (
    AlertEvent,
    ApprovalEvent,
    AuditEvent,
    ControlEvent,
    Event,
    FillEvent,
    OptionQuoteEvent,
    OrderEvent,
    OrderRequestEvent,
)
from core.control.halt import is_halted
from core.domain.contract import OptionContract, Right
from core.domain.reasons import Reason
from core.execution.broker import BrokerEvent, BrokerEventKind
from core.execution.brokers import make_broker
from core.execution.guard import OrderRejected, check_order
from core.execution.orders import (
    OrderPurpose,
    OrderRequest,
    OrderState,
    OrderType,
    TimeInForce,
    entry_order_from_signal,
)
from core.execution.pending import UNREADABLE, contract_key_of, parse_pending, salvage_fields
from core.execution.pretrade import chase_ceiling, check_placement, with_working_entries
from core.risk import RiskLimits
from core.runtime import metrics
from core.runtime.service import Context, Service
from core.state.account import load_risk_state

ENTRY_QUOTE_WAIT_S = 60
HANDLING_WAIT_S = 10.0  # longest wait for the handling in flight to commit (then BrokerBusy: tried again)


class BrokerBusy(RuntimeError):
    """The broker stayed held by another handling longer than ``HANDLING_WAIT_S``."""


class ExecutionService(Service):
    name = "execution"
    streams = ("approvals", "order_requests", "option_quotes", "control")
    event_types = frozenset({"approval.decision", "market.option_quote", "order.request", "control"})

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.interval_s = float(self.settings.market.tick_seconds)
        self.broker = make_broker(ctx)
        self._state_key = self.keys.key("broker_state", self.broker.name)
        self._pending_key = self.keys.hash("pending_entries")
        # order_id -> contract key of entries waiting for a quote; this service alone writes the
        # hash, so the copy spares a Redis read per quote (dropped and re-read after a failure)
        self._pending: dict[str, str] | None = None
        self._limits = RiskLimits.from_settings(self.settings)  # the overseer's hard-rule limits
        self._book = asyncio.Lock()  # held by one handling / timer tick / flush from its start to its commit
        self._stale = False  # a commit or handler failed: rebuild the broker from Redis before its next use

    async def _pending_map(self) -> dict[str, str]:
        if self._pending is None:
            raw = await self.redis.hgetall(self._pending_key)
            # an entry that does not read back maps to UNREADABLE: purged by the next quote
            self._pending = {oid: contract_key_of(v) for oid, v in raw.items()}
        return self._pending

    async def start(self) -> None:
        raw = await self.redis.get(self._state_key)
        if raw:
            self.broker.load_state(raw)
        self._stale = False
        self.broker.set_wakeup(self.wake)
        await self.broker.start()
        await self.redis.hset(self.keys.hash("broker"), mapping=self.broker.describe())
        if await self._flush_pushed():
            self.log.info("published broker events found at start (reconciliation)")

    async def stop(self) -> None:
        await self.broker.stop()
        await self.redis.hset(self.keys.hash("broker"), "connected", "0")

    async def on_wake(self, now: datetime) -> None:
        """The broker pushed events (fills, cancels, rejects): publish them now. While a handling
        is between its start and its commit, its own transaction takes them (in order after what
        it publishes); the flush waits for it (``HANDLING_WAIT_S`` at most, then logs and asks
        to be woken again: it never publishes beside a handling in flight)."""
        try:
            await self._take_book()
        except BrokerBusy as exc:
            self.log.error("%s: pushed events wait", exc)
            self.wake()
            return
        try:
            await self._flush_locked()
        finally:
            self._book.release()

    async def _take_book(self) -> None:
        """Hold the broker for one handling / tick / flush. Free: taken at once (no yield, so the
        lock-step runner's order is unchanged). Held: wait ``HANDLING_WAIT_S`` at most, then
        :class:`BrokerBusy` (the work is retried) rather than hang on a handling never finished."""
        if not self._book.locked():
            await self._book.acquire()
            return
        try:
            await asyncio.wait_for(self._book.acquire(), HANDLING_WAIT_S)
        except TimeoutError:
            raise BrokerBusy(f"the broker has been held by one handling for over {HANDLING_WAIT_S:.0f} s") from None

    async def _flush_pushed(self) -> bool:
        await self._take_book()
        try:
            return await self._flush_locked()
        finally:
            self._book.release()

    async def _flush_locked(self) -> bool:
        await self._resync()
        events = self.broker.drain_events()
        if not events:
            return False
        tx = self.bus.tx()
        try:
            self._publish_pushed(tx, events)
            await tx.commit()
        except BaseException:
            self._rollback(tx)  # not published: they go out with the next attempt
            raise
        return True

    async def _resync(self) -> None:
        """After a failed handling or commit: the broker back to what Redis holds (the last commit)."""
        if self._stale:
            self.broker.rebuild(await self.redis.get(self._state_key))
            self._stale = False
            self.log.warning("broker state rebuilt from Redis after a failed handling or commit")

    def _rollback(self, tx: Tx) -> None:
        """``tx`` will never commit: what it did to memory is undone before the next handling.
        Events drained from the push channel go back to it; events the broker returned are
        given back to it (a live broker requeues them, the paper book re-creates them)."""
        self._stale = True
        self._pending = None
        pushed = tx.scratch.pop("pushed", [])
        drained = {id(e) for e in pushed}
        self.broker.requeue(pushed)
        self.broker.rollback([e for e in tx.scratch.pop("broker_events", []) if id(e) not in drained])

    @staticmethod
    def _note_pushed(tx: Tx, events: list[BrokerEvent]) -> None:
        tx.scratch.setdefault("pushed", []).extend(events)

    # ------------------------------------------------------------------ events
    async def handle(self, event: Event, tx: Tx) -> None:
        await self._take_book()
        tx.after_commit.insert(0, self._book.release)  # first: nothing after the commit can keep it
        try:
            await self._resync()
            await self._dispatch(event, tx)
            # what the broker pushed meanwhile (an acknowledgement, an instant fill) commits with
            # this handling, after its own events: a fill is never published before its order
            pushed = self.broker.drain_events()
            if pushed:
                self._publish_pushed(tx, pushed)
        except BaseException:
            tx.after_commit.remove(self._book.release)
            try:
                self._rollback(tx)
            finally:
                self._book.release()
            raise
        tx.on_failure.append(lambda: self._failed_commit(tx))

    def _failed_commit(self, tx: Tx) -> None:
        try:
            self._rollback(tx)
        finally:
            if self._book.locked():
                self._book.release()

    def _publish_pushed(self, tx: Tx, events: list[BrokerEvent]) -> None:
        """Pushed broker events on ``tx`` with the broker's published-marks and its state."""
        self._note_pushed(tx, events)
        self._publish(tx, events)
        self.broker.record_published(tx.pipe, events)
        self._persist(tx)

    async def _dispatch(self, event: Event, tx: Tx) -> None:
        changed = False
        if isinstance(event, ApprovalEvent):
            if event.decision == "approved":
                changed = await self._approved(event, tx)
        elif isinstance(event, OptionQuoteEvent):
            changed = await self._quote(event, tx)
        elif isinstance(event, OrderRequestEvent):
            changed = await self._exit(event, tx)
        elif isinstance(event, ControlEvent) and event.action in ("cancel_entries", "halt", "flatten"):
            changed = await self._cancel_entries(event, tx)
        if changed:
            self._persist(tx)

    async def _approved(self, ev: ApprovalEvent, tx: Tx) -> bool:
        sig = ev.signal
        order_id = f"ent-{sig.id}"
        if await is_halted(self.redis, self.keys):
            self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), Reason.HALTED,
                               "trading is halted", "approval")
            return False
        try:
            contract = sig.contract()
        except ValueError:
            self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), Reason.NOT_OPTION,
                               "the approved instrument is not a fully specified option", "approval")
            return False
        try:  # never store what cannot become an order (qty -5, a NaN limit): refused now, alone
            check_order(entry_order_from_signal(sig, order_id=order_id, created_ts=self.clock.now(), qty=ev.qty,
                                                max_price=chase_ceiling(sig.limit)))
        except OrderRejected as exc:
            self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), exc.reason, exc.detail, "approval")
            return False
        except (ValueError, TypeError, ArithmeticError) as exc:
            self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), Reason.BAD_INPUT,
                               f"the approved order cannot be built: {type(exc).__name__}", "approval")
            return False
        # the trade's context, for the position manager and the publishers
        tx.pipe.hset(self.keys.hash("trade_ctx"), ev.correlation_id, json.dumps({
            "signal": sig.model_dump(mode="json"), "explanation": ev.explanation, "verdict": ev.verdict,
            "risk_pct": ev.risk_pct, "decided_by": ev.decided_by, "qty": ev.qty}, sort_keys=True))
        tx.pipe.hset(self.keys.hash("watch"), contract.key, "1")
        tx.pipe.hset(self._pending_key, order_id, json.dumps({
            "approval": ev.model_dump(mode="json"), "deadline_ms": self.clock.ms() + ENTRY_QUOTE_WAIT_S * 1000}))
        (await self._pending_map())[order_id] = contract.key
        return False

    async def _quote(self, q: OptionQuoteEvent, tx: Tx) -> bool:
        now = self.clock.now()
        events = await self.broker.on_quote(q.contract_key, q.bid, q.ask, int(q.bid_size), int(q.ask_size), now)
        placed = await self._place_pending(q.contract_key, tx, now)
        if placed:  # fills against this same quote
            events += await self.broker.on_quote(q.contract_key, q.bid, q.ask, int(q.bid_size), int(q.ask_size),
                                                 now)
        self._publish(tx, events)
        return bool(events) or placed

    async def _place_pending(self, contract_key: str, tx: Tx, now: datetime) -> bool:
        """Place the entries waiting for this contract's quote, each only after the pre-trade
        check (:func:`core.execution.pretrade.check_placement`) at ``now``, with ``max_price``
        clipped to the per-trade cap. A pending entry that does not read back (any contract's
        quote purges those) or whose order cannot be built is removed and refused with
        ``BAD_INPUT``, counted and logged; it never fails this quote's handling. Redis and
        broker errors still fail the handling (transient: it is retried)."""
        waiting = await self._pending_map()
        poison = sorted(oid for oid, key in waiting.items() if key == UNREADABLE)
        mine = sorted(oid for oid, key in waiting.items() if key == contract_key)
        if not mine and not poison:
            return False
        pending = dict(zip(poison + mine, await self.redis.hmget(self._pending_key, poison + mine), strict=True))
        for order_id in poison:
            waiting.pop(order_id, None)
            tx.pipe.hdel(self._pending_key, order_id)
            if pending[order_id] is not None:
                self._drop_poison(tx, order_id, pending[order_id], "the stored approval does not read back")
        placed = False
        state = None
        for order_id in mine:
            raw = pending[order_id]
            if raw is None:
                waiting.pop(order_id, None)
                continue
            try:
                ev = parse_pending(raw)
                key = ev.signal.contract().key
            except Exception as exc:  # noqa: BLE001 - a changed entry: poison, isolated
                waiting.pop(order_id, None)
                tx.pipe.hdel(self._pending_key, order_id)
                self._drop_poison(tx, order_id, raw, f"the stored approval does not read back: {type(exc).__name__}")
                continue
            if key != contract_key:
                continue
            sig = ev.signal
            tx.pipe.hdel(self._pending_key, order_id)
            waiting.pop(order_id, None)
            if state is None:
                state = await load_risk_state(self.redis, self.keys, self.settings, now, symbols=[sig.symbol])
            live = with_working_entries(state, await self.broker.open_orders())
            try:
                verdict = check_placement(sig, ev.qty, live, self._limits, now)
                req = entry_order_from_signal(sig, order_id=order_id, created_ts=now, qty=ev.qty,
                                              max_price=verdict.max_price) if verdict.ok else None
            except Exception as exc:  # noqa: BLE001 - an approval that cannot become an order: poison
                self._drop_poison(tx, order_id, raw, f"the entry order cannot be built: {type(exc).__name__}")
                continue
            if req is None:
                assert verdict.reason is not None
                self._refuse_entry(tx, ev.correlation_id, order_id, sig_fields(ev), verdict.reason,
                                   verdict.detail, "placement")
                continue
            placed |= await self._place(req, tx)
        return placed

    def _refuse_entry(self, tx: Tx, corr: str, order_id: str, fields: dict, reason: Reason, detail: str,
                      stage: str) -> None:
        """An entry refused before it reached the broker: the rejected OrderEvent with the Reason
        code, and an ``order_refused`` audit with the human detail (the admin's card shows it)."""
        metrics.REJECTED.labels(self.name, reason.value).inc()
        self.log.warning("entry %s refused at %s: %s (%s)", order_id, stage, reason.value, detail)
        self._reject_event(tx, corr, order_id, fields, "entry", reason.value)
        tx.emit(AuditEvent, correlation_id=corr, actor="execution", action="order_refused",
                detail={"order_id": order_id, "purpose": "entry", "stage": stage, "reason": reason.value,
                        "detail": detail[:500], "qty": fields.get("qty", 0)})

    def _drop_poison(self, tx: Tx, order_id: str, raw: str, why: str) -> None:
        """A pending entry that cannot be placed: refused with BAD_INPUT (an OrderEvent when its
        fields can be read back, always the audit), counted and logged. Already removed."""
        corr, fields = salvage_fields(raw, order_id)
        if fields is None:
            metrics.REJECTED.labels(self.name, Reason.BAD_INPUT.value).inc()
            self.log.error("pending entry %s dropped: %s (unreadable: no order event)", order_id, why)
            tx.emit(AuditEvent, correlation_id=corr or order_id, actor="execution", action="order_refused",
                    detail={"order_id": order_id, "purpose": "entry", "stage": "placement",
                            "reason": Reason.BAD_INPUT.value, "detail": why})
            return
        self._refuse_entry(tx, corr, order_id, fields, Reason.BAD_INPUT, why, "placement")

    async def _exit(self, r: OrderRequestEvent, tx: Tx) -> bool:
        """An exit request becomes a SELL order. One whose values make no order (the event model
        already refuses most at decode; what is left: a date that does not exist, a symbol or id
        the order model refuses) is a counted, logged, audited rejection (an ``exit`` OrderEvent
        ``rejected`` / ``BAD_INPUT``, so the position manager releases what it reserved), never an
        exception: raising would retry it and then dead-letter it while it held up this consumer."""
        try:
            contract = OptionContract(symbol=r.symbol, expiry=date.fromisoformat(r.expiry), strike=r.strike,
                                      right=Right(r.right), multiplier=r.multiplier)
            req = OrderRequest(order_id=f"ex-{r.request_id}", correlation_id=r.correlation_id, contract=contract,
                               side="SELL", qty=r.qty, order_type=OrderType(r.order_type), limit=r.limit,
                               tif=TimeInForce.GTC, purpose=OrderPurpose.EXIT, created_ts=self.clock.now())
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            metrics.REJECTED.labels(self.name, "bad_exit_request").inc()
            self.log.warning("exit request %s for position %s refused: invalid values (%s)", r.request_id,
                             r.position_id, str(exc).splitlines()[0][:200])
            tx.emit(AuditEvent, correlation_id=r.correlation_id, actor="execution", action="exit_request_invalid",
                    detail={"request_id": r.request_id[:128], "position_id": r.position_id[:128],
                            "problem": str(exc).splitlines()[0][:200]})
            # the position manager releases the contracts it reserved for this exit
            self._reject_event(tx, r.correlation_id, f"ex-{r.request_id}", {
                "symbol": r.symbol, "expiry": r.expiry, "strike": r.strike, "right": r.right, "side": "SELL",
                "qty": r.qty}, "exit", Reason.BAD_INPUT.value, r.position_id)
            return False
        placed = await self._place(req, tx, position_id=r.position_id)
        if placed:  # a marketable exit fills against the last quote at once
            last = self.broker.last_quote(contract.key)
            if last is not None:
                self._publish(tx, await self.broker.on_quote(contract.key, last.bid, last.ask, last.bid_size,
                                                             last.ask_size, self.clock.now()))
        return True

    async def _place(self, req: OrderRequest, tx: Tx, position_id: str | None = None) -> bool:
        fields = order_fields(req)
        try:
            state = await self.broker.place(req)
        except OrderRejected as exc:
            metrics.REJECTED.labels(self.name, exc.reason.value).inc()
            self._reject_event(tx, req.correlation_id, req.order_id, fields, req.purpose.value, exc.reason.value,
                               position_id)
            tx.emit(AuditEvent, correlation_id=req.correlation_id, actor="execution", action="order_refused",
                    detail={"order_id": req.order_id, "reason": exc.reason.value, "detail": str(exc)})
            return True
        tx.emit(OrderEvent, correlation_id=req.correlation_id, order_id=req.order_id, purpose=req.purpose.value,
                status=state.status.value, limit=state.limit, position_id=position_id, **fields)
        return True

    async def _cancel_entries(self, ev: ControlEvent, tx: Tx) -> bool:
        now = self.clock.now()
        cancelled = 0
        for o in await self.broker.open_orders():
            if o.request.purpose == OrderPurpose.ENTRY:
                st = await self.broker.cancel(o.order_id, now)
                if st.status.is_terminal:  # a live broker confirms later, on its push channel
                    self._order_event(tx, st, st.status.value, reason=f"{ev.action}:{ev.reason}"[:80])
                cancelled += 1
        pending = await self.redis.hgetall(self._pending_key)
        for order_id, raw in sorted(pending.items()):  # approved, never placed: each refused, the card told
            tx.pipe.hdel(self._pending_key, order_id)
            corr, fields = salvage_fields(raw, order_id)
            why = f"approved entry cancelled before placement by {ev.action}: {ev.reason}"[:200]
            if fields is None:
                self._drop_poison(tx, order_id, raw, why)
            else:
                self._refuse_entry(tx, corr, order_id, fields, Reason.HALTED, why, "cancelled")
        self._pending = {}
        return bool(cancelled) or bool(pending)

    # ------------------------------------------------------------------ timers
    async def on_timer(self, now: datetime) -> None:
        await self._take_book()
        try:
            await self._resync()
            tx = self.bus.tx()
            try:
                await self._timer_tx(now, tx)
            except BaseException:
                self._rollback(tx)
                raise
        finally:
            self._book.release()

    async def _timer_tx(self, now: datetime, tx: Tx) -> None:
        pushed = self.broker.drain_events()
        self._note_pushed(tx, pushed)
        self._publish(tx, pushed)
        self._publish(tx, await self.broker.on_timer(now))
        self.broker.record_published(tx.pipe, pushed)
        now_ms = int(now.timestamp() * 1000)
        waiting = await self._pending_map()
        raw_pending = await self.redis.hgetall(self._pending_key) if waiting else {}
        for order_id, raw in sorted(raw_pending.items()):
            try:
                deadline_ms = int(json.loads(raw)["deadline_ms"])
                ev = parse_pending(raw)
            except Exception as exc:  # noqa: BLE001 - poison: removed and refused alone, never a failed tick
                tx.pipe.hdel(self._pending_key, order_id)
                waiting.pop(order_id, None)
                self._drop_poison(tx, order_id, raw, f"stored entry unreadable: {type(exc).__name__}")
                continue
            if deadline_ms <= now_ms:
                tx.pipe.hdel(self._pending_key, order_id)
                waiting.pop(order_id, None)
                self._reject_event(tx, ev.correlation_id, order_id, sig_fields(ev), "entry",
                                   Reason.STALE_DATA.value)
        if tx.events or len(tx.pipe.command_stack):
            self._persist(tx)
            await tx.commit()

    # ------------------------------------------------------------------ output
    def _publish(self, tx: Tx, events: list[BrokerEvent]) -> None:
        tx.scratch.setdefault("broker_events", []).extend(events)  # given back if ``tx`` fails
        for be in events:
            o = be.order
            if o is None:
                self._reconciliation(tx, be)
                continue
            if be.kind == BrokerEventKind.FILL and be.fill is not None:
                f = be.fill
                c = f.contract
                tx.emit(FillEvent, correlation_id=f.correlation_id, order_id=f.order_id, fill_id=f.fill_id,
                        purpose=f.purpose.value, symbol=c.symbol, expiry=c.expiry.isoformat(), strike=c.strike,
                        right=c.right.value, side=f.side.value, qty=f.qty, price=f.price,
                        commission=f.commission, slippage=f.slippage, mid_at_order=f.mid_at_placement)
            self._order_event(tx, o, o.status.value, reason=be.reason or "",
                              limit=be.new_limit if be.kind == BrokerEventKind.REPRICED else o.limit)

    def _reconciliation(self, tx: Tx, be: BrokerEvent) -> None:
        """A position the account holds that nothing here explains is adopted (an entry fill the
        position manager opens with its default exit plan; never posted to subscribers); one
        held here but not in the account is flagged; the summary is one admin message."""
        p = be.position
        if be.kind == BrokerEventKind.ADOPTED and p is not None:
            c = p.contract
            tx.pipe.hset(self.keys.hash("trade_ctx"), be.correlation_id, json.dumps(
                {"adopted": True, "qty": p.qty, "explanation": "adopted from the broker account"}))
            tx.emit(FillEvent, correlation_id=be.correlation_id, order_id=be.order_id,
                    fill_id=f"{be.order_id}:1", purpose="entry", symbol=c.symbol, expiry=c.expiry.isoformat(),
                    strike=c.strike, right=c.right.value, side="BUY", qty=p.qty, price=p.avg_cost,
                    strategy="adopted")
        elif be.kind == BrokerEventKind.RECONCILED:
            d = be.detail
            tx.emit(AlertEvent, correlation_id=be.correlation_id, code="BROKER_RECONCILED", severity="WARNING",
                    state="raised", subject="broker", message=str(d.get("summary", "broker reconciled")))
        tx.emit(AuditEvent, correlation_id=be.correlation_id, actor="execution", action=f"broker_{be.kind.value}",
                detail={"contract": be.contract_key, "reason": be.reason or "", **{
                    k: v for k, v in be.detail.items() if isinstance(v, (str, int, float, bool))}})

    def _order_event(self, tx: Tx, o: OrderState, status: str, reason: str = "", limit: float | None = None) -> None:
        tx.emit(OrderEvent, correlation_id=o.correlation_id, order_id=o.order_id, purpose=o.request.purpose.value,
                status=status, limit=limit if limit is not None else o.limit,
                filled_qty=o.filled_qty, avg_price=o.avg_price, reason=reason, **order_fields(o.request))

    def _reject_event(self, tx: Tx, corr: str, order_id: str, fields: dict, purpose: str, reason: str,
                      position_id: str | None = None) -> None:
        tx.emit(OrderEvent, correlation_id=corr, order_id=order_id, purpose=purpose, status="rejected",
                reason=reason, position_id=position_id, **fields)

    def _persist(self, tx: Tx) -> None:
        """Save what the broker asks to be saved (the paper book) with this handling's outputs."""
        raw = self.broker.dump_state(self.clock.now())
        if raw is not None:
            tx.pipe.set(self._state_key, raw)


def order_fields(req: OrderRequest) -> dict:
    c = req.contract
    if isinstance(c, OptionContract):
        return {"symbol": c.symbol, "expiry": c.expiry.isoformat(), "strike": c.strike, "right": c.right.value,
                "side": req.side.value, "qty": req.qty}
    return {"symbol": "?", "expiry": str(c.expiry or ""), "strike": float(c.strike or 0),
            "right": c.right.value if c.right else "", "side": req.side.value, "qty": req.qty}


def sig_fields(ev: ApprovalEvent) -> dict:
    s = ev.signal
    i = s.instrument
    return {"symbol": s.symbol, "expiry": i.expiry.isoformat() if i.expiry else "", "strike": float(i.strike or 0),
            "right": i.right.value if i.right else "", "side": s.side.value, "qty": max(ev.qty, 1)}
