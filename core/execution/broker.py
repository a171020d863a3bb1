"""The broker interface that the paper broker and the IBKR adapter both fit.

The execution service owns one ``Broker`` and talks to nothing else:

* :meth:`Broker.start` / :meth:`Broker.stop` - connect (and reconcile) / disconnect.
* :meth:`Broker.place` for approved entries and exit actions, :meth:`Broker.cancel`,
  :meth:`Broker.open_orders`, :meth:`Broker.positions`, :meth:`Broker.flatten`.
* :meth:`Broker.on_quote` - option quotes of watched contracts. The paper broker fills,
  reprices and cancels against them; a live broker applies the shared order policy
  (``core.execution.policy``: reprice by modifying the order, cancel) and returns what it
  did at once, while fills, cancels and rejects arrive later on the push channel.
* :meth:`Broker.on_timer` - time-only policy rules (entry timeout, day-end cancel).
* Push channel: a live broker queues asynchronous :class:`BrokerEvent` s and calls the
  ``wake`` callback given to :meth:`Broker.set_wakeup`; the service then calls
  :meth:`Broker.drain_events` and publishes them at once (not on its timer).
* Persistence hooks: :meth:`Broker.dump_state` / :meth:`Broker.load_state` - the service
  keeps what they return in Redis with its outputs (the paper book); a broker that
  persists on its own (IBKR keeps its order map in Redis before IB acknowledges) returns
  ``None``. When a transaction fails, :meth:`Broker.rebuild` (back to the last committed
  state) and :meth:`Broker.rollback` (events handed out but not published) undo it.

Every adapter must run :func:`core.execution.guard.check_order` inside ``place`` before
anything reaches a market.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.domain.contract import OptionContract
from core.domain.signal import Side
from core.execution.orders import Fill, OrderPurpose, OrderRequest, OrderState, OrderType, TimeInForce

__all__ = ["Broker", "BrokerEvent", "BrokerEventKind", "BrokerPosition", "QuoteSnapshot"]


class BrokerEventKind(StrEnum):
    FILL = "fill"  # partial or complete; ``fill`` is set, ``order.status`` tells which
    REPRICED = "repriced"  # working limit moved; ``old_limit`` -> ``new_limit``
    CANCELLED = "cancelled"  # ``reason``: timeout | spread_too_wide | day_end | ioc | client
    REJECTED = "rejected"
    STATUS = "status"  # a working order's state changed at the broker (acknowledged, id mapped)
    ADOPTED = "adopted"  # reconciliation: the account holds ``position`` that no fill here explains
    MISSING = "missing"  # reconciliation: state here holds ``position`` the account does not
    RECONCILED = "reconciled"  # reconciliation summary in ``detail`` (one admin message)


class BrokerEvent(BaseModel):
    """One change to one order, with the order's state *after* the change."""

    kind: BrokerEventKind
    ts: AwareDatetime
    order_id: str
    correlation_id: str
    contract_key: str
    order: OrderState | None = None  # None only for ADOPTED / MISSING / RECONCILED
    position: BrokerPosition | None = None  # ADOPTED / MISSING
    fill: Fill | None = None
    old_limit: float | None = None
    new_limit: float | None = None
    reason: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class BrokerPosition(BaseModel):
    """Account-level holding in one contract (long only: ``qty >= 0``)."""

    contract: OptionContract
    qty: int = Field(default=0, ge=0)
    avg_cost: float = 0.0  # per-share premium
    realized_pnl: float = 0.0  # dollars, after commissions
    commissions: float = 0.0


class QuoteSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    contract_key: str
    bid: float
    ask: float
    bid_size: int
    ask_size: int
    ts: AwareDatetime

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def spread(self) -> float:
        return self.ask - self.bid


