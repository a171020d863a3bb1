"""Order-book imbalance from bid/ask size ladders.

``imbalance = (B - A) / (B + A)`` where ``B`` and ``A`` are the summed bid and ask
sizes over the best ``levels`` price levels (level 1 = top of book). The result is
in ``[-1, 1]``: +1 all size on the bid, -1 all on the ask, 0 balanced or empty book.

Sizes are arrays ordered best level first. A 1-D array is one snapshot; a 2-D
array ``(n_snapshots, n_levels)`` gives one imbalance per row. NaN or negative
sizes count as 0; ladders shorter than ``levels`` use the levels they have.
"""

from __future__ import annotations

import numpy as np

__all__ = ["book_imbalance", "imbalance_l1", "imbalance_l5"]


def _depth(sizes: np.ndarray, levels: int) -> np.ndarray:
    a = np.asarray(sizes, dtype=np.float64)
    if a.ndim == 0:
        a = a.reshape(1)
    a = a[..., :levels]
    a = np.where(np.isfinite(a) & (a > 0.0), a, 0.0)
    return a.sum(axis=-1)


def book_imbalance(bid_sizes: np.ndarray, ask_sizes: np.ndarray, levels: int = 1) -> float | np.ndarray:
    """``(bid - ask) / (bid + ask)`` over the best ``levels`` levels.

    Returns a float for 1-D input, an array (one per row) for 2-D input.
    """
    if levels < 1:
        raise ValueError("levels must be >= 1")
    b = _depth(bid_sizes, levels)
    a = _depth(ask_sizes, levels)
    tot = b + a
    with np.errstate(invalid="ignore", divide="ignore"):
        imb = np.where(tot > 0.0, (b - a) / np.where(tot > 0.0, tot, 1.0), 0.0)
    imb = np.clip(imb, -1.0, 1.0)
    return float(imb) if imb.ndim == 0 else imb


def imbalance_l1(bid_sizes: np.ndarray, ask_sizes: np.ndarray) -> float | np.ndarray:
    """Top-of-book imbalance."""
    return book_imbalance(bid_sizes, ask_sizes, levels=1)


def imbalance_l5(bid_sizes: np.ndarray, ask_sizes: np.ndarray) -> float | np.ndarray:
    """Imbalance over the best five levels."""
    return book_imbalance(bid_sizes, ask_sizes, levels=5)
