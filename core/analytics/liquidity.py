"""Liquidity grade A-D from relative spread and top-of-book depth.

* relative spread = ``(ask - bid) / mid`` with ``mid = (bid + ask) / 2``
* depth = ``min(bid_size, ask_size)`` (contracts you can trade either way at the top)

A quote gets the best grade whose both thresholds it meets (``spread <= max_spread``
and ``depth >= min_depth``); otherwise ``D``. Defaults (:class:`LiquidityThresholds`):

=====  ==============  ===========
grade  max rel spread  min depth
=====  ==============  ===========
A      0.02  (2%)      100
B      0.05  (5%)      50
C      0.10  (10%)     10
D      anything else, and any invalid quote (NaN, ask <= 0, bid < 0, crossed)
=====  ==============  ===========
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LiquidityThresholds", "liquidity_grade", "liquidity_grades", "relative_spread"]


@dataclass(frozen=True, slots=True)
class LiquidityThresholds:
    """Grade cut-offs: ``(max relative spread, min top-of-book depth)`` per grade."""

    a_spread: float = 0.02
    a_depth: float = 100.0
    b_spread: float = 0.05
    b_depth: float = 50.0
    c_spread: float = 0.10
    c_depth: float = 10.0


def relative_spread(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """``(ask - bid) / mid``; NaN where the quote is invalid (crossed, ask <= 0, bid < 0)."""
    b = np.asarray(bid, dtype=np.float64)
    a = np.asarray(ask, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = np.isfinite(b) & np.isfinite(a) & (b >= 0.0) & (a > 0.0) & (b <= a)
        mid = (a + b) / 2.0
        return np.where(valid, (a - b) / np.where(valid, mid, 1.0), np.nan)


def liquidity_grades(
    bid: np.ndarray, ask: np.ndarray, bid_size: np.ndarray, ask_size: np.ndarray,
    thresholds: LiquidityThresholds | None = None,
) -> np.ndarray:
    """Vectorized grades: array of ``'A'``/``'B'``/``'C'``/``'D'`` (dtype ``<U1``)."""
    th = thresholds or LiquidityThresholds()
    spread = relative_spread(bid, ask)
    bs = np.asarray(bid_size, dtype=np.float64)
    asz = np.asarray(ask_size, dtype=np.float64)
    depth = np.where(np.isfinite(bs) & np.isfinite(asz), np.minimum(bs, asz), np.nan)
    ok = np.isfinite(spread) & np.isfinite(depth)
    with np.errstate(invalid="ignore"):
        conds = [
            ok & (spread <= th.a_spread) & (depth >= th.a_depth),
            ok & (spread <= th.b_spread) & (depth >= th.b_depth),
            ok & (spread <= th.c_spread) & (depth >= th.c_depth),
        ]
    return np.select(conds, ["A", "B", "C"], default="D").astype("<U1")


def liquidity_grade(
    bid: float, ask: float, bid_size: float, ask_size: float, thresholds: LiquidityThresholds | None = None
) -> str:
    """Grade of one quote: ``'A'``, ``'B'``, ``'C'`` or ``'D'``."""
    return str(liquidity_grades(np.asarray([bid]), np.asarray([ask]), np.asarray([bid_size]),
                                np.asarray([ask_size]), thresholds)[0])
