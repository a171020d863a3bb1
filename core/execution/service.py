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

State moves only with its commit (:mod:`core.execution.book_lock`): one handling, timer tick or
push flush at a time holds the broker (``_book`` lock) from its start to its commit. If the
handler or the commit fails, the broker is rebuilt from what Redis holds (the paper book from
its state key, keeping the quotes seen) before its next use, the pending-entry copy is re-read,
and a live broker gets back the events it had handed out (``Broker.rollback``) to publish them
again; the failed event itself is retried by the consumer. So a failed MULTI/EXEC never leaves a
fill in memory that nothing published or persisted.

The parts: :mod:`core.execution.outputs` (placing an order, the events published),
:mod:`core.execution.book_lock` (the lock, push flush and rollback),
:mod:`core.execution.entries` (approved entries until placement, halt cancels); this module
holds the service itself: start/stop, dispatch, quotes, exit requests and the timer.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime

from core.bus.bus import Tx
from core.bus.events import (
    ApprovalEvent,
    AuditEvent,
    ControlEvent,
    Event,
    OptionQuoteEvent,
    OrderRequestEvent,
)
from core.domain.contract import OptionContract, Right
from core.domain.reasons import Reason
from core.execution.book_lock import BrokerBookLock
from core.execution.brokers import make_broker
from core.execution.entries import EntryPlacement
from core.execution.orders import OrderPurpose, OrderRequest, OrderType, TimeInForce
from core.execution.outputs import sig_fields
from core.execution.pending import parse_pending
from core.risk import RiskLimits
from core.runtime import metrics
from core.runtime.service import Context


class ExecutionService(EntryPlacement, BrokerBookLock):
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

    async def _quote(self, q: OptionQuoteEvent, tx: Tx) -> bool:
        now = self.clock.now()
        events = await self.broker.on_quote(q.contract_key, q.bid, q.ask, int(q.bid_size), int(q.ask_size), now)
        placed = await self._place_pending(q.contract_key, tx, now)
        if placed:  # fills against this same quote
            events += await self.broker.on_quote(q.contract_key, q.bid, q.ask, int(q.bid_size), int(q.ask_size),
                                                 now)
        self._publish(tx, events)
        return bool(events) or placed

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
