"""The state an :class:`~core.ibkr.market_data.IbkrMarketSource` keeps, and the value checks on IB's raw numbers.

Every IB ticker update is copied, validated, into these records (stamped with the service clock);
the methods the market service calls each tick only read them. :class:`MarketState` holds the
source's whole state (its ``__init__``); the behaviour lives in the modules that subclass it:
``market_lines`` (subscriptions), ``market_discovery`` (chains, watched contracts, IV reference),
``market_ticks`` (incoming data), ``market_reads`` (what the service reads), ``market_data``
(lifecycle, reconnects, the tick).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from ib_async import Contract

from core.ibkr.connection import IbConnection
from core.ibkr.contracts import ContractCache
from core.market.reference import Reference
from core.market.source import MarketSource, TradePrint

if TYPE_CHECKING:
    from core.domain.contract import OptionContract
    from core.runtime.service import Context

NAN = float("nan")


def to_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def finite(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def positive(x: Any) -> float | None:
    f = finite(x)
    return f if f is not None and f > 0 else None


def tick_reason(price: float) -> str | None:
    """Why a raw price tick is not a price (None: it is one, or a plain zero)."""
    if not math.isfinite(price):
        return "non_finite"
    if price == -1:
        return "no_value"
    if price < 0:
        return "negative"
    return None


def option_side(value: float, prev: float, bad: bool) -> float:
    """One side of an option quote: NaN after a bad tick or IB's explicit "none" (-1 / 0),
    the previous value while the (re-subscribed) ticker has nothing yet."""
    if bad:
        return NAN
    if math.isnan(value):
        return prev
    return value if value > 0 else NAN


def keep_valid(value: float | None, prev: float, ok: bool) -> float:
    if value is None or not math.isfinite(value):
        return prev
    return value if ok else NAN


@dataclass
class UnderlyingState:
    symbol: str
    contract: Contract | None = None
    is_index: bool = False
    bid: float = NAN  # last valid values
    ask: float = NAN
    last: float = NAN
    bid_size: float = 0.0
    ask_size: float = 0.0
    volume: float = 0.0
    close: float = NAN
    quote_ms: int | None = None  # when the valid book was last updated
    valid: bool = False  # the current book is valid


@dataclass
class OptionRow:
    """The last values of one option contract (kept after its line is cancelled)."""

    contract: OptionContract
    bid: float = NAN
    ask: float = NAN
    bid_size: float = NAN
    ask_size: float = NAN
    iv: float = NAN
    delta: float = NAN
    gamma: float = NAN
    open_interest: float = NAN
    volume: float = NAN
    und_price: float = NAN
    ts_ms: int = 0

    @property
    def two_sided(self) -> bool:
        return self.bid > 0 and self.ask > 0 and self.bid <= self.ask  # NaN compares False


@dataclass
class BookState:
    ts_ms: int
    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)



class MarketState(MarketSource):
    """The state of the IBKR market source (see the module docstring); no behaviour but two reads."""

    def __init__(self, ctx: Context, conn: IbConnection | None = None) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.ib_settings = s.ibkr
        self.symbols = list(s.market.symbols)
        self.conn = conn or IbConnection(s.ibkr, "market", redis=ctx.redis, keys=ctx.keys, bus=ctx.bus,
                                         clock=ctx.clock)
        self.cache = ContractCache(self.conn, s.ibkr.qualify_batch)
        self.rejected: Counter[str] = Counter()
        self._und = {sym: UnderlyingState(sym) for sym in self.symbols}
        self._und_by_con: dict[int, str] = {}
        self._chains: dict[str, list[OptionContract]] = {}
        self._chain_day: dict[str, date] = {}
        self._retry_at: dict[str, float] = {}
        self._rows: dict[str, OptionRow] = {}
        self._watch: set[str] = set()
        self._lines: dict[int, Contract] = {}  # conId -> contract with a live reqMktData
        self._fresh: dict[int, bool] = {}  # line answered since it was requested
        self._rot: list[str] = []
        self._rot_pos = 0
        self._batch: list[str] = []
        self._batch_ticks = 0
        self._depth_lines: dict[str, Contract] = {}
        self._depth_since_ms: int | None = None
        self._depth_pos = 0
        self._books: dict[str, BookState] = {}
        self._prints: dict[str, deque[TradePrint]] = {sym: deque(maxlen=20_000) for sym in self.symbols}
        self._tasks: dict[str, asyncio.Task] = {}
        self._refs: dict[str, Reference] = {}
        self._ref_task: asyncio.Task | None = None
        self._ref_deadline: float | None = None
        self._logged: dict[str, tuple[float, int]] = {}  # reason -> (last logged, rejected since)
        self._throttling = False
        self._started = False
        self._now: datetime | None = None


    def _now_ms(self) -> int:
        return to_ms(self._now) if self._now is not None else self.ctx.clock.ms()

    def _spot(self, sym: str) -> float | None:
        u = self._und.get(sym)
        if u is None or u.quote_ms is None:
            return None
        if u.is_index:
            return positive(u.last)
        return (u.bid + u.ask) / 2.0

