"""The broker interface that the paper broker and the (later) IBKR adapter both fit.

A bus service owns one ``Broker``: it calls :meth:`Broker.place` for approved entries
and for exit actions, feeds option quotes to :meth:`Broker.on_quote` (the paper broker
fills against them; IBKR pushes its own fills, so its ``on_quote`` returns ``[]``), and
publishes every returned :class:`BrokerEvent`.

Every adapter must run :func:`core.execution.guard.check_order` inside ``place`` before
anything reaches a market.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from enum import StrEnum

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


class BrokerEvent(BaseModel):
    """One change to one order, with the order's state *after* the change."""

    kind: BrokerEventKind
    ts: AwareDatetime
    order_id: str
    correlation_id: str
    contract_key: str
    order: OrderState
    fill: Fill | None = None
    old_limit: float | None = None
    new_limit: float | None = None
    reason: str | None = None


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
    """Async broker interface. Implementations: ``PaperBroker``; the IBKR adapter later."""

    name: str = "broker"

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
