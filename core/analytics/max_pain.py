"""Max pain: per expiry, the settlement price that minimizes what option holders collect.

For an expiry with contracts ``(K_i, OI_i, call/put)`` and a candidate settlement
price ``P`` (every strike listed for that expiry is a candidate)::

    pain(P) = sum_calls OI_i * max(0, P - K_i) + sum_puts OI_i * max(0, K_i - P)

Max pain is ``argmin_P pain(P)``; ties go to the lowest strike. Intrinsic values
are per share (multiply by 100 for dollars); the argmin does not depend on it.

The implementation is fully vectorized and O(n log n) over all expiries at once:
contracts are sorted by (expiry, strike) and ``pain`` at every candidate is read
off cumulative sums of ``OI`` and ``OI*K`` instead of an (n_strikes x n_contracts)
matrix. :func:`pain_matrix` is the direct broadcast form, kept for checking.
"""

from __future__ import annotations

from datetime import date

import numpy as np

__all__ = ["max_pain", "pain_by_candidate", "pain_matrix"]


def _candidates(
    expiry: np.ndarray, strike: np.ndarray, is_call: np.ndarray, open_interest: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cand_expiry, cand_strike, pain, first candidate index of each expiry group)."""
    exp = np.asarray(expiry, dtype="datetime64[D]").ravel()
    k = np.asarray(strike, dtype=np.float64).ravel()
    call = np.asarray(is_call, dtype=bool).ravel()
    oi = np.asarray(open_interest, dtype=np.float64).ravel()
    n = k.shape[0]
    if n == 0:
        return exp[:0], k[:0], k[:0], np.zeros(0, dtype=np.intp)

    order = np.lexsort((k, exp.view(np.int64)))  # by expiry, then strike
    e_s = exp[order]
    k_s = k[order]
    call_s = call[order]
    oi_s = oi[order]

    new_exp = np.empty(n, dtype=bool)
    new_exp[0] = True
    np.not_equal(e_s[1:], e_s[:-1], out=new_exp[1:])
    gid = np.cumsum(new_exp) - 1
    gstart = np.flatnonzero(new_exp)
    gend = np.append(gstart[1:], n)
    # last row of each (expiry, strike) run = one candidate settlement price
    last = np.empty(n, dtype=bool)
    last[-1] = True
    last[:-1] = (k_s[1:] != k_s[:-1]) | new_exp[1:]
    li = np.flatnonzero(last)

    call_oi = np.where(call_s, oi_s, 0.0)
    put_oi = oi_s - call_oi
    zero = np.zeros(1)
    c_oi = np.concatenate((zero, np.cumsum(call_oi)))
    c_oik = np.concatenate((zero, np.cumsum(call_oi * k_s)))
    p_oi = np.concatenate((zero, np.cumsum(put_oi)))
    p_oik = np.concatenate((zero, np.cumsum(put_oi * k_s)))

    cand_p = k_s[li]
    cand_g = gid[li]
    start = gstart[cand_g]
    upto = li + 1  # rows [start, upto) have K <= P
    end = gend[cand_g]
    call_pain = cand_p * (c_oi[upto] - c_oi[start]) - (c_oik[upto] - c_oik[start])
    put_pain = (p_oik[end] - p_oik[upto]) - cand_p * (p_oi[end] - p_oi[upto])
    # Cumulative-sum differences can leave ~1e-16 relative noise; intrinsic value is >= 0.
    pain = np.maximum(call_pain, 0.0) + np.maximum(put_pain, 0.0)
    cand_gstart = np.flatnonzero(np.diff(cand_g, prepend=-1))
    return e_s[li], cand_p, pain, cand_gstart


def pain_by_candidate(
    expiry: np.ndarray, strike: np.ndarray, is_call: np.ndarray, open_interest: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total intrinsic value paid at each (expiry, listed strike) candidate.

    Returns:
        ``(cand_expiry, cand_strike, pain)`` sorted by expiry then strike; one row per
        distinct (expiry, strike) pair present in the input.
    """
    cand_e, cand_p, pain, _ = _candidates(expiry, strike, is_call, open_interest)
    return cand_e, cand_p, pain


def max_pain(
    expiry: np.ndarray, strike: np.ndarray, is_call: np.ndarray, open_interest: np.ndarray
) -> dict[date, float]:
    """Max-pain strike for every expiry present: ``{expiry_date: strike}`` in date order."""
    cand_e, cand_p, pain, gstart = _candidates(expiry, strike, is_call, open_interest)
    if cand_p.size == 0:
        return {}
    # Candidates are grouped by expiry (contiguous) and sorted by strike. Values within
    # 1e-12 of the group's range above its minimum count as ties (cumulative sums are
    # not bit-exact); the first of them is the lowest strike.
    sizes = np.diff(np.append(gstart, cand_p.shape[0]))
    gmin = np.repeat(np.minimum.reduceat(pain, gstart), sizes)
    gmax = np.repeat(np.maximum.reduceat(pain, gstart), sizes)
    is_min = pain <= gmin + (1e-12 * (gmax - gmin) + 1e-300)
    # first minimal candidate in each group
    idx = np.flatnonzero(is_min)
    grp = np.searchsorted(gstart, idx, side="right") - 1
    keep = np.ones(idx.shape[0], dtype=bool)
    keep[1:] = grp[1:] != grp[:-1]
    best = idx[keep]
    return {d: float(p) for d, p in zip(cand_e[best].tolist(), cand_p[best].tolist(), strict=True)}


def pain_matrix(strike: np.ndarray, is_call: np.ndarray, open_interest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Direct (candidates x contracts) broadcast for ONE expiry: ``(candidates, pain)``."""
    k = np.asarray(strike, dtype=np.float64)
    call = np.asarray(is_call, dtype=bool)
    oi = np.asarray(open_interest, dtype=np.float64)
    cands = np.unique(k)
    diff = cands[:, None] - k[None, :]
    intrinsic = np.where(call[None, :], np.maximum(diff, 0.0), np.maximum(-diff, 0.0))
    return cands, intrinsic @ oi
