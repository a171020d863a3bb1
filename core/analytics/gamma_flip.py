"""Zero-gamma ("gamma flip") level: the spot where total dealer GEX changes sign.

Method
------
1. Build a grid of hypothetical spot levels ``L`` spanning ``spot * (1 +- width)``
   (default +-20%, ``grid_levels`` points including both ends).
2. Re-price every contract's BSM gamma at each ``L`` with its own strike, time to
   expiry and implied vol held fixed (sticky strike). Vendor gammas are *not*
   used here: they are only valid at the current spot.
3. Total GEX at each level, with the :mod:`core.analytics.exposure` convention
   (calls +, puts -, ``gamma * OI * multiplier * L^2 * 0.01``).
4. Find every sign change between adjacent levels, locate each by linear
   interpolation, and return the one nearest the current spot (``None`` if the
   profile never changes sign on the grid).

The (levels x contracts) evaluation is a 2-D broadcast done in chunks of whole
level rows so that at most ``max_elements`` float64 values (default 2**18, 2 MiB)
are live at once. Only one ``exp`` per cell is needed::

    d1 = (ln L - ln K + (r - q + sigma^2/2) T) / (sigma sqrt T)
    GEX(L) = 0.01 * multiplier * L * sum_j w_j exp(-d1_j^2 / 2),
    w_j = sign_j * OI_j * e^{-q T_j} / (sigma_j sqrt(T_j) sqrt(2 pi))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_MAX_ELEMENTS", "GammaProfile", "find_zero_gamma", "gex_profile", "zero_gamma_profile"]

DEFAULT_MAX_ELEMENTS = 1 << 18
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


@dataclass(frozen=True, slots=True)
class GammaProfile:
    """Total GEX (dollars per 1% move) at each grid level, and the flip level found."""

    levels: np.ndarray
    gex: np.ndarray
    zero_gamma: float | None


def gex_profile(
    levels: np.ndarray,
    strike: np.ndarray,
    T: np.ndarray,
    iv: np.ndarray,
    open_interest: np.ndarray,
    is_call: np.ndarray,
    rate: float,
    dividend_yield: float,
    multiplier: float = 100.0,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> np.ndarray:
    """Total GEX at each spot level (calls +, puts -), chunked 2-D broadcast.

    Args:
        levels: 1-D hypothetical spot prices (> 0).
        strike, T, iv, open_interest, is_call: per-contract 1-D arrays (T > 0, iv > 0).
        rate, dividend_yield: continuous r and q.
        multiplier: contract multiplier (100 shares).
        max_elements: upper bound on cells evaluated per chunk (memory bound).

    Returns:
        float64 array shaped like ``levels``.
    """
    lv = np.asarray(levels, dtype=np.float64).ravel()
    k = np.asarray(strike, dtype=np.float64).ravel()
    t = np.asarray(T, dtype=np.float64).ravel()
    sig = np.asarray(iv, dtype=np.float64).ravel()
    oi = np.asarray(open_interest, dtype=np.float64).ravel()
    sign = np.where(np.asarray(is_call, dtype=bool).ravel(), 1.0, -1.0)

    out = np.zeros(lv.shape[0], dtype=np.float64)
    keep = oi != 0.0
    if lv.size == 0 or not np.any(keep):
        return out
    k, t, sig, oi, sign = k[keep], t[keep], sig[keep], oi[keep], sign[keep]

    vol_sqrt_t = sig * np.sqrt(t)
    inv = 1.0 / vol_sqrt_t
    # d1 = ln(L) * inv - c, with c = (ln K - (r - q + sigma^2/2) T) * inv
    c = (np.log(k) - (rate - dividend_yield + 0.5 * sig * sig) * t) * inv
    w = sign * oi * np.exp(-dividend_yield * t) * inv * _INV_SQRT_2PI
    log_lv = np.log(lv)

    n = k.shape[0]
    rows = max(1, int(max_elements) // n)
    buf = np.empty((min(rows, lv.shape[0]), n), dtype=np.float64)
    for start in range(0, lv.shape[0], rows):
        stop = min(start + rows, lv.shape[0])
        blk = buf[: stop - start]
        np.multiply(log_lv[start:stop, None], inv[None, :], out=blk)
        blk -= c
        np.square(blk, out=blk)
        blk *= -0.5
        np.exp(blk, out=blk)
        out[start:stop] = blk @ w
    return out * (0.01 * multiplier) * lv


def find_zero_gamma(levels: np.ndarray, gex: np.ndarray, spot: float) -> float | None:
    """Linearly interpolated sign change of ``gex`` over ``levels`` nearest ``spot``.

    Grid points where ``gex`` is exactly 0, lying between non-zero points of opposite
    sign, count as crossings at those points. Returns ``None`` when
    ``gex`` never changes sign (or is identically zero).
    """
    lv = np.asarray(levels, dtype=np.float64)
    g = np.asarray(gex, dtype=np.float64)
    if lv.size < 2:
        return None
    s = np.sign(g)
    crossings: list[np.ndarray] = []
    i = np.flatnonzero(s[:-1] * s[1:] < 0)
    if i.size:
        g0, g1 = g[i], g[i + 1]
        crossings.append(lv[i] + (lv[i + 1] - lv[i]) * g0 / (g0 - g1))
    nz = np.flatnonzero(s != 0)
    if nz.size >= 2:
        # exact zeros strictly between two non-zero points of opposite sign
        a, b = nz[:-1], nz[1:]
        gap = (b - a > 1) & (s[a] * s[b] < 0)
        for lo, hi in zip(a[gap].tolist(), b[gap].tolist(), strict=True):
            crossings.append(lv[lo + 1 : hi])
    if not crossings:
        return None
    x = np.concatenate(crossings)
    return float(x[np.argmin(np.abs(x - spot))])


def zero_gamma_profile(
    spot: float,
    strike: np.ndarray,
    T: np.ndarray,
    iv: np.ndarray,
    open_interest: np.ndarray,
    is_call: np.ndarray,
    rate: float,
    dividend_yield: float,
    grid_levels: int = 200,
    width: float = 0.20,
    multiplier: float = 100.0,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> GammaProfile:
    """GEX profile on ``linspace(spot*(1-width), spot*(1+width), grid_levels)`` and its flip."""
    if grid_levels < 2:
        raise ValueError("grid_levels must be >= 2")
    if not 0.0 < width < 1.0:
        raise ValueError("width must be in (0, 1)")
    levels = np.linspace(spot * (1.0 - width), spot * (1.0 + width), int(grid_levels))
    gex = gex_profile(levels, strike, T, iv, open_interest, is_call, rate, dividend_yield,
                      multiplier=multiplier, max_elements=max_elements)
    return GammaProfile(levels=levels, gex=gex, zero_gamma=find_zero_gamma(levels, gex, spot))
