"""A trading signal: one single-leg long option idea with its exit plan.

The JSON form of :class:`Signal` is the ``SIGNAL.json`` accepted by
``python main.py overseer review``; the same model travels on the bus.

Validation (decision): the numbers of a signal are constrained where it is built or read
(``core.domain.values``): qty whole and > 0, limit finite and > 0, stop finite and >= 0,
targets finite and > 0, a quote with finite bid >= 0 <= ask and ask > 0, confidence 0..100,
and no NaN / infinity anywhere. These are the field checks of the risk layer's BAD_INPUT
(``core.risk.signal_check``), so a signal that fails here was never tradable; the relations between
fields (stop below the limit, targets above it) stay with the risk rules, which name them.
What a signal *describes* (an equity, a short, a spread) still validates, so that the risk
layer and the broker guard can refuse it with a reason code.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from core.domain.contract import Instrument, OptionContract, Right, SecType
from core.domain.values import Percent, PositivePrice, Price, Qty


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
    model_config = ConfigDict(allow_inf_nan=False)

    bid: Price  # 0 is a normal bid for a deep out-of-the-money option
    ask: PositivePrice
    ts: AwareDatetime

    @model_validator(mode="after")
    def _not_crossed(self) -> Quote:
        if self.bid > self.ask:
            raise ValueError(f"crossed quote: bid {self.bid:g} > ask {self.ask:g}")
        return self

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


class Leg(BaseModel):
    instrument: Instrument
    side: Side
    ratio: Qty = 1


class Signal(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    id: str = Field(min_length=1)
    ts: AwareDatetime
    strategy: str
    symbol: str
    instrument: Instrument
    legs: list[Leg] | None = None
    side: Side = Side.BUY
    qty: Qty
    limit: PositivePrice
    quote: Quote
    stop: Price
    targets: list[PositivePrice] = Field(default_factory=list)
    confidence: Percent = 50.0
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
