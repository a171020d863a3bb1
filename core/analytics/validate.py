"""Row validation of an :class:`OptionChain`: per use (analytics) and for every use (strategies).

**Per use** (:func:`validate_uses`, what the analytics service and CLI run): a row counts for
each computation that it has what that computation needs, and for the others it is rejected,
counted by use and reason. Every use needs:

==========================  =====================================================
``bad_spot``                the chain's spot is not a finite positive number
``non_finite``              NaN/inf strike, NaT expiry, NaN/inf open interest
``non_positive_strike``     strike <= 0
``expired``                 expiry before asof's New York date, or today's expiry
                            at/after 16:00 New York
``negative_oi``             open_interest < 0
==========================  =====================================================

and then, per use (the first failing check is the row's reason):

* ``max_pain``: nothing more; quotes, IV and greeks do not matter.
* ``gex``: a gamma: the vendor's (finite, >= 0; ``bad_greeks`` if negative, ``non_finite`` if
  infinite), else the model's, which needs a volatility (:mod:`core.analytics.volatility`; its
  reason when there is none: ``no_volatility``, ``crossed``, ``at_or_below_intrinsic``, ...).
* ``dex``: a delta, likewise (vendor delta in [0, 1] for calls, [-1, 0] for puts).
* ``flip``: a volatility (the zero-gamma search reprices every row at other spots).

**For every use** (:func:`clean_chain`, the strategies' tradable rows and the features): a row
is dropped when any check fails, counted once under the **first** failing check in this order:

==========================  =====================================================
``bad_spot``                as above (every row is dropped: nothing can be priced)
``non_finite``              NaN/inf in strike, bid, ask, iv, open_interest,
                            volume; NaT expiry; +-inf vendor delta/gamma
                            (NaN vendor greeks mean "absent" and are allowed)
``non_positive_strike``     strike <= 0
``expired``                 as above (checked before the IV: an expired row is
                            ``expired``, not "bad IV")
``non_positive_iv``         iv <= 0
``bad_quote``               bid < 0 or ask <= 0 (a zero bid is allowed: far OTM
                            options are often bid at 0; mid is then ask/2 > 0)
``crossed``                 bid > ask (a locked quote, bid == ask, is allowed)
``negative_oi``             open_interest < 0
``negative_volume``         volume < 0
``bad_greeks``              vendor delta outside [0, 1] for calls / [-1, 0] for
                            puts, or vendor gamma < 0
==========================  =====================================================
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

from core.analytics.expiry_time import is_expired
from core.market.chain import OptionChain

__all__ = ["REJECT_REASONS", "USES", "RejectCounts", "UseValidation", "base_usable", "clean_chain", "clean_mask",
           "validate_uses"]

REJECT_REASONS: tuple[str, ...] = (
    "bad_spot",
    "non_finite",
    "non_positive_strike",
    "expired",
    "non_positive_iv",
    "bad_quote",
    "crossed",
    "negative_oi",
    "negative_volume",
    "bad_greeks",
)


@dataclass(slots=True)
class RejectCounts:
    """Number of rows dropped per reason (see module docstring for the order)."""

    bad_spot: int = 0
    non_finite: int = 0
    non_positive_strike: int = 0
    expired: int = 0
    non_positive_iv: int = 0
    bad_quote: int = 0
    crossed: int = 0
    negative_oi: int = 0
    negative_volume: int = 0
    bad_greeks: int = 0

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
            ("expired", is_expired(asof, safe_expiry)),
            ("non_positive_iv", iv <= 0.0),
            ("bad_quote", (bid < 0.0) | (ask <= 0.0)),
            ("crossed", bid > ask),
            ("negative_oi", oi < 0.0),
            ("negative_volume", vol < 0.0),
            ("bad_greeks", bad_delta | bad_gamma),
        ]


def clean_mask(chain: OptionChain, asof: datetime) -> tuple[np.ndarray, RejectCounts]:
    """Rows passing every check (bool mask) and the rejected rows counted by first failing reason."""
    n = len(chain)
    counts = RejectCounts()
    already = np.zeros(n, dtype=bool)
    if n == 0:
        return already, counts
    for reason, bad in _row_checks(chain, asof):
        new = bad & ~already
        setattr(counts, reason, int(np.count_nonzero(new)))
        already |= new
    return ~already, counts


def clean_chain(chain: OptionChain, asof: datetime) -> tuple[OptionChain, RejectCounts]:
    """Drop rows that fail any check (the all-uses rule); count them by reason.

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
    ok, counts = clean_mask(chain, asof)
    return chain.take(ok), counts


# ---------------------------------------------------------------- per use
USES: tuple[str, ...] = ("max_pain", "gex", "dex", "flip")


