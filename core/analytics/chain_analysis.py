"""One chain snapshot -> validation per use, volatilities, exposure: what the service and the CLI share.

:func:`analyze_chain` runs, in order:

1. the checks every use needs (:func:`core.analytics.validate.base_usable`: spot, strike,
   expiry, open interest, not expired);
2. the volatility of those rows (:func:`core.analytics.volatility.resolve_volatility`: vendor
   IV, else solved from mid or last with the chain's ``r`` and ``q``);
3. the per-use masks (:func:`core.analytics.validate.validate_uses`);
4. :func:`core.analytics.exposure.compute_exposure` on the rows that count for any use, with
   each use's mask and the resolved volatility;
5. :func:`core.analytics.validate.clean_mask` (every check, the old all-or-nothing rule) for
   the features and liquidity, which read quotes and vendor IV.

Rate and dividend yield: the chain's own (``chain.rate`` / ``chain.dividend_yield``, stated by
the source) when given, else the configured defaults; both, and where they came from, are in
:meth:`ChainAnalysis.summary`. A chain whose rows are all clean takes exactly the arithmetic
path it took before per-use validation (same rows, same arrays, same numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from core.analytics.expiry_time import year_fraction
from core.analytics.exposure import ExposureResult, compute_exposure
from core.analytics.validate import RejectCounts, UseValidation, base_usable, clean_mask, validate_uses
from core.analytics.volatility import VOL_REASONS, Volatility, resolve_volatility
from core.market.chain import OptionChain

__all__ = ["AnalysisSettings", "ChainAnalysis", "analyze_chain"]


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """The configuration both callers pass (``market.rate``, ``market.dividend_yield``, ``analytics.*``)."""

    rate: float = 0.045
    dividend_yield: float = 0.0
    grid_levels: int = 200
    flip_range_pct: float = 20.0
    min_minutes_to_expiry: float = 5.0

    @classmethod
    def from_settings(cls, settings: Any) -> AnalysisSettings:
        a = settings.analytics
        return cls(rate=float(settings.market.rate), dividend_yield=float(settings.market.dividend_yield),
                   grid_levels=int(a.flip_grid_levels), flip_range_pct=float(a.flip_range_pct),
                   min_minutes_to_expiry=float(a.min_minutes_to_expiry))


@dataclass(frozen=True, slots=True)
class ChainAnalysis:
    """Result of :func:`analyze_chain`.

    ``chain`` holds the rows that count for at least one use; ``exposure``, ``vol`` arrays are
    aligned with it. ``clean`` is the all-checks chain (features, liquidity) with
    ``clean_exposure`` (the same exposure, its per-contract arrays cut to ``clean``'s rows).
    """

    raw_rows: int
    chain: OptionChain
    exposure: ExposureResult
    uses: UseValidation
    vol: Volatility
    clean: OptionChain
    clean_counts: RejectCounts
    clean_exposure: ExposureResult
    rate_source: str
    dividend_yield_source: str

    @property
    def rows_used(self) -> int:
        return len(self.chain)

    @property
    def rows_rejected(self) -> int:
        """Rows that count for no use."""
        return self.raw_rows - len(self.chain)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON account of the inputs and of every rejection, by use and reason."""
        return {
            "rate": self.exposure.rate, "rate_source": self.rate_source,
            "dividend_yield": self.exposure.dividend_yield, "dividend_yield_source": self.dividend_yield_source,
            "used": self.uses.used(), "rejected": self.uses.rejected,
            "iv": self.vol.summary(),
        }


def _cut(expo: ExposureResult, rows: np.ndarray) -> ExposureResult:
    return replace(expo, T=expo.T[rows], delta=expo.delta[rows], gamma=expo.gamma[rows], gex=expo.gex[rows],
                   dex=expo.dex[rows])


def analyze_chain(chain: OptionChain, asof: datetime, cfg: AnalysisSettings) -> ChainAnalysis:
    """Validate per use, resolve volatilities and compute the exposure of one chain (module docstring).

    Never raises on bad row values; ``asof`` must be timezone-aware (ValueError otherwise).
    """
    r = float(chain.rate) if chain.rate is not None else float(cfg.rate)
    q = float(chain.dividend_yield) if chain.dividend_yield is not None else float(cfg.dividend_yield)
    base = base_usable(chain, asof)
    T = year_fraction(asof, np.asarray(chain.expiry, dtype="datetime64[D]"), min_minutes=cfg.min_minutes_to_expiry)
    vol = resolve_volatility(chain, T, r, q, need=base)
    uses = validate_uses(chain, asof, vol.reason, VOL_REASONS)
    keep = uses.any_use
    everything = bool(keep.all())
    sub = chain if everything else chain.take(keep)
    sub_uses = uses.masks if everything else {u: m[keep] for u, m in uses.masks.items()}
    sub_vol = vol.vol if everything else vol.vol[keep]
    expo = compute_exposure(sub, r, q, cfg.grid_levels or None, width=cfg.flip_range_pct / 100.0,
                            min_minutes=cfg.min_minutes_to_expiry, vol=sub_vol, uses=sub_uses)
    clean_ok, counts = clean_mask(chain, asof)   # a subset of the rows used (it needs all of it)
    if bool(np.array_equal(clean_ok, keep)):
        clean, clean_expo = sub, expo
    else:
        clean, clean_expo = chain.take(clean_ok), _cut(expo, clean_ok[keep])
    return ChainAnalysis(
        raw_rows=len(chain), chain=sub, exposure=expo, uses=uses, vol=vol, clean=clean, clean_counts=counts,
        clean_exposure=clean_expo,
        rate_source="chain" if chain.rate is not None else "config",
        dividend_yield_source="chain" if chain.dividend_yield is not None else "config",
    )
