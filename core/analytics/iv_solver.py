"""Vectorized Black-Scholes-Merton implied volatility (European, continuous ``r`` and ``q``).

:func:`implied_vol` inverts :func:`core.analytics.black_scholes.bs_price` for whole arrays at
once. Method, per contract:

1. Bounds. With ``Fd = S e^{-qT}`` and ``Kd = K e^{-rT}`` a call is worth between
   ``max(Fd - Kd, 0)`` (its value at zero volatility, "intrinsic" below) and ``Fd``; a put
   between ``max(Kd - Fd, 0)`` and ``Kd``. A price at or below the lower bound has no implied
   volatility (``at_or_below_intrinsic``), one at or above the upper bound neither
   (``above_upper_bound``).
2. Out-of-the-money form. By put-call parity the time value ``price - intrinsic`` is the price
   of the out-of-the-money option of the same strike (an in-the-money call is solved as the
   put, and vice versa), which keeps deep in-the-money contracts well conditioned.
3. Safeguarded Newton on ``log(price)`` in total volatility ``w = sigma sqrt(T)``, started at
   the inflection point ``w0 = sqrt(2 |ln(Fd/Kd)|)`` (at the money: the Brenner-Subrahmanyam
   estimate). Every step keeps a bracket ``[lo, hi]`` of the root; a step that leaves it
   bisects instead (or doubles ``w`` while no upper end is known). It stops when the price
   matches to ``rtol`` relative or the bracket is ``1e-15`` relative wide.

Status codes (``IvResult.status``) are indices into :data:`IV_STATUS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

__all__ = ["IV_STATUS", "SOLVED", "IvResult", "implied_vol"]

IV_STATUS: tuple[str, ...] = (
    "solved",
    "no_price",               # price not finite or <= 0
    "bad_input",              # spot, strike or time not finite and positive
    "at_or_below_intrinsic",  # price <= the zero-volatility value
    "above_upper_bound",      # price >= the infinite-volatility value
    "no_convergence",
)
SOLVED = 0
_NO_PRICE, _BAD_INPUT, _INTRINSIC, _ABOVE, _NO_CONV = 1, 2, 3, 4, 5
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_W_MAX = 50.0  # total volatility sigma*sqrt(T) beyond which no finite answer is reported


@dataclass(frozen=True, slots=True)
class IvResult:
    """``iv`` (annualized, NaN unless solved), ``status`` (int8 index into IV_STATUS), ``iterations``."""

    iv: np.ndarray
    status: np.ndarray
    iterations: int

    def counts(self) -> dict[str, int]:
        """``{status name: count}`` for the statuses that occur."""
        codes, n = np.unique(self.status, return_counts=True)
        return {IV_STATUS[int(c)]: int(k) for c, k in zip(codes.tolist(), n.tolist(), strict=True)}


def _otm_price(w: np.ndarray, log_m: np.ndarray, fd: np.ndarray, kd: np.ndarray, call: np.ndarray):
    """(price, vega dP/dw) of the out-of-the-money option at total vol ``w`` (> 0)."""
    d1 = log_m / w + 0.5 * w
    d2 = d1 - w
    sign = np.where(call, 1.0, -1.0)
    price = sign * (fd * ndtr(sign * d1) - kd * ndtr(sign * d2))
    vega = fd * _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    return price, vega


def _newton(target, log_m, fd, kd, call, rtol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Total vol ``w`` with OTM price == target (all inputs valid, 0 < target < upper). (w, converged, iters)."""
    n = target.shape[0]
    w = np.sqrt(2.0 * np.abs(log_m))
    atm = w < 1e-6
    w[atm] = np.sqrt(2.0 * np.pi) * target[atm] / fd[atm]
    w = np.clip(w, 1e-8, _W_MAX)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    done = np.zeros(n, dtype=bool)
    log_t = np.log(target)
    idx = np.arange(n)
    it = 0
    for it in range(1, max_iter + 1):
        a = idx[~done]
        if a.size == 0:
            it -= 1
            break
        wa = w[a]
        price, vega = _otm_price(wa, log_m[a], fd[a], kd[a], call[a])
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.log(price) - log_t[a]
            ok = np.abs(price - target[a]) <= rtol * target[a]
            above = g > 0.0
            hi[a] = np.where(above, np.minimum(hi[a], wa), hi[a])
            lo[a] = np.where(above, lo[a], np.maximum(lo[a], wa))
            step = wa - g * price / vega                   # Newton on log(price)
        l_a, h_a = lo[a], hi[a]
        inside = np.isfinite(step) & (step > l_a) & (step < h_a)
        fallback = np.where(np.isfinite(h_a), 0.5 * (l_a + h_a), 2.0 * wa)
        new = np.where(inside, step, fallback)
        narrow = np.isfinite(h_a) & ((h_a - l_a) <= 1e-15 * h_a)
        w[a] = np.minimum(new, _W_MAX * 2.0)
        done[a] = ok | narrow | (wa >= _W_MAX * 2.0)
        w[a[ok | narrow]] = wa[ok | narrow]
    price, _ = _otm_price(w, log_m, fd, kd, call)
    converged = (np.abs(price - target) <= 1e3 * rtol * target) & (w <= _W_MAX)
    return w, converged, it


