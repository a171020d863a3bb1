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
from datetime import datetime, time

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.domain.reasons import Reason
from core.domain.signal import Side
from core.execution.broker import Broker, BrokerEvent, BrokerEventKind, BrokerPosition, QuoteSnapshot
from core.execution.guard import OrderRejected, check_order
from core.execution.orders import (
    Fill,
    OrderPurpose,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from core.execution.pricing import money, ny, ny_at, to_tick

__all__ = ["PaperBroker", "PaperBrokerState", "PaperConfig"]

_EPS = 1e-9


class PaperConfig(BaseModel):
    """Paper-fill settings (names match ``execution:`` in ``config/default.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    commission_per_contract: float = Field(default=0.65, ge=0)
    tick: float = Field(default=0.01, gt=0)
    reprice_after_s: float = Field(default=30.0, gt=0)
    reprice_step_pct_of_spread: float = Field(default=25.0, gt=0, le=100)
    max_reprices: int = Field(default=2, ge=0)
    exit_max_reprices: int | None = Field(default=None, ge=0)
    order_timeout_s: float | None = Field(default=120.0, gt=0)
    exit_timeout_s: float | None = Field(default=None, gt=0)
    cancel_spread_pct_of_mid: float | None = Field(default=10.0, gt=0)
    max_quote_age_s: float | None = Field(default=15.0, gt=0)
    passive_fill_prob: float = Field(default=0.0, ge=0, le=1)
    seed: int | None = None
    day_close: time = time(16, 0)

    @model_validator(mode="after")
    def _seeded(self) -> PaperConfig:
        if 0.0 < self.passive_fill_prob < 1.0 and self.seed is None:
            raise ValueError("passive_fill_prob strictly between 0 and 1 needs a seed (determinism)")
        return self


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

    # ----------------------------------------------------------------- state
    @property
    def config(self) -> PaperConfig:
        return self._s.config

    def snapshot(self) -> PaperBrokerState:
        return self._s.model_copy(deep=True)

    @classmethod
    def restore(cls, state: PaperBrokerState) -> PaperBroker:
        return cls(state=state)

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

    async def open_orders(self) -> list[OrderState]:
        return [o.model_copy(deep=True) for o in self._open()]

    async def positions(self) -> list[BrokerPosition]:
        return [p.model_copy(deep=True) for p in self._s.positions.values() if p.qty > 0]

    # ------------------------------------------------- synchronous core API
    def place_now(self, order: OrderRequest) -> OrderState:
        """Synchronous :meth:`place` (the async method only wraps this)."""
        cfg = self._s.config
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
            if q is None:
                raise OrderRejected(Reason.STALE_DATA, f"no quote for {key}", order.order_id)
            age = (order.created_ts - q.ts).total_seconds()
            if cfg.max_quote_age_s is not None and age > cfg.max_quote_age_s:
                raise OrderRejected(Reason.STALE_DATA, f"last quote is {age:.1f}s old", order.order_id)
            entry = order.purpose == OrderPurpose.ENTRY
            if entry and self._too_wide(q):
                raise OrderRejected(
                    Reason.SPREAD_TOO_WIDE,
                    f"spread {q.spread:.2f} > {cfg.cancel_spread_pct_of_mid}% of mid {q.mid:.2f}",
                    order.order_id,
                )
        except OrderRejected as e:
            ts = order.created_ts
            self._s.orders[order.order_id] = OrderState(
                order_id=order.order_id, correlation_id=order.correlation_id, request=order,
                status=OrderStatus.REJECTED, placed_ts=ts, last_priced_ts=ts, updated_ts=ts,
                reason=e.reason.value,
            )
            raise

        limit: float | None = None
        if order.order_type == OrderType.LMT:
            if order.side == Side.BUY:
                limit = order.limit if order.limit is not None else to_tick(q.mid, cfg.tick, "down")
                if order.max_price is not None:
                    limit = min(limit, order.max_price)
            else:
                limit = order.limit if order.limit is not None else max(to_tick(q.bid, cfg.tick), cfg.tick)
                if order.min_price is not None:
                    limit = max(limit, order.min_price)
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
            why = self._time_cancel_reason(o, now)
            if why is not None:
                events.append(self._cancel(o, now, why))
        return events

    # -------------------------------------------------------------- internals
    def _time_cancel_reason(self, o: OrderState, now: datetime) -> str | None:
        cfg = self._s.config
        req = o.request
        if req.tif == TimeInForce.DAY and now >= ny_at(ny(req.created_ts).date(), cfg.day_close):
            return "day_end"
        timeout = cfg.order_timeout_s if req.purpose == OrderPurpose.ENTRY else cfg.exit_timeout_s
        if timeout is not None and (now - o.placed_ts).total_seconds() >= timeout - _EPS:
            return "timeout"
        return None

    def _open(self) -> list[OrderState]:
        return sorted((o for o in self._s.orders.values() if o.is_open), key=lambda o: (o.placed_ts, o.order_id))

    def _too_wide(self, q: QuoteSnapshot) -> bool:
        pct = self._s.config.cancel_spread_pct_of_mid
        if pct is None:
            return False
        return q.mid <= 0 or q.spread > pct / 100.0 * q.mid + _EPS

    def _work(self, o: OrderState, q: QuoteSnapshot, now: datetime, avail: dict[Side, int]) -> list[BrokerEvent]:
        cfg = self._s.config
        req = o.request
        entry = req.purpose == OrderPurpose.ENTRY
        buy = req.side == Side.BUY

        why = self._time_cancel_reason(o, now)
        if why is not None:
            return [self._cancel(o, now, why)]
        if entry and self._too_wide(q):
            return [self._cancel(o, now, Reason.SPREAD_TOO_WIDE.value)]

        events: list[BrokerEvent] = []
        if req.order_type == OrderType.LMT and o.limit is not None:
            cap = cfg.max_reprices if entry else cfg.exit_max_reprices
            last = max([o.last_priced_ts] + [f.ts for f in o.fills])
            idle = (now - last).total_seconds()
            if idle >= cfg.reprice_after_s - _EPS and (cap is None or o.repricings < cap):
                new = self._reprice_target(o, q)
                if new is not None:
                    old = o.limit
                    o.limit = new
                    o.repricings += 1
                    o.last_priced_ts = now
                    o.updated_ts = now
                    events.append(self._event(BrokerEventKind.REPRICED, o, now, old_limit=old, new_limit=new))

        price: float | None = None
        if req.order_type == OrderType.MKT:
            if buy and (req.max_price is None or q.ask <= req.max_price + _EPS):
                price = q.ask
            elif not buy and q.bid > 0 and (req.min_price is None or q.bid >= req.min_price - _EPS):
                price = q.bid
        else:
            assert o.limit is not None
            if buy:
                marketable = q.ask <= o.limit + _EPS
                passive = o.limit >= q.mid - _EPS
            else:
                marketable = q.bid >= o.limit - _EPS
                passive = o.limit <= q.mid + _EPS
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

    def _reprice_target(self, o: OrderState, q: QuoteSnapshot) -> float | None:
        cfg = self._s.config
        req = o.request
        assert o.limit is not None
        step = cfg.reprice_step_pct_of_spread / 100.0 * q.spread
        if req.side == Side.BUY:
            far = to_tick(q.ask, cfg.tick, "down")
            if req.max_price is not None:
                far = min(far, req.max_price)
            target = min(to_tick(o.limit + step, cfg.tick), far)
            if target <= o.limit + _EPS:
                target = min(o.limit + cfg.tick, far)
            return round(target, 10) if target > o.limit + _EPS else None
        far = max(to_tick(q.bid, cfg.tick, "up"), cfg.tick)
        if req.min_price is not None:
            far = max(far, req.min_price)
        target = max(to_tick(o.limit - step, cfg.tick), far)
        if target >= o.limit - _EPS:
            target = max(o.limit - cfg.tick, far)
        return round(target, 10) if target < o.limit - _EPS else None

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
