"""Vectorized Black-Scholes-Merton greeks with a continuous dividend yield ``q``.

All functions broadcast numpy inputs like :func:`core.analytics.black_scholes.bs_price`.
``T`` is the year fraction to expiry (365-day year, see :func:`year_fraction`) and must
be positive; ``sigma`` is annualized volatility as a decimal.

Units and sign conventions
--------------------------
* ``delta``  dV/dS. Calls in ``[0, e^{-qT}]``, puts in ``[-e^{-qT}, 0]``.
* ``gamma``  d2V/dS2 (per 1 unit of underlying), identical for calls and puts.
* ``vega``   dV/dsigma **per 1.00 of volatility** (i.e. per 100 vol points; Hull's
  convention). Divide by 100 for the change per 1 vol point: :func:`vega_per_point`.
* ``theta``  dV/dt **per year** of calendar time passing (``= -dV/dT``; usually
  negative for long options). :func:`theta_per_day` divides by 365.
* ``vanna``  d2V/(dS dsigma) = d(delta)/dsigma per 1.00 vol, identical for calls and puts.
* ``charm``  d(delta)/dt **per year** of calendar time passing (``= -d(delta)/dT``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from core.analytics.black_scholes import d1_d2
from core.analytics.expiry_time import year_fraction

__all__ = [
    "DAYS_PER_YEAR",
    "Greeks",
    "charm",
    "delta",
    "delta_gamma",
    "gamma",
    "greeks",
    "norm_pdf",
    "theta",
    "theta_per_day",
    "vanna",
    "vega",
    "vega_per_point",
    "year_fraction",
]

DAYS_PER_YEAR = 365.0
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def norm_pdf(x: np.ndarray) -> np.ndarray:
    """Standard normal density, vectorized."""
    x = np.asarray(x, dtype=np.float64)
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def theta_per_day(theta_per_year: np.ndarray, days_per_year: float = DAYS_PER_YEAR) -> np.ndarray:
    """Convert a per-year theta to per calendar day (default 365-day year)."""
    return np.asarray(theta_per_year, dtype=np.float64) / days_per_year


def vega_per_point(vega_per_unit: np.ndarray) -> np.ndarray:
    """Convert a vega per 1.00 vol to per 1 vol point (0.01)."""
    return np.asarray(vega_per_unit, dtype=np.float64) / 100.0


@dataclass(frozen=True, slots=True)
class Greeks:
    """Arrays of BSM greeks, all broadcast to a common shape.

    ``vega`` and ``vanna`` are per 1.00 volatility; ``theta`` and ``charm`` are per
    year of calendar time (see the module docstring).
    """

    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    vanna: np.ndarray
    charm: np.ndarray

    def theta_per_day(self, days_per_year: float = DAYS_PER_YEAR) -> np.ndarray:
        """Theta per calendar day."""
        return theta_per_day(self.theta, days_per_year)

    def vega_per_point(self) -> np.ndarray:
        """Vega per 1 vol point (0.01)."""
        return vega_per_point(self.vega)


def _common(S, K, T, r, q, sigma):
    S = np.asarray(S, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    d1, d2 = d1_d2(S, K, T, r, q, sigma)
    return S, K, T, r, q, sigma, d1, d2


def delta(S, K, T, r, q, sigma, is_call) -> np.ndarray:
    """dV/dS: ``e^{-qT} N(d1)`` for calls, ``-e^{-qT} N(-d1)`` for puts."""
    S, K, T, r, q, sigma, d1, _ = _common(S, K, T, r, q, sigma)
    sign = np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)
    return sign * np.exp(-q * T) * ndtr(sign * d1)


def delta_gamma(S, K, T, r, q, sigma, is_call) -> tuple[np.ndarray, np.ndarray]:
    """``(delta, gamma)`` sharing one d1 evaluation (what exposure needs)."""
    S, K, T, r, q, sigma, d1, _ = _common(S, K, T, r, q, sigma)
    sign = np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)
    disc_q = np.exp(-q * T)
    return sign * disc_q * ndtr(sign * d1), disc_q * norm_pdf(d1) / (S * sigma * np.sqrt(T))


def gamma(S, K, T, r, q, sigma) -> np.ndarray:
    """d2V/dS2 = ``e^{-qT} n(d1) / (S sigma sqrt(T))`` (calls and puts)."""
    S, K, T, r, q, sigma, d1, _ = _common(S, K, T, r, q, sigma)
    return np.exp(-q * T) * norm_pdf(d1) / (S * sigma * np.sqrt(T))


def vega(S, K, T, r, q, sigma) -> np.ndarray:
    """dV/dsigma per 1.00 vol = ``S e^{-qT} n(d1) sqrt(T)`` (calls and puts)."""
    S, K, T, r, q, sigma, d1, _ = _common(S, K, T, r, q, sigma)
    return S * np.exp(-q * T) * norm_pdf(d1) * np.sqrt(T)


def theta(S, K, T, r, q, sigma, is_call) -> np.ndarray:
    """dV/dt per year of calendar time passing (= -dV/dT).

    Call: ``-S e^{-qT} n(d1) sigma / (2 sqrt T) - r K e^{-rT} N(d2) + q S e^{-qT} N(d1)``;
    put:  ``-S e^{-qT} n(d1) sigma / (2 sqrt T) + r K e^{-rT} N(-d2) - q S e^{-qT} N(-d1)``.
    """
    S, K, T, r, q, sigma, d1, d2 = _common(S, K, T, r, q, sigma)
    disc_q = np.exp(-q * T)
    disc_r = np.exp(-r * T)
    decay = -S * disc_q * norm_pdf(d1) * sigma / (2.0 * np.sqrt(T))
    call = decay - r * K * disc_r * ndtr(d2) + q * S * disc_q * ndtr(d1)
    put = decay + r * K * disc_r * ndtr(-d2) - q * S * disc_q * ndtr(-d1)
    return np.where(np.asarray(is_call, dtype=bool), call, put)


def vanna(S, K, T, r, q, sigma) -> np.ndarray:
    """d2V/(dS dsigma) per 1.00 vol = ``-e^{-qT} n(d1) d2 / sigma`` (calls and puts)."""
    S, K, T, r, q, sigma, d1, d2 = _common(S, K, T, r, q, sigma)
    return -np.exp(-q * T) * norm_pdf(d1) * d2 / sigma


def charm(S, K, T, r, q, sigma, is_call) -> np.ndarray:
    """d(delta)/dt per year of calendar time passing (= -d(delta)/dT).

    Call: ``q e^{-qT} N(d1) - e^{-qT} n(d1) (2(r-q)T - d2 sigma sqrt T) / (2 T sigma sqrt T)``;
    put:  ``-q e^{-qT} N(-d1) - e^{-qT} n(d1) (2(r-q)T - d2 sigma sqrt T) / (2 T sigma sqrt T)``.
    """
    S, K, T, r, q, sigma, d1, d2 = _common(S, K, T, r, q, sigma)
    disc_q = np.exp(-q * T)
    vol_sqrt_t = sigma * np.sqrt(T)
    common = disc_q * norm_pdf(d1) * (2.0 * (r - q) * T - d2 * vol_sqrt_t) / (2.0 * T * vol_sqrt_t)
    call = q * disc_q * ndtr(d1) - common
    put = -q * disc_q * ndtr(-d1) - common
    return np.where(np.asarray(is_call, dtype=bool), call, put)


def greeks(S, K, T, r, q, sigma, is_call) -> Greeks:
    """All BSM greeks at once (shares d1/d2 and discount factors).

    Args:
        S: spot; K: strike; T: year fraction (> 0); r: continuously compounded rate;
        q: continuous dividend yield; sigma: annualized vol; is_call: bool (array).
        All broadcast together.

    Returns:
        :class:`Greeks` with delta, gamma, vega (per 1.00 vol), theta (per year),
        vanna (per 1.00 vol), charm (per year).
    """
    S, K, T, r, q, sigma, d1, d2 = _common(S, K, T, r, q, sigma)
    call_mask = np.asarray(is_call, dtype=bool)
    sqrt_t = np.sqrt(T)
    vol_sqrt_t = sigma * sqrt_t
    disc_q = np.exp(-q * T)
    disc_r = np.exp(-r * T)
    pdf_d1 = norm_pdf(d1)
    cdf_d1 = ndtr(d1)
    cdf_md1 = ndtr(-d1)
    cdf_d2 = ndtr(d2)
    cdf_md2 = ndtr(-d2)

    dq_pdf = disc_q * pdf_d1
    delta_v = np.where(call_mask, disc_q * cdf_d1, -disc_q * cdf_md1)
    gamma_v = dq_pdf / (S * vol_sqrt_t)
    vega_v = S * dq_pdf * sqrt_t
    decay = -S * dq_pdf * sigma / (2.0 * sqrt_t)
    theta_v = np.where(
        call_mask,
        decay - r * K * disc_r * cdf_d2 + q * S * disc_q * cdf_d1,
        decay + r * K * disc_r * cdf_md2 - q * S * disc_q * cdf_md1,
    )
    vanna_v = -dq_pdf * d2 / sigma
    charm_common = dq_pdf * (2.0 * (r - q) * T - d2 * vol_sqrt_t) / (2.0 * T * vol_sqrt_t)
    charm_v = np.where(call_mask, q * disc_q * cdf_d1 - charm_common, -q * disc_q * cdf_md1 - charm_common)

    shape = np.broadcast_shapes(delta_v.shape, gamma_v.shape, theta_v.shape, charm_v.shape)
    return Greeks(
        delta=np.broadcast_to(delta_v, shape).copy(),
        gamma=np.broadcast_to(gamma_v, shape).copy(),
        vega=np.broadcast_to(vega_v, shape).copy(),
        theta=np.broadcast_to(theta_v, shape).copy(),
        vanna=np.broadcast_to(vanna_v, shape).copy(),
        charm=np.broadcast_to(charm_v, shape).copy(),
    )
