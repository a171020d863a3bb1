"""The market-data seam: a ``MarketSource`` is where quotes, depth, chains, option quotes,
flow and reference data come from. The market service around it only publishes to the bus
(``core.market.service``), so the simulator, IBKR, the vendors and a composite of them are
interchangeable and the rest of the system never knows which one runs.

The service calls, each market tick (``market.tick_seconds``):

1. ``await source.advance(now)`` - bring the source to ``now``; False = nothing to publish
   (outside the source's session, or not connected yet).
2. per symbol: ``quote``, flow (``prints``, ``option_flow``, ``net_premium``),
   ``closing_imbalance``; on the chain cadence ``depth`` and ``chain``; for watched contracts
   ``option_quotes``.

``watch(keys)`` tells the source which option contracts (``OptionContract.key``) must have live
quotes (working orders and open positions); a streaming source subscribes them.
``regular_hours(now)`` decides the chain cadence; ``reference(symbol)`` feeds IV rank and the
earnings calendar. ``feed`` names the source on every event it produces.

Bad data never leaves a source as a number: a quote with a NaN / negative price or a crossed
book is returned with ``stale=True`` (the service publishes no snapshot from it) or dropped,
and counted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from core.market.chain import OptionChain
from core.market.reference import Reference
from core.market.sim.models import (
    ClosingImbalance,
    DepthBook,
    FlowAlert,
    NetPremiumTick,
    TradePrint,
    UnderlyingQuote,
)

__all__ = [
    "ClosingImbalance", "DepthBook", "FlowAlert", "MarketSource", "NetPremiumTick", "OptionQuote",
    "TradePrint", "UnderlyingQuote",
]


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """The live quote of one watched option contract."""

    contract_key: str  # OptionContract.key: SYMBOL:YYYYMMDD:R:STRIKE:MULT
    symbol: str
    expiry: str  # ISO date
    strike: float
    right: str  # "C" | "P"
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    underlying: float
    ts_ms: int


class MarketSource(ABC):
    feed: str = "source"
    symbols: list[str]

    async def start(self, now: datetime) -> None:
        """Connect / build; called once before the first tick."""

    async def stop(self) -> None:
        """Disconnect."""

    @abstractmethod
    async def advance(self, now: datetime) -> bool:
        """Bring the source to ``now``. False: nothing to publish at this tick."""

    @abstractmethod
    def regular_hours(self, now: datetime) -> bool:
        """Whether ``now`` is in the regular session (chains refresh on cadence only then)."""

    @abstractmethod
    def quote(self, symbol: str) -> UnderlyingQuote | None:
        """The underlying's quote now (``stale=True`` when the feed has not updated it)."""

    def depth(self, symbol: str, levels: int) -> DepthBook | None:
        """The book, best first (None: no depth for this symbol right now)."""
        return None

    @abstractmethod
    def chain(self, symbol: str) -> OptionChain | None:
        """The option chain now (None or empty: nothing to publish yet)."""

    @abstractmethod
    def option_quotes(self, symbol: str, contract_keys: set[str]) -> list[OptionQuote]:
        """Quotes of the watched contracts of ``symbol`` (sorted by key; unknown keys skipped)."""

    def prints(self, symbol: str) -> list[TradePrint]:
        """Tape prints since the previous call."""
        return []

    def option_flow(self, symbol: str) -> list[FlowAlert]:
        """Notable option trades (flow alerts) since the previous call."""
        return []

    def net_premium(self, symbol: str) -> list[NetPremiumTick]:
        """Per-minute net premium ticks completed since the previous call."""
        return []

    def closing_imbalance(self, symbol: str) -> ClosingImbalance | None:
        """The closing-auction imbalance (None outside its window or when not available)."""
        return None

    async def reference(self, symbol: str) -> Reference | None:
        """52-week IV range, next earnings, insider activity (None: unknown)."""
        return None

    def watch(self, contract_keys: set[str]) -> None:
        """The option contracts that must have live quotes (streaming sources subscribe them)."""

    def describe(self) -> str:
        """One line for the start-up banner."""
        return self.feed
