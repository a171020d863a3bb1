"""Instruments. The product trades single-leg long options only; other security
types exist here so that a bad signal can be *described* and then refused.

Numbers are constrained (``core.domain.values``): a strike is finite and > 0, a multiplier a
whole number > 0, whatever the security type."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from core.domain.values import PositivePrice, Qty


class Right(StrEnum):
    CALL = "C"
    PUT = "P"


class SecType(StrEnum):
    OPT = "OPT"
    STK = "STK"
    FUT = "FUT"
    BAG = "BAG"  # combo / spread
    CASH = "CASH"


class Instrument(BaseModel):
    """What a signal or order is for. ``type == OPT`` needs expiry, strike, right."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    type: SecType = SecType.OPT
    expiry: date | None = None
    strike: PositivePrice | None = None
    right: Right | None = None
    multiplier: Qty = 100


class OptionContract(BaseModel):
    """A fully specified listed option (validated: positive strike, known right)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    symbol: str = Field(min_length=1, max_length=12)
    expiry: date
    strike: PositivePrice
    right: Right
    multiplier: Qty = 100

    @property
    def occ(self) -> str:
        """OCC 21-character symbol, e.g. ``SPY   261120C00590000``."""
        root = self.symbol.upper()[:6].ljust(6)
        return f"{root}{self.expiry:%y%m%d}{self.right.value}{round(self.strike * 1000):08d}"

    @property
    def key(self) -> str:
        """Compact stable key used in Redis fields and fingerprints."""
        return f"{self.symbol}:{self.expiry:%Y%m%d}:{self.right.value}:{self.strike:g}:{self.multiplier}"

    def instrument(self) -> Instrument:
        return Instrument(
            type=SecType.OPT, expiry=self.expiry, strike=self.strike, right=self.right,
            multiplier=self.multiplier,
        )

    def label(self) -> str:
        """Human label: ``SPY 2026-11-20 590C``."""
        return f"{self.symbol} {self.expiry.isoformat()} {self.strike:g}{self.right.value}"
