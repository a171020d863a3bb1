"""Benchmark: vectorized options analytics vs a plain per-contract Python loop.

Run from the repo root:  ``python bench/analytics.py [--contracts 10000] [--runs 30] [--loop-runs 3]``
and for the implied-volatility solver:  ``python bench/analytics.py --iv [--iv-sizes 10000,50000]``

Times (median of N runs, ``time.perf_counter``):

* exposure = per-contract greeks + GEX/DEX totals, by strike / by expiry, walls,
  max pain (``compute_exposure(..., grid_levels=0)``); goal < 10 ms at 10k contracts.
* flip     = zero-gamma search on a 200-level +-20% grid (``zero_gamma_profile``,
  including its own year-fraction setup); goal < 50 ms at 10k contracts.

and the same computations written as straightforward Python loops over contracts
(``math.erf`` normal CDF), then checks both give the same answers.

``--iv``: :func:`core.analytics.iv_solver.implied_vol` on the synthetic chain's BSM prices
(10,000 and 50,000 contracts; 0DTE to 3 months, deep in and out of the money): contracts per
second (median of runs) and the worst absolute IV error against vollib's BSM implied volatility
(Jaeckel's "Let's be rational", the dev extra) and against the true IV, over every contract
whose price is informative (``vega * sigma > 1e-6 * price`` and price above 1e-6).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from core.analytics.expiry_time import MINUTES_PER_YEAR, NEW_YORK, year_fraction
from core.analytics.exposure import compute_exposure
from core.analytics.gamma_flip import zero_gamma_profile
from core.market.chain import OptionChain

RATE = 0.045
DIV_YIELD = 0.013
GRID = 200


def synthetic_chain(n_contracts: int, seed: int = 7) -> OptionChain:
    """SPX-like chain: 10 expiries (0DTE .. ~3 months), calls and puts, smile, random OI."""
    rng = np.random.default_rng(seed)
    spot = 5900.0
    asof = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)  # 10:00 New York
    n_exp = 10
    per_exp = max(1, n_contracts // (2 * n_exp))
    day_offsets = np.array([0, 1, 2, 4, 7, 14, 21, 30, 60, 90])
    rows_exp, rows_k, rows_call = [], [], []
    for off in day_offsets:
        strikes = spot * 0.7 + np.arange(per_exp) * (spot * 0.6 / per_exp)
        strikes = np.round(strikes / 5.0) * 5.0 + 0.0
        for right_is_call in (True, False):
            rows_exp.append(np.full(per_exp, np.datetime64("2025-03-03") + int(off)))
            rows_k.append(strikes)
            rows_call.append(np.full(per_exp, right_is_call))
    expiry = np.concatenate(rows_exp)[:n_contracts]
    strike = np.concatenate(rows_k)[:n_contracts]
    is_call = np.concatenate(rows_call)[:n_contracts]
    n = strike.shape[0]
    m = np.log(strike / spot)
    iv = 0.16 - 0.25 * m + 0.8 * m * m + rng.normal(0.0, 0.005, n)
    iv = np.clip(iv, 0.05, 1.5)
    oi = np.round(rng.lognormal(6.0, 1.5, n) * np.exp(-30.0 * m * m))
    mid = np.maximum(0.05, np.abs(spot - strike) * 0.01 + rng.random(n))
    return OptionChain(
        symbol="SPX", spot=spot, asof=asof, expiry=expiry, strike=strike, is_call=is_call,
        bid=mid * 0.98, ask=mid * 1.02, iv=iv, open_interest=oi, volume=np.zeros(n),
        delta=np.full(n, np.nan), gamma=np.full(n, np.nan),
    )


# ---------------------------------------------------------------- plain Python loop
def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


_close_cache: dict[Any, float] = {}


def _loop_T(asof_ts: float, exp: Any) -> float:
    close = _close_cache.get(exp)
    if close is None:
        d = exp.astype(object)
        close = datetime(d.year, d.month, d.day, 16, tzinfo=NEW_YORK).timestamp()
        _close_cache[exp] = close
    minutes = max((close - asof_ts) / 60.0, 5.0)
    return minutes / MINUTES_PER_YEAR


def loop_exposure(rows: list[tuple], spot: float, asof_ts: float, r: float, q: float) -> dict[str, Any]:
    """Greeks, GEX/DEX, by strike/expiry, walls and max pain with per-contract Python loops."""
    gex_total = dex_total = 0.0
    by_strike: dict[float, float] = {}
    call_k: dict[float, float] = {}
    put_k: dict[float, float] = {}
    by_exp: dict[Any, float] = {}
    per_exp: dict[Any, list[tuple[float, bool, float]]] = {}
    for exp, k, is_call, iv, oi in rows:
        t = _loop_T(asof_ts, exp)
        vst = iv * math.sqrt(t)
        d1 = (math.log(spot / k) + (r - q + 0.5 * iv * iv) * t) / vst
        dq = math.exp(-q * t)
        delta = dq * _ncdf(d1) if is_call else -dq * _ncdf(-d1)
        gamma = dq * _npdf(d1) / (spot * vst)
        g = (1.0 if is_call else -1.0) * gamma * oi * 100.0 * spot * spot * 0.01
        dx = delta * oi * 100.0 * spot
        gex_total += g
        dex_total += dx
        by_strike[k] = by_strike.get(k, 0.0) + g
        if is_call:
            call_k[k] = call_k.get(k, 0.0) + g
        else:
            put_k[k] = put_k.get(k, 0.0) + g
        by_exp[exp] = by_exp.get(exp, 0.0) + g
        per_exp.setdefault(exp, []).append((k, is_call, oi))
    call_wall = max(sorted(call_k), key=lambda s: call_k[s]) if call_k else None
    put_wall = max(sorted(put_k), key=lambda s: abs(put_k[s])) if put_k else None
    pain_strike: dict[Any, float | None] = {}
    for exp, items in per_exp.items():
        best: float | None = None
        best_pain = math.inf
        for p in sorted({k for k, _, _ in items}):
            pain = 0.0
            for k, is_call, oi in items:
                pain += oi * max(0.0, p - k) if is_call else oi * max(0.0, k - p)
            if pain < best_pain:
                best, best_pain = p, pain
        pain_strike[exp] = best
    return {"gex_total": gex_total, "dex_total": dex_total, "by_strike": by_strike, "by_exp": by_exp,
            "call_wall": call_wall, "put_wall": put_wall, "max_pain": pain_strike}


def loop_flip(rows: list[tuple], spot: float, asof_ts: float, r: float, q: float, n_levels: int) -> float | None:
    """Zero-gamma level with a levels x contracts double Python loop."""
    levels = [spot * 0.8 + i * (spot * 0.4) / (n_levels - 1) for i in range(n_levels)]
    prep = []
    for exp, k, is_call, iv, oi in rows:
        t = _loop_T(asof_ts, exp)
        prep.append((k, t, iv, oi, 1.0 if is_call else -1.0, math.sqrt(t), math.exp(-q * t)))
    totals = []
    for lv in levels:
        tot = 0.0
        for k, t, iv, oi, sign, st, dq in prep:
            vst = iv * st
            d1 = (math.log(lv / k) + (r - q + 0.5 * iv * iv) * t) / vst
            tot += sign * dq * _npdf(d1) / (lv * vst) * oi * 100.0 * lv * lv * 0.01
        totals.append(tot)
    best = None
    for i in range(n_levels - 1):
        a, b = totals[i], totals[i + 1]
        if a * b < 0:
            x = levels[i] + (levels[i + 1] - levels[i]) * a / (a - b)
            if best is None or abs(x - spot) < abs(best - spot):
                best = x
    return best


# ---------------------------------------------------------------- timing
def median_ms(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    out = fn()  # warm-up (imports, caches, page faults)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), out


def bench_iv(n_contracts: int, runs: int) -> bool:
    """Solver speed and worst error against vollib on an n-contract chain; True when within 1e-7."""
    from vollib.black_scholes_merton.implied_volatility import implied_volatility as vollib_iv

    from core.analytics.black_scholes import bs_price
    from core.analytics.greeks import vega
    from core.analytics.iv_solver import implied_vol

    chain = synthetic_chain(n_contracts)
    T = year_fraction(chain.asof, chain.expiry)
    S, K, sig, call = chain.spot, chain.strike, chain.iv, chain.is_call
    price = bs_price(S, K, T, RATE, DIV_YIELD, sig, call)
    t_ms, res = median_ms(lambda: implied_vol(price, S, K, T, RATE, DIV_YIELD, call), runs)
    informative = (vega(S, K, T, RATE, DIV_YIELD, sig) * sig > 1e-6 * price) & (price > 1e-6)
    solved = res.status == 0
    worst_true = float(np.max(np.abs(res.iv - sig)[informative & solved]))
    worst_ref = 0.0
    for i in np.flatnonzero(informative & solved).tolist():
        ref = vollib_iv(float(price[i]), S, float(K[i]), float(T[i]), RATE, DIV_YIELD, "c" if call[i] else "p")
        worst_ref = max(worst_ref, abs(float(res.iv[i]) - float(ref)))
    print(f"iv solver, {len(chain):>6} contracts: {t_ms:8.2f} ms  {len(chain) / t_ms * 1000:12,.0f} contracts/s  "
          f"{res.iterations} iterations  worst |iv - vollib| {worst_ref:.1e}  worst |iv - true| {worst_true:.1e}  "
          f"informative {int(informative.sum())}, unsolved among them {int((informative & ~solved).sum())}  "
          f"statuses {res.counts()}")
    return worst_ref < 1e-7 and bool(solved[informative].all())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contracts", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=30, help="runs of each vectorized computation")
    ap.add_argument("--loop-runs", type=int, default=3, help="runs of each pure-Python loop")
    ap.add_argument("--iv", action="store_true", help="benchmark the implied-volatility solver instead")
    ap.add_argument("--iv-sizes", default="10000,50000", help="chain sizes for --iv")
    args = ap.parse_args()
    if args.iv:
        ok = [bench_iv(int(n), max(3, args.runs // 6)) for n in args.iv_sizes.split(",")]
        return 0 if all(ok) else 1

    chain = synthetic_chain(args.contracts)
    n = len(chain)
    print(f"synthetic chain: {n} contracts, {len(np.unique(chain.expiry))} expiries, "
          f"{len(np.unique(chain.strike))} strikes, spot {chain.spot:g}")

    def vec_exposure():
        return compute_exposure(chain, RATE, DIV_YIELD, grid_levels=0)

    def vec_flip():
        T = year_fraction(chain.asof, chain.expiry)
        return zero_gamma_profile(chain.spot, chain.strike, T, chain.iv, chain.open_interest,
                                  chain.is_call, RATE, DIV_YIELD, grid_levels=GRID)

    t_exp, res = median_ms(vec_exposure, args.runs)
    t_flip, prof = median_ms(vec_flip, args.runs)

    rows = list(zip(chain.expiry, chain.strike.tolist(), chain.is_call.tolist(), chain.iv.tolist(),
                    chain.open_interest.tolist(), strict=True))
    asof_ts = chain.asof.timestamp()
    t_loop_exp, loop_res = median_ms(lambda: loop_exposure(rows, chain.spot, asof_ts, RATE, DIV_YIELD),
                                     args.loop_runs)
    t_loop_flip, loop_zero = median_ms(lambda: loop_flip(rows, chain.spot, asof_ts, RATE, DIV_YIELD, GRID),
                                       args.loop_runs)

    # Same answers?
    agree = (
        math.isclose(res.gex_total, loop_res["gex_total"], rel_tol=1e-9, abs_tol=1e-6)
        and math.isclose(res.dex_total, loop_res["dex_total"], rel_tol=1e-9, abs_tol=1e-6)
        and res.call_wall == loop_res["call_wall"] and res.put_wall == loop_res["put_wall"]
        and {np.datetime64(d, "D"): k for d, k in res.max_pain.items()} == loop_res["max_pain"]
        and ((prof.zero_gamma is None and loop_zero is None)
             or (prof.zero_gamma is not None and loop_zero is not None
                 and math.isclose(prof.zero_gamma, loop_zero, rel_tol=1e-9)))
    )

    print(f"exposure+walls+max pain : vectorized {t_exp:8.3f} ms (goal < 10 ms)   "
          f"python loop {t_loop_exp:10.1f} ms   speedup x{t_loop_exp / t_exp:,.0f}")
    print(f"zero-gamma flip, {GRID} lvls: vectorized {t_flip:8.3f} ms (goal < 50 ms)   "
          f"python loop {t_loop_flip:10.1f} ms   speedup x{t_loop_flip / t_flip:,.0f}")
    print(f"results: gex_total {res.gex_total:,.0f}  dex_total {res.dex_total:,.0f}  "
          f"call_wall {res.call_wall}  put_wall {res.put_wall}  zero_gamma {prof.zero_gamma}")
    print(f"vectorized == loop: {'yes' if agree else 'NO'}  "
          f"(runs: vectorized {args.runs}, loop {args.loop_runs}; median)")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
