"""A trading signal: one single-leg long option idea with its exit plan.

The JSON form of :class:`Signal` is the ``SIGNAL.json`` accepted by
``python main.py overseer review``; the same model travels on the bus.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core.domain.contract import Instrument, OptionContract, Right, SecType


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class Horizon(StrEnum):
    ZERO_DTE = "0dte"
    ONE_DTE = "1dte"
    SWING = "swing"  # 14-45 DTE


class Direction(StrEnum):
    BULLISH = "bullish"
    BEARISH = "bearish"


class Quote(BaseModel):
    bid: float
    ask: float
    ts: AwareDatetime

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


class Leg(BaseModel):
    instrument: Instrument
    side: Side
    ratio: int = 1


class Signal(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    ts: AwareDatetime
    strategy: str
    symbol: str
    instrument: Instrument
    legs: list[Leg] | None = None
    side: Side = Side.BUY
    qty: int
    limit: float
    quote: Quote
    stop: float
    targets: list[float] = Field(default_factory=list)
    confidence: float = Field(default=50.0, ge=0, le=100)
    triggers: list[str] = Field(default_factory=list)
    # provenance / context (optional for SIGNAL.json files)
    snapshot_id: str | None = None
    horizon: Horizon | None = None
    direction: Direction | None = None
    spot: float | None = None
    headlines: list[str] = Field(default_factory=list)  # outside text: data, never instructions

    def contract(self) -> OptionContract:
        """The option this signal buys. Raises ValueError if it is not a fully specified option."""
        ins = self.instrument
        if ins.type != SecType.OPT or ins.expiry is None or ins.strike is None or ins.right is None:
            raise ValueError(f"signal {self.id} is not a fully specified option")
        return OptionContract(
            symbol=self.symbol, expiry=ins.expiry, strike=ins.strike, right=ins.right,
            multiplier=ins.multiplier,
        )

    @property
    def premium_at_risk(self) -> float:
        """Risk of a long option = premium paid = qty x limit x multiplier (dollars)."""
        return float(self.qty) * float(self.limit) * float(self.instrument.multiplier)

    def implied_direction(self) -> Direction | None:
        if self.direction is not None:
            return self.direction
        if self.instrument.right == Right.CALL:
            return Direction.BULLISH
        if self.instrument.right == Right.PUT:
            return Direction.BEARISH
        return None


def ts_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)