class Broker(ABC):
    """Async broker interface. Implementations: ``PaperBroker``, ``core.ibkr.IbkrBroker``."""

    name: str = "broker"
    _wake: Callable[[], None] | None = None

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect and reconcile (a paper broker has nothing to do)."""

    async def stop(self) -> None:
        """Disconnect."""

    def describe(self) -> dict[str, str]:
        """What the start-up line and ``/status`` show: ``name``, ``connected`` ("1"/"0"),
        ``account`` (masked)."""
        return {"name": self.name, "connected": "1", "account": "paper"}

    # ------------------------------------------------------------ push channel
    def set_wakeup(self, wake: Callable[[], None]) -> None:
        """``wake()`` is called (from the event loop) whenever events are queued."""
        self._wake = wake

    def drain_events(self) -> list[BrokerEvent]:
        """Asynchronous events (fills, cancels, rejects, reconciliation) queued since the
        last call, oldest first. A paper broker has none: it answers synchronously."""
        return []

    def requeue(self, events: list[BrokerEvent]) -> None:
        """Give back drained events whose publication failed: they are drained first next time."""

    async def on_timer(self, now: datetime) -> list[BrokerEvent]:
        """Apply the time-only policy rules (entry timeout, day-end) to working orders."""
        return []

    def last_quote(self, contract_key: str) -> QuoteSnapshot | None:
        """The last quote fed to :meth:`on_quote` for ``contract_key``."""
        return None

    # ------------------------------------------------------------ persistence hooks
    def dump_state(self, now: datetime) -> str | None:
        """State the service must persist with its outputs (None: the broker persists itself)."""
        return None

    def load_state(self, raw: str) -> None:
        """Restore what :meth:`dump_state` returned."""

    def rebuild(self, raw: str | None) -> None:
        """A handling's transaction failed: go back to the state last committed, ``raw`` (what
        :meth:`dump_state` gave to the last transaction that committed; None = none yet). A
        broker that persists itself has nothing to rebuild."""

    def rollback(self, events: list[BrokerEvent]) -> None:
        """``events`` (drained from the push channel or returned by ``on_quote`` / ``on_timer``)
        were put on a transaction that failed. A broker whose events are facts at the broker
        (a live one) gets them back to publish with the next attempt: :meth:`requeue`. A broker
        rebuilt by :meth:`rebuild` re-creates them when the event is retried (override)."""
        self.requeue(events)

    def record_published(self, pipe: Any, events: list[BrokerEvent]) -> None:
        """Queue on ``pipe`` (the service's transaction, committed atomically with the published
        events) whatever marks ``events`` as published, so a restart never publishes them twice
        (IBKR: the execution ids). Nothing for a paper broker."""

    @abstractmethod
    async def place(self, order: OrderRequest) -> OrderState:
        """Place ``order`` (idempotent on ``order.order_id``). Raises
        :class:`~core.execution.guard.OrderRejected` when the guard or the broker refuses it."""

    @abstractmethod
    async def cancel(self, order_id: str, now: datetime | None = None) -> OrderState:
        """Cancel a working order (a terminal order is returned unchanged).
        ``KeyError`` for an unknown id."""

    async def on_quote(
        self, contract_key: str, bid: float, ask: float, bid_size: int, ask_size: int, now: datetime
    ) -> list[BrokerEvent]:
        """Feed one option quote. Paper brokers fill/reprice/cancel against it; a live
        broker pushes its own events and returns ``[]``."""
        return []

    @abstractmethod
    async def open_orders(self) -> list[OrderState]:
        """Orders not yet filled, cancelled or rejected, oldest first."""

    @abstractmethod
    async def positions(self) -> list[BrokerPosition]:
        """Held long positions (``qty > 0``)."""

    async def flatten(self, now: datetime, *, id_prefix: str = "flatten") -> list[OrderState]:
        """Sell everything held that is not already being sold, at market (paper: at the bid).
        Order ids are deterministic in ``now`` so a retried flatten is idempotent."""
        committed: dict[str, int] = {}
        for o in await self.open_orders():
            if o.request.side == Side.SELL:
                committed[o.contract_key] = committed.get(o.contract_key, 0) + o.remaining
        out: list[OrderState] = []
        stamp = int(now.timestamp() * 1000)
        for p in await self.positions():
            qty = p.qty - committed.get(p.contract.key, 0)
            if qty <= 0:
                continue
            req = OrderRequest(
                order_id=f"{id_prefix}:{p.contract.key}:{stamp}", correlation_id=f"{id_prefix}:{stamp}",
                contract=p.contract, side=Side.SELL, qty=qty, order_type=OrderType.MKT,
                tif=TimeInForce.DAY, purpose=OrderPurpose.EXIT, created_ts=now,
            )
            out.append(await self.place(req))
        return out