def implied_vol(
    price, S, K, T, r, q, is_call, *, rtol: float = 1e-12, max_iter: int = 100
) -> IvResult:
    """Implied volatility of European options under Black-Scholes-Merton.

    Args:
        price: option prices (per share); S: spot; K: strike; T: year fraction (> 0);
        r: continuous rate; q: continuous dividend yield; is_call: bool. All broadcast.
        rtol: relative price tolerance of the answer.
        max_iter: iteration cap (typical convergence: 4-8 iterations).

    Returns:
        :class:`IvResult`; ``iv`` is NaN wherever ``status`` is not ``solved``.
    """
    arrs = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (price, S, K, T, r, q)),
                               np.asarray(is_call, dtype=bool))
    p, s, k, t, rr, qq = (np.ravel(a).astype(np.float64) for a in arrs[:6])
    call = np.ravel(arrs[6]).astype(bool)
    shape = arrs[0].shape
    n = p.shape[0]
    status = np.full(n, SOLVED, dtype=np.int8)
    iv = np.full(n, np.nan)
    with np.errstate(invalid="ignore", over="ignore"):
        good_in = np.isfinite(s) & (s > 0) & np.isfinite(k) & (k > 0) & np.isfinite(t) & (t > 0)
        good_in &= np.isfinite(rr) & np.isfinite(qq)
        status[~good_in] = _BAD_INPUT
        status[good_in & ~(np.isfinite(p) & (p > 0))] = _NO_PRICE
        fd = s * np.exp(-qq * t)
        kd = k * np.exp(-rr * t)
        lower = np.where(call, np.maximum(fd - kd, 0.0), np.maximum(kd - fd, 0.0))
        upper = np.where(call, fd, kd)
        tv = p - lower                                 # = price of the OTM option (parity)
        pending = status == SOLVED
        status[pending & (tv <= 1e-12 * upper)] = _INTRINSIC
        status[(status == SOLVED) & (p >= upper)] = _ABOVE
    sel = np.flatnonzero(status == SOLVED)
    iters = 0
    if sel.size:
        log_m = np.log(fd[sel] / kd[sel])
        otm_call = log_m <= 0.0                         # forward at or below strike: the call is OTM
        w, conv, iters = _newton(tv[sel], log_m, fd[sel], kd[sel], otm_call, rtol, max_iter)
        iv[sel] = np.where(conv, w / np.sqrt(t[sel]), np.nan)
        status[sel[~conv]] = _NO_CONV
    return IvResult(iv=iv.reshape(shape), status=status.reshape(shape), iterations=iters)
