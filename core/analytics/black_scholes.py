"""Vectorized Black-Scholes-Merton prices (continuous dividend yield).

All inputs broadcast as numpy arrays. ``T`` is the year fraction to expiry and
must be positive (callers floor it); ``sigma`` is annualized volatility.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr


def d1_d2(S, K, T, r, q, sigma):
    S = np.asarray(S, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    vol_sqrt_t = sigma * np.sqrt(T)
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / vol_sqrt_t
    return d1, d1 - vol_sqrt_t


def bs_price(S, K, T, r, q, sigma, is_call) -> np.ndarray:
    """Black-Scholes-Merton price of European calls (is_call True) and puts."""
    S = np.asarray(S, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    d1, d2 = d1_d2(S, K, T, r, q, sigma)
    disc_q = np.exp(-q * T)
    disc_r = np.exp(-r * T)
    call = S * disc_q * ndtr(d1) - K * disc_r * ndtr(d2)
    put = K * disc_r * ndtr(-d2) - S * disc_q * ndtr(-d1)
    return np.where(np.asarray(is_call, dtype=bool), call, put)
