"""Paper broker: simulated fills against the option quotes it is fed.

Deterministic state machine. Time only moves when a caller passes ``now`` (the
request's ``created_ts`` for :meth:`PaperBroker.place`, the quote time for
:meth:`PaperBroker.on_quote`). All state is one JSON-able :class:`PaperBrokerState`
(:meth:`PaperBroker.snapshot` / :meth:`PaperBroker.restore`).

Pricing at placement (needs a quote for the contract, no older than
``max_quote_age_s`` at ``created_ts``; otherwise rejected ``STALE_DATA``):

* entry ``BUY LMT`` with ``limit=None``: limit = mid, rounded *down* to the tick;
  with a ``limit``: that limit. Never above ``max_price``. An entry whose spread is
  already wider than ``cancel_spread_pct_of_mid`` is rejected ``SPREAD_TOO_WIDE``.
* exit ``SELL LMT`` with ``limit=None``: limit = bid (marketable: "sell at the bid",
  used for stops and scale-outs). With no bid at all it is priced at one tick.
* ``MKT``: no limit; on every quote a BUY takes the ask and a SELL hits the bid
  ("market converted to the bid"). ``flatten`` sends MKT sells.

Per quote, for each open order on that contract (oldest first), in this order:

1. ``DAY`` orders are cancelled (``day_end``) from ``day_close`` (16:00 NY) of their day.
2. timeout: entries are cancelled (``timeout``) once ``now - created_ts >= order_timeout_s``
   (120 s); exits only if ``exit_timeout_s`` is set (default: never - an exit keeps working).
3. entries are cancelled (``SPREAD_TOO_WIDE``) when ``ask - bid > cancel_spread_pct_of_mid%``
   of mid (10 %). Exits are never cancelled for a wide spread.
4. reprice: a LMT order idle (no reprice, no fill) for ``reprice_after_s`` (30 s) moves
   its limit toward the far side by ``reprice_step_pct_of_spread`` (25 %) of the
   *current* spread, rounded to the nearest tick, at least one tick, never past the
   ask (BUY) / bid (SELL), never past ``max_price`` / ``min_price``. Entries reprice at
   most ``max_reprices`` (2) times; exits ``exit_max_reprices`` (default unlimited).
   Example: quote 2.00 x 2.20, entry at mid 2.10; +30 s -> 2.15; +60 s -> 2.20 (= ask).
5. fill: a BUY limit fills when ``ask <= limit``, a SELL limit when ``bid >= limit``, at
   the order's limit (a resting order trades at its own price). Size = what is displayed
   (``ask_size`` for a BUY, ``bid_size`` for a SELL), shared between orders on the same
   quote, so ``qty > size`` gives a partial fill and the rest waits for later quotes.
   Optional passive model: with ``passive_fill_prob > 0`` a BUY resting at or above the
   current mid (SELL at or below) also fills against the displayed size with that
   probability, decided by a hash of ``(seed, order_id, now)``: deterministic,
   reproducible, no RNG state to persist. ``passive_fill_prob`` strictly between 0 and 1
   requires a ``seed``; 1.0 means "an order at mid always fills".
6. ``IOC`` orders cancel whatever the quote did not fill (``ioc``).

Each fill pays ``commission_per_contract`` x qty (0.65) and records
``slippage = price - mid_at_placement`` for a BUY, ``mid_at_placement - price`` for a
SELL (positive = worse for us). Quotes with NaN/negative prices or a crossed book are
ignored and counted in ``state.bad_quotes``.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from core.domain.reasons import Reason
from core.domain.signal import Side
from core.execution.broker import Broker, BrokerEvent, BrokerEventKind, BrokerPosition, QuoteSnapshot
from core.execution.guard import OrderRejected, check_order
from core.execution.orders import (
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from core.execution.policy import EPS, OrderPolicy, PolicyConfig
from core.execution.pricing import money

__all__ = ["PaperBroker", "PaperBrokerState", "PaperConfig"]

KEEP_TERMINAL_S = 3600



PaperConfig = PolicyConfig  # the paper broker is configured by the shared order policy


class PaperBrokerState(BaseModel):
    """Everything the paper broker knows; persist it with ``model_dump_json``."""

    config: PaperConfig = Field(default_factory=PaperConfig)
    orders: dict[str, OrderState] = Field(default_factory=dict)
    positions: dict[str, BrokerPosition] = Field(default_factory=dict)
    quotes: dict[str, QuoteSnapshot] = Field(default_factory=dict)
    bad_quotes: int = 0


class PaperBroker(Broker):
    name = "paper"

    def __init__(self, config: PaperConfig | None = None, *, state: PaperBrokerState | None = None) -> None:
        if state is not None and config is not None and state.config != config:
            raise ValueError("pass either a config or a state (whose config is used), not both")
        self._s = state.model_copy(deep=True) if state is not None else PaperBrokerState(
            config=config or PaperConfig()
        )
        self._policy = OrderPolicy(self._s.config)

    # ----------------------------------------------------------------- state
    @property
    def config(self) -> PaperConfig:
        return self._s.config

    def snapshot(self) -> PaperBrokerState:
        return self._s.model_copy(deep=True)

    @classmethod
    def restore(cls, state: PaperBrokerState) -> PaperBroker:
        return cls(state=state)

    def dump_state(self, now: datetime) -> str:
        """The book as JSON. Terminal orders older than ``KEEP_TERMINAL_S`` are dropped first
        (the orders stream keeps their history)."""
        cutoff = now - timedelta(seconds=KEEP_TERMINAL_S)
        self._s.orders = {k: o for k, o in self._s.orders.items() if o.is_open or o.updated_ts >= cutoff}
        return self._s.model_dump_json()

    def load_state(self, raw: str) -> None:
        self._s = PaperBrokerState.model_validate_json(raw)
        self._policy = OrderPolicy(self._s.config)

    def rebuild(self, raw: str | None) -> None:
        """Back to the book last committed (``raw``; None: nothing committed yet, an empty book).
        The quotes seen since are kept: they are what the market showed, not outputs of the
        failed handling, and an exit placed next must not be refused for a quote it has."""
        quotes, bad = self._s.quotes, self._s.bad_quotes
        if raw:
            self.load_state(raw)
        else:
            self._s = PaperBrokerState(config=self._s.config)
            self._policy = OrderPolicy(self._s.config)
        self._s.quotes = {**self._s.quotes, **quotes}
        self._s.bad_quotes = max(bad, self._s.bad_quotes)

    def rollback(self, events: list[BrokerEvent]) -> None:
        """Nothing to give back: :meth:`rebuild` undoes them and the retried event re-creates them."""

    def order(self, order_id: str) -> OrderState:
        return self._s.orders[order_id].model_copy(deep=True)

    def last_quote(self, contract_key: str) -> QuoteSnapshot | None:
        return self._s.quotes.get(contract_key)

    def held_qty(self, contract_key: str) -> int:
        p = self._s.positions.get(contract_key)
        return p.qty if p else 0

    def committed_sell_qty(self, contract_key: str) -> int:
        return sum(
            o.remaining for o in self._s.orders.values()
            if o.is_open and o.request.side == Side.SELL and o.contract_key == contract_key
        )

    # ------------------------------------------------------------ interface
    async def place(self, order: OrderRequest) -> OrderState:
        return self.place_now(order)

    async def cancel(self, order_id: str, now: datetime | None = None) -> OrderState:
        o = self._s.orders[order_id]
        if o.is_open:
            self._cancel(o, now or o.updated_ts, "client")
        return o.model_copy(deep=True)

    async def on_quote(
        self, contract_key: str, bid: float, ask: float, bid_size: int, ask_size: int, now: datetime
    ) -> list[BrokerEvent]:
        return self.quote_now(contract_key, bid, ask, bid_size, ask_size, now)

    async def on_timer(self, now: datetime) -> list[BrokerEvent]:
        return self.expire(now)

    async def open_orders(self) -> list[OrderState]:
        return [o.model_copy(deep=True) for o in self._open()]

    async def positions(self) -> list[BrokerPosition]:
        return [p.model_copy(deep=True) for p in self._s.positions.values() if p.qty > 0]

    # ------------------------------------------------- synchronous core API
    def place_now(self, order: OrderRequest) -> OrderState:
        """Synchronous :meth:`place` (the async method only wraps this)."""
        known = self._s.orders.get(order.order_id)
        if known is not None:
            if known.request != order:
                raise OrderRejected(Reason.BAD_INPUT, "order_id reused with a different request", order.order_id)
            if known.status == OrderStatus.REJECTED:
                raise OrderRejected(Reason(known.reason or Reason.BAD_INPUT), "rejected before", order.order_id)
            return known.model_copy(deep=True)

        key = order.contract_key
        try:
            check_order(order, held_qty=self.held_qty(key), committed_sell_qty=self.committed_sell_qty(key))
            q = self._s.quotes.get(key)
            problem = self._policy.quote_age_problem(order, q.ts if q is not None else None)
            if problem is not None:
                raise OrderRejected(Reason.STALE_DATA, problem, order.order_id)
            assert q is not None
            refusal = self._policy.refuse_entry(order, q)
            if refusal is not None:
                raise OrderRejected(refusal[0], refusal[1], order.order_id)
        except OrderRejected as e:
            ts = order.created_ts
            self._s.orders[order.order_id] = OrderState(
                order_id=order.order_id, correlation_id=order.correlation_id, request=order,
                status=OrderStatus.REJECTED, placed_ts=ts, last_priced_ts=ts, updated_ts=ts,
                reason=e.reason.value,
            )
            raise

        limit = self._policy.initial_limit(order, q)
        ts = order.created_ts
        st = OrderState(
            order_id=order.order_id, correlation_id=order.correlation_id, request=order,
            status=OrderStatus.WORKING, limit=limit, mid_at_placement=round(q.mid, 6),
            placed_ts=ts, last_priced_ts=ts, updated_ts=ts,
        )
        self._s.orders[order.order_id] = st
        return st.model_copy(deep=True)

    def quote_now(
        self, contract_key: str, bid: float, ask: float, bid_size: int, ask_size: int, now: datetime
    ) -> list[BrokerEvent]:
        """Synchronous :meth:`on_quote`."""
        if not _valid_quote(bid, ask, bid_size, ask_size) or now.tzinfo is None:
            self._s.bad_quotes += 1
            return []
        q = QuoteSnapshot(
            contract_key=contract_key, bid=float(bid), ask=float(ask), bid_size=int(bid_size),
            ask_size=int(ask_size), ts=now,
        )
        self._s.quotes[contract_key] = q
        avail = {Side.BUY: q.ask_size, Side.SELL: q.bid_size}
        events: list[BrokerEvent] = []
        for o in self._open():
            if o.contract_key == contract_key:
                events.extend(self._work(o, q, now, avail))
        return events

    def expire(self, now: datetime) -> list[BrokerEvent]:
        """Apply the time-only rules (``day_end``, ``timeout``) to every open order without
        needing a quote - call it on a timer so orders still end when a quote feed goes quiet."""
        events: list[BrokerEvent] = []
        for o in self._open():
            why = self._policy.time_cancel(o, now)
            if why is not None:
                events.append(self._cancel(o, now, why))
        return events

    # -------------------------------------------------------------- internals
    def _open(self) -> list[OrderState]:
        return sorted((o for o in self._s.orders.values() if o.is_open), key=lambda o: (o.placed_ts, o.order_id))

    def _work(self, o: OrderState, q: QuoteSnapshot, now: datetime, avail: dict[Side, int]) -> list[BrokerEvent]:
        req = o.request
        buy = req.side == Side.BUY

        action = self._policy.on_quote(o, q, now)
        if action.kind == "cancel":
            return [self._cancel(o, now, action.reason)]
        events: list[BrokerEvent] = []
        if action.kind == "reprice":
            old = o.limit
            o.limit = action.new_limit
            o.repricings += 1
            o.last_priced_ts = now
            o.updated_ts = now
            events.append(self._event(BrokerEventKind.REPRICED, o, now, old_limit=old, new_limit=action.new_limit))

        price: float | None = None
        if req.order_type == OrderType.MKT:
            if buy and (req.max_price is None or q.ask <= req.max_price + EPS):
                price = q.ask
            elif not buy and q.bid > 0 and (req.min_price is None or q.bid >= req.min_price - EPS):
                price = q.bid
        else:
            assert o.limit is not None
            if buy:
                marketable = q.ask <= o.limit + EPS
                passive = o.limit >= q.mid - EPS
            else:
                marketable = q.bid >= o.limit - EPS
                passive = o.limit <= q.mid + EPS
            if marketable or (passive and self._passive_hit(o, now)):
                price = o.limit
        if price is not None:
            qty = min(o.remaining, avail[req.side])
            if qty > 0:
                avail[req.side] -= qty
                events.append(self._fill(o, qty, price, now))

        if req.tif == TimeInForce.IOC and o.is_open:
            events.append(self._cancel(o, now, "ioc"))
        return events

    def _passive_hit(self, o: OrderState, now: datetime) -> bool:
        p = self._s.config.passive_fill_prob
        if p <= 0.0:
            return False
        if p >= 1.0:
            return True
        h = hashlib.blake2b(f"{self._s.config.seed}|{o.order_id}|{now.isoformat()}".encode(), digest_size=8)
        return int.from_bytes(h.digest(), "big") / 2.0**64 < p

    def _fill(self, o: OrderState, qty: int, price: float, now: datetime) -> BrokerEvent:
        cfg = self._s.config
        req = o.request
        contract = req.option
        buy = req.side == Side.BUY
        mid = o.mid_at_placement
        slip = 0.0 if mid is None else round((price - mid) if buy else (mid - price), 6)
        fill = Fill(
            fill_id=f"{o.order_id}:{len(o.fills) + 1}", order_id=o.order_id, correlation_id=o.correlation_id,
            contract=contract, side=req.side, purpose=req.purpose, qty=qty, price=round(price, 6),
            commission=money(qty * cfg.commission_per_contract), ts=now, mid_at_placement=mid, slippage=slip,
        )
        prev = o.filled_qty
        o.avg_price = round(((o.avg_price or 0.0) * prev + fill.price * qty) / (prev + qty), 6)
        o.filled_qty = prev + qty
        o.commission = money(o.commission + fill.commission)
        o.fills.append(fill)
        o.status = OrderStatus.FILLED if o.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        o.updated_ts = now

        key = contract.key
        pos = self._s.positions.get(key) or BrokerPosition(contract=contract)
        mult = contract.multiplier
        if buy:
            pos.avg_cost = round((pos.avg_cost * pos.qty + fill.price * qty) / (pos.qty + qty), 6)
            pos.qty += qty
            pos.realized_pnl = money(pos.realized_pnl - fill.commission)
        else:
            if qty > pos.qty:  # the guard makes this unreachable; never silently go short
                raise AssertionError(f"paper fill would sell {qty} of {pos.qty} held in {key}")
            pos.realized_pnl = money(pos.realized_pnl + (fill.price - pos.avg_cost) * qty * mult - fill.commission)
            pos.qty -= qty
        pos.commissions = money(pos.commissions + fill.commission)
        self._s.positions[key] = pos
        return self._event(BrokerEventKind.FILL, o, now, fill=fill)

    def _cancel(self, o: OrderState, now: datetime, reason: str) -> BrokerEvent:
        o.status = OrderStatus.CANCELLED
        o.reason = reason
        o.updated_ts = now
        return self._event(BrokerEventKind.CANCELLED, o, now, reason=reason)

    @staticmethod
    def _event(kind: BrokerEventKind, o: OrderState, now: datetime, **kw: object) -> BrokerEvent:
        return BrokerEvent(
            kind=kind, ts=now, order_id=o.order_id, correlation_id=o.correlation_id,
            contract_key=o.contract_key, order=o.model_copy(deep=True), **kw,  # type: ignore[arg-type]
        )


def _valid_quote(bid: float, ask: float, bid_size: int, ask_size: int) -> bool:
    try:
        fb, fa = float(bid), float(ask)
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(fb) and math.isfinite(fa)) or fb < 0 or fa <= 0 or fa < fb:
        return False
    try:
        return int(bid_size) >= 0 and int(ask_size) >= 0
    except (TypeError, ValueError):
        return False
