"""Threshold comparisons that are exact at their boundaries.

Every hard limit is documented as "over X" (refuse when strictly above) or "at/after X" (refuse
at the limit too). A value computed in binary floating point misses such a boundary by float
noise: a 0.95/1.05 quote has a spread of ``10.000000000000009`` % of mid, which a plain ``>``
refuses although the rule says "over 10 %". Decision: compare with one relative tolerance,
:data:`REL_TOL` (1e-9 of the larger magnitude, at least 1e-9 absolute). It is far below
anything a limit distinguishes (a cent on a $10,000 premium is 1e-6 relative; a millisecond
on a 15 s age is 7e-5), and far above the error of a handful of float operations (~1e-15).

* :func:`exceeds` - "over the limit": ``value > limit`` beyond float noise.
* :func:`reaches` - "at or over the limit": ``value >= limit`` within float noise.

Both fail closed: a NaN value or limit counts as over (a measurement that cannot be made
never passes a limit).
"""

from __future__ import annotations

import math

__all__ = ["EPS", "REL_TOL", "exceeds", "reaches"]

REL_TOL = 1e-9
EPS = REL_TOL  # the absolute tolerance for price arithmetic near 1 (ticks of 0.01)


def _tol(value: float, limit: float) -> float:
    return REL_TOL * max(1.0, abs(value), abs(limit))


def exceeds(value: float, limit: float) -> bool:
    """True when ``value`` is strictly over ``limit`` (beyond float noise), or either is NaN."""
    if math.isnan(value) or math.isnan(limit):
        return True
    if math.isinf(value) or math.isinf(limit):
        return value > limit
    return value > limit + _tol(value, limit)


def reaches(value: float, limit: float) -> bool:
    """True when ``value`` is at or over ``limit`` (within float noise), or either is NaN."""
    if math.isnan(value) or math.isnan(limit):
        return True
    if math.isinf(value) or math.isinf(limit):
        return value >= limit
    return value >= limit - _tol(value, limit)
