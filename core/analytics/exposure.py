"""Dealer gamma / delta exposure (GEX / DEX) of an option chain.

Conventions
-----------
* **Positioning assumption** (the common "naive GEX" convention): dealers are long
  the calls and short the puts that make up open interest, so **call GEX counts
  positive and put GEX counts negative**.
* **GEX per contract** = ``gamma * OI * 100 (multiplier) * S^2 * 0.01`` in **dollars
  of delta change per 1% move** of the underlying, signed ``+`` for calls and ``-``
  for puts. ``gamma`` is per 1 unit of underlying (BSM, continuous yield ``q``).
* **DEX per contract** = ``delta * OI * 100 * S`` in **dollars** (share-equivalent
  notional). ``delta`` keeps its own sign (calls > 0, puts < 0); no extra sign flip.
* **Greeks source**: the vendor's ``chain.delta`` / ``chain.gamma`` where they are
  not NaN, otherwise BSM with the row's volatility (``vol``: the vendor IV or one solved
  from the price, :mod:`core.analytics.volatility`; default ``chain.iv``),
  ``T = year_fraction(asof, expiry)`` (to 16:00 New York, 365-day year, floored at 5
  minutes), ``r`` and ``q``.
* **Rate / yield**: ``chain.rate`` / ``chain.dividend_yield`` when the source stated
  them (not ``None``), else the ``rate`` / ``dividend_yield`` arguments (config).
* **Aggregates**: totals, by strike (all expiries summed), by expiry.
* **Call wall**: strike with the largest (positive) call GEX; **put wall**: strike with
  the largest absolute put GEX; **max-gamma strike**: largest absolute net GEX.
  Ties go to the lowest strike; ``None`` when the relevant GEX is all zero.
* **Zero gamma (flip)**: see :mod:`core.analytics.gamma_flip` (model gammas re-priced
  over a +-20% spot grid, sign change nearest spot, linear interpolation).
* **Max pain** per expiry: see :mod:`core.analytics.max_pain`.

Input is either a cleaned chain (every row counts for everything) or a chain with per-use
row masks (``uses``, from :func:`core.analytics.validate.validate_uses`): GEX counts the
``gex`` rows, DEX the ``dex`` rows, max pain the ``max_pain`` rows, the flip the ``flip``
rows. This module does not re-validate rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from core.analytics.expiry_time import year_fraction
from core.analytics.gamma_flip import DEFAULT_MAX_ELEMENTS, GammaProfile, zero_gamma_profile
from core.analytics.greeks import delta_gamma
from core.analytics.max_pain import max_pain
from core.market.chain import OptionChain

__all__ = [
    "MULTIPLIER",
    "ExposureResult",
    "Walls",
    "compute_exposure",
    "contract_delta_gamma",
    "dex_per_contract",
    "find_walls",
    "gex_per_contract",
    "sum_by",
]

MULTIPLIER = 100.0


@dataclass(frozen=True, slots=True)
class Walls:
    """Key strikes from the by-strike GEX (``None`` when undefined)."""

    call_wall: float | None
    put_wall: float | None
    max_gamma_strike: float | None


@dataclass(frozen=True, slots=True)
class ExposureResult:
    """Everything :func:`compute_exposure` derives from one chain snapshot.

    Per-contract arrays (``gex``, ``dex``, ``delta``, ``gamma``, ``T``) are aligned
    with the input chain's rows. GEX values are dollars per 1% move; DEX dollars.
    """

    spot: float
    rate: float
    dividend_yield: float
    T: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    gex: np.ndarray
    dex: np.ndarray
    gex_total: float
    dex_total: float
    call_gex_total: float
    put_gex_total: float
    strikes: np.ndarray                 # sorted unique strikes
    gex_by_strike: np.ndarray           # net (calls + puts), aligned with strikes
    call_gex_by_strike: np.ndarray
    put_gex_by_strike: np.ndarray
    dex_by_strike: np.ndarray
    expiries: np.ndarray                # sorted unique datetime64[D]
    gex_by_expiry: np.ndarray
    dex_by_expiry: np.ndarray
    call_wall: float | None
    put_wall: float | None
    max_gamma_strike: float | None
    zero_gamma: float | None
    gamma_profile: GammaProfile | None  # None when the flip was not requested
    max_pain: dict[date, float] = field(default_factory=dict)

    def gex_by_strike_dict(self) -> dict[float, float]:
        """``{strike: net GEX}`` as plain floats, ascending strike."""
        return dict(zip(self.strikes.tolist(), self.gex_by_strike.tolist(), strict=True))


def contract_delta_gamma(
    chain: OptionChain, T: np.ndarray, rate: float, dividend_yield: float, vol: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (delta, gamma): vendor values where not NaN, BSM (with ``vol``, default ``chain.iv``) elsewhere.

    BSM is evaluated only on rows missing a vendor value (NaN where ``vol`` is NaN).
    """
    sigma = chain.iv if vol is None else vol
    d = np.array(chain.delta, dtype=np.float64, copy=True)
    g = np.array(chain.gamma, dtype=np.float64, copy=True)
    need_d = np.isnan(d)
    need_g = np.isnan(g)
    need = need_d | need_g
    if need_d.all() and need_g.all():  # common case (no vendor greeks): no fancy indexing
        with np.errstate(invalid="ignore"):
            return delta_gamma(chain.spot, chain.strike, T, rate, dividend_yield, sigma, chain.is_call)
    if need.any():
        with np.errstate(invalid="ignore"):
            md, mg = delta_gamma(chain.spot, chain.strike[need], T[need], rate, dividend_yield,
                                 sigma[need], chain.is_call[need])
        d[need_d] = md[need_d[need]]
        g[need_g] = mg[need_g[need]]
    return d, g


