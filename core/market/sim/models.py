"""What the simulator returns. Plain frozen dataclasses; ``to_dict()`` gives a
JSON-ready dict (datetimes as ISO-8601 strings, numpy arrays as lists) for the bus."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, Literal

import numpy as np

from core.domain.contract import OptionContract, Right


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


class _ToDict:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        cls = type(self)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(self))  # type: ignore[arg-type]
        return {n: _jsonable(getattr(self, n)) for n in names}


@dataclass(frozen=True, slots=True)
class UnderlyingQuote(_ToDict):
    """Top of book. ``ts`` is when the quote was current; it stays frozen while a
    feed gap is injected (``stale`` is then True)."""

    symbol: str
    ts: datetime
    bid: float
    ask: float
    last: float
    bid_size: int
    ask_size: int
    volume_today: int
    prev_close: float
    stale: bool = False

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0

    @property
    def spread(self) -> float:
        return self.ask - self.bid


@dataclass(frozen=True, slots=True)
class DepthBook(_ToDict):
    """``levels`` price levels each side, best first. Prices strictly worsen level by
    level; sizes are shares (> 0)."""

    symbol: str
    ts: datetime
    bid_price: np.ndarray     # float64 (levels,), descending
    bid_size: np.ndarray      # int64 (levels,)
    ask_price: np.ndarray     # float64 (levels,), ascending
    ask_size: np.ndarray      # int64 (levels,)
    stale: bool = False

    @property
    def levels(self) -> int:
        return int(self.bid_price.shape[0])

    @property
    def imbalance(self) -> float:
        """(bid shares - ask shares) / total over all levels, in [-1, 1]."""
        b, a = float(self.bid_size.sum()), float(self.ask_size.sum())
        return (b - a) / (b + a) if b + a > 0 else 0.0


PrintSide = Literal["buy", "sell", "mid"]
PrintKind = Literal["odd_lot", "round_lot", "block", "sweep"]


@dataclass(frozen=True, slots=True)
class TradePrint(_ToDict):
    """One tape print. ``side`` is the aggressor inferred from the quote (buy = at the
    ask). Sweep legs share ``sweep_id`` and timestamp (to the microsecond order)."""

    symbol: str
    ts: datetime
    price: float
    size: int
    side: PrintSide
    exchange: str
    kind: PrintKind
    sweep_id: int | None = None


@dataclass(frozen=True, slots=True)
class FlowAlert(_ToDict):
    """A vendor-style (Unusual-Whales-like) option flow alert: one notable trade.

    ``side`` is where it printed against the option quote: ``ask`` (bought),
    ``bid`` (sold) or ``mid``. ``premium`` = price * size * 100.
    """

    symbol: str
    ts: datetime
    contract: str              # OCC symbol, e.g. "SPY   251128C00590000"
    expiry: date
    strike: float
    right: Literal["C", "P"]
    side: Literal["ask", "bid", "mid"]
    is_sweep: bool
    size: int                  # contracts
    price: float               # per share (option premium quote units)
    premium: float             # dollars
    bid: float
    ask: float
    underlying_price: float
    iv: float
    open_interest: int
    volume: int                # contract's volume today including this trade
    exchanges: int             # venues hit (1 unless a sweep)
    alert_rule: str            # "Sweep" | "Block" | "LargePremium" | "VolOverOI"

    @property
    def is_call(self) -> bool:
        return self.right == "C"

    @property
    def bullish(self) -> bool:
        """Calls bought or puts sold."""
        return (self.right == "C") == (self.side == "ask") and self.side != "mid"

    def option_contract(self) -> OptionContract:
        return OptionContract(symbol=self.symbol, expiry=self.expiry, strike=self.strike,
                              right=Right(self.right))


@dataclass(frozen=True, slots=True)
class NetPremiumTick(_ToDict):
    """Per-minute aggregate of all simulated option trades (UW "net premium ticks").

    ``net_call_premium`` = call premium bought at the ask - call premium sold at the
    bid; likewise for puts. ``ts`` is the end of the minute. ``cum_*`` run from the
    open.
    """

    symbol: str
    ts: datetime
    call_volume: int
    put_volume: int
    call_premium: float
    put_premium: float
    net_call_premium: float
    net_put_premium: float
    net_call_volume: int
    net_put_volume: int
    cum_net_call_premium: float
    cum_net_put_premium: float

    @property
    def net_premium(self) -> float:
        """Bullish minus bearish premium: net calls - net puts."""
        return self.net_call_premium - self.net_put_premium


@dataclass(frozen=True, slots=True)
class ClosingImbalance(_ToDict):
    """Closing-auction imbalance (NYSE/Nasdaq style), published from 10 minutes
    before the close. ``indicative_price`` is the current near (clearing) price."""

    symbol: str
    ts: datetime
    side: Literal["buy", "sell"]
    imbalance_shares: int
    paired_shares: int
    indicative_price: float
    reference_price: float
    confidence: float          # 0..1, grows towards the auction
    auction_time: datetime


class FeedGapError(RuntimeError):
    """Raised by ``quote()``/``depth()`` inside an injected gap when
    ``SimConfig.gap_mode == "raise"``."""

    def __init__(self, symbol: str, start: datetime, end: datetime) -> None:
        super().__init__(f"{symbol}: feed gap {start.isoformat()} .. {end.isoformat()}")
        self.symbol = symbol
        self.start = start
        self.end = end
