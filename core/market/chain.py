"""OptionChain: one underlying's option chain as numpy column arrays.

This is the one shape every producer (simulator, IBKR, vendor REST, a CHAIN.json
file) converts to and every consumer (analytics, strategies) reads. Columns are
parallel arrays of equal length; optional vendor greeks are NaN where absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np


@dataclass(slots=True)
class OptionChain:
    symbol: str
    spot: float
    asof: datetime                      # timezone-aware
    expiry: np.ndarray                  # datetime64[D]
    strike: np.ndarray                  # float64
    is_call: np.ndarray                 # bool
    bid: np.ndarray                     # float64
    ask: np.ndarray                     # float64
    iv: np.ndarray                      # float64, annualized decimal (0.18 = 18%)
    open_interest: np.ndarray           # float64 (contracts)
    volume: np.ndarray                  # float64 (contracts today); 0 when unknown
    delta: np.ndarray                   # float64, NaN when the source gave none
    gamma: np.ndarray                   # float64, NaN when the source gave none
    rate: float | None = None           # overrides config when the source states it
    dividend_yield: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    last: np.ndarray | None = None      # float64 last trade price, NaN/absent when unknown (IV from it
                                        # when the book is empty; CSV exports carry it)

    def __len__(self) -> int:
        return int(self.strike.shape[0])

    @property
    def mid(self) -> np.ndarray:
        return (self.bid + self.ask) / 2.0

    def take(self, mask_or_index: np.ndarray) -> OptionChain:
        """A new chain holding only the selected rows (boolean mask or index array)."""
        m = mask_or_index
        return OptionChain(
            symbol=self.symbol, spot=self.spot, asof=self.asof,
            expiry=self.expiry[m], strike=self.strike[m], is_call=self.is_call[m],
            bid=self.bid[m], ask=self.ask[m], iv=self.iv[m],
            open_interest=self.open_interest[m], volume=self.volume[m],
            delta=self.delta[m], gamma=self.gamma[m],
            rate=self.rate, dividend_yield=self.dividend_yield, meta=dict(self.meta),
            last=None if self.last is None else self.last[m],
        )

    def expiries(self) -> list[date]:
        return [d.astype(object) for d in np.unique(self.expiry)]

    @staticmethod
    def empty(symbol: str, spot: float, asof: datetime) -> OptionChain:
        f = np.zeros(0, dtype=np.float64)
        return OptionChain(
            symbol=symbol, spot=spot, asof=asof, expiry=np.zeros(0, dtype="datetime64[D]"),
            strike=f, is_call=np.zeros(0, dtype=bool), bid=f.copy(), ask=f.copy(), iv=f.copy(),
            open_interest=f.copy(), volume=f.copy(), delta=f.copy(), gamma=f.copy(),
        )


def displayed_size(open_interest: np.ndarray | float) -> np.ndarray:
    """Contracts shown at the top of an option's book when the source gives no size:
    grows with open interest, 5 to 250. One rule for the market service's option
    quotes and the analytics' liquidity grade, so both see the same book."""
    oi = np.asarray(open_interest, dtype=np.float64)
    return np.clip(np.floor(np.nan_to_num(oi) / 40.0) + 5.0, 5.0, 250.0)
