"""Small helpers to build OptionChain fixtures in tests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from core.market.chain import OptionChain

# Friday 2025-01-10 10:00 New York (15:00 UTC, EST).
ASOF = datetime(2025, 1, 10, 15, 0, tzinfo=UTC)


def make_chain(
    rows: list[dict],
    spot: float = 100.0,
    asof: datetime = ASOF,
    symbol: str = "TEST",
) -> OptionChain:
    """Rows: dicts with expiry, strike, call (bool) and optional bid/ask/iv/oi/volume/delta/gamma."""

    def col(name: str, default: float) -> np.ndarray:
        return np.array([r.get(name, default) for r in rows], dtype=np.float64)

    return OptionChain(
        symbol=symbol,
        spot=spot,
        asof=asof,
        expiry=np.array([r.get("expiry", "2025-01-17") for r in rows], dtype="datetime64[D]"),
        strike=col("strike", 100.0),
        is_call=np.array([r.get("call", True) for r in rows], dtype=bool),
        bid=col("bid", 1.0),
        ask=col("ask", 1.1),
        iv=col("iv", 0.2),
        open_interest=col("oi", 100.0),
        volume=col("volume", 0.0),
        delta=col("delta", np.nan),
        gamma=col("gamma", np.nan),
    )
