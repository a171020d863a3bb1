"""Expiry and strike choice, with hysteresis.

Deltas: the chain's vendor delta where present, Black-Scholes from the row's IV
elsewhere (:func:`core.analytics.exposure.contract_delta_gamma`, time to the 16:00 NY
close of the expiry, :func:`core.analytics.expiry_time.year_fraction`).

Eligible rows (of the wanted expiry and right): finite positive quote with
``bid > 0``, not crossed, relative spread ``(ask - bid) / mid`` at most
``max_spread_pct`` (the risk layer refuses wider ones), mid at least ``min_premium``,
open interest at least ``min_open_interest``.

Target: the row whose ``|delta|`` is nearest the centre of the delta band; it must lie
inside the band widened by ``band_slack`` on each side, else there is no contract.

Hysteresis: when the previously chosen contract for the same (symbol, strategy,
direction) is still eligible (same expiry, still listed with a usable quote), it is
kept unless the new target improves the distance to the band centre by more than
``margin`` (default 0.05 delta); so a kept strike is never more than ``margin`` worse
than the target. That is what stops 506 -> 507 -> 506
flapping when spot wiggles between two strikes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np

from core.analytics.expiry_time import year_fraction
from core.analytics.exposure import contract_delta_gamma
from core.analytics.liquidity import relative_spread
from core.domain.contract import OptionContract, Right
from core.market.chain import OptionChain

__all__ = ["PreviousChoice", "Selection", "chain_deltas", "select_contract"]


@dataclass(frozen=True, slots=True)
class PreviousChoice:
    """The contract last chosen for a (symbol, strategy, direction)."""

    expiry: date
    strike: float


@dataclass(frozen=True, slots=True)
class Selection:
    contract: OptionContract
    bid: float
    ask: float
    delta: float           # signed
    target_delta: float    # band centre (absolute)
    kept_previous: bool
    best_strike: float     # the strike nearest the target (differs from contract when kept)

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


def chain_deltas(chain: OptionChain, rate: float = 0.045, dividend_yield: float = 0.0) -> np.ndarray:
    """Signed delta per row: vendor value where finite, BSM from the row's IV elsewhere."""
    d = np.asarray(chain.delta, dtype=np.float64)
    if len(chain) == 0 or bool(np.all(np.isfinite(d))):
        return d
    r = float(chain.rate) if chain.rate is not None else float(rate)
    q = float(chain.dividend_yield) if chain.dividend_yield is not None else float(dividend_yield)
    T = year_fraction(chain.asof, chain.expiry)
    with np.errstate(all="ignore"):
        delta, _gamma = contract_delta_gamma(chain, T, r, q)
    return delta


def _expiry_mask(chain: OptionChain, expiry: date) -> np.ndarray:
    return np.asarray(chain.expiry, dtype="datetime64[D]") == np.datetime64(expiry, "D")


def select_contract(
    chain: OptionChain, *, expiry: date, right: Right, band: tuple[float, float],
    previous: PreviousChoice | None = None, margin: float = 0.05, band_slack: float = 0.05,
    max_spread_pct: float = 10.0, min_premium: float = 0.10, min_open_interest: float = 0.0,
    rate: float = 0.045, dividend_yield: float = 0.0, deltas: np.ndarray | None = None,
) -> Selection | None:
    """The contract to buy (see the module docstring), or None when nothing fits."""
    lo, hi = sorted(band)
    n = len(chain)
    if n == 0:
        return None
    delta = chain_deltas(chain, rate, dividend_yield) if deltas is None else deltas
    bid = np.asarray(chain.bid, dtype=np.float64)
    ask = np.asarray(chain.ask, dtype=np.float64)
    strike = np.asarray(chain.strike, dtype=np.float64)
    oi = np.asarray(chain.open_interest, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        spread = relative_spread(bid, ask)
        mid = (bid + ask) / 2.0
        ok = (_expiry_mask(chain, expiry) & (np.asarray(chain.is_call, dtype=bool) == (right == Right.CALL))
              & np.isfinite(strike) & (strike > 0) & np.isfinite(delta) & np.isfinite(spread)
              & (bid > 0) & (spread <= max_spread_pct / 100.0 + 1e-12) & (mid >= min_premium - 1e-12)
              & ~(oi < min_open_interest))
    rows = np.flatnonzero(ok)
    if rows.size == 0:
        return None
    target = (lo + hi) / 2.0
    absd = np.abs(delta[rows])
    dist = np.abs(absd - target)
    in_band = (absd >= lo - band_slack - 1e-12) & (absd <= hi + band_slack + 1e-12)
    if not in_band.any():
        return None
    cand = rows[in_band]
    cdist = dist[in_band]
    order = np.lexsort((strike[cand], cdist))  # nearest the target, then lowest strike
    best = int(cand[order[0]])
    best_dist = float(cdist[order[0]])
    chosen, kept = best, False
    if previous is not None and previous.expiry == expiry:
        same = rows[np.isclose(strike[rows], previous.strike, rtol=0.0, atol=1e-6)]
        if same.size:
            p = int(same[0])
            if abs(abs(float(delta[p])) - target) - best_dist <= margin + 1e-12:
                chosen, kept = p, True
    contract = OptionContract(symbol=chain.symbol, expiry=expiry, strike=float(strike[chosen]), right=right)
    return Selection(contract=contract, bid=float(bid[chosen]), ask=float(ask[chosen]),
                     delta=float(delta[chosen]), target_delta=target, kept_previous=kept,
                     best_strike=float(strike[best]))


def dte(today: date, expiry: date) -> int:
    """Calendar days to expiry."""
    return (expiry - today).days


def listed_expiries(chain: OptionChain) -> list[date]:
    return sorted(chain.expiries())


def finite(x: object) -> float | None:
    """``float(x)`` when it is a finite real number, else None (bools are not numbers)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
