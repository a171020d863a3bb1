"""Row-level sanity filter for an :class:`OptionChain` before analytics.

:func:`clean_chain` drops bad rows and counts them by reason. It never raises on
bad row values. Each dropped row is counted exactly once, under the **first**
failing check in this order:

==========================  =====================================================
``bad_spot``                the chain's spot is not a finite positive number
                            (every row is dropped: nothing can be priced)
``non_finite``              NaN/inf in strike, bid, ask, iv, open_interest,
                            volume; NaT expiry; +-inf vendor delta/gamma
                            (NaN vendor greeks mean "absent" and are allowed)
``non_positive_strike``     strike <= 0
``non_positive_iv``         iv <= 0
``bad_quote``               bid < 0 or ask <= 0 (a zero bid is allowed: far OTM
                            options are often bid at 0; mid is then ask/2 > 0)
``crossed``                 bid > ask (a locked quote, bid == ask, is allowed)
``negative_oi``             open_interest < 0
``negative_volume``         volume < 0
``bad_greeks``              vendor delta outside [0, 1] for calls / [-1, 0] for
                            puts, or vendor gamma < 0
``expired``                 expiry before asof's New York date, or today's expiry
                            at/after 16:00 New York
==========================  =====================================================
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

from core.analytics.expiry_time import is_expired
from core.market.chain import OptionChain

__all__ = ["REJECT_REASONS", "RejectCounts", "clean_chain"]

REJECT_REASONS: tuple[str, ...] = (
    "bad_spot",
    "non_finite",
    "non_positive_strike",
    "non_positive_iv",
    "bad_quote",
    "crossed",
    "negative_oi",
    "negative_volume",
    "bad_greeks",
    "expired",
)


@dataclass(slots=True)
class RejectCounts:
    """Number of rows dropped per reason (see module docstring for the order)."""

    bad_spot: int = 0
    non_finite: int = 0
    non_positive_strike: int = 0
    non_positive_iv: int = 0
    bad_quote: int = 0
    crossed: int = 0
    negative_oi: int = 0
    negative_volume: int = 0
    bad_greeks: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        """All rows dropped."""
        return sum(getattr(self, name) for name in REJECT_REASONS)

    def as_dict(self) -> dict[str, int]:
        """Plain ``{reason: count}`` (all reasons, zeros included)."""
        return asdict(self)


def _as_float(a: np.ndarray, n: int) -> np.ndarray:
    out = np.asarray(a, dtype=np.float64)
    return np.broadcast_to(out, (n,)) if out.ndim == 0 else out


def _row_checks(chain: OptionChain, asof: datetime) -> list[tuple[str, np.ndarray]]:
    """(reason, bad_mask) pairs in priority order."""
    n = len(chain)
    strike = _as_float(chain.strike, n)
    bid = _as_float(chain.bid, n)
    ask = _as_float(chain.ask, n)
    iv = _as_float(chain.iv, n)
    oi = _as_float(chain.open_interest, n)
    vol = _as_float(chain.volume, n)
    d = _as_float(chain.delta, n)
    g = _as_float(chain.gamma, n)
    is_call = np.asarray(chain.is_call, dtype=bool)
    expiry = np.asarray(chain.expiry, dtype="datetime64[D]")

    try:
        spot_ok = math.isfinite(float(chain.spot)) and float(chain.spot) > 0.0
    except (TypeError, ValueError):
        spot_ok = False

    non_finite = ~(
        np.isfinite(strike) & np.isfinite(bid) & np.isfinite(ask) & np.isfinite(iv)
        & np.isfinite(oi) & np.isfinite(vol)
    )
    non_finite |= np.isnat(expiry) | np.isinf(d) | np.isinf(g)

    with np.errstate(invalid="ignore"):
        vendor_delta = ~np.isnan(d)
        bad_delta = vendor_delta & np.where(is_call, (d < 0.0) | (d > 1.0), (d < -1.0) | (d > 0.0))
        bad_gamma = ~np.isnan(g) & (g < 0.0)
        safe_expiry = np.where(np.isnat(expiry), np.datetime64("2000-01-01", "D"), expiry)
        return [
            ("bad_spot", np.full(n, not spot_ok)),
            ("non_finite", non_finite),
            ("non_positive_strike", strike <= 0.0),
            ("non_positive_iv", iv <= 0.0),
            ("bad_quote", (bid < 0.0) | (ask <= 0.0)),
            ("crossed", bid > ask),
            ("negative_oi", oi < 0.0),
            ("negative_volume", vol < 0.0),
            ("bad_greeks", bad_delta | bad_gamma),
            ("expired", is_expired(asof, safe_expiry)),
        ]


def clean_chain(chain: OptionChain, asof: datetime) -> tuple[OptionChain, RejectCounts]:
    """Drop rows that analytics cannot use; count them by reason.

    Args:
        chain: the raw chain (any row values; column arrays of equal length).
        asof: timezone-aware valuation time used for the expiry check
            (usually ``chain.asof``).

    Returns:
        ``(clean, counts)``: a new chain with only the good rows (order preserved)
        and a :class:`RejectCounts` whose ``total`` equals ``len(chain) - len(clean)``.

    Raises:
        ValueError: only if ``asof`` is naive (a caller bug, not a bad row).
    """
    n = len(chain)
    counts = RejectCounts()
    if n == 0:
        return chain.take(np.zeros(0, dtype=bool)), counts
    already = np.zeros(n, dtype=bool)
    for reason, bad in _row_checks(chain, asof):
        new = bad & ~already
        setattr(counts, reason, int(np.count_nonzero(new)))
        already |= new
    return chain.take(~already), counts