@dataclass(frozen=True, slots=True)
class UseValidation:
    """Which rows each use may count (``masks[use]``, aligned with the chain) and why not."""

    masks: dict[str, np.ndarray]
    rejected: dict[str, dict[str, int]]   # use -> reason -> rows (non-zero counts only)

    @property
    def any_use(self) -> np.ndarray:
        """Rows that count for at least one use."""
        out = np.zeros_like(next(iter(self.masks.values())))
        for m in self.masks.values():
            out |= m
        return out

    def used(self) -> dict[str, int]:
        """``{use: rows counted}``."""
        return {u: int(np.count_nonzero(m)) for u, m in self.masks.items()}


def _base_checks(chain: OptionChain, asof: datetime) -> list[tuple[str, np.ndarray]]:
    """Checks every use needs, in priority order."""
    n = len(chain)
    strike = _as_float(chain.strike, n)
    oi = _as_float(chain.open_interest, n)
    expiry = np.asarray(chain.expiry, dtype="datetime64[D]")
    try:
        spot_ok = math.isfinite(float(chain.spot)) and float(chain.spot) > 0.0
    except (TypeError, ValueError):
        spot_ok = False
    with np.errstate(invalid="ignore"):
        safe_expiry = np.where(np.isnat(expiry), np.datetime64("2000-01-01", "D"), expiry)
        return [
            ("bad_spot", np.full(n, not spot_ok)),
            ("non_finite", ~np.isfinite(strike) | np.isnat(expiry) | ~np.isfinite(oi)),
            ("non_positive_strike", strike <= 0.0),
            ("expired", is_expired(asof, safe_expiry)),
            ("negative_oi", oi < 0.0),
        ]


def base_usable(chain: OptionChain, asof: datetime) -> np.ndarray:
    """Rows passing the checks every use needs (the rows worth resolving a volatility for)."""
    ok = np.ones(len(chain), dtype=bool)
    for _reason, bad in _base_checks(chain, asof):
        ok &= ~bad
    return ok


def _greek_checks(values: np.ndarray, bad_range: np.ndarray, no_vol: np.ndarray,
                  vol_reason: np.ndarray, vol_names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    """A vendor greek where given (finite, in range), else the model's, which needs a volatility."""
    absent = np.isnan(values)
    checks = [("non_finite", np.isinf(values)), ("bad_greeks", ~absent & bad_range)]
    checks += [(name, absent & no_vol & (vol_reason == i)) for i, name in enumerate(vol_names) if i]
    return checks


def _count(n: int, checks: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, dict[str, int]]:
    already = np.zeros(n, dtype=bool)
    counts: dict[str, int] = {}
    for reason, bad in checks:
        new = bad & ~already
        k = int(np.count_nonzero(new))
        if k:
            counts[reason] = counts.get(reason, 0) + k
        already |= new
    return ~already, counts


def validate_uses(chain: OptionChain, asof: datetime, vol_reason: np.ndarray,
                  vol_names: tuple[str, ...]) -> UseValidation:
    """Per-use masks and rejection counts (module docstring).

    Args:
        chain: the raw chain.
        asof: timezone-aware valuation time.
        vol_reason: per row, 0 where a volatility is available, else an index into ``vol_names``
            (see :class:`core.analytics.volatility.Volatility`; only read on rows that pass
            :func:`base_usable`).
        vol_names: the reason names (``vol_names[0]`` unused).

    Raises:
        ValueError: only if ``asof`` is naive.
    """
    n = len(chain)
    if n == 0:
        empty = np.zeros(0, dtype=bool)
        return UseValidation(masks={u: empty for u in USES}, rejected={u: {} for u in USES})
    base = _base_checks(chain, asof)
    reason = np.asarray(vol_reason)
    no_vol = reason != 0
    d = _as_float(chain.delta, n)
    g = _as_float(chain.gamma, n)
    is_call = np.asarray(chain.is_call, dtype=bool)
    with np.errstate(invalid="ignore"):
        bad_delta = np.where(is_call, (d < 0.0) | (d > 1.0), (d < -1.0) | (d > 0.0))
        per_use = {
            "max_pain": [],
            "gex": _greek_checks(g, g < 0.0, no_vol, reason, vol_names),
            "dex": _greek_checks(d, bad_delta, no_vol, reason, vol_names),
            "flip": [(name, no_vol & (reason == i)) for i, name in enumerate(vol_names) if i],
        }
    masks: dict[str, np.ndarray] = {}
    rejected: dict[str, dict[str, int]] = {}
    for use in USES:
        masks[use], rejected[use] = _count(n, base + per_use[use])
    return UseValidation(masks=masks, rejected=rejected)