def gex_per_contract(
    gamma: np.ndarray, open_interest: np.ndarray, is_call: np.ndarray, spot: float,
    multiplier: float = MULTIPLIER,
) -> np.ndarray:
    """``+-gamma * OI * multiplier * S^2 * 0.01`` (calls +, puts -), dollars per 1% move."""
    sign = np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)
    return sign * np.asarray(gamma, dtype=np.float64) * np.asarray(open_interest, dtype=np.float64) * (
        multiplier * spot * spot * 0.01
    )


def dex_per_contract(
    delta: np.ndarray, open_interest: np.ndarray, spot: float, multiplier: float = MULTIPLIER
) -> np.ndarray:
    """``delta * OI * multiplier * S`` in dollars (delta keeps its sign)."""
    return np.asarray(delta, dtype=np.float64) * np.asarray(open_interest, dtype=np.float64) * (multiplier * spot)


def sum_by(keys: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Group-sum: ``(sorted unique keys, sum of values[0] per key, sum of values[1] ...)``."""
    uniq, inverse = np.unique(np.asarray(keys), return_inverse=True)
    sums = tuple(np.bincount(inverse, weights=v, minlength=uniq.shape[0]) for v in values)
    return (uniq, *sums)


def _argmax_or_none(strikes: np.ndarray, score: np.ndarray) -> float | None:
    if score.size == 0:
        return None
    i = int(np.argmax(score))  # first maximum -> lowest strike on ties
    return float(strikes[i]) if score[i] > 0.0 else None


def find_walls(
    strikes: np.ndarray, call_gex_by_strike: np.ndarray, put_gex_by_strike: np.ndarray
) -> Walls:
    """Call wall (max call GEX), put wall (max |put GEX|), max-gamma (max |net GEX|)."""
    net = call_gex_by_strike + put_gex_by_strike
    return Walls(
        call_wall=_argmax_or_none(strikes, call_gex_by_strike),
        put_wall=_argmax_or_none(strikes, np.abs(put_gex_by_strike)),
        max_gamma_strike=_argmax_or_none(strikes, np.abs(net)),
    )


def _rows(uses: Mapping[str, np.ndarray] | None, use: str) -> np.ndarray | None:
    """The row mask of ``use``, or None when every row counts (the plain path, unchanged)."""
    if uses is None:
        return None
    m = np.asarray(uses[use], dtype=bool)
    return None if m.all() else m


def _counted(chain: OptionChain, is_call: np.ndarray, gex: np.ndarray, dex: np.ndarray,
             gex_rows: np.ndarray | None, dex_rows: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """(call GEX, put GEX, GEX, DEX, strike, expiry) of the rows GEX or DEX counts (all rows: unchanged)."""
    call_part = np.where(is_call, gex, 0.0)
    put_part = gex - call_part
    strike, expiry = chain.strike, np.asarray(chain.expiry, dtype="datetime64[D]")
    if gex_rows is None and dex_rows is None:
        return call_part, put_part, gex, dex, strike, expiry
    every = np.ones(len(chain), dtype=bool)
    sel = (every if gex_rows is None else gex_rows) | (every if dex_rows is None else dex_rows)
    return call_part[sel], put_part[sel], gex[sel], dex[sel], strike[sel], expiry[sel]


def compute_exposure(
    chain: OptionChain,
    rate: float,
    dividend_yield: float,
    grid_levels: int | None = 200,
    *,
    width: float = 0.20,
    multiplier: float = MULTIPLIER,
    min_minutes: float = 5.0,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    vol: np.ndarray | None = None,
    uses: Mapping[str, np.ndarray] | None = None,
) -> ExposureResult:
    """GEX/DEX totals and breakdowns, walls, zero-gamma level and max pain.

    Args:
        chain: a cleaned chain (see :func:`core.analytics.validate.clean_chain`), or any
            chain with ``uses``.
        rate: continuously compounded rate used unless ``chain.rate`` is set.
        dividend_yield: continuous yield used unless ``chain.dividend_yield`` is set.
        grid_levels: spot levels for the zero-gamma search; ``None`` or ``0`` skips
            it (``zero_gamma`` and ``gamma_profile`` are then ``None``).
        width: half-width of the flip grid as a fraction of spot (0.20 = +-20%).
        multiplier: shares per contract.
        min_minutes: floor on time to expiry (see :func:`year_fraction`).
        max_elements: memory bound (cells per chunk) of the flip grid broadcast.
        vol: per-row volatility for model greeks and the flip (default ``chain.iv``).
        uses: per-use row masks ``{"gex", "dex", "max_pain", "flip"}`` (default: all rows
            count for everything). Per-contract ``gex``/``dex`` are 0 on rows outside their use.

    Returns:
        :class:`ExposureResult`.
    """
    r = float(chain.rate) if chain.rate is not None else float(rate)
    q = float(chain.dividend_yield) if chain.dividend_yield is not None else float(dividend_yield)
    spot = float(chain.spot)
    oi = np.asarray(chain.open_interest, dtype=np.float64)
    is_call = np.asarray(chain.is_call, dtype=bool)
    sigma = np.asarray(chain.iv if vol is None else vol, dtype=np.float64)

    T = year_fraction(chain.asof, chain.expiry, min_minutes=min_minutes)
    d, g = contract_delta_gamma(chain, T, r, q, sigma)
    gex = gex_per_contract(g, oi, is_call, spot, multiplier)
    dex = dex_per_contract(d, oi, spot, multiplier)
    gex_rows, dex_rows = _rows(uses, "gex"), _rows(uses, "dex")
    if gex_rows is not None:
        gex = np.where(gex_rows, gex, 0.0)
    if dex_rows is not None:
        dex = np.where(dex_rows, dex, 0.0)

    call_part, put_part, gex_s, dex_s, strike, expiry = _counted(chain, is_call, gex, dex, gex_rows, dex_rows)
    strikes, gex_k, call_k, put_k, dex_k = sum_by(strike, gex_s, call_part, put_part, dex_s)
    expiries, gex_e, dex_e = sum_by(expiry, gex_s, dex_s)
    walls = find_walls(strikes, call_k, put_k)

    profile: GammaProfile | None = None
    if grid_levels:
        fr = _rows(uses, "flip")
        pick = (lambda a: a) if fr is None else (lambda a: np.asarray(a)[fr])
        profile = zero_gamma_profile(
            spot, pick(chain.strike), pick(T), pick(sigma), pick(oi), pick(is_call), r, q,
            grid_levels=grid_levels, width=width, multiplier=multiplier, max_elements=max_elements,
        )
    mp = _rows(uses, "max_pain")
    mp_pick = (lambda a: a) if mp is None else (lambda a: np.asarray(a)[mp])

    return ExposureResult(
        spot=spot, rate=r, dividend_yield=q, T=T, delta=d, gamma=g, gex=gex, dex=dex,
        gex_total=float(gex_s.sum()), dex_total=float(dex_s.sum()),
        call_gex_total=float(call_part.sum()), put_gex_total=float(put_part.sum()),
        strikes=strikes, gex_by_strike=gex_k, call_gex_by_strike=call_k, put_gex_by_strike=put_k,
        dex_by_strike=dex_k, expiries=expiries, gex_by_expiry=gex_e, dex_by_expiry=dex_e,
        call_wall=walls.call_wall, put_wall=walls.put_wall, max_gamma_strike=walls.max_gamma_strike,
        zero_gamma=profile.zero_gamma if profile is not None else None, gamma_profile=profile,
        max_pain=max_pain(mp_pick(chain.expiry), mp_pick(chain.strike), mp_pick(is_call), mp_pick(oi)),
    )
