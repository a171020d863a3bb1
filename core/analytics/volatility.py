"""The volatility each chain row is priced with: the vendor's IV, else one solved from its price.

Rules, per row (only rows the caller asks about are looked at):

* **Vendor IV** when it is finite and ``> 0``. Exports print ``0`` (or nothing) where the
  vendor's own solver gave up; ``0`` is read as "no IV", never as a volatility.
* Otherwise **solved** (:func:`core.analytics.iv_solver.implied_vol`, BSM with the chain's
  ``r`` and ``q``) from the **mid** when the book is usable (bid and ask finite, ``ask > 0``,
  ``0 <= bid <= ask``; a zero bid gives ``ask / 2``), else from the **last price** when the
  chain carries one (``> 0``): the book is empty or crossed.
* Otherwise no volatility, for the reason (:data:`VOL_REASONS`): ``no_volatility`` (no vendor
  IV and no price), ``crossed`` (no vendor IV, a crossed book and no last price),
  ``at_or_below_intrinsic`` (the price is not above the zero-volatility value),
  ``above_upper_bound``, ``no_convergence``.

Time to expiry is :func:`core.analytics.expiry_time.year_fraction` (to 16:00 New York,
365-day year, floored at the configured minimum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.analytics.iv_solver import IV_STATUS, implied_vol
from core.market.chain import OptionChain

__all__ = ["SOURCES", "VOL_REASONS", "Volatility", "resolve_volatility"]

# reason codes: 0 = the row has a volatility
VOL_REASONS: tuple[str, ...] = ("", "no_volatility", "crossed", "at_or_below_intrinsic", "above_upper_bound",
                                "no_convergence")
SOURCES: tuple[str, ...] = ("none", "vendor", "solved_mid", "solved_last")
_SOLVER_TO_REASON = {"no_price": 1, "bad_input": 1, "at_or_below_intrinsic": 3, "above_upper_bound": 4,
                     "no_convergence": 5}


@dataclass(frozen=True, slots=True)
class Volatility:
    """Per-row ``vol`` (NaN where none), ``source`` (index into SOURCES), ``reason`` (into VOL_REASONS),
    and ``asked``: the rows a volatility was looked for (the others are ``none`` / ``no_volatility``)."""

    vol: np.ndarray
    source: np.ndarray
    reason: np.ndarray
    asked: np.ndarray

    def summary(self, rows: np.ndarray | None = None) -> dict[str, object]:
        """``{"vendor": n, "solved_mid": n, "solved_last": n, "unsolved": {reason: n}}`` over ``rows``
        (default: the rows asked about)."""
        rows = self.asked if rows is None else rows
        src, why = self.source[rows], self.reason[rows]
        out: dict[str, object] = {name: int(np.count_nonzero(src == i)) for i, name in enumerate(SOURCES) if i}
        out["unsolved"] = {VOL_REASONS[i]: int(np.count_nonzero(why == i))
                           for i in range(1, len(VOL_REASONS)) if np.any(why == i)}
        return out


def _price(chain: OptionChain, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(price, source code, crossed) for ``rows``: mid of a usable book, else last, else NaN."""
    bid = np.asarray(chain.bid, dtype=np.float64)[rows]
    ask = np.asarray(chain.ask, dtype=np.float64)[rows]
    with np.errstate(invalid="ignore"):
        book = np.isfinite(bid) & np.isfinite(ask) & (ask > 0.0) & (bid >= 0.0) & (bid <= ask)
        crossed = np.isfinite(bid) & np.isfinite(ask) & (bid > ask)
        last = (np.full(rows.shape[0], np.nan) if chain.last is None
                else np.asarray(chain.last, dtype=np.float64)[rows])
        has_last = np.isfinite(last) & (last > 0.0)
    price = np.where(book, 0.5 * (bid + ask), np.where(has_last, last, np.nan))
    source = np.where(book, 2, np.where(has_last, 3, 0)).astype(np.int8)
    return price, source, crossed & ~has_last


def resolve_volatility(
    chain: OptionChain, T: np.ndarray, rate: float, dividend_yield: float, need: np.ndarray | None = None
) -> Volatility:
    """Volatility per row of ``chain`` (vendor, else solved), for the rows in ``need`` (default all).

    Args:
        chain: the chain (any row values).
        T: year fractions aligned with the rows (floored, > 0 where ``need``).
        rate, dividend_yield: continuous ``r`` and ``q`` the chain is priced with.
        need: rows that want a volatility; others get none, reason ``no_volatility``.
    """
    n = len(chain)
    need = np.ones(n, dtype=bool) if need is None else np.asarray(need, dtype=bool)
    iv = np.asarray(chain.iv, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        vendor = need & np.isfinite(iv) & (iv > 0.0)
    vol = np.where(vendor, iv, np.nan)
    source = np.where(vendor, 1, 0).astype(np.int8)
    reason = np.where(vendor, 0, 1).astype(np.int8)
    rows = np.flatnonzero(need & ~vendor)
    if rows.size == 0:
        return Volatility(vol=vol, source=source, reason=reason, asked=need)
    price, src, crossed = _price(chain, rows)
    priced = np.isfinite(price)
    reason[rows[crossed & ~priced]] = 2
    solve = rows[priced]
    if solve.size:
        res = implied_vol(price[priced], chain.spot, np.asarray(chain.strike, dtype=np.float64)[solve],
                          np.asarray(T, dtype=np.float64)[solve], rate, dividend_yield,
                          np.asarray(chain.is_call, dtype=bool)[solve])
        ok = res.status == 0
        vol[solve[ok]] = res.iv[ok]
        source[solve[ok]] = src[priced][ok]
        reason[solve[ok]] = 0
        codes = np.array([_SOLVER_TO_REASON.get(name, 5) for name in IV_STATUS], dtype=np.int8)
        reason[solve[~ok]] = codes[res.status[~ok]]
    return Volatility(vol=vol, source=source, reason=reason, asked=need)
